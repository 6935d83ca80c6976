"""Checking a trade certificate with nothing but the exchange's public keys (its JWKS), offline and pure: the
certificate's signature, its tree head's signature, the inclusion of its log entry under that head (or under a
head the checker got elsewhere), and that the entry records this order's move to completed. What holds and the
first thing that does not are said in one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt

from marketplace.audit.leaves import leaf_text
from marketplace.kit import jws, merkle

CERTIFICATE_TYPE = "trade-certificate+jws"
# The type marketplace.audit.transparency signs tree heads with (a test holds the two equal): importing it from there
# would load the database stack into a check that needs none.
TREE_HEAD_TYPE = "tree-head+jws"
COMPLETED_ACTION = "order.completed"


class Refuted(Exception):
    """The first check that failed: why, in the text."""


@dataclass
class Checked:
    """What a check found: the facts that hold, in order, and the first failure (None: the certificate holds)."""

    holds: list[str] = field(default_factory=list)
    failure: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # the certificate's, once its signature holds
    head: dict[str, Any] = field(default_factory=dict)  # the tree head's, once its signature holds

    @property
    def ok(self) -> bool:
        return self.failure is None

    def line(self) -> str:
        """e.g. "signature ok (kid K); tree head ok (size 12, kid K); inclusion ok (leaf 7); order 5f... completed"."""
        said = list(self.holds)
        if self.failure is not None:
            said.append(f"FAILED: {self.failure}")
        return "; ".join(said)


def verify(token: str, jwks: dict[str, Any], tree_head: str | None = None) -> Checked:
    """Check the certificate `token` (a compact JWS) against `jwks`; `tree_head`, a signed tree head (compact JWS)
    the checker got elsewhere, replaces the one the certificate carries: the inclusion proof must lead to it."""
    checked = Checked()
    try:
        _verify(token.strip(), jwks, tree_head.strip() if tree_head else None, checked)
    except Refuted as failure:
        checked.failure = str(failure)
    return checked


def _verify(token: str, jwks: dict[str, Any], presented: str | None, checked: Checked) -> None:
    # The notary signs both, with whichever of its keys was current then (a certificate issued after a rotation
    # may prove against a head the retired key signed): a key of the set that is not the notary's, an
    # access-token key, is refused.
    notary = jws.notary_keys(jwks)
    if not notary["keys"]:
        raise Refuted("the JWKS holds no notary key")
    payload = checked.payload = _signed(token, jwks, notary, CERTIFICATE_TYPE, "signature")
    checked.holds.append(f"signature ok (kid {_kid(token)})")
    log = _field(payload, "log", dict)
    head_token = presented or _field(log, "tree_head", str)
    which = "presented tree head" if presented else "tree head"
    head = checked.head = _signed(head_token, jwks, notary, TREE_HEAD_TYPE, which)
    size, root = _field(head, "tree_size", int), _hex(_field(head, "root_hash", str), "the tree head's root")
    checked.holds.append(f"{which} ok (size {size}, kid {_kid(head_token)})")
    if not presented and _field(log, "tree_size", int) != size:
        raise Refuted(f"the certificate's tree size is not its tree head's ({size})")
    entry = _field(log, "entry", dict)
    index = _field(log, "leaf_index", int)
    proof = [_hex(item, "a proof hash") for item in _field(log, "inclusion_proof", list)]
    leaf = merkle.leaf_hash(leaf_text(entry).encode())
    if not merkle.verify_inclusion(leaf, index, size, proof, root):
        raise Refuted(f"the log entry's inclusion proof does not lead to the {which}'s root (size {size})")
    checked.holds.append(f"inclusion ok (leaf {index})")
    order = _field(payload, "order", dict)
    order_id = _field(order, "id", str)
    _agree(entry, order, order_id)
    checked.holds.append(f"order {order_id} completed")


def _agree(entry: dict[str, Any], order: dict[str, Any], order_id: str) -> None:
    """The log entry records this order's move to completed, at the time the certificate states."""
    moved = entry.get("payload")
    if (entry.get("object_type"), entry.get("object_id")) != ("order", order_id):
        raise Refuted(f"the log entry is not about order {order_id}")
    if entry.get("action") != COMPLETED_ACTION or not isinstance(moved, dict) or moved.get("to") != "completed":
        raise Refuted("the log entry does not record the order's move to completed")
    if order.get("completed_at") != entry.get("at"):
        raise Refuted("the certificate's completion time is not the log entry's")


def _signed(token: str, jwks: dict[str, Any], notary: dict[str, Any], typ: str, what: str) -> dict[str, Any]:
    """The payload of `token` signed by a notary key of `jwks` (`notary`, those keys)."""
    try:
        return jws.verify(token, notary, typ)
    except jws.JWSInvalid as invalid:
        kid = _header(token).get("kid")
        kids, notary_kids = ({key.get("kid") for key in keys["keys"]} for keys in (jwks, notary))
        if kid in kids - notary_kids:
            raise Refuted(f"{what}: signed by key {kid}, which is not a notary key of the JWKS") from None
        raise Refuted(f"{what}: {invalid}") from None


def _header(token: str) -> dict[str, Any]:
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError:
        return {}


def _kid(token: str) -> str:
    """The key id of a token `jws.verify` accepted."""
    return str(_header(token).get("kid"))


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    # a JSON true is an int to Python: no count here is a boolean
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Refuted(f"the field {name} is missing or not a {kind.__name__}")
    return value


def _hex(value: Any, what: str) -> bytes:
    try:
        digest = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise Refuted(f"{what} is not a SHA-256 hash in hex")
    return digest
