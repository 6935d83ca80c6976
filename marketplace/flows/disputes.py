"""Resolving a dispute: an administrator refunds the buyer (through the gateway; escrow -> refunds; the
licence revoked and reserved licences released) or releases the order to settlement as completed."""

from __future__ import annotations

import uuid

from marketplace.accounts.principal import Principal
from marketplace.catalog.service import CatalogService
from marketplace.delivery.licences import LicenceService
from marketplace.flows.escrow import refund_escrow
from marketplace.kit.i18n import Message
from marketplace.ledger.service import LedgerService
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.service import OrderService, RefundFailed
from marketplace.orders.transitions import OrderTransitions
from marketplace.payments.gateway import GatewayError, PaymentGateway


class Disputes:
    def __init__(
        self,
        orders: OrderService,
        transitions: OrderTransitions,
        catalog: CatalogService,
        ledger: LedgerService,
        licences: LicenceService,
        gateway: PaymentGateway,
    ) -> None:
        self.orders = orders
        self.transitions = transitions
        self.catalog = catalog
        self.ledger = ledger
        self.licences = licences
        self.gateway = gateway

    async def resolve_dispute(self, admin: Principal, order_id: uuid.UUID, outcome: str, reason: str) -> Order:
        """Refund the buyer (escrow -> refunds, through the gateway; the licence is released) or release
        the order to settlement as completed."""
        await self.orders.as_admin(admin, order_id)
        disputed = frozenset({OrderStatus.DISPUTED})
        # The row lock keeps the order disputed while the gateway refunds: the refund is asked for only
        # for an order this transaction will move (keyed by the order, so a retry refunds once).
        order = await self.transitions.lock(order_id)
        if outcome == "release":
            release = Message("orders.action-release", "be released")
            await self.transitions.move(
                order, disputed, OrderStatus.COMPLETED, admin.actor, reason=reason, action=release
            )
            return order
        reference = None
        if order.status == OrderStatus.DISPUTED and order.amount_minor > 0:
            assert order.payment_reference is not None
            try:
                reference = await self.gateway.refund(
                    order_id=order.id,
                    reference=order.payment_reference,
                    amount_minor=order.amount_minor,
                    currency=order.currency,
                )
            except GatewayError as exc:
                raise RefundFailed(exc.message, order_id=str(order.id)) from exc

        async def refund() -> None:
            await refund_escrow(self.ledger, order)
            await self.catalog.release_licences(order.product_id, order.licences_reserved)
            await self.licences.revoke_for_order(order.id, f"refunded after a dispute: {reason}", admin.actor)

        await self.transitions.move(
            order,
            disputed,
            OrderStatus.REFUNDED,
            admin.actor,
            reason=reason,
            action=Message("orders.action-refund", "be refunded"),
            effects=refund,
            refund_reference=reference,
        )
        return order
