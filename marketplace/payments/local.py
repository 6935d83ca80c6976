"""The local gateway: in-process and deterministic, no keys. Every payment succeeds at once, a buyer's recurring
charges too (a payment method is saved by asking); the money it moves is what the ledger records, so it needs
no table of its own."""

from __future__ import annotations

import uuid

from marketplace.kit.i18n import Message
from marketplace.payments.gateway import (
    ConnectedAccount,
    GatewayError,
    GatewayEvent,
    InvalidWebhook,
    PaymentState,
    PaymentStatus,
    SetupState,
)

SETUP_PREFIX = "local_seti_"


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
        return PaymentState(
            reference=f"local_charge_{charge_id.hex}_{attempt}",
            status=PaymentStatus.SUCCEEDED,
            amount_minor=amount_minor,
            currency=currency,
            order_id=None,
        )

    async def setup_payment_method(self, *, organization_id: uuid.UUID, customer: str | None) -> SetupState:
        """Saved at once: the local gateway charges anyone."""
        return await self.fetch_setup(f"{SETUP_PREFIX}{organization_id.hex}")

    async def fetch_setup(self, reference: str) -> SetupState:
        try:
            organization_id = uuid.UUID(hex=reference.removeprefix(SETUP_PREFIX))
        except ValueError as exc:
            raise GatewayError(Message("payments.local-setup-unknown", "no such setup at the local gateway")) from exc
        return SetupState(
            reference=reference,
            customer=f"local_cus_{organization_id.hex}",
            succeeded=True,
            payment_method=f"local_pm_{organization_id.hex}",
            organization_id=organization_id,
        )

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
