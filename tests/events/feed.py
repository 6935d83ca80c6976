"""Reading the event feed over HTTP, as a party or an administrator would."""

from __future__ import annotations

from typing import Any

from tests.fixtures.api import Api, Person

EVENTS = "/api/v1/events"


async def page(api: Api, who: Person | dict[str, str], **params: Any) -> dict[str, Any]:
    headers = who.headers if isinstance(who, Person) else who
    response = await api.client.get(EVENTS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def read_all(api: Api, who: Person | dict[str, str], *, after: str | None = None, **params: Any) -> list[Any]:
    """Every event the caller sees after the cursor, paging until a page comes back empty."""
    events: list[Any] = []
    while True:
        answer = await page(api, who, **params, **({"after": after} if after else {}))
        if not answer["items"]:
            return events
        events.extend(answer["items"])
        after = answer["next_cursor"]


async def cursor_now(api: Api, admin: Person) -> str:
    """The position after the last event so far (an administrator sees them all)."""
    after = None
    while True:
        answer = await page(api, admin, limit=200, **({"after": after} if after else {}))
        if not answer["items"]:
            return str(answer["next_cursor"])
        after = answer["next_cursor"]


def of(events: list[Any], subject_id: str | None = None) -> list[str]:
    """The types of `events` (those of one subject)."""
    return [e["type"] for e in events if subject_id is None or e["subject_id"] == subject_id]
