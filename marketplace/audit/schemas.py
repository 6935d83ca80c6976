"""Response shapes of the audit API."""

from datetime import datetime
from typing import Any

from marketplace.kit.schemas import ResponseBody


class AuditEntryRead(ResponseBody):
    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class ChainVerification(ResponseBody):
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None
    reason: str | None
