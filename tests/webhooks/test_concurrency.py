"""Two runs of the webhook job at once, on PostgreSQL: each delivery is queued once and sent once (a failed
attempt once more), and each endpoint still receives its events in commit order."""

from __future__ import annotations

import asyncio

import pytest

from marketplace.events.models import EventType
from marketplace.jobs import deliver_webhooks
from tests.events.feed import read_all
from tests.orders.conftest import Market
from tests.webhooks.conftest import Receiver, create_endpoint, record_event, run_until_idle, with_settings

pytestmark = pytest.mark.postgres
EVENTS = 40
FAILURES = 3
TYPES = [EventType.ORDER_PAID, EventType.ORDER_DELIVERED, EventType.ORDER_COMPLETED, EventType.ORDER_SETTLED]


async def test_two_concurrent_runs_send_each_delivery_once(market: Market, receiver: Receiver, hooks: object) -> None:
    api = market.api
    paths = ["/a", "/b", "/c"]
    for path in paths:
        await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url(path), ["order."])
    for n in range(EVENTS):
        await record_event(api, market.buyer_org["id"], TYPES[n % len(TYPES)])
    receiver.script = [500] * FAILURES  # some failures, retried at once, among the concurrent runs
    runtime = with_settings(api.app.state.runtime, webhook_retry_schedule=(0,) * 11)

    for _ in range(3):
        await asyncio.gather(deliver_webhooks(runtime), deliver_webhooks(runtime))
    await run_until_idle(runtime)

    feed = [e["id"] for e in await read_all(api, market.buyer, type="order.")]
    assert len(feed) == EVENTS
    for path in paths:
        got = receiver.at(path)
        assert [r.headers["webhook-id"] for r in got if r.status == 200] == feed  # once each, in order
        arrival = [feed.index(r.headers["webhook-id"]) for r in got]
        assert arrival == sorted(arrival)  # a failed one was retried before the next was sent
    assert len(receiver.received) == len(paths) * EVENTS + FAILURES
