"""Payments use cases: a provider's payout account, and gateway webhooks through the inbox."""

from __future__ import annotations

import logging
import uuid

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import MANAGING_ROLES, OrganizationKind
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.compliance.rulebook import Rulebook
from marketplace.config import Settings
from marketplace.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable
from marketplace.kit import clock
from marketplace.payments.gateway import (
    ConnectedAccount,
    GatewayError,
    GatewayEvent,
    InvalidWebhook,
    PaymentGateway,
    PaymentState,
    UnknownAccount,
)
from marketplace.payments.gateways import app_gateway
from marketplace.payments.models import WebhookOutcome
from marketplace.payments.repository import PaymentsRepository

log = logging.getLogger("marketplace.payments")

# Events about a PaymentIntent: each one is a prompt to fetch the intent again.
PAYMENT_EVENT_PREFIX = "payment_intent."


class WebhookInvalid(DomainError):
    status = 400
    code = "webhook-invalid"
    title = "Webhook does not verify"


class GatewayUnavailable(DomainError):
    """The gateway failed or refused a call; nothing was changed, the caller may try again."""

    status = 502
    code = "gateway-error"
    title = "Payment gateway error"


class PaymentAccountInvalid(Unprocessable):
    code = "payment-account-invalid"
    title = "Payment account not usable"


class PaymentsService:
    def __init__(self, session: AsyncSession, gateway: PaymentGateway, settings: Settings, rulebook: Rulebook) -> None:
        self.session = session
        self.gateway = gateway
        self.settings = settings
        self.rulebook = rulebook
        self.repository = PaymentsRepository(session)
        self.accounts = AccountService(session)

    @classmethod
    def from_state(cls, session: AsyncSession, state: State) -> PaymentsService:
        return cls(session, app_gateway(state), state.settings, state.rulebook)

    # payout accounts

    async def payment_account(self, principal: Principal, organization_id: uuid.UUID) -> tuple[str | None, bool]:
        organization = await self.accounts.visible_organization(principal, organization_id)
        return organization.payment_account_id, organization.payouts_enabled

    async def set_payment_account(
        self, principal: Principal, organization_id: uuid.UUID, account_id: str
    ) -> ConnectedAccount:
        """Record where a provider's payouts go, after the gateway has confirmed the account exists
        (and said whether payouts to it are enabled). Owners and admins of the provider only."""
        organization = await self.accounts.visible_organization(principal, organization_id)
        if await self.accounts.member_role(principal, organization_id) not in MANAGING_ROLES:
            raise Forbidden("only the organisation's owners and admins may set its payment account")
        if organization.kind != OrganizationKind.PROVIDER:
            raise Conflict("only providers receive payouts")
        try:
            account = await self.gateway.connected_account(account_id)
        except UnknownAccount as exc:
            raise PaymentAccountInvalid(str(exc)) from exc
        except GatewayError as exc:
            raise GatewayUnavailable(str(exc)) from exc
        await self.repository.set_payment_account(organization_id, account.id, account.payouts_enabled)
        await self.accounts.audit.record(
            actor=principal.actor,
            action="organization.payment_account_set",
            object_type="organization",
            object_id=organization_id,
            payload={
                "gateway": self.gateway.name,
                "account_id": account.id,
                "payouts_enabled": account.payouts_enabled,
            },
        )
        return account

    # webhooks

    def verify_webhook(self, payload: bytes, signature_header: str) -> GatewayEvent:
        try:
            return self.gateway.verify_webhook(payload, signature_header)
        except InvalidWebhook as exc:
            raise WebhookInvalid(str(exc)) from exc

    async def receive_webhook(self, payload: bytes, signature_header: str) -> str:
        """Verify a delivery, record it in the inbox once, and act on it in the same transaction.

        The event itself is never trusted: a PaymentIntent event makes us fetch the intent from the
        gateway and hand the state found there to the orders domain. Returns `processed`,
        `duplicate` (received before: nothing done) or `ignored` (recorded, nothing to do)."""
        event = self.verify_webhook(payload, signature_header)
        now = clock.now()
        recorded = await self.repository.record_event(
            event_id=event.id, gateway=self.gateway.name, type=event.type, object_id=event.object_id, at=now
        )
        if not recorded:
            log.info("webhook %s (%s) received again: nothing to do", event.id, event.type)
            return "duplicate"
        outcome = WebhookOutcome.IGNORED
        if event.type.startswith(PAYMENT_EVENT_PREFIX):
            try:
                state = await self.gateway.fetch_payment(event.object_id)
            except GatewayError as exc:
                # Raising rolls the inbox row back: the gateway delivers the event again later.
                raise GatewayUnavailable(str(exc)) from exc
            if await self.apply_payment_state(state):
                outcome = WebhookOutcome.PROCESSED
        await self.repository.finish_event(event.id, outcome, clock.now())
        log.info("webhook %s (%s) for %s: %s", event.id, event.type, event.object_id, outcome.value)
        return outcome.value

    async def apply_payment_state(self, state: PaymentState) -> bool:
        """The one place a gateway's payment state reaches the orders domain; False when the payment
        is not one of our orders'."""
        from marketplace.orders.service import OrderService  # the orders domain imports payments

        orders = OrderService(self.session, self.settings, self.rulebook, self.gateway)
        return await orders.apply_payment_state(state, actor=f"gateway:{self.gateway.name}") is not None

    def require_gateway(self, name: str) -> None:
        """Webhooks of a gateway the service does not use do not exist."""
        if self.gateway.name != name:
            raise NotFound(f"this service does not use the {name} gateway")
