"""Payments use cases: a provider's payout account, and the inbox of gateway webhooks (what a webhook changes is
the payment flow's business: `marketplace.flows.payment`)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import MANAGING_ROLES, OrganizationKind
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.payments.gateway import (
    ConnectedAccount,
    GatewayError,
    GatewayEvent,
    InvalidWebhook,
    PaymentGateway,
    PaymentState,
    UnknownAccount,
)
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
    def __init__(
        self, session: AsyncSession, gateway: PaymentGateway, accounts: AccountService, audit: AuditService
    ) -> None:
        self.gateway = gateway
        self.repository = PaymentsRepository(session)
        self.accounts = accounts
        self.audit = audit

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
            raise Forbidden(
                Message(
                    "payments.account-by-managers",
                    "only the organisation's owners and admins may set its payment account",
                )
            )
        if organization.kind != OrganizationKind.PROVIDER:
            raise Conflict(Message("payments.providers-only", "only providers receive payouts"))
        try:
            account = await self.gateway.connected_account(account_id)
        except UnknownAccount as exc:
            raise PaymentAccountInvalid(exc.message) from exc
        except GatewayError as exc:
            raise GatewayUnavailable(exc.message) from exc
        await self.repository.set_payment_account(organization_id, account.id, account.payouts_enabled)
        await self.audit.record(
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
            raise WebhookInvalid(exc.message) from exc

    async def inbox(self, payload: bytes, signature_header: str) -> GatewayEvent | None:
        """Verify a delivery and record it in the inbox once, in the caller's transaction (which acts on it);
        None when it was received before."""
        event = self.verify_webhook(payload, signature_header)
        recorded = await self.repository.record_event(
            event_id=event.id, gateway=self.gateway.name, type=event.type, object_id=event.object_id, at=clock.now()
        )
        if not recorded:
            log.info("webhook %s (%s) received again: nothing to do", event.id, event.type)
            return None
        return event

    async def fetch_payment(self, reference: str) -> PaymentState:
        """The payment as the gateway knows it now: a webhook is a prompt to look, never the truth."""
        try:
            return await self.gateway.fetch_payment(reference)
        except GatewayError as exc:
            # Raising rolls the inbox row back: the gateway delivers the event again later.
            raise GatewayUnavailable(exc.message) from exc

    async def close(self, event: GatewayEvent, outcome: WebhookOutcome) -> None:
        await self.repository.finish_event(event.id, outcome, clock.now())
        log.info("webhook %s (%s) for %s: %s", event.id, event.type, event.object_id, outcome.value)

    def require_gateway(self, name: str) -> None:
        """Webhooks of a gateway the service does not use do not exist."""
        if self.gateway.name != name:
            raise NotFound(
                Message("payments.gateway-not-used", "this service does not use the {name} gateway", name=name)
            )
