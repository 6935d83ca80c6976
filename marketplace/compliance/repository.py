"""Every query on stored verdicts and the snapshot parts they name."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from marketplace.compliance.contract import Stage
from marketplace.compliance.models import SnapshotPart, StoredVerdict
from marketplace.db import table_of, upsert_insert

_INSERT = insert(table_of(StoredVerdict))
_PARTS = table_of(SnapshotPart)


class VerdictRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, values: dict[str, Any], parts: Sequence[dict[str, Any]]) -> None:
        """The snapshot parts the verdict names, then the verdict: one INSERT now, not an ORM flush later, as
        rows of other tables (orders) refer to it at once. The statement is the table's plain INSERT with the
        row as parameters: building one with the values inlined costs about a millisecond of CPU per call
        (SQLAlchemy coerces and keys each one)."""
        await self.add_parts(parts)
        await self.session.execute(_INSERT, values)

    async def add_parts(self, parts: Sequence[dict[str, Any]]) -> None:
        """Insert the parts not stored yet (ON CONFLICT DO NOTHING on the digest: a part stored by a concurrent
        transaction is left as it is, since its digest names the same document)."""
        if parts:
            await self.session.execute(upsert_insert(self.session)(_PARTS).on_conflict_do_nothing(), list(parts))

    async def documents(self, digests: Collection[str]) -> dict[str, dict[str, Any]]:
        """The documents of the parts with these digests, by digest."""
        if not digests:
            return {}
        query = select(col(SnapshotPart.digest), col(SnapshotPart.document)).where(
            col(SnapshotPart.digest).in_(sorted(digests))
        )
        return dict((await self.session.execute(query)).all())

    async def get(self, verdict_id: uuid.UUID) -> StoredVerdict | None:
        return await self.session.get(StoredVerdict, verdict_id)

    async def latest(self, subject_type: str, subject_id: str, stage: Stage) -> StoredVerdict | None:
        query = (
            select(StoredVerdict)
            .where(
                col(StoredVerdict.subject_type) == subject_type,
                col(StoredVerdict.subject_id) == subject_id,
                col(StoredVerdict.stage) == stage,
            )
            .order_by(col(StoredVerdict.created_at).desc())
            .limit(1)
        )
        return (await self.session.scalars(query)).first()

    async def of_subject(self, subject_type: str, subject_id: str, *, limit: int) -> Sequence[StoredVerdict]:
        """A subject's verdicts at every stage, newest first."""
        query = (
            select(StoredVerdict)
            .where(col(StoredVerdict.subject_type) == subject_type, col(StoredVerdict.subject_id) == subject_id)
            .order_by(col(StoredVerdict.created_at).desc(), col(StoredVerdict.id).desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def latest_for_subjects(
        self, subject_type: str, subject_ids: Sequence[str], stage: Stage
    ) -> Sequence[StoredVerdict]:
        """The newest verdict of each subject at a stage."""
        if not subject_ids:
            return []
        newest = (
            select(col(StoredVerdict.subject_id), func.max(col(StoredVerdict.created_at)).label("at"))
            .where(
                col(StoredVerdict.subject_type) == subject_type,
                col(StoredVerdict.subject_id).in_(subject_ids),
                col(StoredVerdict.stage) == stage,
            )
            .group_by(col(StoredVerdict.subject_id))
            .subquery()
        )
        query = (
            select(StoredVerdict)
            .join(
                newest,
                (col(StoredVerdict.subject_id) == newest.c.subject_id) & (col(StoredVerdict.created_at) == newest.c.at),
            )
            .where(col(StoredVerdict.subject_type) == subject_type, col(StoredVerdict.stage) == stage)
            .order_by(col(StoredVerdict.subject_id))
        )
        return (await self.session.scalars(query)).all()
