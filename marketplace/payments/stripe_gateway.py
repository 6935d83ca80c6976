"""The Stripe gateway: PaymentIntents for the buyer's charge, Refunds, Connect Transfers to providers,
SetupIntents that save a buyer's card on its Customer and off-session PaymentIntents charging it later
(usage statements, renewals), and signed webhooks, through stripe-python's `StripeClient` and its asynchronous methods.

Charges and transfers are separate (`transfer_group` = the order): the platform is paid, holds the
money in escrow on its own books, and transfers the provider's share after settlement. Every call
that creates something carries an idempotency key derived from our ids, so a retry (ours or the
SDK's) never charges, refunds or pays twice.

Errors from Stripe or the network become `GatewayError`s whose message names the operation, the
HTTP status and Stripe's error code, never the request, the response body or a key."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import stripe

from marketplace.kit.i18n import Message
from marketplace.payments.gateway import (
    ConnectedAccount,
    GatewayError,
    GatewayEvent,
    InvalidWebhook,
    PaymentState,
    PaymentStatus,
    SetupState,
    UnknownAccount,
)

# The SDK's default: a webhook signed more than five minutes ago is refused (replay protection).
WEBHOOK_TOLERANCE_SECONDS = 300
# What a Connect account id looks like; anything else is refused before Stripe is asked.
ACCOUNT_ID_PATTERN = re.compile(r"^acct_[A-Za-z0-9]{6,60}$")
# PaymentIntent statuses that wait for the buyer (or for us to confirm).
_WAITING = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})


def payment_key(order_id: uuid.UUID) -> str:
    return f"order-{order_id}-payment"


def confirm_key(order_id: uuid.UUID) -> str:
    return f"order-{order_id}-payment-confirm"


def refund_key(order_id: uuid.UUID, reference: str) -> str:
    """One refund per payment: an order's own payment, or a second payment of the same order."""
    return f"order-{order_id}-refund-{reference}"


def charge_key(charge_id: uuid.UUID, attempt: int) -> str:
    """One PaymentIntent per recurring charge and attempt: a retry after a decline is a new attempt."""
    return f"charge-{charge_id}-attempt-{attempt}"


def customer_key(organization_id: uuid.UUID) -> str:
    return f"organization-{organization_id}-customer"


def transfer_key(payout_id: uuid.UUID) -> str:
    return f"payout-{payout_id}"


def payment_status(intent: Mapping[str, Any]) -> PaymentStatus:
    """A PaymentIntent's status as ours. A payment method that was tried and declined sends the
    intent back to `requires_payment_method` with a `last_payment_error`: that is a failed payment."""
    status = intent.get("status")
    if status == "succeeded":
        return PaymentStatus.SUCCEEDED
    if status == "canceled":
        return PaymentStatus.CANCELED
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        return PaymentStatus.FAILED
    if status in _WAITING:
        return PaymentStatus.REQUIRES_ACTION
    # processing, requires_capture (authorised, not yet captured) and any status Stripe adds later:
    # not final, so nothing moves until a webhook says more.
    return PaymentStatus.PROCESSING


def payment_state(intent: Mapping[str, Any]) -> PaymentState:
    """A PaymentIntent (as a plain mapping) as the orders domain needs it."""
    metadata = intent.get("metadata") or {}
    try:
        order_id: uuid.UUID | None = uuid.UUID(str(metadata.get("order_id")))
    except ValueError:
        order_id = None  # not one of ours
    return PaymentState(
        reference=str(intent["id"]),
        status=payment_status(intent),
        amount_minor=int(intent["amount"]),
        currency=str(intent["currency"]).upper(),
        order_id=order_id,
        client_secret=intent.get("client_secret"),
    )


def setup_state(intent: Mapping[str, Any]) -> SetupState:
    """A SetupIntent (as a plain mapping) as the billing flow needs it."""
    metadata = intent.get("metadata") or {}
    try:
        organization_id: uuid.UUID | None = uuid.UUID(str(metadata.get("organization_id")))
    except ValueError:
        organization_id = None  # not one of ours
    method = intent.get("payment_method")
    if isinstance(method, Mapping):  # expanded
        method = method.get("id")
    return SetupState(
        reference=str(intent["id"]),
        customer=str(intent.get("customer") or ""),
        succeeded=intent.get("status") == "succeeded",
        payment_method=str(method) if method else None,
        organization_id=organization_id,
        client_secret=intent.get("client_secret"),
    )


def _failure(operation: str, exc: stripe.StripeError) -> GatewayError:
    """A message safe to log and show: no request, no response body, no key."""
    parts = [type(exc).__name__]
    if exc.http_status is not None:
        parts.append(f"status {exc.http_status}")
    if exc.code:
        parts.append(f"code {exc.code}")
    if exc.request_id:
        parts.append(f"request {exc.request_id}")
    failure = ", ".join(parts)
    return GatewayError(
        Message("payments.gateway-failed", "stripe {operation} failed: {failure}", operation=operation, failure=failure)
    )


class StripeGateway:
    name = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 30,
    ) -> None:
        if not api_key:
            raise ValueError("STRIPE_API_KEY must be set when PAYMENT_GATEWAY is stripe")
        if not webhook_secret:
            raise ValueError("STRIPE_WEBHOOK_SECRET must be set when PAYMENT_GATEWAY is stripe")
        self._webhook_secret = webhook_secret
        # httpx's asynchronous client: requests run on the caller's event loop, never in a thread.
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    def __repr__(self) -> str:
        return "StripeGateway()"  # never the keys

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_payment(
        self, *, order_id: uuid.UUID, amount_minor: int, currency: str, payment_method: str | None
    ) -> PaymentState:
        """Create the order's PaymentIntent and, when a payment method is given, confirm it.

        Two calls, each with its own key derived from the order: the confirmation is made on an
        intent whose id we hold, so a declined card leaves a failed intent we can read back (the
        decline answer itself does not always carry the intent). Without a payment method the
        intent waits for the buyer's client, which confirms it with `client_secret`."""
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "metadata": {"order_id": str(order_id)},
            "transfer_group": f"order_{order_id}",
            # Confirmed on the server, so no payment method that would take the buyer to another site.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        if payment_method:
            params["payment_method"] = payment_method
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": payment_key(order_id)}
            )
        except stripe.StripeError as exc:
            raise _failure("payment", exc) from exc
        if not payment_method or intent.status != "requires_confirmation":
            return payment_state(intent.to_dict())
        try:
            intent = await self._client.v1.payment_intents.confirm_async(
                intent.id, options={"idempotency_key": confirm_key(order_id)}
            )
        except stripe.CardError:
            # Declined: the intent is back to requires_payment_method with the error on it.
            return await self.fetch_payment(intent.id)
        except stripe.StripeError as exc:
            raise _failure("payment confirmation", exc) from exc
        return payment_state(intent.to_dict())

    async def fetch_payment(self, reference: str) -> PaymentState:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(reference)
        except stripe.StripeError as exc:
            raise _failure("payment retrieval", exc) from exc
        return payment_state(intent.to_dict())

    async def charge_saved(
        self,
        *,
        charge_id: uuid.UUID,
        attempt: int,
        amount_minor: int,
        currency: str,
        customer: str | None,
        payment_method: str | None,
    ) -> PaymentState:
        """An off-session PaymentIntent on the buyer's saved payment method, confirmed at once. A decline
        (or a bank asking for the buyer, who is not there) is a failed payment; without a saved method no
        request is made."""
        if not (customer and payment_method):
            return PaymentState(
                reference="", status=PaymentStatus.FAILED, amount_minor=amount_minor, currency=currency, order_id=None
            )
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "customer": customer,
            "payment_method": payment_method,
            "off_session": True,
            "confirm": True,
            "metadata": {"charge_id": str(charge_id)},
        }
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": charge_key(charge_id, attempt)}
            )
        except stripe.CardError as exc:
            declined = exc.error.payment_intent if exc.error is not None else None
            return PaymentState(
                reference=str(declined.id) if declined is not None else "",
                status=PaymentStatus.FAILED,
                amount_minor=amount_minor,
                currency=currency,
                order_id=None,
            )
        except stripe.StripeError as exc:
            raise _failure("off-session payment", exc) from exc
        state = payment_state(intent.to_dict())
        # Off-session, a payment that waits for the buyer will not be completed by anyone: it failed.
        if state.status == PaymentStatus.REQUIRES_ACTION:
            return PaymentState(state.reference, PaymentStatus.FAILED, state.amount_minor, state.currency, None)
        return state

    async def setup_payment_method(self, *, organization_id: uuid.UUID, customer: str | None) -> SetupState:
        """The buyer's Customer (created once per organisation) and a SetupIntent for off-session use."""
        try:
            if customer is None:
                created = await self._client.v1.customers.create_async(
                    {"metadata": {"organization_id": str(organization_id)}},
                    {"idempotency_key": customer_key(organization_id)},
                )
                customer = str(created.id)
            intent = await self._client.v1.setup_intents.create_async(
                {
                    "customer": customer,
                    "usage": "off_session",
                    "metadata": {"organization_id": str(organization_id)},
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                }
            )
        except stripe.StripeError as exc:
            raise _failure("payment method setup", exc) from exc
        return setup_state(intent.to_dict())

    async def fetch_setup(self, reference: str) -> SetupState:
        try:
            intent = await self._client.v1.setup_intents.retrieve_async(reference)
        except stripe.StripeError as exc:
            raise _failure("setup retrieval", exc) from exc
        return setup_state(intent.to_dict())

    async def refund(self, *, order_id: uuid.UUID, reference: str, amount_minor: int, currency: str) -> str:
        params: stripe.params.RefundCreateParams = {
            "payment_intent": reference,
            "amount": amount_minor,
            "metadata": {"order_id": str(order_id)},
        }
        try:
            refund = await self._client.v1.refunds.create_async(
                params, {"idempotency_key": refund_key(order_id, reference)}
            )
        except stripe.StripeError as exc:
            raise _failure("refund", exc) from exc
        return str(refund.id)

    async def transfer(
        self, *, payout_id: uuid.UUID, destination: str, amount_minor: int, currency: str, transfer_group: str | None
    ) -> str:
        params: stripe.params.TransferCreateParams = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "destination": destination,
            "metadata": {"payout_id": str(payout_id)},
        }
        if transfer_group:
            params["transfer_group"] = transfer_group
        try:
            transfer = await self._client.v1.transfers.create_async(
                params, {"idempotency_key": transfer_key(payout_id)}
            )
        except stripe.StripeError as exc:
            raise _failure("transfer", exc) from exc
        return str(transfer.id)

    async def connected_account(self, account_id: str) -> ConnectedAccount:
        """The Connect account payouts go to: it must exist and be connected to the platform."""
        if not ACCOUNT_ID_PATTERN.fullmatch(account_id):
            raise UnknownAccount(
                Message(
                    "payments.stripe-account-id-malformed",
                    "a Stripe account id looks like acct_ followed by 6 to 60 letters or digits",
                )
            )
        try:
            account = await self._client.v1.accounts.retrieve_async(account_id)
        except stripe.StripeError as exc:
            if exc.http_status in {403, 404}:  # unknown, or not connected to the platform
                raise UnknownAccount(
                    Message("payments.stripe-account-unknown", "no such Stripe account is connected to the platform")
                ) from exc
            raise _failure("account retrieval", exc) from exc
        return ConnectedAccount(id=str(account.id), payouts_enabled=bool(account.payouts_enabled))

    def verify_webhook(self, payload: bytes, signature_header: str) -> GatewayEvent:
        """Check the `Stripe-Signature` header on the raw body (HMAC-SHA256 with the endpoint secret,
        timestamp within the tolerance), then read the event's id, type and object id."""
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature_header, self._webhook_secret, WEBHOOK_TOLERANCE_SECONDS
            )
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
            raise InvalidWebhook(
                Message("payments.webhook-signature", "the webhook's signature does not verify")
            ) from exc
        except ValueError as exc:  # signed, but not JSON
            raise InvalidWebhook(Message("payments.webhook-not-json", "the webhook's body is not JSON")) from exc
        # The library refuses stale timestamps only; one from the future is refused as well.
        if _signed_at(signature_header) > time.time() + WEBHOOK_TOLERANCE_SECONDS:
            raise InvalidWebhook(Message("payments.webhook-from-future", "the webhook's timestamp is in the future"))
        try:
            event_id, event_type, object_id = event["id"], event["type"], event["data"]["object"]["id"]
        except (KeyError, TypeError) as exc:
            raise InvalidWebhook(
                Message("payments.webhook-not-event", "the webhook is not an event with an object")
            ) from exc
        if not all(isinstance(value, str) and 0 < len(value) <= 255 for value in (event_id, event_type, object_id)):
            raise InvalidWebhook(
                Message(
                    "payments.webhook-ids-malformed", "the webhook's event id, type or object id is not a short string"
                )
            )
        return GatewayEvent(id=event_id, type=event_type, object_id=object_id)


def _signed_at(signature_header: str) -> int:
    """The `t=` timestamp of a `Stripe-Signature` header (verified already, so it is there and numeric)."""
    stamps = [part[2:] for part in signature_header.split(",") if part.startswith("t=")]
    return int(stamps[0])
