"""Recurring charges with Stripe, at the HTTP boundary (a recording loopback stand-in for the Stripe API; no
network): a buyer saves its card with a SetupIntent on its Customer, recorded from Stripe's webhook (re-fetched)
or by confirmation; a statement or renewal is an off-session PaymentIntent on that card, keyed by the charge and
its attempt; a decline is a failed attempt, not an error."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from marketplace.payments.gateway import PaymentStatus
from marketplace.payments.stripe_gateway import StripeGateway
from tests.fixtures.api import Api
from tests.payments.conftest import (
    StripeRecorder,
    event_payload,
    recorded_gateway,
    recorded_stripe_api,
    recorder,
    signature_header,
)

__all__ = ["recorded_gateway", "recorded_stripe_api", "recorder"]  # the payments tests' fixtures, used here too

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def intent(intent_id: str, status: str, charge_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 700,
        "currency": "cny",
        "status": status,
        "metadata": {"charge_id": str(charge_id)},
        "last_payment_error": None,
        **extra,
    }


async def test_an_off_session_charge_is_keyed_by_its_charge_and_attempt(
    recorded_gateway: StripeGateway, recorder: StripeRecorder
) -> None:
    charge_id = uuid.uuid4()
    recorder.route("POST", "/v1/payment_intents", intent("pi_usage", "succeeded", charge_id))
    state = await recorded_gateway.charge_saved(
        charge_id=charge_id, attempt=2, amount_minor=700, currency="CNY", customer="cus_buyer", payment_method="pm_card"
    )
    assert (state.reference, state.status, state.amount_minor, state.currency) == (
        "pi_usage",
        PaymentStatus.SUCCEEDED,
        700,
        "CNY",
    )
    (asked,) = recorder.requests
    assert asked.headers["idempotency-key"] == f"charge-{charge_id}-attempt-2"
    assert asked.form == {
        "amount": "700",
        "currency": "cny",
        "customer": "cus_buyer",
        "payment_method": "pm_card",
        "off_session": "true",
        "confirm": "true",
        "metadata[charge_id]": str(charge_id),
    }


async def test_a_declined_or_unauthenticated_charge_is_a_failed_attempt(
    recorded_gateway: StripeGateway, recorder: StripeRecorder
) -> None:
    charge_id = uuid.uuid4()
    declined = intent("pi_declined", "requires_payment_method", charge_id)
    recorder.route(
        "POST",
        "/v1/payment_intents",
        {"error": {"type": "card_error", "code": "card_declined", "message": "declined", "payment_intent": declined}},
        status=402,
    )
    state = await recorded_gateway.charge_saved(
        charge_id=charge_id, attempt=0, amount_minor=700, currency="CNY", customer="cus_buyer", payment_method="pm_card"
    )
    assert (state.reference, state.status) == ("pi_declined", PaymentStatus.FAILED)
    # the bank asks for the buyer, who is not there to answer: failed too
    recorder.route("POST", "/v1/payment_intents", intent("pi_3ds", "requires_action", charge_id))
    state = await recorded_gateway.charge_saved(
        charge_id=charge_id, attempt=1, amount_minor=700, currency="CNY", customer="cus_buyer", payment_method="pm_card"
    )
    assert (state.reference, state.status) == ("pi_3ds", PaymentStatus.FAILED)
    # without a saved card nothing is asked of Stripe
    asked = len(recorder.requests)
    state = await recorded_gateway.charge_saved(
        charge_id=charge_id, attempt=2, amount_minor=700, currency="CNY", customer=None, payment_method=None
    )
    assert (state.reference, state.status, len(recorder.requests)) == ("", PaymentStatus.FAILED, asked)


def setup_intent(organization_id: str, status: str, method: str | None) -> dict[str, Any]:
    return {
        "id": "seti_buyer",
        "object": "setup_intent",
        "customer": "cus_buyer",
        "status": status,
        "payment_method": method,
        "usage": "off_session",
        "metadata": {"organization_id": organization_id},
        "client_secret": "seti_buyer_secret_abc",
    }


async def test_a_buyer_saves_its_card_with_a_setup_intent(recorded_stripe_api: Api, recorder: StripeRecorder) -> None:
    api = recorded_stripe_api
    admin = await api.admin()
    owner = await api.person("Buyer")
    buyer = await api.admitted_organization(owner, admin, kind="buyer", dsmm_level=3)
    path = f"/api/v1/organizations/{buyer['id']}/payment-method"
    recorder.route("POST", "/v1/customers", {"id": "cus_buyer", "object": "customer"})
    recorder.route("POST", "/v1/setup_intents", setup_intent(buyer["id"], "requires_payment_method", None))
    started = await api.client.post(f"{path}/setup", headers=owner.headers)
    assert started.status_code == 201, started.text
    assert started.json() == {
        "organization_id": buyer["id"],
        "gateway": "stripe",
        "setup_reference": "seti_buyer",
        "client_secret": "seti_buyer_secret_abc",
        "saved": False,
    }
    customer, setup = recorder.requests
    assert (customer.path, customer.headers["idempotency-key"]) == (
        "/v1/customers",
        f"organization-{buyer['id']}-customer",
    )
    assert customer.form == {"metadata[organization_id]": buyer["id"]}
    assert (setup.form["customer"], setup.form["usage"]) == ("cus_buyer", "off_session")
    assert (await api.client.get(path, headers=owner.headers)).json()["saved"] is False

    # not yet confirmed by the buyer's client: nothing is saved
    recorder.route("GET", "/v1/setup_intents/seti_buyer", setup_intent(buyer["id"], "requires_confirmation", None))
    early = await api.client.post(f"{path}/confirm", json={"setup_reference": "seti_buyer"}, headers=owner.headers)
    assert early.status_code == 409, early.text

    # Stripe's webhook is a prompt to fetch the setup, which has succeeded
    recorder.route("GET", "/v1/setup_intents/seti_buyer", setup_intent(buyer["id"], "succeeded", "pm_saved"))
    payload = event_payload("setup_intent.succeeded", "seti_buyer", obj="setup_intent")
    hooked = await api.client.post(
        "/api/v1/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature_header(payload)}
    )
    assert hooked.status_code == 200, hooked.text
    assert hooked.json()["status"] == "processed"
    assert (await api.client.get(path, headers=owner.headers)).json()["saved"] is True
    async with api.runtime().transaction() as services:
        saved = await services.payments.saved_method(uuid.UUID(buyer["id"]))
    assert saved is not None
    assert (saved.customer, saved.payment_method) == ("cus_buyer", "pm_saved")
    confirmed = await api.client.post(f"{path}/confirm", json={"setup_reference": "seti_buyer"}, headers=owner.headers)
    assert confirmed.json()["saved"] is True

    # another organisation's setup is not this one's
    other = await api.person("Other")
    other_org = await api.admitted_organization(other, admin, kind="buyer", dsmm_level=3)
    stolen = await api.client.post(
        f"/api/v1/organizations/{other_org['id']}/payment-method/confirm",
        json={"setup_reference": "seti_buyer"},
        headers=other.headers,
    )
    assert stolen.status_code == 404, stolen.text
    assert json.loads(stolen.text)["type"].endswith(":not-found")
    assert (await api.client.post(f"{path}/setup", headers=other.headers)).status_code == 404
