"""Taking a payment: the buyer pays an accepted order through the gateway, or the gateway reports a payment
later (a webhook, re-fetched); a paid order's money goes into its escrow and its buyer gets the licence."""

from __future__ import annotations

import uuid

from marketplace.accounts.principal import Principal
from marketplace.audit.service import AuditService
from marketplace.catalog.service import CatalogService
from marketplace.delivery.licences import LicenceService
from marketplace.errors import Conflict
from marketplace.flows.escrow import hold_payment, refund_escrow, refund_second_payment
from marketplace.kit.i18n import Message
from marketplace.ledger.service import LedgerService, PostResult
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.service import InvalidTransition, OrderService, PaymentFailed
from marketplace.orders.transitions import OrderTransitions
from marketplace.payments.gateway import GatewayError, PaymentGateway, PaymentState, PaymentStatus
from marketplace.payments.models import WebhookOutcome
from marketplace.payments.service import PAYMENT_EVENT_PREFIX, SETUP_EVENT_PREFIX, PaymentsService


class Payment:
    def __init__(
        self,
        orders: OrderService,
        transitions: OrderTransitions,
        catalog: CatalogService,
        ledger: LedgerService,
        licences: LicenceService,
        payments: PaymentsService,
        gateway: PaymentGateway,
        audit: AuditService,
    ) -> None:
        self.orders = orders
        self.transitions = transitions
        self.catalog = catalog
        self.ledger = ledger
        self.licences = licences
        self.payments = payments
        self.gateway = gateway
        self.audit = audit

    async def pay(
        self, principal: Principal, order_id: uuid.UUID, payment_method: str | None
    ) -> tuple[Order, PaymentState]:
        """Charge the buyer through the gateway. The local gateway (and a free order) pays at once; a gateway
        that confirms later leaves the order accepted until its webhook reports the outcome."""
        order = await self.orders.as_party(principal, order_id, "buyer")
        if order.status != OrderStatus.ACCEPTED:
            raise InvalidTransition(
                Message("orders.not-payable", "the order is {status}; it cannot be paid", status=order.status.value),
                current_status=order.status.value,
            )
        if order.amount_minor == 0:
            state = PaymentState(
                reference=f"free_{order.id.hex}",
                status=PaymentStatus.SUCCEEDED,
                amount_minor=0,
                currency=order.currency,
                order_id=order.id,
            )
            gateway_name = "free"
        else:
            try:
                state = await self.gateway.create_payment(
                    order_id=order.id,
                    amount_minor=order.amount_minor,
                    currency=order.currency,
                    payment_method=payment_method,
                )
            except GatewayError as exc:
                raise PaymentFailed(exc.message, order_id=str(order.id)) from exc
            gateway_name = self.gateway.name
        await self.transitions.set_payment(order, gateway_name, state.reference)
        await self._apply(order, state, principal.actor)
        return order, state

    async def apply_payment_state(self, state: PaymentState, actor: str) -> Order | None:
        """What the gateway reports about a payment (after a webhook, re-fetched): mark the order paid
        when it succeeded, cancel it when it failed; idempotent. Returns the order, if it is ours."""
        order = await self.orders.paid_by(state.reference, state.order_id)
        if order is None:
            return None
        # Events about one payment may arrive at once (created, succeeded): the row lock makes the later
        # one read what the earlier one left, so it finds the order paid and does nothing.
        locked = await self.transitions.lock(order.id)
        await self._apply(locked, state, actor)
        return locked

    async def _apply(self, order: Order, state: PaymentState, actor: str) -> None:
        if state.status == PaymentStatus.SUCCEEDED:
            if order.status != OrderStatus.ACCEPTED and state.reference != order.payment_reference:
                await self._refund_second_payment(order, state, actor)
                return
            if (state.amount_minor, state.currency.upper()) != (order.amount_minor, order.currency):
                raise Conflict(
                    Message("orders.payment-amount-differs", "the payment's amount differs from the order's"),
                    order_id=str(order.id),
                )
            if order.status == OrderStatus.ACCEPTED:
                await self.transitions.move(
                    order,
                    frozenset({OrderStatus.ACCEPTED}),
                    OrderStatus.PAID,
                    actor,
                    action=Message("orders.action-pay", "be paid"),
                    effects=lambda: self._on_paid(order, actor),
                )
            elif order.status == OrderStatus.CANCELLED and order.amount_minor > 0:
                await self._refund_late_payment(order, state, actor)
        elif state.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) and order.status == OrderStatus.ACCEPTED:
            await self.transitions.move(
                order,
                frozenset({OrderStatus.ACCEPTED}),
                OrderStatus.CANCELLED,
                actor,
                reason=f"payment {state.status.value}",
                action=Message("orders.action-cancel", "be cancelled"),
                effects=lambda: self.catalog.release_licences(order.product_id, order.licences_reserved),
            )

    async def _on_paid(self, order: Order, actor: str) -> None:
        """The buyer's money goes into escrow and the buyer gets its licence."""
        await hold_payment(self.ledger, order)
        terms, period_days, renews = await self.catalog.sold_terms(order.product_version_id, order.plan_id)
        await self.licences.issue(order, terms, period_days, actor, renews=renews)

    async def _refund_late_payment(self, order: Order, state: PaymentState, actor: str) -> None:
        """Money for an order already cancelled (it timed out while the buyer paid): it goes back, and
        the books show it arriving and leaving."""
        await hold_payment(self.ledger, order)
        await refund_escrow(self.ledger, order)
        reference = await self.gateway.refund(
            order_id=order.id, reference=state.reference, amount_minor=order.amount_minor, currency=order.currency
        )
        await self.audit.record(
            actor=actor,
            action="order.late_payment_refunded",
            object_type="order",
            object_id=order.id,
            payload={"payment_reference": state.reference, "refund_reference": reference},
        )

    async def _refund_second_payment(self, order: Order, state: PaymentState, actor: str) -> None:
        """Another payment for an order its own payment already settled (a second PaymentIntent the buyer's
        client confirmed): the money goes straight back, clearing -> refunds, once per payment, and the
        administrators find it in the audit log."""
        if state.amount_minor == 0:
            return
        currency = state.currency.upper()
        reference = await self.gateway.refund(
            order_id=order.id, reference=state.reference, amount_minor=state.amount_minor, currency=currency
        )
        posted = await refund_second_payment(self.ledger, order.id, state.reference, state.amount_minor, currency)
        if posted == PostResult.CREATED:
            await self.audit.record(
                actor=actor,
                action="order.second_payment_refunded",
                object_type="order",
                object_id=order.id,
                payload={"payment_reference": state.reference, "refund_reference": reference},
            )

    async def receive_webhook(self, payload: bytes, signature_header: str) -> str:
        """Verify a delivery, record it in the inbox once, and act on it in the same transaction.

        The event itself is never trusted: a PaymentIntent event makes us fetch the intent from the
        gateway and apply the state found there; a SetupIntent event, the setup (a buyer saving a payment
        method). Returns `processed`, `duplicate` (received before:
        nothing done) or `ignored` (recorded, nothing to do)."""
        event = await self.payments.inbox(payload, signature_header)
        if event is None:
            return "duplicate"
        outcome = WebhookOutcome.IGNORED
        if event.type.startswith(PAYMENT_EVENT_PREFIX):
            state = await self.payments.fetch_payment(event.object_id)
            if await self.apply_payment_state(state, actor=f"gateway:{self.gateway.name}") is not None:
                outcome = WebhookOutcome.PROCESSED
        elif event.type.startswith(SETUP_EVENT_PREFIX) and await self.payments.apply_setup(
            await self.payments.fetch_setup(event.object_id)
        ):
            outcome = WebhookOutcome.PROCESSED
        await self.payments.close(event, outcome)
        return outcome.value
