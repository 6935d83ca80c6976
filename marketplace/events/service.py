"""Record events in the caller's transaction and read them back in commit order, a page at a time."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.errors import DomainError
from marketplace.events.models import Event, EventType
from marketplace.events.repository import EventRepository
from marketplace.kit import clock

_CURSOR_PREFIX = "e1:"


class InvalidCursor(DomainError):
    code = "event-cursor-invalid"
    title = "Invalid event cursor"


@dataclass(frozen=True)
class EventFeedPage:
    events: Sequence[Event]
    parties: dict[int, list[uuid.UUID]]
    next_cursor: str


def encode_cursor(seq: int) -> str:
    """Opaque to callers: the position after an event, as they pass it back in `after`."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position a cursor names (none: before the first event); InvalidCursor when it is not one of ours."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not number.isdigit() or len(number) > 18:
        raise InvalidCursor("`after` is not a cursor this feed gave out")
    return int(number)


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
        every event), of the type `type_filter` names (exact, or a prefix ending in a dot)."""
        start = decode_cursor(after)
        exact = type_filter if type_filter is not None and not type_filter.endswith(".") else None
        prefix = type_filter if type_filter is not None and type_filter.endswith(".") else None
        events = await self.repository.page(
            organization_ids=organization_ids, after=start, type_name=exact, type_prefix=prefix, limit=limit
        )
        parties = await self.repository.parties([e.seq for e in events])
        return EventFeedPage(events, parties, encode_cursor(events[-1].seq if events else start))
