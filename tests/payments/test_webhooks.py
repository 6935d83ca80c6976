"""POST /api/v1/webhooks/stripe: verified on the raw body, recorded once in the inbox, and taken as a
prompt to fetch the PaymentIntent from the gateway (localstripe) and hand its state to the orders."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from marketplace.db import SessionMaker
from marketplace.ledger.models import Transfer, TransferKind
from marketplace.payments.models import WebhookEvent, WebhookOutcome
from marketplace.payments.stripe_gateway import StripeGateway
from tests.fixtures.api import Api
from tests.orders.conftest import PRICE_MINOR, Market, listed_product
from tests.payments.conftest import STRIPE_KEY, event_payload, signature_header

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

WEBHOOK = "/api/v1/webhooks/stripe"


async def deliver(client: httpx.AsyncClient, payload: bytes, header: str | None = None) -> httpx.Response:
    return await client.post(
        WEBHOOK,
        content=payload,
        headers={
            "Stripe-Signature": signature_header(payload) if header is None else header,
            "Content-Type": "application/json",
        },
    )


async def inbox(sessions: SessionMaker) -> list[WebhookEvent]:
    async with sessions() as session:
        return list((await session.scalars(select(WebhookEvent).order_by(col(WebhookEvent.received_at)))).all())


# the endpoint


async def test_without_stripe_there_is_no_stripe_webhook(api: Api, sessions: SessionMaker) -> None:
    payload = event_payload("payment_intent.succeeded", "pi_1")
    response = await deliver(api.client, payload)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await inbox(sessions) == []


async def test_an_event_of_another_type_is_recorded_and_ignored(stripe_api: Api, sessions: SessionMaker) -> None:
    payload = event_payload("customer.created", "cus_1", event_id="evt_customer_1", obj="customer")
    response = await deliver(stripe_api.client, payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ignored"}
    (event,) = await inbox(sessions)
    assert (event.id, event.gateway, event.type, event.object_id) == (
        "evt_customer_1",
        "stripe",
        "customer.created",
        "cus_1",
    )
    assert (event.outcome, event.processed_at) == (WebhookOutcome.IGNORED, None)
    assert event.received_at.tzinfo is not None


async def test_a_payment_of_no_order_of_ours_is_ignored(
    stripe_api: Api, stripe_gateway: StripeGateway, sessions: SessionMaker
) -> None:
    state = await stripe_gateway.create_payment(
        order_id=uuid.uuid4(), amount_minor=100, currency="CNY", payment_method="pm_card_visa"
    )
    response = await deliver(stripe_api.client, event_payload("payment_intent.succeeded", state.reference))
    assert response.json() == {"status": "ignored"}
    (event,) = await inbox(sessions)
    assert event.outcome == WebhookOutcome.IGNORED


async def test_an_event_received_again_changes_nothing(stripe_api: Api, sessions: SessionMaker) -> None:
    payload = event_payload("customer.updated", "cus_2", event_id="evt_twice", obj="customer")
    first = await deliver(stripe_api.client, payload)
    # the same event, delivered again later: signed again, at another time
    again = await deliver(stripe_api.client, payload, signature_header(payload, timestamp=int(time.time()) + 1))
    assert (first.json(), again.json()) == ({"status": "ignored"}, {"status": "duplicate"})
    assert [e.id for e in await inbox(sessions)] == ["evt_twice"]


INVALID: list[Any] = [
    pytest.param(lambda p: (p, signature_header(p, secret="whsec_someone_else")), id="other-secret"),
    pytest.param(lambda p: (p, signature_header(p, timestamp=int(time.time()) - 301)), id="stale-timestamp"),
    pytest.param(lambda p: (p.replace(b"pi_", b"pi_x"), signature_header(p)), id="changed-body"),
    pytest.param(lambda p: (p, ""), id="no-signature"),
    pytest.param(lambda p: (b"{not json", signature_header(b"{not json")), id="signed-not-json"),
]


@pytest.mark.parametrize("tamper", INVALID)
async def test_a_webhook_that_does_not_verify_is_refused_and_recorded_nowhere(
    stripe_api: Api, sessions: SessionMaker, tamper: Callable[[bytes], tuple[bytes, str]]
) -> None:
    payload, header = tamper(event_payload("payment_intent.succeeded", "pi_123"))
    response = await deliver(stripe_api.client, payload, header)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(":webhook-invalid")
    assert await inbox(sessions) == []


async def test_a_gateway_that_cannot_answer_leaves_the_event_for_redelivery(
    stripe_api: Api, sessions: SessionMaker
) -> None:
    payload = event_payload("payment_intent.succeeded", "pi_unknown_to_localstripe", event_id="evt_unknown")
    response = await deliver(stripe_api.client, payload)
    assert response.status_code == 502, response.text
    assert response.json()["type"].endswith(":gateway-error")
    assert "sk_test" not in response.text
    assert await inbox(sessions) == []  # not recorded: the gateway will deliver it again


# with orders


async def payment_transfers(sessions: SessionMaker, order_id: str) -> list[Transfer]:
    async with sessions() as session:
        query = select(Transfer).where(
            col(Transfer.order_id) == uuid.UUID(order_id), col(Transfer.kind) == TransferKind.PAYMENT
        )
        return list((await session.scalars(query)).all())


async def buyer_confirms(localstripe_url: str, intent_id: str, payment_method: str) -> None:
    """What the buyer's client does with the client secret: attach a payment method and confirm."""
    async with httpx.AsyncClient(base_url=localstripe_url, auth=(STRIPE_KEY, "")) as http:
        updated = await http.post(f"/v1/payment_intents/{intent_id}", data={"payment_method": payment_method})
        assert updated.status_code == 200, updated.text
        confirmed = await http.post(f"/v1/payment_intents/{intent_id}/confirm")
        assert confirmed.status_code in {200, 402}, confirmed.text  # 402: declined


@pytest.fixture
async def stripe_market(stripe_api: Api) -> Market:
    """The orders tests' market, traded through the application that uses Stripe."""
    admin = await stripe_api.admin()
    provider = await stripe_api.person("Provider")
    provider_org = await stripe_api.admitted_organization(provider, admin, kind="provider", dsmm_level=3)
    product_id, plan_id = await listed_product(stripe_api, provider, provider_org["id"])
    buyer = await stripe_api.person("Buyer")
    buyer_org = await stripe_api.admitted_organization(buyer, admin, kind="buyer", dsmm_level=3)
    return Market(stripe_api, admin, provider, provider_org, buyer, buyer_org, product_id, plan_id)


@pytest.mark.parametrize("tamper", INVALID)
async def test_a_webhook_that_does_not_verify_leaves_the_order_as_it_was(
    stripe_market: Market, sessions: SessionMaker, localstripe_url: str, tamper: Callable[[bytes], tuple[bytes, str]]
) -> None:
    order = await stripe_market.accepted_order()
    paid = await stripe_market.act(order["id"], "pay", stripe_market.buyer)
    assert paid.json()["status"] == "accepted", paid.text
    intent_id = paid.json()["payment"]["reference"]
    await buyer_confirms(localstripe_url, intent_id, "pm_card_visa")  # the payment did succeed
    payload, header = tamper(event_payload("payment_intent.succeeded", intent_id))
    response = await deliver(stripe_market.api.client, payload, header)
    assert response.status_code == 400, response.text
    assert await inbox(sessions) == []
    assert (await stripe_market.order(order["id"]))["status"] == "accepted"
    assert await payment_transfers(sessions, order["id"]) == []


async def test_a_payment_confirmed_by_the_buyer_pays_the_order_once_however_often_its_webhook_comes(
    stripe_market: Market, sessions: SessionMaker, localstripe_url: str
) -> None:
    order = await stripe_market.accepted_order()
    paid = await stripe_market.act(order["id"], "pay", stripe_market.buyer)
    assert paid.status_code == 200, paid.text
    payment = paid.json()["payment"]
    assert (paid.json()["status"], payment["gateway"], payment["status"]) == ("accepted", "stripe", "requires_action")
    assert payment["client_secret"].startswith(payment["reference"])

    await buyer_confirms(localstripe_url, payment["reference"], "pm_card_visa")
    payload = event_payload("payment_intent.succeeded", payment["reference"], event_id="evt_paid")
    answers = [(await deliver(stripe_market.api.client, payload)).json()["status"] for _ in range(3)]
    assert answers == ["processed", "duplicate", "duplicate"]

    # another event about the same intent (a new id): fetched and applied again, to no effect
    other = event_payload("payment_intent.amount_capturable_updated", payment["reference"], event_id="evt_paid_2")
    assert (await deliver(stripe_market.api.client, other)).json() == {"status": "processed"}

    detail = await stripe_market.order(order["id"])
    assert detail["status"] == "paid"
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in detail["history"]][1:] == [
        ("accepted", "paid", "gateway:stripe")
    ]
    (transfer,) = await payment_transfers(sessions, order["id"])
    assert transfer.amount_minor == PRICE_MINOR
    assert [(e.id, e.outcome) for e in await inbox(sessions)] == [
        ("evt_paid", WebhookOutcome.PROCESSED),
        ("evt_paid_2", WebhookOutcome.PROCESSED),
    ]
    balance = await stripe_market.api.client.get(
        f"/api/v1/organizations/{stripe_market.provider_org['id']}/balance", headers=stripe_market.provider.headers
    )
    assert balance.json()["pending_minor"] == PRICE_MINOR


async def test_a_payment_that_succeeds_at_once_is_not_applied_again_by_its_webhook(
    stripe_market: Market, sessions: SessionMaker
) -> None:
    order = await stripe_market.accepted_order()
    paid = await stripe_market.act(order["id"], "pay", stripe_market.buyer, json={"payment_method": "pm_card_visa"})
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["payment"]["status"]) == ("paid", "succeeded")
    payload = event_payload("payment_intent.succeeded", paid.json()["payment"]["reference"])
    answers = [(await deliver(stripe_market.api.client, payload)).json()["status"] for _ in range(3)]
    assert answers == ["processed", "duplicate", "duplicate"]
    detail = await stripe_market.order(order["id"])
    assert [e["to_status"] for e in detail["history"]] == ["accepted", "paid"]
    assert len(await payment_transfers(sessions, order["id"])) == 1


async def test_a_declined_payment_cancels_the_order_through_its_webhook(
    stripe_market: Market, sessions: SessionMaker, localstripe_url: str
) -> None:
    order = await stripe_market.accepted_order()
    paid = await stripe_market.act(order["id"], "pay", stripe_market.buyer)
    reference = paid.json()["payment"]["reference"]
    await buyer_confirms(localstripe_url, reference, "pm_card_chargeCustomerFail")
    response = await deliver(stripe_market.api.client, event_payload("payment_intent.payment_failed", reference))
    assert response.json() == {"status": "processed"}
    detail = await stripe_market.order(order["id"])
    assert detail["status"] == "cancelled"
    assert detail["history"][-1]["actor"] == "gateway:stripe"
    assert await payment_transfers(sessions, order["id"]) == []


async def test_a_card_declined_when_paying_cancels_the_order_at_once(stripe_market: Market) -> None:
    order = await stripe_market.accepted_order()
    paid = await stripe_market.act(
        order["id"], "pay", stripe_market.buyer, json={"payment_method": "pm_card_chargeCustomerFail"}
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["payment"]["status"]) == ("cancelled", "failed")


@pytest.mark.postgres
async def test_concurrent_deliveries_of_one_event_apply_it_once(
    stripe_market: Market, sessions: SessionMaker, localstripe_url: str
) -> None:
    order = await stripe_market.accepted_order()
    paid = await stripe_market.act(order["id"], "pay", stripe_market.buyer)
    reference = paid.json()["payment"]["reference"]
    await buyer_confirms(localstripe_url, reference, "pm_card_visa")
    payload = event_payload("payment_intent.succeeded", reference, event_id="evt_concurrent")
    responses = await asyncio.gather(*(deliver(stripe_market.api.client, payload) for _ in range(5)))
    assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * 4 + ["processed"]
    assert (await stripe_market.order(order["id"]))["status"] == "paid"
    assert len(await payment_transfers(sessions, order["id"])) == 1
