"""The event feed of a trade: each party reads, in commit order, exactly the events that concern it; a stranger
reads none and an administrator all; an API key reads its organisation's with `events:read`; the cursor is
opaque, checked, and pages through every event exactly once."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.accounts.models import Scope
from marketplace.events.models import EventType
from tests.events.feed import EVENTS, cursor_now, of, page, read_all
from tests.orders.conftest import Market
from tests.security.scopes import key_headers

# A trade from placing to payout, as its buyer and its provider read it.
TRADE = [
    "order.placed",
    "order.accepted",
    "licence.granted",
    "order.paid",
    "order.delivered",
    "order.completed",
    "order.settled",
    "order.paid_out",
]


async def trade(market: Market) -> str:
    """An order placed, paid, delivered, confirmed, settled and paid out; its id."""
    order_id = str((await market.accepted_order())["id"])
    assert (await market.act(order_id, "pay", market.buyer)).status_code == 200
    await market.take_delivery(order_id)
    assert (await market.act(order_id, "confirm", market.buyer)).status_code == 200
    settled = await market.api.client.post("/api/v1/admin/settlements", headers=market.admin.headers)
    assert settled.status_code == 200, settled.text
    return order_id


async def test_each_party_reads_its_trade_in_commit_order(market: Market) -> None:
    api = market.api
    start = await cursor_now(api, market.admin)
    order_id = await trade(market)

    buyer = await read_all(api, market.buyer, after=start)
    provider = await read_all(api, market.provider, after=start)
    assert of(buyer) == TRADE
    assert of(provider) == [*TRADE, "payout.sent"]
    everything = await read_all(api, market.admin, after=start)
    assert [e["id"] for e in everything] == [e["id"] for e in provider]  # nobody else was concerned

    placed = buyer[0]
    assert (placed["subject_type"], placed["subject_id"]) == ("order", order_id)
    assert set(placed["organization_ids"]) == {market.buyer_org["id"], market.provider_org["id"]}
    assert placed["payload"] == {
        "order_id": order_id,
        "status": "accepted",
        "buyer_organization_id": market.buyer_org["id"],
        "provider_organization_id": market.provider_org["id"],
        "product_id": market.product_id,
        "plan_id": market.plan_id,
        "quantity": 1,
        "amount_minor": 1_200_000,
        "currency": "CNY",
    }
    assert buyer[3]["payload"]["previous_status"] == "accepted"
    [payout] = [e for e in provider if e["type"] == "payout.sent"]
    assert set(payout["payload"]) == {
        "payout_id",
        "organization_id",
        "currency",
        "amount_minor",
        "debt_repaid_minor",
        "status",
    }
    assert payout["organization_ids"] == [market.provider_org["id"]]


async def test_what_concerns_nobody_else_stays_with_its_parties(market: Market) -> None:
    api = market.api
    before = await read_all(api, market.buyer)
    assert of(before) == ["organization.admitted"]  # the buyer's own admission
    assert of(await read_all(api, market.provider)) == ["organization.admitted", "product.listed"]
    await trade(market)
    stranger = await api.person("Stranger")
    await api.organization(stranger)
    assert await read_all(api, stranger) == []
    mine = {market.buyer_org["id"], market.provider_org["id"]}
    for event in await read_all(api, market.admin):
        assert set(event["organization_ids"]) <= mine


async def test_an_api_key_reads_its_organisations_events_with_its_scope(market: Market) -> None:
    await trade(market)
    key = await key_headers(market, market.buyer_org, Scope.EVENTS_READ)
    assert of(await read_all(market.api, key)) == of(await read_all(market.api, market.buyer))
    without = await key_headers(market, market.buyer_org, Scope.ORDERS_READ)
    refused = await market.api.client.get(EVENTS, headers=without)
    assert refused.status_code == 403, refused.text


async def test_types_filter_exactly_or_by_prefix(market: Market) -> None:
    await trade(market)
    api = market.api
    assert of(await read_all(api, market.provider, type="order.paid")) == ["order.paid"]
    orders = await read_all(api, market.provider, type="order.")
    assert of(orders) == [t for t in TRADE if t.startswith("order.")]
    assert await read_all(api, market.provider, type="order.no_such_thing") == []
    assert {t.split(".")[0] for t in EventType} >= {"order", "licence", "product", "organization", "payout"}


async def test_a_cursor_not_of_this_feed_is_a_bad_request(market: Market) -> None:
    for bad in ["nonsense", "-1", "1.5", "1" * 19, ""]:
        response = await market.api.client.get(EVENTS, params={"after": bad}, headers=market.buyer.headers)
        assert response.status_code == 400, (bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    for bad_type in ["order", "ORDER.paid", "order.paid.x"]:
        response = await market.api.client.get(EVENTS, params={"type": bad_type}, headers=market.buyer.headers)
        assert response.status_code == 400, (bad_type, response.text)


async def test_an_empty_page_keeps_the_cursor_for_polling(market: Market) -> None:
    last = await cursor_now(market.api, market.admin)
    answer = await page(market.api, market.admin, after=last)
    assert (answer["items"], answer["next_cursor"]) == ([], last)
    order = await market.accepted_order()
    later = await page(market.api, market.buyer, after=last)
    assert [(e["type"], e["subject_id"]) for e in later["items"]] == [
        ("order.placed", order["id"]),
        ("order.accepted", order["id"]),
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=30))
async def test_pages_of_any_size_yield_every_event_once_in_order(market: Market, sizes: list[int]) -> None:
    everything = await _whole_feed(market)
    seen: list[Any] = []
    after: str | None = None
    for size in sizes * (len(everything) // len(sizes) + 2):
        answer = await page(market.api, market.admin, limit=size, **({"after": after} if after else {}))
        seen.extend(answer["items"])
        after = answer["next_cursor"]
        if not answer["items"]:
            break
    assert [e["id"] for e in seen] == [e["id"] for e in everything]


_FEEDS: dict[str, list[Any]] = {}


async def _whole_feed(market: Market) -> list[Any]:
    """The feed of one trade, made once per market (hypothesis reuses the test's fixtures for its examples)."""
    key = market.buyer_org["id"]
    if key not in _FEEDS:
        await trade(market)
        _FEEDS[key] = await read_all(market.api, market.admin, limit=200)
        assert len({uuid.UUID(e["id"]) for e in _FEEDS[key]}) == len(_FEEDS[key]) > 10
    return _FEEDS[key]
