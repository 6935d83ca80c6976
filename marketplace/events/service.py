"""Record events in the caller's transaction and read them back in commit order, a page at a time."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.events.models import Event, EventType
from marketplace.events.repository import EventRepository
from marketplace.kit import clock


@dataclass(frozen=True)
class EventFeedPage:
    events: Sequence[Event]
    parties: dict[int, list[uuid.UUID]]
    next_cursor: str


class EventService:
    def __init__(self, session: AsyncSession) -> None:
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
        """Write one event in the caller's transaction, for the organisations it concerns (None skipped).

        Call it next to the change's audit entry, late in the transaction: it takes the event clock's lock,
        held until commit (see `events.repository`)."""
        values = {
            "id": uuid.uuid4(),
            "type": event_type.value,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "payload": payload,
            "created_at": clock.now(),
        }
        await self.repository.append(values, sorted({p for p in parties if p is not None}))

    async def page(
        self, organization_ids: Sequence[uuid.UUID] | None, *, after: str | None, type_filter: str | None, limit: int
    ) -> EventFeedPage:
        """Events after the cursor `after`, in commit order, concerning one of `organization_ids` (None:
        every event), of the type `type_filter` names (exact, or a prefix ending in a dot).

        A cursor is the number of the last event read (none: 0, before the first). Callers treat it as
        opaque; the API's schema admits exactly the cursors there are, 1 to 18 digits."""
        start = int(after or 0)
        exact = type_filter if type_filter is not None and not type_filter.endswith(".") else None
        prefix = type_filter if type_filter is not None and type_filter.endswith(".") else None
        events = await self.repository.page(
            organization_ids=organization_ids, after=start, type_name=exact, type_prefix=prefix, limit=limit
        )
        parties = await self.repository.parties([e.seq for e in events])
        return EventFeedPage(events, parties, str(events[-1].seq if events else start))
