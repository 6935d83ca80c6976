"""Record events in the caller's transaction and read them back in commit order, a page at a time.

A recorded event waits in the session (`session.info`) and is written, with the transaction's other events,
as the transaction commits: a listener on every session's `before_commit` writes them through the session's
own connection, in the same transaction, so an event commits exactly when its change does; a rollback drops
them. Writers take no lock they share: on PostgreSQL a sequencer numbers committed events in the order it sees
them (events.repository), and every reader runs it before reading."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from marketplace.events.models import Event, EventType
from marketplace.events.repository import EventRepository, write
from marketplace.kit import clock


@dataclass(frozen=True)
class EventFeedPage:
    events: Sequence[Event]
    parties: dict[int, list[uuid.UUID]]
    next_cursor: str


# The events a session has recorded and not yet written, in its `info`.
_PENDING = "marketplace.events.pending"


@sqlalchemy_event.listens_for(Session, "before_commit")
def write_recorded(session: Session) -> None:
    """Write the events the session recorded (as it commits; tests call it to hold a transaction open just
    after its events were written)."""
    write(session, session.info.pop(_PENDING, ()))


@sqlalchemy_event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:  # events are of the outermost transaction (no emitter uses savepoints)
        session.info.pop(_PENDING, None)


class EventService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = EventRepository(session)

    async def record(
        self,
        event_type: EventType,
        *,
        subject_type: str,
        subject_id: object,
        parties: Iterable[uuid.UUID | None],
        payload: dict[str, Any],
    ) -> None:
        """Record one event in the caller's transaction, for the organisations it concerns (None skipped): it is
        written when the transaction commits, with its other events, in the order they were recorded."""
        values = {
            "id": uuid.uuid4(),
            "type": event_type.value,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "payload": payload,
            "created_at": clock.now(),
            "parties": sorted({p for p in parties if p is not None}),
        }
        self.session.info.setdefault(_PENDING, []).append(values)

    def take_recorded(self) -> list[dict[str, Any]]:
        """The events recorded in this transaction and not written yet, for a caller that writes them now beside
        writes of its own, in one statement (`events.repository.WRITE_PENDING`): the commit does not write them
        again."""
        taken: list[dict[str, Any]] = self.session.info.pop(_PENDING, [])
        return taken

    def restore(self, taken: list[dict[str, Any]]) -> None:
        """Record again events taken (`take_recorded`) for a statement that wrote nothing, before any recorded
        since: they are written with the transaction's others."""
        if taken:
            self.session.info[_PENDING] = [*taken, *self.session.info.get(_PENDING, [])]

    async def sequence(self) -> int:
        """Number the events committed and still pending, in a transaction of its own (see events.repository):
        what a reader runs before it pages by number, and the periodic job runs too; how many."""
        return await self.repository.sequence()

    async def last_seq(self) -> int:
        """The number of the last event, once every committed one is numbered (0: none yet)."""
        await self.sequence()
        return await self.repository.last_seq()

    async def page(
        self, organization_ids: Sequence[uuid.UUID] | None, *, after: str | None, type_filter: str | None, limit: int
    ) -> EventFeedPage:
        """Events after the cursor `after`, in commit order, concerning one of `organization_ids` (None:
        every event), of the type `type_filter` names (exact, or a prefix ending in a dot).

        A cursor is the number of the last event read (none: 0, before the first). Callers treat it as
        opaque; the API's schema admits exactly the cursors there are, 1 to 18 digits."""
        start = int(after or 0)
        await self.sequence()
        exact = type_filter if type_filter is not None and not type_filter.endswith(".") else None
        prefix = type_filter if type_filter is not None and type_filter.endswith(".") else None
        events = await self.repository.page(
            organization_ids=organization_ids, after=start, type_name=exact, type_prefix=prefix, limit=limit
        )
        parties = await self.repository.parties([e.seq for e in events])
        return EventFeedPage(events, parties, str(events[-1].seq if events else start))
