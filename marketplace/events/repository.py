"""Every query on the event tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, insert, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col, select

from marketplace.db import table_of
from marketplace.events.models import Event, EventParty

# Why events are not numbered by an autoincrement id: on PostgreSQL an id is taken when a row is inserted, not
# when its transaction commits, so a transaction holding id 7 can commit after another's id 8 -- and a reader
# that saw 8 and asks for `seq > 8` would never see 7. Numbering them as they are written would need a lock
# every writer of events shares (a counter row), held until each commits: all writers of the exchange would
# queue on it. Instead, on PostgreSQL, a writer inserts its events into `pending_event` (plain INSERTs, no
# shared lock), and a sequencer moves the pending events it sees into `event`, numbered after the last one in
# the order they were written. One sequencer runs at a time (an advisory lock only sequencers take, held until
# its transaction ends), and a sequencer sees only committed events, whose numbers it hands out after every
# number already committed: so numbers become visible in increasing order, and a reader paging by `seq >
# cursor` skips nothing. Readers run a pass before they read (`EventService.sequence`), so no event waits for
# a periodic job; a pass that finds nothing pending is one cheap statement that takes no lock. A pass commits
# on its own: a reader that showed numbers from its own uncommitted pass and then rolled back would have
# shown numbers the next pass gives to other events.
# SQLite serialises writers, so there an event is numbered as it is written, after the last one.
SEQUENCER_LOCK = 0x6D6B_7465_7665_6E74  # "mktevent": the key of the sequencers' advisory lock
# Pending events moved per statement; a pass goes on until a statement moves fewer.
SEQUENCE_BATCH = 5000
_EVENTS = table_of(Event)
_PARTIES = table_of(EventParty)
_INSERT_PARTY = insert(_PARTIES)
# SQLite: one event numbered after the last one, in the statement that inserts it.
_INSERT_NUMBERED = insert(_EVENTS).values(seq=select(func.coalesce(func.max(_EVENTS.c.seq), 0) + 1).scalar_subquery())
# PostgreSQL: a transaction's events, pending, in the order they were recorded (one statement however many), its
# `events` the JSON array `pending_rows` makes of them.
WRITE_PENDING = text(
    """
    INSERT INTO pending_event (id, type, subject_type, subject_id, payload, created_at, parties)
    SELECT (event->>'id')::uuid, event->>'type', event->>'subject_type', event->>'subject_id', event->'payload',
           (event->>'created_at')::timestamptz, event->'parties'
    FROM jsonb_array_elements(:events) WITH ORDINALITY AS item(event, n)
    ORDER BY n
    """
).bindparams(bindparam("events", type_=JSONB))
_ANY_PENDING = text("SELECT EXISTS (SELECT FROM pending_event)")
# The sequencers' lock, taken only when an event is pending: a row comes back when it was.
_LOCK_IF_PENDING = text(
    "SELECT pg_advisory_xact_lock(:key) FROM (SELECT FROM pending_event LIMIT 1) AS pending"
).bindparams(bindparam("key", type_=BigInteger))
# The oldest pending events moved into `event`, numbered after the last one in the order they were written, with
# their parties; how many. A statement of its own after the lock, so that its snapshot sees what the previous
# sequencer committed.
_MOVE_PENDING = text(
    """
    WITH moved AS (
        DELETE FROM pending_event
        WHERE number IN (SELECT number FROM pending_event ORDER BY number LIMIT :batch)
        RETURNING *
    ), numbered AS (
        SELECT moved.*, last.seq + row_number() OVER (ORDER BY moved.number) AS seq
        FROM moved, (SELECT coalesce(max(seq), 0) AS seq FROM event) AS last
    ), appended AS (
        INSERT INTO event (seq, id, type, subject_type, subject_id, payload, created_at)
        SELECT seq, id, type, subject_type, subject_id, payload, created_at FROM numbered
    ), concerned AS (
        INSERT INTO event_party (organization_id, event_seq)
        SELECT party::uuid, numbered.seq FROM numbered, jsonb_array_elements_text(numbered.parties) AS party
    )
    SELECT count(*) FROM numbered
    """
).bindparams(bindparam("batch", type_=BigInteger))


def write(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Write a transaction's events with their parties (each event's `parties`): on PostgreSQL pending, in one
    statement, for the sequencer to number; on SQLite numbered after the last one, 2 statements per event.
    Synchronous: it runs as the transaction commits (see `events.service`), through the session's own
    connection."""
    if not events:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(WRITE_PENDING, {"events": pending_rows(events)})
        return
    for event in events:
        row = {k: v for k, v in event.items() if k != "parties"}
        seq = session.execute(_INSERT_NUMBERED.returning(_EVENTS.c.seq), row).scalar_one()
        if event["parties"]:
            session.execute(_INSERT_PARTY, [{"organization_id": p, "event_seq": seq} for p in event["parties"]])


def pending_rows(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recorded events as `WRITE_PENDING` reads them (its `events`): ids and parties as text."""
    return [{**e, "id": str(e["id"]), "parties": [str(p) for p in e["parties"]]} for e in events]


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sequence(self) -> int:
        """Number every pending event committed so far (PostgreSQL), in a transaction of its own, committed before
        this returns: numbers a reader has seen are never taken back by its own rollback. How many. Whether any
        is pending is asked in the caller's transaction (no lock); only then is a second connection taken."""
        if self.session.get_bind().dialect.name != "postgresql":
            return 0
        if not await self.session.scalar(_ANY_PENDING):
            return 0
        engine = self.session.bind
        assert isinstance(engine, AsyncEngine), "sessions are bound to the engine"
        numbered = 0
        async with engine.begin() as connection:
            if (await connection.execute(_LOCK_IF_PENDING, {"key": SEQUENCER_LOCK})).first() is None:
                return 0
            while True:
                moved = int((await connection.execute(_MOVE_PENDING, {"batch": SEQUENCE_BATCH})).scalar_one())
                numbered += moved
                if moved < SEQUENCE_BATCH:
                    return numbered

    async def last_seq(self) -> int:
        """The number of the last event numbered (0: none yet)."""
        return int(await self.session.scalar(select(func.coalesce(func.max(col(Event.seq)), 0))) or 0)

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
