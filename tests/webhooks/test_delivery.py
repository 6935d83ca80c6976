"""Deliveries: a trade's events reach each endpoint once, in commit order, signed; a failing receiver is retried
until it answers, and one that never does is given up on after about three days, its endpoint disabled with an
event saying so; a rotated secret signs beside the new one for the overlap only; a replay is a new attempt; an
address that stopped being allowed is not sent to."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from marketplace.config import WEBHOOK_RETRY_SCHEDULE
from marketplace.events.models import Event, EventType, WebhookEndpoint
from marketplace.events.webhooks import JITTER
from marketplace.jobs import deliver_webhooks
from marketplace.kit import clock
from marketplace.kit.logs import configure_logging
from marketplace.wiring import Runtime
from tests.events.feed import read_all
from tests.events.test_feed import TRADE, trade
from tests.fixtures.api import Api
from tests.orders.conftest import Market
from tests.webhooks.conftest import (
    ENDPOINTS,
    Receiver,
    create_endpoint,
    record_event,
    run_until_idle,
    signatures_by,
    with_settings,
)


async def deliveries(api: Api, headers: dict[str, str], endpoint_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"{ENDPOINTS}/{endpoint_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def attempts(api: Api, headers: dict[str, str], endpoint_id: str, delivery_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"{ENDPOINTS}/{endpoint_id}/deliveries/{delivery_id}/attempts", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_a_trade_reaches_each_endpoint_once_in_commit_order_signed(
    market: Market, receiver: Receiver, hooks: Runtime
) -> None:
    api = market.api
    buyer_hook = await create_endpoint(
        api, market.buyer, market.buyer_org["id"], receiver.url("/buyer"), ["order.", "licence."]
    )
    provider_hook = await create_endpoint(
        api, market.provider, market.provider_org["id"], receiver.url("/provider"), ["order.", "payout.", "licence."]
    )
    order_id = str((await market.accepted_order())["id"])
    assert (await market.act(order_id, "pay", market.buyer)).status_code == 200
    await run_until_idle(hooks)  # half the trade delivered: the cursor carries on from here
    await market.take_delivery(order_id)
    assert (await market.act(order_id, "confirm", market.buyer)).status_code == 200
    settled = await api.client.post("/api/v1/admin/settlements", headers=market.admin.headers)
    assert settled.status_code == 200, settled.text
    second = await trade(market)  # a second order, start to finish
    await run_until_idle(hooks)

    for who, hook, path in ((market.buyer, buyer_hook, "/buyer"), (market.provider, provider_hook, "/provider")):
        feed = [e for e in await read_all(api, who) if e["type"].split(".")[0] in {"order", "licence", "payout"}]
        got = receiver.at(path)
        # every event of the party's feed, once, in the order the feed (commit order) has them
        assert [r.headers["webhook-id"] for r in got] == [e["id"] for e in feed]
        assert all(signatures_by(hook["secret"], r) == 1 for r in got)
        bodies = [json.loads(r.body) for r in got]
        assert [b["type"] for b in bodies] == [e["type"] for e in feed]
        assert [b["data"] for b in bodies] == [e["payload"] for e in feed]
        for body, event in zip(bodies, feed, strict=True):
            assert datetime.fromisoformat(body["timestamp"]) == datetime.fromisoformat(event["created_at"])
        for order in (order_id, second):
            assert [b["type"] for b in bodies if b["data"].get("order_id") == order] == TRADE
        for r in got:
            assert abs(int(r.headers["webhook-timestamp"]) - clock.now().timestamp()) < 120
            assert r.headers["content-type"] == "application/json"
        listed = await deliveries(api, who.headers, hook["id"])
        assert {d["status"] for d in listed} == {"succeeded"}
        assert [d["event_id"] for d in reversed(listed)] == [e["id"] for e in feed]
    assert "payout.sent" in [json.loads(r.body)["type"] for r in receiver.at("/provider")]


async def test_a_receiver_failing_five_times_gets_the_delivery_on_the_sixth_attempt(
    market: Market, receiver: Receiver, hooks: Runtime
) -> None:
    api = market.api
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    receiver.script = [500, 503, 404, 302, 500]
    await record_event(api, market.buyer_org["id"])
    await record_event(api, market.buyer_org["id"], EventType.ORDER_DELIVERED)  # waits behind the first
    await run_until_idle(with_settings(hooks, webhook_retry_schedule=(0,) * 11))

    assert [r.headers["webhook-id"] for r in receiver.received][:6] == [receiver.received[0].headers["webhook-id"]] * 6
    assert len(receiver.received) == 7  # the second event only after the first got through
    first, second = reversed(await deliveries(api, market.buyer.headers, hook["id"]))
    assert (first["status"], first["attempts"], second["status"], second["attempts"]) == (
        "succeeded",
        6,
        "succeeded",
        1,
    )
    tried = await attempts(api, market.buyer.headers, hook["id"], first["id"])
    assert [a["status_code"] for a in tried] == [500, 503, 404, 302, 500, 200]
    assert [a["succeeded"] for a in tried] == [False] * 5 + [True]
    assert tried[0]["response_snippet"] == "answered 500"
    assert all(a["duration_ms"] >= 0 and a["error"] is None for a in tried)
    assert all(signatures_by(hook["secret"], r) == 1 for r in receiver.received)


async def test_a_receiver_that_always_fails_is_retried_for_days_then_its_endpoint_disabled(
    market: Market, receiver: Receiver, hooks: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = market.api
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    await record_event(api, market.buyer_org["id"])
    receiver.then = 500
    start = clock.now()
    moved = timedelta()
    monkeypatch.setattr(clock, "now", lambda: start + moved)
    assert (await deliver_webhooks(hooks))["webhooks_failed"] == 1
    for wait in WEBHOOK_RETRY_SCHEDULE:
        moved += timedelta(seconds=wait * (1 - 0.01))  # not yet: the wait has not passed
        assert (await deliver_webhooks(hooks))["webhooks_failed"] == 0
        moved += timedelta(seconds=wait * (JITTER + 0.01) + 1)  # now it has, whatever the jitter
        assert (await deliver_webhooks(hooks))["webhooks_failed"] == 1
    report = await deliver_webhooks(hooks)  # the endpoint's disabling event may be numbered now, on PostgreSQL
    assert (report["webhooks_queued"], report["webhooks_sent"], report["webhooks_failed"]) == (0, 0, 0)
    monkeypatch.undo()

    assert len(receiver.received) == len(WEBHOOK_RETRY_SCHEDULE) + 1
    assert moved >= timedelta(days=2.5)
    [delivery] = await deliveries(api, market.buyer.headers, hook["id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", len(WEBHOOK_RETRY_SCHEDULE) + 1)
    read = await api.client.get(f"{ENDPOINTS}/{hook['id']}", headers=market.buyer.headers)
    assert read.json()["enabled"] is False
    disabled = await read_all(api, market.buyer, type="webhook_endpoint.")
    assert [(e["type"], e["subject_id"], e["organization_ids"]) for e in disabled] == [
        ("webhook_endpoint.disabled", hook["id"], [market.buyer_org["id"]])
    ]
    assert disabled[0]["payload"]["failed_attempts"] == len(WEBHOOK_RETRY_SCHEDULE) + 1
    assert receiver.url() not in json.dumps(disabled)
    # disabled, it is sent nothing more; enabled again, it receives what happens from then on
    await record_event(api, market.buyer_org["id"])
    await run_until_idle(hooks)
    assert len(receiver.received) == len(WEBHOOK_RETRY_SCHEDULE) + 1
    enabled = await api.client.patch(f"{ENDPOINTS}/{hook['id']}", json={"enabled": True}, headers=market.buyer.headers)
    assert enabled.status_code == 200, enabled.text
    receiver.then = 200
    await record_event(api, market.buyer_org["id"], EventType.ORDER_COMPLETED)
    await run_until_idle(hooks)
    assert json.loads(receiver.received[-1].body)["type"] == "order.completed"


async def test_a_rotated_secret_signs_beside_the_new_one_during_the_overlap_only(
    market: Market, receiver: Receiver, hooks: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = market.api
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    rotated = await api.client.post(f"{ENDPOINTS}/{hook['id']}/rotate-secret", headers=market.buyer.headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != hook["secret"]
    until = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    overlap = hooks.settings.webhook_secret_overlap_seconds
    assert abs((until - clock.now()).total_seconds() - overlap) < 60

    await record_event(api, market.buyer_org["id"])
    await run_until_idle(hooks)
    [during] = receiver.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert (signatures_by(new_secret, during), signatures_by(hook["secret"], during)) == (1, 1)

    later = until + timedelta(seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    await record_event(api, market.buyer_org["id"])
    await run_until_idle(hooks)
    monkeypatch.undo()
    after = receiver.received[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert (signatures_by(new_secret, after), signatures_by(hook["secret"], after)) == (1, 0)


async def test_a_replay_is_a_new_attempt_with_the_same_id(market: Market, receiver: Receiver, hooks: Runtime) -> None:
    api = market.api
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    await record_event(api, market.buyer_org["id"])
    await run_until_idle(hooks)
    [delivery] = await deliveries(api, market.buyer.headers, hook["id"])

    replay = f"{ENDPOINTS}/{hook['id']}/deliveries/{delivery['id']}/replay"
    replayed = await api.client.post(replay, headers=market.buyer.headers)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["status"] == "pending"
    await run_until_idle(hooks)

    first, again = receiver.received
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == delivery["event_id"]
    assert first.body == again.body
    assert signatures_by(hook["secret"], again) == 1
    tried = await attempts(api, market.buyer.headers, hook["id"], delivery["id"])
    assert [a["succeeded"] for a in tried] == [True, True]
    [read] = await deliveries(api, market.buyer.headers, hook["id"])
    assert (read["status"], read["attempts"]) == ("succeeded", 2)
    unknown = await api.client.post(
        f"{ENDPOINTS}/{hook['id']}/deliveries/{uuid.uuid4()}/replay", headers=market.buyer.headers
    )
    assert unknown.status_code == 404


async def test_an_address_no_longer_allowed_is_not_sent_to(market: Market, receiver: Receiver, hooks: Runtime) -> None:
    api = market.api
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    await record_event(api, market.buyer_org["id"])
    await deliver_webhooks(with_settings(hooks, webhook_allowed_networks=()))

    assert receiver.received == []
    [delivery] = await deliveries(api, market.buyer.headers, hook["id"])
    [attempt] = await attempts(api, market.buyer.headers, hook["id"], delivery["id"])
    assert attempt["status_code"] is None
    assert attempt["error"] == "refused: the host resolves to 127.0.0.1, a loopback address"
    assert delivery["status"] == "pending"


async def test_only_the_events_of_the_endpoints_types_and_organisation_are_queued(
    market: Market, receiver: Receiver, hooks: Runtime
) -> None:
    api = market.api
    await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url(), ["order.paid", "licence."])
    await record_event(api, market.buyer_org["id"], EventType.ORDER_PLACED)
    await record_event(api, market.buyer_org["id"], EventType.ORDER_PAID)
    await record_event(api, market.buyer_org["id"], EventType.LICENCE_GRANTED)
    await record_event(api, market.provider_org["id"], EventType.ORDER_PAID)  # another organisation's
    await run_until_idle(hooks)
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["order.paid", "licence.granted"]


async def test_an_endpoint_receives_the_events_recorded_after_it_was_made(
    market: Market, receiver: Receiver, hooks: Runtime
) -> None:
    api = market.api
    await record_event(api, market.buyer_org["id"], EventType.ORDER_PLACED)
    await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    await record_event(api, market.buyer_org["id"], EventType.ORDER_PAID)
    await run_until_idle(hooks)
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["order.paid"]
    async with api.sessions() as session:
        endpoint = (await session.scalars(select(WebhookEndpoint))).one()
        last = (await session.scalars(select(col(Event.seq)).order_by(col(Event.seq).desc()))).first()
    assert endpoint.cursor_seq == last


def test_the_http_clients_request_lines_with_endpoint_urls_are_not_logged() -> None:
    root, client = logging.getLogger(), logging.getLogger("httpx")
    handlers, levels = list(root.handlers), (root.level, client.level)
    try:
        configure_logging("INFO", as_json=False)
        assert not client.isEnabledFor(logging.INFO)
        assert client.isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:] = handlers
        root.setLevel(levels[0])
        client.setLevel(levels[1])
