"""Response shapes of the audit API and of the transparency log's."""

from datetime import datetime
from typing import Annotated, Any

from marketplace.audit.payloads import documented_shapes
from marketplace.kit.schemas import DocumentedAs, Field, ResponseBody


class AuditEntryRead(ResponseBody):
    id: int
    leaf_index: int | None = Field(description="its leaf in the transparency log; null until the sequencer adds it")
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: Annotated[
        dict[str, Any],
        DocumentedAs(documented_shapes()),
    ] = Field(
        description="what the act recorded; its shape is the one its action writes (see each shape's description)"
    )


class LogVerification(ResponseBody):
    ok: bool
    entries: int = Field(description="leaves recomputed")
    tree_size: int = Field(description="the latest signed head's size")
    root_hash: str | None
    heads: int = Field(description="signed heads checked")
    verified_size: int = Field(description="the largest head the recomputed tree matched before any break")
    first_broken_leaf: int | None = Field(description="where the stored log first departs from what was signed")
    entry_id: int | None = Field(description="the entry stored at that leaf, when there is one")
    reason: str | None


class TreeHeadRead(ResponseBody):
    tree_size: int
    root_hash: str = Field(description="hex SHA-256 Merkle tree hash (RFC 9162)")
    timestamp: datetime
    signed: str = Field(description="compact JWS (EdDSA, typ tree-head+jws) of tree_size, root_hash and timestamp")


class InclusionProofRead(ResponseBody):
    leaf_index: int
    tree_size: int
    inclusion: list[str] = Field(description="hex hashes, nearest the leaf first (RFC 9162 2.1.3)")


class ConsistencyProofRead(ResponseBody):
    first: int
    second: int
    consistency: list[str] = Field(description="hex hashes (RFC 9162 2.1.4)")


class LeafBody(ResponseBody):
    """An audit entry as its leaf hashes it: the leaf is SHA-256(0x00 || the canonical JSON of this object)."""

    id: int
    at: str = Field(description="the time as hashed: Python's isoformat of the UTC time, to the microsecond")
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: Annotated[dict[str, Any], DocumentedAs(documented_shapes())]


class EntryProofRead(ResponseBody):
    body: LeafBody
    leaf_index: int
    tree_size: int
    inclusion: list[str] = Field(description="hex hashes, nearest the leaf first (RFC 9162 2.1.3)")
    tree_head: str = Field(description="the signed tree head the proof is against (compact JWS)")
