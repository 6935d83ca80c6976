"""Hole 14, Stripe: a second successful PaymentIntent for an order already paid was answered `processed` and
its money kept; a webhook signed with a timestamp in the future was accepted. The second payment is refunded
at once and recorded for the administrators; a timestamp past the tolerance either way is refused."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from sqlmodel import col, select

from marketplace.db import SessionMaker
from marketplace.ledger.models import LedgerAccount, Transfer, TransferKind
from marketplace.payments.stripe_gateway import WEBHOOK_TOLERANCE_SECONDS
from tests.orders.conftest import PRICE_MINOR, Market
from tests.payments.conftest import STRIPE_KEY, event_payload, signature_header
from tests.payments.test_webhooks import deliver, inbox, stripe_market

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

__all__ = ["stripe_market"]


async def second_intent(localstripe_url: str, order_id: str) -> str:
    """What a buyer's client could do: another PaymentIntent for the same order, confirmed by card."""
    async with httpx.AsyncClient(base_url=localstripe_url, auth=(STRIPE_KEY, "")) as http:
        created = await http.post(
            "/v1/payment_intents",
            data={
                "amount": str(PRICE_MINOR),
                "currency": "cny",
                "metadata[order_id]": order_id,
                "payment_method": "pm_card_visa",
                "confirm": "true",
            },
        )
        assert created.status_code == 200, created.text
        assert created.json()["status"] == "succeeded", created.json()
        return str(created.json()["id"])


async def refund_transfers(sessions: SessionMaker, order_id: str) -> list[tuple[str, int]]:
    """The order's refund transfers: the code of the account each debits, and the amount."""
    async with sessions() as session:
        rows = await session.execute(
            select(col(LedgerAccount.key), col(Transfer.amount_minor))
            .join(LedgerAccount, col(LedgerAccount.id) == col(Transfer.debit_account_id))
            .where(col(Transfer.order_id) == uuid.UUID(order_id), col(Transfer.kind) == TransferKind.REFUND)
        )
        return [(str(key).split(":")[0], amount) for key, amount in rows.all()]


async def test_a_second_payment_of_a_paid_order_is_refunded_once_and_recorded(
    stripe_market: Market, sessions: SessionMaker, localstripe_url: str
) -> None:
    order = await stripe_market.accepted_order()
    paid = await stripe_market.act(order["id"], "pay", stripe_market.buyer, json={"payment_method": "pm_card_visa"})
    assert paid.json()["status"] == "paid", paid.text
    intent = await second_intent(localstripe_url, order["id"])

    first = await deliver(stripe_market.api.client, event_payload("payment_intent.succeeded", intent, event_id="e1"))
    assert first.json() == {"status": "processed"}, first.text
    other = event_payload("payment_intent.amount_capturable_updated", intent, event_id="e2")
    assert (await deliver(stripe_market.api.client, other)).json() == {"status": "processed"}

    assert (await stripe_market.order(order["id"]))["status"] == "paid"
    assert await refund_transfers(sessions, order["id"]) == [("platform_clearing", PRICE_MINOR)]
    audit = await stripe_market.api.client.get(
        "/api/v1/admin/audit",
        params={"object_id": order["id"], "action": "order.second_payment_refunded"},
        headers=stripe_market.admin.headers,
    )
    (entry,) = audit.json()["items"]
    assert entry["payload"]["payment_reference"] == intent
    assert entry["payload"]["refund_reference"].startswith("re_")
    check = await stripe_market.api.client.get("/api/v1/admin/ledger/check", headers=stripe_market.admin.headers)
    assert check.json()["ok"] is True, check.json()


@pytest.mark.parametrize("ahead", [WEBHOOK_TOLERANCE_SECONDS + 1, 86_400])
async def test_a_webhook_signed_in_the_future_is_refused_and_recorded_nowhere(
    stripe_market: Market, sessions: SessionMaker, ahead: int
) -> None:
    payload = event_payload("customer.created", "cus_future", event_id="evt_future", obj="customer")
    header = signature_header(payload, timestamp=int(time.time()) + ahead)
    response = await deliver(stripe_market.api.client, payload, header)
    assert response.status_code == 400, response.text
    assert "future" in response.json()["detail"]
    assert await inbox(sessions) == []
