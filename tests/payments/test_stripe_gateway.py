"""The Stripe gateway with the real stripe-python client: against localstripe for payments, refunds
and signed webhooks; against a recording loopback server for what localstripe cannot serve (Connect
accounts, transfers) and for what it ignores (idempotency keys)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from marketplace.config import Settings
from marketplace.payments.gateway import GatewayError, InvalidWebhook, PaymentStatus, UnknownAccount
from marketplace.payments.gateways import gateway_from_settings
from marketplace.payments.local import LocalGateway
from marketplace.payments.stripe_gateway import StripeGateway
from tests.payments.conftest import (
    STRIPE_KEY,
    WEBHOOK_SECRET,
    StripeRecorder,
    event_payload,
    signature_header,
)

# stripe-python hands httpx its form-encoded body as `data=`, which httpx deprecates for raw text.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def localstripe_get(url: str, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(auth=(STRIPE_KEY, "")) as http:
        response = await http.get(f"{url}{path}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def localstripe_post(url: str, path: str, form: dict[str, str]) -> None:
    async with httpx.AsyncClient(auth=(STRIPE_KEY, "")) as http:
        response = await http.post(f"{url}{path}", data=form)
    assert response.status_code == 200, response.text


# payments, refunds: localstripe


async def test_a_card_payment_succeeds(stripe_gateway: StripeGateway, localstripe_url: str) -> None:
    order_id = uuid.uuid4()
    state = await stripe_gateway.create_payment(
        order_id=order_id, amount_minor=12_345, currency="EUR", payment_method="pm_card_visa"
    )
    assert state.status == PaymentStatus.SUCCEEDED
    assert state.reference.startswith("pi_")
    assert (state.amount_minor, state.currency, state.order_id) == (12_345, "EUR", order_id)

    fetched = await stripe_gateway.fetch_payment(state.reference)
    assert fetched.status == PaymentStatus.SUCCEEDED
    assert (fetched.reference, fetched.amount_minor, fetched.currency, fetched.order_id) == (
        state.reference,
        12_345,
        "EUR",
        order_id,
    )
    intent = await localstripe_get(localstripe_url, f"/v1/payment_intents/{state.reference}")
    assert intent["currency"] == "eur"
    assert intent["metadata"] == {"order_id": str(order_id)}
    assert intent["transfer_group"] == f"order_{order_id}"


async def test_a_declined_card_is_a_failed_payment(stripe_gateway: StripeGateway) -> None:
    """localstripe declines charges to 4000000000000341 (`pm_card_chargeCustomerFail`); the intent goes
    back to requires_payment_method with a last_payment_error."""
    order_id = uuid.uuid4()
    state = await stripe_gateway.create_payment(
        order_id=order_id, amount_minor=500, currency="EUR", payment_method="pm_card_chargeCustomerFail"
    )
    assert state.status == PaymentStatus.FAILED
    assert state.order_id == order_id
    fetched = await stripe_gateway.fetch_payment(state.reference)
    assert fetched.status == PaymentStatus.FAILED


async def test_without_a_payment_method_the_buyer_must_act(stripe_gateway: StripeGateway) -> None:
    state = await stripe_gateway.create_payment(
        order_id=uuid.uuid4(), amount_minor=900, currency="EUR", payment_method=None
    )
    assert state.status == PaymentStatus.REQUIRES_ACTION
    assert state.client_secret is not None
    assert state.client_secret.startswith(state.reference)


async def test_a_refund_returns_its_reference(stripe_gateway: StripeGateway, localstripe_url: str) -> None:
    order_id = uuid.uuid4()
    paid = await stripe_gateway.create_payment(
        order_id=order_id, amount_minor=2_000, currency="EUR", payment_method="pm_card_visa"
    )
    reference = await stripe_gateway.refund(
        order_id=order_id, reference=paid.reference, amount_minor=2_000, currency="EUR"
    )
    assert reference.startswith("re_")
    refund = await localstripe_get(localstripe_url, f"/v1/refunds/{reference}")
    assert (refund["payment_intent"], refund["amount"], refund["status"]) == (paid.reference, 2_000, "succeeded")


async def test_refunding_a_failed_payment_is_a_gateway_error(stripe_gateway: StripeGateway) -> None:
    order_id = uuid.uuid4()
    failed = await stripe_gateway.create_payment(
        order_id=order_id, amount_minor=700, currency="EUR", payment_method="pm_card_chargeCustomerFail"
    )
    with pytest.raises(GatewayError, match="stripe refund failed: InvalidRequestError, status 400"):
        await stripe_gateway.refund(order_id=order_id, reference=failed.reference, amount_minor=700, currency="EUR")


async def test_fetching_an_unknown_payment_is_a_gateway_error(stripe_gateway: StripeGateway) -> None:
    with pytest.raises(GatewayError, match="status 404"):
        await stripe_gateway.fetch_payment("pi_doesnotexist")


async def test_localstripe_signs_webhooks_the_gateway_verifies(
    stripe_gateway: StripeGateway, localstripe_url: str, recorder: StripeRecorder
) -> None:
    """localstripe delivers a signed `payment_intent.succeeded` to a loopback receiver; the gateway
    verifies that delivery exactly as received."""
    recorder.route("POST", "/hook", {})
    hook_id = f"hook_{uuid.uuid4().hex[:8]}"
    await localstripe_post(
        localstripe_url,
        f"/_config/webhooks/{hook_id}",
        {"url": f"{recorder.url}/hook", "secret": WEBHOOK_SECRET, "events[]": "payment_intent.succeeded"},
    )
    try:
        paid = await stripe_gateway.create_payment(
            order_id=uuid.uuid4(), amount_minor=1_000, currency="EUR", payment_method="pm_card_visa"
        )
        # localstripe waits a second, then delivers to every hook registered by then
        delivered = await recorder.wait_for(
            lambda r: r.path == "/hook" and paid.reference.encode() in r.body, seconds=10
        )
        assert delivered, "localstripe delivered no webhook about the payment"
        event = stripe_gateway.verify_webhook(delivered[0].body, delivered[0].headers["stripe-signature"])
        assert (event.type, event.object_id) == ("payment_intent.succeeded", paid.reference)
        assert event.id.startswith("evt_")
    finally:  # stop deliveries to this test's receiver
        await localstripe_post(
            localstripe_url,
            f"/_config/webhooks/{hook_id}",
            {"url": "http://127.0.0.1:9/none", "secret": WEBHOOK_SECRET, "events[]": "none"},
        )


# idempotency keys and the parameters sent: at the HTTP boundary (localstripe ignores Idempotency-Key)


def intent_body(intent_id: str, status: str, order_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 4_200,
        "currency": "cny",
        "status": status,
        "metadata": {"order_id": str(order_id)},
        "client_secret": f"{intent_id}_secret_x",
        "last_payment_error": None,
        **extra,
    }


async def test_a_payment_asked_twice_is_the_same_request(
    recorded_gateway: StripeGateway, recorder: StripeRecorder
) -> None:
    order_id, other_order = uuid.uuid4(), uuid.uuid4()
    recorder.route("POST", "/v1/payment_intents", intent_body("pi_recorded", "requires_confirmation", order_id))
    recorder.route("POST", "/v1/payment_intents/pi_recorded/confirm", intent_body("pi_recorded", "succeeded", order_id))

    first = await recorded_gateway.create_payment(
        order_id=order_id, amount_minor=4_200, currency="CNY", payment_method="pm_card_visa"
    )
    second = await recorded_gateway.create_payment(
        order_id=order_id, amount_minor=4_200, currency="CNY", payment_method="pm_card_visa"
    )
    assert first == second
    assert first.status == PaymentStatus.SUCCEEDED

    creates = [r for r in recorder.requests if r.path == "/v1/payment_intents"]
    confirms = [r for r in recorder.requests if r.path.endswith("/confirm")]
    assert len(creates) == len(confirms) == 2
    assert {r.headers["idempotency-key"] for r in creates} == {f"order-{order_id}-payment"}
    assert {r.headers["idempotency-key"] for r in confirms} == {f"order-{order_id}-payment-confirm"}
    assert creates[0].body == creates[1].body  # same key, same parameters: Stripe replays the first answer
    assert creates[0].form == {
        "amount": "4200",
        "currency": "cny",
        "metadata[order_id]": str(order_id),
        "transfer_group": f"order_{order_id}",
        "payment_method": "pm_card_visa",
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
    }
    assert creates[0].headers["authorization"] == f"Bearer {STRIPE_KEY}"

    recorder.route("POST", "/v1/payment_intents", intent_body("pi_other", "succeeded", other_order))
    await recorded_gateway.create_payment(order_id=other_order, amount_minor=4_200, currency="CNY", payment_method=None)
    assert recorder.requests[-1].headers["idempotency-key"] == f"order-{other_order}-payment"
    assert "payment_method" not in recorder.requests[-1].form


async def test_a_refund_is_keyed_by_its_order_and_payment(
    recorded_gateway: StripeGateway, recorder: StripeRecorder
) -> None:
    order_id = uuid.uuid4()
    recorder.route("POST", "/v1/refunds", {"id": "re_recorded", "object": "refund", "status": "succeeded"})
    reference = await recorded_gateway.refund(order_id=order_id, reference="pi_abc", amount_minor=300, currency="CNY")
    assert reference == "re_recorded"
    (sent,) = recorder.requests
    assert sent.headers["idempotency-key"] == f"order-{order_id}-refund-pi_abc"
    assert sent.form == {"payment_intent": "pi_abc", "amount": "300", "metadata[order_id]": str(order_id)}


# Connect: transfers and accounts, at the HTTP boundary (localstripe has neither)


async def test_a_transfer_goes_to_the_connected_account(
    recorded_gateway: StripeGateway, recorder: StripeRecorder
) -> None:
    payout_id = uuid.uuid4()
    recorder.route("POST", "/v1/transfers", {"id": "tr_recorded", "object": "transfer", "amount": 9_500})
    reference = await recorded_gateway.transfer(
        payout_id=payout_id,
        destination="acct_1ProviderAbc",
        amount_minor=9_500,
        currency="CNY",
        transfer_group="order_123",
    )
    assert reference == "tr_recorded"
    (sent,) = recorder.requests
    assert (sent.method, sent.path) == ("POST", "/v1/transfers")
    assert sent.headers["idempotency-key"] == f"payout-{payout_id}"
    assert sent.form == {
        "amount": "9500",
        "currency": "cny",
        "destination": "acct_1ProviderAbc",
        "transfer_group": "order_123",
        "metadata[payout_id]": str(payout_id),
    }


async def test_a_transfer_without_a_group(recorded_gateway: StripeGateway, recorder: StripeRecorder) -> None:
    recorder.route("POST", "/v1/transfers", {"id": "tr_2", "object": "transfer"})
    await recorded_gateway.transfer(
        payout_id=uuid.uuid4(), destination="acct_1ProviderAbc", amount_minor=1, currency="EUR", transfer_group=None
    )
    assert "transfer_group" not in recorder.requests[0].form


async def test_a_refused_transfer_is_a_gateway_error_without_secrets(
    recorded_gateway: StripeGateway, recorder: StripeRecorder
) -> None:
    recorder.route(
        "POST",
        "/v1/transfers",
        {"error": {"type": "invalid_request_error", "code": "balance_insufficient", "message": f"key {STRIPE_KEY}"}},
        status=400,
    )
    with pytest.raises(GatewayError) as raised:
        await recorded_gateway.transfer(
            payout_id=uuid.uuid4(), destination="acct_1ProviderAbc", amount_minor=1, currency="EUR", transfer_group=None
        )
    message = str(raised.value)
    expected = (
        "stripe transfer failed: InvalidRequestError, status 400, code balance_insufficient, request req_recorded"
    )
    assert message == expected
    assert STRIPE_KEY not in message
    assert WEBHOOK_SECRET not in message


async def test_an_authentication_failure_names_no_key(
    recorded_gateway: StripeGateway, recorder: StripeRecorder
) -> None:
    recorder.route(
        "GET",
        "/v1/payment_intents/pi_x",
        {"error": {"type": "invalid_request_error", "message": f"Invalid API Key provided: {STRIPE_KEY}"}},
        status=401,
    )
    with pytest.raises(GatewayError) as raised:
        await recorded_gateway.fetch_payment("pi_x")
    assert "AuthenticationError, status 401" in str(raised.value)
    assert STRIPE_KEY not in str(raised.value)


async def test_an_unreachable_gateway_is_a_gateway_error(recorder: StripeRecorder) -> None:
    url = recorder.url
    recorder.server.shutdown()
    recorder.server.server_close()
    gateway = StripeGateway(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, api_base=url, max_network_retries=0)
    try:
        with pytest.raises(GatewayError, match="stripe payment retrieval failed: APIConnectionError"):
            await gateway.fetch_payment("pi_x")
    finally:
        await gateway.aclose()


async def test_a_connected_account(recorded_gateway: StripeGateway, recorder: StripeRecorder) -> None:
    recorder.route("GET", "/v1/accounts/acct_1ProviderAbc", {"id": "acct_1ProviderAbc", "payouts_enabled": True})
    account = await recorded_gateway.connected_account("acct_1ProviderAbc")
    assert (account.id, account.payouts_enabled) == ("acct_1ProviderAbc", True)
    assert recorder.requests[0].path == "/v1/accounts/acct_1ProviderAbc"


async def test_an_unknown_or_malformed_account(recorded_gateway: StripeGateway, recorder: StripeRecorder) -> None:
    with pytest.raises(UnknownAccount):
        await recorded_gateway.connected_account("acct_1Missing")  # the recorder answers 404
    for malformed in ("acct_12", "acct_1Abc!def", "cus_1ProviderAbc", "acct_" + "a" * 61):
        with pytest.raises(UnknownAccount):
            await recorded_gateway.connected_account(malformed)
    assert len(recorder.requests) == 1  # malformed ids never reach the gateway


# webhooks


def test_a_signed_webhook_verifies(recorded_gateway: StripeGateway) -> None:
    payload = event_payload("payment_intent.succeeded", "pi_123", event_id="evt_1")
    event = recorded_gateway.verify_webhook(payload, signature_header(payload))
    assert (event.id, event.type, event.object_id) == ("evt_1", "payment_intent.succeeded", "pi_123")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda p: (p, signature_header(p, secret="whsec_someone_else")), id="other-secret"),
        pytest.param(lambda p: (p, signature_header(p, timestamp=int(time.time()) - 301)), id="stale-timestamp"),
        pytest.param(lambda p: (p.replace(b"pi_123", b"pi_999"), signature_header(p)), id="changed-body"),
        pytest.param(lambda p: (p + b" ", signature_header(p)), id="appended-byte"),
        pytest.param(lambda p: (p, ""), id="no-signature"),
        pytest.param(lambda p: (p, "t=abc,v1=00"), id="malformed-header"),
        pytest.param(lambda p: (p, signature_header(p).replace("v1=", "v0=")), id="other-scheme"),
        pytest.param(lambda p: (b"\xff" + p, signature_header(b"\xff" + p)), id="not-utf8"),
        pytest.param(lambda p: (b"{not json", signature_header(b"{not json")), id="signed-not-json"),
        pytest.param(lambda p: (b'{"id": "evt_1"}', signature_header(b'{"id": "evt_1"}')), id="signed-not-an-event"),
        pytest.param(lambda p: (b"[]", signature_header(b"[]")), id="signed-array"),
    ],
)
def test_a_webhook_that_does_not_verify(recorded_gateway: StripeGateway, tamper: Any) -> None:
    payload, header = tamper(event_payload("payment_intent.succeeded", "pi_123"))
    with pytest.raises(InvalidWebhook):
        recorded_gateway.verify_webhook(payload, header)


def test_a_webhook_within_the_tolerance_verifies(recorded_gateway: StripeGateway) -> None:
    payload = event_payload("charge.refunded", "ch_1")
    event = recorded_gateway.verify_webhook(payload, signature_header(payload, timestamp=int(time.time()) - 290))
    assert event.object_id == "ch_1"


# configuration


def test_gateway_from_settings() -> None:
    assert isinstance(gateway_from_settings(Settings()), LocalGateway)
    stripe = gateway_from_settings(
        Settings(payment_gateway="stripe", stripe_api_key=STRIPE_KEY, stripe_webhook_secret=WEBHOOK_SECRET)
    )
    assert isinstance(stripe, StripeGateway)
    assert STRIPE_KEY not in repr(stripe)
    with pytest.raises(ValueError, match="STRIPE_API_KEY"):
        gateway_from_settings(Settings(payment_gateway="stripe", stripe_webhook_secret=WEBHOOK_SECRET))
    with pytest.raises(ValueError, match="STRIPE_WEBHOOK_SECRET"):
        gateway_from_settings(Settings(payment_gateway="stripe", stripe_api_key=STRIPE_KEY))
    with pytest.raises(ValueError, match=r"payment_gateway\s+Input should be 'local' or 'stripe'"):
        Settings(payment_gateway="paypal")
    # settings built without validation still reach the gateway's own check
    with pytest.raises(ValueError, match="PAYMENT_GATEWAY"):
        gateway_from_settings(Settings.model_construct(payment_gateway="paypal"))
