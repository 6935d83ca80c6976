"""The local gateway: in-process and deterministic, no keys. Every payment succeeds at once; the
money it moves is what the ledger records, so it needs no table of its own."""

from __future__ import annotations

import uuid

from marketplace.kit.i18n import Message
from marketplace.payments.gateway import ConnectedAccount, GatewayEvent, InvalidWebhook, PaymentState, PaymentStatus


class LocalGateway:
    name = "local"

    async def create_payment(
        self, *, order_id: uuid.UUID, amount_minor: int, currency: str, payment_method: str | None
    ) -> PaymentState:
        return PaymentState(
            reference=f"local_pay_{order_id.hex}",
            status=PaymentStatus.SUCCEEDED,
            amount_minor=amount_minor,
            currency=currency,
            order_id=order_id,
        )

    async def fetch_payment(self, reference: str) -> PaymentState:
        raise InvalidWebhook(Message("payments.local-no-events", "the local gateway sends no events to fetch"))

    async def refund(self, *, order_id: uuid.UUID, reference: str, amount_minor: int, currency: str) -> str:
        return f"local_refund_{order_id.hex}"

    async def transfer(
        self, *, payout_id: uuid.UUID, destination: str, amount_minor: int, currency: str, transfer_group: str | None
    ) -> str:
        return f"local_transfer_{payout_id.hex}"

    async def connected_account(self, account_id: str) -> ConnectedAccount:
        """Any id names an account: the local gateway's payouts are book entries, always enabled."""
        return ConnectedAccount(id=account_id, payouts_enabled=True)

    def verify_webhook(self, payload: bytes, signature_header: str) -> GatewayEvent:
        raise InvalidWebhook(Message("payments.local-no-webhooks", "the local gateway sends no webhooks"))

    async def aclose(self) -> None:
        """Nothing to release: the local gateway holds no connections."""
