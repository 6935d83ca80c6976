"""Every query on the audit tables."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, cast, func, insert, literal, update
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.audit.models import AuditEntry, AuditHead
from marketplace.db import table_of

HEAD_ID = 1

# Appends run in every state-changing transaction, orders included: their statements are built once,
# the row goes in as parameters (inlined values cost about a millisecond of CPU per statement to build).
# Core statements on the tables: the ORM's versions of these updates look for the head among the
# session's objects on every call, which costs more CPU than the statement itself.
_HEAD = table_of(AuditHead)
_ADVANCE_HEAD = (
    update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=_HEAD.c.seq + 1).returning(_HEAD.c.seq, _HEAD.c.hash)
)
_INSERT_ENTRY = insert(table_of(AuditEntry))
_SET_HEAD_HASH = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=bindparam("new_hash"))
_ENTRIES = table_of(AuditEntry)

# PostgreSQL: a whole append in one statement. The head's row is locked and read, moved to the next number
# and to the new entry's hash, which the database computes from the text Python canonicalised around the
# number (`chain.text_before_seq`), and the entry is inserted chained to the hash the head had. One round trip
# under the head's lock instead of two, and no statement between taking the lock and committing but the
# request's own last ones.
_OLD_HEAD = select(_HEAD.c.id, _HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID).with_for_update().cte("old_head")
_NEXT_SEQ = _OLD_HEAD.c.seq + 1
_NEW_HASH = func.encode(
    func.sha256(
        func.convert_to(
            _OLD_HEAD.c.hash + bindparam("before_seq", type_=Text) + cast(_NEXT_SEQ, Text) + literal("}"), "UTF8"
        )
    ),
    "hex",
)
_MOVED_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == _OLD_HEAD.c.id)
    .values(seq=_NEXT_SEQ, hash=_NEW_HASH)
    .returning(_HEAD.c.seq, _HEAD.c.hash, _OLD_HEAD.c.hash.label("prev_hash"))
    .cte("moved_head")
)
_ENTRY_FIELDS = ("at", "actor", "action", "object_type", "object_id", "payload")
_APPEND_HASHED_BY_DATABASE = (
    insert(_ENTRIES)
    .from_select(
        ["seq", *_ENTRY_FIELDS, "prev_hash", "hash"],
        core_select(
            _MOVED_HEAD.c.seq,
            *(bindparam(name, type_=_ENTRIES.c[name].type) for name in _ENTRY_FIELDS),
            _MOVED_HEAD.c.prev_hash,
            _MOVED_HEAD.c.hash,
        ),
    )
    .returning(_ENTRIES.c.seq)
)


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def appends_in_one_statement(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def append(self, values: dict[str, Any], before_seq: str) -> int:
        """Append an entry in one statement (PostgreSQL): its number, previous hash and hash are the head's;
        `values` are its other columns. Returns its number. The head's lock is held until commit."""
        row = (await self.session.execute(_APPEND_HASHED_BY_DATABASE, {**values, "before_seq": before_seq})).one()
        return int(row[0])

    async def advance_head(self) -> tuple[int, str]:
        """Take the head's row lock and the next sequence number; returns (seq, prev_hash).

        The lock is held until the transaction ends, so concurrent appends line up."""
        row = (await self.session.execute(_ADVANCE_HEAD)).one()
        return int(row[0]), str(row[1])

    async def insert_entry(self, values: dict[str, Any]) -> None:
        """Insert the entry and move the head's hash to it (where `append` is not one statement)."""
        await self.session.execute(_INSERT_ENTRY, values)
        await self.session.execute(_SET_HEAD_HASH, {"new_hash": values["hash"]})

    async def head(self) -> tuple[int, str]:
        row = (
            await self.session.execute(
                select(col(AuditHead.seq), col(AuditHead.hash)).where(col(AuditHead.id) == HEAD_ID)
            )
        ).one()
        return int(row[0]), str(row[1])

    async def first_seq_beyond_head(self) -> int | None:
        """An entry numbered past the head was not appended through the chain; read in one
        statement so a concurrent append (entry and head commit together) cannot look like one."""
        beyond = (
            select(func.min(col(AuditEntry.seq)))
            .where(
                col(AuditEntry.seq) > select(col(AuditHead.seq)).where(col(AuditHead.id) == HEAD_ID).scalar_subquery()
            )
            .scalar_subquery()
        )
        value = (await self.session.execute(select(beyond))).scalar_one_or_none()
        return None if value is None else int(value)

    async def stream_in_order(self, up_to_seq: int, batch: int = 1000) -> AsyncIterator[AuditEntry]:
        last = 0
        while True:
            rows = (
                await self.session.scalars(
                    select(AuditEntry)
                    .where(col(AuditEntry.seq) > last, col(AuditEntry.seq) <= up_to_seq)
                    .order_by(col(AuditEntry.seq))
                    .limit(batch)
                )
            ).all()
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            last = rows[-1].seq

    async def search(
        self,
        *,
        object_type: str | None,
        object_id: str | None,
        actor: str | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[AuditEntry], int]:
        conditions = []
        if object_type:
            conditions.append(col(AuditEntry.object_type) == object_type)
        if object_id:
            conditions.append(col(AuditEntry.object_id) == object_id)
        if actor:
            conditions.append(col(AuditEntry.actor) == actor)
        if action:
            conditions.append(col(AuditEntry.action) == action)
        if since:
            conditions.append(col(AuditEntry.at) >= since)
        if until:
            conditions.append(col(AuditEntry.at) < until)
        query = select(AuditEntry).where(*conditions)
        total = (await self.session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = (
            await self.session.scalars(query.order_by(col(AuditEntry.seq).desc()).limit(limit).offset(offset))
        ).all()
        return rows, int(total)
