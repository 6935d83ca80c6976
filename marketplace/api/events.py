"""HTTP endpoint of the event feed: what happened to the caller's orders, licences, products and
organisations, in commit order, a page at a time."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from marketplace.accounts.models import Scope
from marketplace.events.schemas import EVENT_TYPE_FILTER_PATTERN, EventPage, EventRead
from marketplace.flows.event_feed import EventFeed
from marketplace.web.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from marketplace.web.principal import AUTHENTICATED, Caller
from marketplace.web.problems import problem_responses

Cursor = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[0-9]{1,18}$",
        description="`next_cursor` of the previous page (opaque); none: from the first event",
    ),
]
TypeFilter = Annotated[
    str | None,
    QueryParameter(
        max_length=64,
        pattern=EVENT_TYPE_FILTER_PATTERN,
        description="an event type (`order.paid`) or a prefix ending in a dot (`order.`)",
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]


class EventController(Controller):
    path = "/api/v1/events"
    tags = ["events"]
    dependencies = AUTHENTICATED

    @get("/", responses=problem_responses(401, 403), opt={"scope": Scope.EVENTS_READ})
    async def feed(
        self,
        principal: Caller,
        event_feed: NamedDependency[EventFeed],
        after: Cursor = None,
        type: TypeFilter = None,  # the query parameter's name
        limit: Limit = DEFAULT_PAGE_SIZE,
    ) -> EventPage:
        """Events concerning the caller's organisations (an administrator's: every event) after the cursor
        `after`, oldest first, in the order their changes committed; `next_cursor` reads on. An empty page
        keeps the cursor: poll with it for what happens next. A malformed cursor or type answers 400."""
        page = await event_feed.page(principal, after=after, type_filter=type, limit=limit)
        items = [
            EventRead(
                id=event.id,
                type=event.type,
                subject_type=event.subject_type,
                subject_id=event.subject_id,
                organization_ids=page.parties[event.seq],
                payload=event.payload,
                created_at=event.created_at,
            )
            for event in page.events
        ]
        return EventPage(items=items, next_cursor=page.next_cursor)
