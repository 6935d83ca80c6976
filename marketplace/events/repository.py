"""Every query on the event tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, bindparam, insert, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.db import table_of, upsert_insert
from marketplace.events.models import Event, EventClock, EventParty
from marketplace.kit.sqltypes import UTCDateTime

CLOCK_ID = 1

# Why a clock row and not an autoincrement id: on PostgreSQL an id is taken when a row is inserted, not
# when its transaction commits, so a transaction holding id 7 can commit after another's id 8 -- and a
# reader that saw 8 and asks for `seq > 8` would never see 7. Here each event-writing transaction
# advances the clock row with an upsert, which locks the row until the transaction ends: the next
# transaction to record an event waits for the previous one to commit (or roll back, and then reuses its
# numbers), so numbers are handed out in commit order, without gaps, and a reader paging by `seq >
# cursor` skips nothing. The lock is taken next to the audit chain's head lock, which these
# transactions already hold until commit, so it adds no waiting of its own; it is the one lock every
# writer of events shares. SQLite serialises writers anyway.
_CLOCK = table_of(EventClock)
_EVENTS = table_of(Event)
_PARTIES = table_of(EventParty)
_INSERT_EVENT = insert(_EVENTS)
_INSERT_PARTY = insert(_PARTIES)
# PostgreSQL: the clock, the event and its parties in one statement (one round trip on the order hot path).
_APPEND = text(
    """
    WITH tick AS (
        INSERT INTO event_clock (id, seq) VALUES (:clock_id, 1)
        ON CONFLICT (id) DO UPDATE SET seq = event_clock.seq + 1
        RETURNING seq
    ), appended AS (
        INSERT INTO event (seq, id, type, subject_type, subject_id, payload, created_at)
        SELECT tick.seq, :id, :type, :subject_type, :subject_id, :payload, :created_at FROM tick
        RETURNING seq
    )
    INSERT INTO event_party (organization_id, event_seq)
    SELECT party, appended.seq FROM appended, unnest(:parties) AS party
    """
).bindparams(
    bindparam("clock_id", type_=BigInteger),
    bindparam("id", type_=UUID(as_uuid=True)),
    bindparam("payload", type_=JSONB),
    bindparam("created_at", type_=UTCDateTime),
    bindparam("parties", type_=ARRAY(UUID(as_uuid=True))),
)


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, values: dict[str, Any], parties: Sequence[uuid.UUID]) -> None:
        """Number the event by the clock (its lock held until the transaction ends) and insert it with its
        parties: one statement on PostgreSQL, three on SQLite."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(_APPEND, {"clock_id": CLOCK_ID, "parties": list(parties), **values})
            return
        seq = await self._tick()
        await self.session.execute(_INSERT_EVENT, {"seq": seq, **values})
        if parties:
            await self.session.execute(_INSERT_PARTY, [{"organization_id": p, "event_seq": seq} for p in parties])

    async def _tick(self) -> int:
        upsert = upsert_insert(self.session)(_CLOCK).values(id=CLOCK_ID, seq=1)
        statement = upsert.on_conflict_do_update(
            index_elements=[_CLOCK.c.id], set_={"seq": _CLOCK.c.seq + 1}
        ).returning(_CLOCK.c.seq)
        return int((await self.session.execute(statement)).scalar_one())

    async def page(
        self,
        *,
        organization_ids: Sequence[uuid.UUID] | None,
        after: int,
        type_name: str | None,
        type_prefix: str | None,
        limit: int,
    ) -> Sequence[Event]:
        """Up to `limit` events numbered after `after`, in commit order; those concerning one of
        `organization_ids` (None: every event)."""
        query = select(Event).where(col(Event.seq) > after)
        if organization_ids is not None:
            concerned = select(col(EventParty.event_seq)).where(
                col(EventParty.organization_id).in_(organization_ids), col(EventParty.event_seq) > after
            )
            query = query.where(col(Event.seq).in_(concerned))
        if type_name is not None:
            query = query.where(col(Event.type) == type_name)
        if type_prefix is not None:
            query = query.where(col(Event.type).startswith(type_prefix, autoescape=True))
        rows = await self.session.execute(query.order_by(col(Event.seq)).limit(limit))
        return rows.scalars().all()

    async def parties(self, seqs: Sequence[int]) -> dict[int, list[uuid.UUID]]:
        """The organisations each of these events concerns."""
        if not seqs:
            return {}
        rows = await self.session.execute(
            select(col(EventParty.event_seq), col(EventParty.organization_id)).where(
                col(EventParty.event_seq).in_(seqs)
            )
        )
        found: dict[int, list[uuid.UUID]] = {seq: [] for seq in seqs}
        for seq, organization_id in rows:
            found[seq].append(organization_id)
        return found
