"""Every query on the event tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, bindparam, insert, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col, select

from marketplace.db import table_of
from marketplace.events.models import Event, EventClock, EventParty

CLOCK_ID = 1

# Why a clock row and not an autoincrement id: on PostgreSQL an id is taken when a row is inserted, not
# when its transaction commits, so a transaction holding id 7 can commit after another's id 8 -- and a
# reader that saw 8 and asks for `seq > 8` would never see 7. Here each event-writing transaction
# advances the clock row with an upsert, which locks the row until the transaction ends: the next
# transaction to record an event waits for the previous one to commit (or roll back, and then reuses its
# numbers), so numbers are handed out in commit order, without gaps, and a reader paging by `seq >
# cursor` skips nothing. It is the one lock every writer of events shares, so a transaction's events are
# written as it commits (`events.service`): the lock is held for that statement and the commit, not
# across the transaction's other work. SQLite serialises writers anyway.
_CLOCK = table_of(EventClock)
_EVENTS = table_of(Event)
_PARTIES = table_of(EventParty)
_INSERT_EVENT = insert(_EVENTS)
_INSERT_PARTY = insert(_PARTIES)
# PostgreSQL: the clock advanced by the batch's size, its events and their parties, in one statement (one
# round trip per transaction, however many events it records). The batch is one JSON array, each element
# an event with its `parties`; its ordinality numbers the events after the clock's previous value.
_APPEND = text(
    """
    WITH batch AS (
        SELECT item.value AS event, item.n FROM jsonb_array_elements(:events) WITH ORDINALITY AS item(value, n)
    ), tick AS (
        INSERT INTO event_clock (id, seq) VALUES (:clock_id, :size)
        ON CONFLICT (id) DO UPDATE SET seq = event_clock.seq + :size
        RETURNING seq - :size AS before
    ), appended AS (
        INSERT INTO event (seq, id, type, subject_type, subject_id, payload, created_at)
        SELECT tick.before + batch.n, (event->>'id')::uuid, event->>'type', event->>'subject_type',
               event->>'subject_id', event->'payload', (event->>'created_at')::timestamptz
        FROM tick, batch
        RETURNING seq
    )
    INSERT INTO event_party (organization_id, event_seq)
    SELECT party::uuid, appended.seq
    FROM appended, tick, batch, jsonb_array_elements_text(batch.event->'parties') AS party
    WHERE appended.seq = tick.before + batch.n
    """
).bindparams(
    bindparam("clock_id", type_=BigInteger),
    bindparam("size", type_=BigInteger),
    bindparam("events", type_=JSONB),
)


def write(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Number the events by the clock, in order (its lock held until the transaction ends), and insert them
    with their parties (each event's `parties`): one statement on PostgreSQL, 1 + 2 per event on SQLite.
    Synchronous: it runs as the transaction commits (see `events.service`), through the session's own
    connection."""
    if not events:
        return
    if session.get_bind().dialect.name == "postgresql":
        batch = [{**e, "id": str(e["id"]), "parties": [str(p) for p in e["parties"]]} for e in events]
        session.execute(_APPEND, {"clock_id": CLOCK_ID, "size": len(batch), "events": batch})
        return
    upsert = sqlite.insert(_CLOCK).values(id=CLOCK_ID, seq=len(events))
    tick = upsert.on_conflict_do_update(index_elements=[_CLOCK.c.id], set_={"seq": _CLOCK.c.seq + len(events)})
    last = int(session.execute(tick.returning(_CLOCK.c.seq)).scalar_one())
    for seq, event in enumerate(events, start=last - len(events) + 1):
        session.execute(_INSERT_EVENT, {"seq": seq, **{k: v for k, v in event.items() if k != "parties"}})
        if event["parties"]:
            session.execute(_INSERT_PARTY, [{"organization_id": p, "event_seq": seq} for p in event["parties"]])


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
