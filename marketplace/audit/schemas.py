"""Response shapes of the audit API."""

from datetime import datetime
from typing import Annotated, Any

from marketplace.audit.payloads import documented_shapes
from marketplace.kit.schemas import DocumentedAs, Field, ResponseBody


class AuditEntryRead(ResponseBody):
    seq: int
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
    prev_hash: str
    hash: str


class ChainVerification(ResponseBody):
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None
    reason: str | None
