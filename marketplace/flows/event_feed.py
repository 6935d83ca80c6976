"""A caller's event feed: the events of the organisations it acts for (administrators': every event)."""

from __future__ import annotations

from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.events.service import EventFeedPage, EventService


class EventFeed:
    def __init__(self, accounts: AccountService, events: EventService) -> None:
        self.accounts = accounts
        self.events = events

    async def page(
        self, principal: Principal, *, after: str | None, type_filter: str | None, limit: int
    ) -> EventFeedPage:
        """A person sees the events of the organisations they are a member of, an API key those of its
        organisation, an administrator's access token all of them."""
        everyone = principal.is_admin and not principal.is_api_key
        organization_ids = None if everyone else await self.accounts.member_organization_ids(principal)
        return await self.events.page(organization_ids, after=after, type_filter=type_filter, limit=limit)
