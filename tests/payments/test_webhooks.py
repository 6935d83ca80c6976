"""POST /api/v1/webhooks/stripe: verified on the raw body, recorded once in the inbox, and taken as a
prompt to fetch the PaymentIntent from the gateway (localstripe) and hand its state to the orders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from marketplace.db import SessionMaker
from marketplace.payments.models import WebhookEvent, WebhookOutcome
from marketplace.payments.stripe_gateway import StripeGateway
from tests.fixtures.api import Api
from tests.payments.conftest import event_payload, signature_header

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
