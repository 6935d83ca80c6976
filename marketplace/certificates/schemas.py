"""The certificate as the API answers it in JSON."""

from typing import Any

from marketplace.kit.schemas import Field, ResponseBody


class CertificateRead(ResponseBody):
    certificate: str = Field(
        description="compact JWS (EdDSA, typ trade-certificate+jws) signed by the notary key of /.well-known/jwks.json"
    )
    payload: dict[str, Any] = Field(
        description="what the JWS signs, decoded: certificate_id, issued_at, order {id, placed_at, completed_at}, "
        "buyer, provider, intermediary {organization_id, name, uscc}, product {id, name, version, version_id, "
        "dataset_sha256}, plan {id, kind, quantity}, amount {minor, currency}, scenario, delivery_mode, verdict "
        "{id, decision, rulebook_fingerprint}, deliveries [{kind, content_sha256, at}], log {entry, leaf_index, "
        "tree_size, inclusion_proof, tree_head}"
    )
