"""The certificate as the API answers it in JSON, and the shape of what the notary signs (stable field names)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from marketplace.audit.payloads import OrderMovedPayload
from marketplace.kit.schemas import DocumentedAs, Field, ResponseBody

Id = str  # a UUID, as text
_EXACT = ConfigDict(extra="forbid")


@with_config(_EXACT)
class CertifiedOrder(TypedDict):
    """The order: its id, when it was placed, and when it completed (its log entry's time)."""

    id: Id
    placed_at: str
    completed_at: str


@with_config(_EXACT)
class CertifiedParty(TypedDict):
    """An organisation party to the trade: organisation facts only, never a person's."""

    organization_id: Id
    name: str
    uscc: str


@with_config(_EXACT)
class CertifiedProduct(TypedDict):
    """The product version traded, and the SHA-256 of the dataset hosted for it (null: none hosted)."""

    id: Id
    name: str
    version: int
    version_id: Id
    dataset_sha256: str | None


@with_config(_EXACT)
class CertifiedPlan(TypedDict):
    """The price plan bought, and how many."""

    id: Id
    kind: str
    quantity: int


@with_config(_EXACT)
class CertifiedAmount(TypedDict):
    """What the buyer paid, in minor units of an ISO 4217 currency."""

    minor: int
    currency: str


@with_config(_EXACT)
class CertifiedVerdict(TypedDict):
    """The trade stage's verdict on the order."""

    id: Id
    decision: str
    rulebook_fingerprint: str


@with_config(_EXACT)
class CertifiedDelivery(TypedDict):
    """A delivery receipt: its kind, the digest of what was delivered, and when."""

    kind: str
    content_sha256: str
    at: str


@with_config(_EXACT)
class CertifiedEntry(TypedDict):
    """The audit entry of the order's move to completed, as its leaf hashes it (the canonical JSON of this object)."""

    id: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: OrderMovedPayload


@with_config(_EXACT)
class CertifiedLog(TypedDict):
    """The entry, its leaf index, and its inclusion proof (hex hashes, nearest the leaf first; RFC 9162 2.1.3)
    against the signed tree head of tree_size leaves (a compact JWS, typ tree-head+jws)."""

    entry: CertifiedEntry
    leaf_index: int
    tree_size: int
    inclusion_proof: list[str]
    tree_head: str


@with_config(_EXACT)
class CertificatePayload(TypedDict):
    """What the notary signs for a completed trade (typ trade-certificate+jws)."""

    certificate_id: Id
    issued_at: str
    order: CertifiedOrder
    buyer: CertifiedParty
    provider: CertifiedParty
    intermediary: CertifiedParty | None
    product: CertifiedProduct
    plan: CertifiedPlan
    amount: CertifiedAmount
    scenario: str
    delivery_mode: str
    verdict: CertifiedVerdict
    deliveries: list[CertifiedDelivery]
    log: CertifiedLog


class CertificateRead(ResponseBody):
    certificate: str = Field(
        description="compact JWS (EdDSA, typ trade-certificate+jws) signed by the notary key of /.well-known/jwks.json"
    )
    payload: Annotated[dict[str, Any], DocumentedAs([CertificatePayload])] = Field(
        description="what the JWS signs, decoded"
    )
