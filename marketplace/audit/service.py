"""Append to the audit chain, query it, verify it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.audit.chain import ChainEntry, ChainReport, ChainVerifier, entry_hash, format_time, text_before_seq
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
        """Append one entry in the caller's transaction; returns its sequence number.

        Call it as late as possible in a transaction: it holds the chain's head lock until commit."""
        if self.repository.appends_in_one_statement:
            at = clock.now()
            fields = {"at": at, "actor": actor, "action": action, "object_type": object_type}
            fields |= {"object_id": str(object_id), "payload": payload}
            return await self.repository.append(fields, text_before_seq({**fields, "at": format_time(at)}))
        seq, prev_hash = await self.repository.advance_head()
        at = clock.now()
        body = {
            "seq": seq,
            "at": format_time(at),
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            "payload": payload,
        }
        digest = entry_hash(prev_hash, body)
        await self.repository.insert_entry(
            {
                "seq": seq,
                "at": at,
                "actor": actor,
                "action": action,
                "object_type": object_type,
                "object_id": str(object_id),
                "payload": payload,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        return seq

    async def verify(self) -> ChainReport:
        head_seq, head_hash = await self.repository.head()
        verifier = ChainVerifier()
        async for row in self.repository.stream_in_order(up_to_seq=head_seq):
            verifier.feed(to_chain_entry(row))
        beyond = await self.repository.first_seq_beyond_head()
        if beyond is not None:
            verifier.entries_beyond_head(beyond)
        return verifier.finish(head_seq, head_hash)

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


def to_chain_entry(row: AuditEntry) -> ChainEntry:
    return ChainEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        payload=row.payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
