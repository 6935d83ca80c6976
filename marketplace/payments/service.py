"""Payments use cases: a provider's payout account, a buyer's payment method saved for off-session charges, and the
inbox of gateway webhooks (what a webhook changes is
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
    SetupState,
    UnknownAccount,
)
from marketplace.payments.models import SavedPaymentMethod, WebhookOutcome
from marketplace.payments.repository import PaymentsRepository

log = logging.getLogger("marketplace.payments")

# Events about a PaymentIntent: each one is a prompt to fetch the intent again.
PAYMENT_EVENT_PREFIX = "payment_intent."
# Events about a SetupIntent (a buyer saving a payment method): a prompt to fetch the setup again.
SETUP_EVENT_PREFIX = "setup_intent."


class WebhookInvalid(DomainError):
    status = 400
    code = "webhook-invalid"
    title = "Webhook does not verify"


SETUP_NOT_FOUND = Message("payments.setup-not-found", "no such setup of this organisation at the gateway")


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

    # a buyer's payment method for off-session charges

    async def saved_method(self, organization_id: uuid.UUID) -> SavedPaymentMethod | None:
        """The buyer's customer and saved method at this service's gateway, if it saved one."""
        return await self.repository.saved_method(organization_id, self.gateway.name)

    async def visible_saved_method(self, principal: Principal, organization_id: uuid.UUID) -> SavedPaymentMethod | None:
        """The saved method of an organisation the caller may see."""
        await self.accounts.visible_organization(principal, organization_id)
        return await self.saved_method(organization_id)

    async def setup_payment_method(self, principal: Principal, organization_id: uuid.UUID) -> SetupState:
        """Start saving the organisation's payment method (its owners and admins only): the gateway's setup,
        whose client secret the buyer's client confirms; a setup that succeeded at once (the local gateway) is
        recorded now."""
        await self._manage(principal, organization_id)
        saved = await self.saved_method(organization_id)
        try:
            setup = await self.gateway.setup_payment_method(
                organization_id=organization_id, customer=saved.customer if saved else None
            )
        except GatewayError as exc:
            raise GatewayUnavailable(exc.message) from exc
        await self.repository.save_setup(
            organization_id, self.gateway.name, setup.customer, setup.reference, clock.now()
        )
        await self.audit.record(
            actor=principal.actor,
            action="organization.payment_method_setup",
            object_type="organization",
            object_id=organization_id,
            payload={"gateway": self.gateway.name, "setup_reference": setup.reference},
        )
        if setup.succeeded:
            await self.apply_setup(setup)
        return setup

    async def confirm_setup(self, principal: Principal, organization_id: uuid.UUID, reference: str) -> SetupState:
        """The buyer's client confirmed a setup: fetched from the gateway (never taken on the caller's word) and,
        when it succeeded for this organisation, its payment method recorded."""
        await self._manage(principal, organization_id)
        try:
            setup = await self.gateway.fetch_setup(reference)
        except GatewayError as exc:
            raise NotFound(
                Message("payments.setup-not-found", "no such setup of this organisation at the gateway")
            ) from exc
        if setup.organization_id != organization_id:
            raise NotFound(SETUP_NOT_FOUND)
        if not setup.succeeded or not await self.apply_setup(setup):
            raise Conflict(
                Message("payments.setup-not-succeeded", "the setup has not succeeded: no payment method is saved")
            )
        return setup

    async def apply_setup(self, setup: SetupState) -> bool:
        """Record the payment method of a setup that succeeded for one of our buyers' customers; False otherwise."""
        if not (setup.succeeded and setup.payment_method and setup.organization_id):
            return False
        return await self.repository.save_method(
            setup.organization_id, self.gateway.name, setup.customer, setup.payment_method, clock.now()
        )

    async def fetch_setup(self, reference: str) -> SetupState:
        """A setup as the gateway knows it now (after a webhook)."""
        try:
            return await self.gateway.fetch_setup(reference)
        except GatewayError as exc:
            raise GatewayUnavailable(exc.message) from exc

    async def _manage(self, principal: Principal, organization_id: uuid.UUID) -> None:
        await self.accounts.visible_organization(principal, organization_id)
        if await self.accounts.member_role(principal, organization_id) not in MANAGING_ROLES:
            raise Forbidden(
                Message(
                    "payments.payment-method-by-managers",
                    "only the organisation's owners and admins may set its payment method",
                )
            )

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
