"""Append to the audit log and query it (the tree the entries join: marketplace/audit/transparency.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.audit.leaves import around_id, body
from marketplace.audit.models import AuditEntry
from marketplace.audit.repository import AuditRepository
from marketplace.kit import clock

SYSTEM_ACTOR = "system"


class AuditService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = AuditRepository(session)

    async def record(
        self, *, actor: str, action: str, object_type: str, object_id: object, payload: dict[str, Any]
    ) -> int:
        """Append one entry in the caller's transaction, one INSERT that locks nothing other writers need;
        returns its id. The sequencer makes it a leaf of the tree once the transaction has committed."""
        return await self.repository.append(
            self.entry(actor=actor, action=action, object_type=object_type, object_id=object_id, payload=payload)
        )

    @staticmethod
    def entry(
        *, actor: str, action: str, object_type: str, object_id: object, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The parameters of one entry's append (`AuditRepository.append`, `audit.repository.appended_entry`):
        its fields, and its leaf's text on either side of the number it will get."""
        fields: dict[str, Any] = {"at": clock.now(), "actor": actor, "action": action, "object_type": object_type}
        fields |= {"object_id": str(object_id), "payload": payload}
        before_id, after_id = around_id(body(id=0, **fields))
        return {**fields, "before_id": before_id, "after_id": after_id}

    async def search(
        self,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[AuditEntry], int]:
        return await self.repository.search(
            object_type=object_type,
            object_id=object_id,
            actor=actor,
            action=action,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
