"""The payment gateway protocol: what the orders and settlement domains ask of a payment provider.

Every call carries our own ids, from which a gateway derives its idempotency keys: asking twice for
the same order's payment, refund or the same payout's transfer never charges, refunds or pays twice."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Protocol

from marketplace.kit.i18n import Message


class PaymentStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"  # the gateway will tell us (webhook) when it is known
    REQUIRES_ACTION = "requires_action"  # the buyer must act (e.g. 3-D Secure, or confirm with a payment method)
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class PaymentState:
    """A payment as the gateway reports it now."""

    reference: str
    status: PaymentStatus
    amount_minor: int
    currency: str
    order_id: uuid.UUID | None
    client_secret: str | None = None  # for the buyer's client to confirm, when the gateway needs it


@dataclass(frozen=True)
class SetupState:
    """A buyer's setup of a payment method for later off-session charges, as the gateway reports it now."""

    reference: str
    customer: str
    succeeded: bool
    payment_method: str | None  # set once the setup succeeded
    organization_id: uuid.UUID | None  # the buyer it was made for; None when it is not one of ours
    client_secret: str | None = None  # for the buyer's client to confirm the setup


@dataclass(frozen=True)
class GatewayEvent:
    """A verified webhook event: a prompt to re-fetch `object_id`, never the truth itself."""

    id: str
    type: str
    object_id: str


@dataclass(frozen=True)
class ConnectedAccount:
    """A provider's account at the gateway, where its payouts go."""

    id: str
    payouts_enabled: bool


class PaymentGateway(Protocol):
    name: str

    async def create_payment(
        self, *, order_id: uuid.UUID, amount_minor: int, currency: str, payment_method: str | None
    ) -> PaymentState:
        """Charge the buyer for one order (at most once per order, whatever the number of calls)."""
        ...

    async def fetch_payment(self, reference: str) -> PaymentState: ...

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
        """Charge a buyer who is not present (a usage statement, a renewal) on its saved payment method, once per
        charge and attempt whatever the number of calls; a declined charge is a FAILED state, not an error."""
        ...

    async def setup_payment_method(self, *, organization_id: uuid.UUID, customer: str | None) -> SetupState:
        """Start saving a buyer's payment method for off-session charges (creating its customer when it has
        none); the buyer's client confirms the setup with `client_secret`."""
        ...

    async def fetch_setup(self, reference: str) -> SetupState:
        """A setup as the gateway knows it now; raises GatewayError when it is unknown."""
        ...

    async def refund(self, *, order_id: uuid.UUID, reference: str, amount_minor: int, currency: str) -> str:
        """Refund an order's payment in full (at most once per order); returns the refund's reference."""
        ...

    async def transfer(
        self, *, payout_id: uuid.UUID, destination: str, amount_minor: int, currency: str, transfer_group: str | None
    ) -> str:
        """Pay a provider out (at most once per payout); returns the transfer's reference."""
        ...

    async def connected_account(self, account_id: str) -> ConnectedAccount:
        """The provider account payouts would go to, as the gateway knows it; raises UnknownAccount."""
        ...

    def verify_webhook(self, payload: bytes, signature_header: str) -> GatewayEvent:
        """Check the signature on the raw body; raises InvalidWebhook."""
        ...

    async def aclose(self) -> None:
        """Release the gateway's connections (the service is stopping)."""
        ...


class GatewayError(Exception):
    """The gateway refused or failed a call; nothing on our side has changed."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.message = message


class InvalidWebhook(Exception):
    """A webhook whose signature, timestamp or body does not verify."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.message = message


class UnknownAccount(GatewayError):
    """The gateway has no such provider account (or it is not connected to the platform)."""
