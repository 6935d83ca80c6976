"""A storm of Stripe webhooks: every event of 200 paid orders (and 20 whose card is declined) delivered
three times in a shuffled order settles each order once -- one payment transfer, one "order.paid"
audit entry, one inbox row per event -- and the books check out. Deliveries that do not verify (another
secret, a stale timestamp, a changed body) are refused with 400 and change nothing.

The orders are placed and paid through OrderService with the application's Stripe gateway (one
PaymentIntent each on localstripe, left waiting for the buyer); the buyer's confirmations go to
localstripe directly, a bounded number at once. On PostgreSQL placing, paying and delivering run a
bounded number at once too (so duplicates of one event also race each other); SQLite takes them one
after another. The events are built as Stripe would send them and
signed with the endpoint secret."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from marketplace.audit.models import AuditEntry
from marketplace.db import SessionMaker
from marketplace.ledger.models import Transfer, TransferKind
from marketplace.orders.models import Order, OrderStatus
from marketplace.payments.models import WebhookEvent
from tests.fixtures.api import Api
from tests.orders.conftest import PRICE_MINOR
from tests.orders.factories import OrderServices, Trader, admitted_buyers, licences_remaining, listing
from tests.payments.conftest import STRIPE_KEY, event_payload, signature_header
from tests.payments.test_webhooks import WEBHOOK, deliver

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

SUCCEEDED = 200
DECLINED = 20
BUYERS = 4
CONFIRMING_AT_ONCE = 16
AT_ONCE_ON_POSTGRES = 8  # the Stripe application's pool holds 5 + 5 connections
DELIVERIES_PER_EVENT = 3
SEED = 20261122


async def confirm(http: httpx.AsyncClient, gate: asyncio.Semaphore, intent_id: str, payment_method: str) -> None:
    """The buyer's client: attach a payment method to the intent and confirm it."""
    async with gate:
        updated = await http.post(f"/v1/payment_intents/{intent_id}", data={"payment_method": payment_method})
        assert updated.status_code == 200, updated.text
        confirmed = await http.post(f"/v1/payment_intents/{intent_id}/confirm")
        assert confirmed.status_code in {200, 402}, confirmed.text  # 402: declined


async def counts(sessions: SessionMaker) -> dict[str, Any]:
    async with sessions() as session:
        return {
            "inbox": await session.scalar(select(func.count()).select_from(WebhookEvent)),
            "transfers": await session.scalar(select(func.count()).select_from(Transfer)),
            "audit": await session.scalar(select(func.count()).select_from(AuditEntry)),
            "statuses": Counter((await session.scalars(select(col(Order.status)))).all()),
        }


@pytest.mark.long
async def test_every_event_three_times_shuffled_settles_each_order_once(
    stripe_api: Api, sessions: SessionMaker, localstripe_url: str
) -> None:
    started = time.monotonic()
    admin = await stripe_api.admin()
    provider_person = await stripe_api.person("Provider")
    provider_org = await stripe_api.admitted_organization(provider_person, admin, kind="provider", dsmm_level=3)
    provider = Trader(provider_person, uuid.UUID(provider_org["id"]))
    total = SUCCEEDED + DECLINED + 1  # and one more, kept back for the deliveries that do not verify
    product = await listing(stripe_api, provider, max_licences=total)
    buyers = await admitted_buyers(stripe_api, admin, BUYERS)
    state = stripe_api.app.state
    orders = OrderServices.of(stripe_api, gateway=state.runtime.gateway)

    # SQLite takes one writer at a time: there, everything the database sees goes one after another
    at_once = 1 if state.runtime.settings.is_sqlite else AT_ONCE_ON_POSTGRES
    db_gate = asyncio.Semaphore(at_once)

    async def place_and_pay(buyer: Trader) -> tuple[uuid.UUID, str]:
        """Placed and paid, one transaction each; the intent waits for the buyer."""
        async with db_gate:
            async with orders.unit() as service:
                placed = await service.trading.place(buyer.principal, product.trade(buyer))
            assert placed.order.status == OrderStatus.ACCEPTED, placed
            async with orders.unit() as service:
                order, payment = await service.payment.pay(buyer.principal, placed.order.id, None)
        assert (order.status, payment.status.value) == (OrderStatus.ACCEPTED, "requires_action")
        return order.id, payment.reference

    intents = await asyncio.gather(*(place_and_pay(buyers[n % BUYERS]) for n in range(total)))
    assert await licences_remaining(sessions, product.product_id) == 0
    set_up = time.monotonic()

    succeeded, declined, (kept_back,) = intents[:SUCCEEDED], intents[SUCCEEDED:-1], intents[-1:]
    gate = asyncio.Semaphore(CONFIRMING_AT_ONCE)
    async with httpx.AsyncClient(base_url=localstripe_url, auth=(STRIPE_KEY, ""), timeout=30) as http:
        await asyncio.gather(
            *(confirm(http, gate, reference, "pm_card_visa") for _, reference in [*succeeded, kept_back]),
            *(confirm(http, gate, reference, "pm_card_chargeCustomerFail") for _, reference in declined),
        )
    confirmed = time.monotonic()

    # every event of every intent, three times, shuffled
    events: list[tuple[str, bytes]] = []
    for outcome, group in (("succeeded", succeeded), ("payment_failed", declined)):
        for n, (_, reference) in enumerate(group):
            for kind in ("created", outcome):
                event_id = f"evt_storm_{outcome}_{n}_{kind}"
                events.append((event_id, event_payload(f"payment_intent.{kind}", reference, event_id=event_id)))
    deliveries = [payload for _, payload in events for _ in range(DELIVERIES_PER_EVENT)]
    random.Random(SEED).shuffle(deliveries)

    async def delivered_once(payload: bytes) -> str:
        async with db_gate:
            response = await deliver(stripe_api.client, payload)
        # Two events of one intent applied at once serialise on the order's row: the later one finds the
        # order moved and does nothing, so every delivery is answered 200.
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    # started in the shuffled order; on PostgreSQL several are under way at once
    answers = Counter(await asyncio.gather(*(delivered_once(payload) for payload in deliveries)))
    delivered = time.monotonic()
    assert answers == {"processed": len(events), "duplicate": (DELIVERIES_PER_EVENT - 1) * len(events)}

    paid_ids = {order_id for order_id, _ in succeeded}
    declined_ids = {order_id for order_id, _ in declined}
    async with sessions() as session:
        statuses = dict((await session.execute(select(col(Order.id), col(Order.status)))).all())
        payments = Counter(
            (
                await session.execute(
                    select(col(Transfer.order_id), col(Transfer.amount_minor)).where(
                        col(Transfer.kind) == TransferKind.PAYMENT
                    )
                )
            ).all()
        )
        all_transfers = await session.scalar(select(func.count()).select_from(Transfer))
        inbox_ids = Counter((await session.scalars(select(col(WebhookEvent.id)))).all())
        audited = Counter(
            (
                await session.execute(
                    select(col(AuditEntry.action), col(AuditEntry.object_id)).where(
                        col(AuditEntry.action).in_(["order.paid", "order.cancelled"])
                    )
                )
            ).all()
        )
    assert statuses == {
        **dict.fromkeys(paid_ids, OrderStatus.PAID),
        **dict.fromkeys(declined_ids, OrderStatus.CANCELLED),
        kept_back[0]: OrderStatus.ACCEPTED,
    }
    # one payment transfer of the order's amount per paid order, and nothing else in the books
    assert payments == {(order_id, PRICE_MINOR): 1 for order_id in paid_ids}
    assert all_transfers == SUCCEEDED
    assert inbox_ids == {event_id: 1 for event_id, _ in events}
    assert audited == {
        **{("order.paid", str(order_id)): 1 for order_id in paid_ids},
        **{("order.cancelled", str(order_id)): 1 for order_id in declined_ids},
    }
    # the declined orders gave their licences back, once each; the kept-back order still holds one
    assert await licences_remaining(sessions, product.product_id) == DECLINED

    async with orders.unit() as service:
        expected_escrow = await service.orders.expected_escrow()
    assert expected_escrow == {(order_id, "CNY"): PRICE_MINOR for order_id in paid_ids}
    check = await stripe_api.client.get("/api/v1/admin/ledger/check", headers=admin.headers)
    assert check.status_code == 200, check.text
    books = check.json()
    assert (books["ok"], books["escrow_checked"], books["escrow_mismatches"]) == (True, True, []), books
    assert (books["transfers"], books["imbalance_minor"]) == (SUCCEEDED, 0)
    balance = await stripe_api.client.get(
        f"/api/v1/organizations/{provider.organization_id}/balance", headers=provider_person.headers
    )
    assert balance.json()["pending_minor"] == SUCCEEDED * PRICE_MINOR, balance.text

    # deliveries that do not verify: refused, and nothing changes -- not even for the order kept back,
    # whose payment did succeed, nor for events never seen before
    before = await counts(sessions)
    kept_event = event_payload("payment_intent.succeeded", kept_back[1], event_id="evt_storm_kept_back")
    samples = [kept_event, *(payload for _, payload in random.Random(SEED).sample(events, 3))]
    fresh = [payload.replace(b"evt_storm_", b"evt_storm_again_") for payload in samples]
    for payload in [*samples, *fresh]:
        other = event_payload("payment_intent.succeeded", kept_back[1], event_id="evt_storm_other")
        for body, header in (
            (payload, signature_header(payload, secret="whsec_someone_else")),
            (payload, signature_header(payload, timestamp=int(time.time()) - 600)),
            (payload, signature_header(other)),
        ):
            refused = await deliver(stripe_api.client, body, header)
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["type"].endswith(":webhook-invalid")
    assert await counts(sessions) == before

    # the kept-back event itself was sound: signed properly it pays its order
    assert (await deliver(stripe_api.client, kept_event)).json() == {"status": "processed"}
    assert (await counts(sessions))["statuses"][OrderStatus.PAID] == SUCCEEDED + 1
    finished = time.monotonic()
    print(  # noqa: T201
        f"{total} orders placed and paid in {set_up - started:.1f}s, confirmed on localstripe in "
        f"{confirmed - set_up:.1f}s; {len(deliveries)} deliveries of {len(events)} events to {WEBHOOK} in "
        f"{delivered - confirmed:.1f}s "
        f"checks and refusals in {finished - delivered:.1f}s"
    )
