"""Refunds after settlement: an administrator refunds a completed, settled or paid-out order in full, the
money coming back by the path its state allows (escrow, reversal of the settlement, or the provider's debt)."""

from __future__ import annotations

import uuid

from marketplace.accounts.principal import Principal
from marketplace.catalog.service import CatalogService
from marketplace.delivery.licences import LicenceService
from marketplace.flows.escrow import escrow_of
from marketplace.kit.i18n import Message
from marketplace.kit.money import split, transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, TransferKind
from marketplace.ledger.service import LedgerService
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.schemas import RefundPath
from marketplace.orders.service import InvalidTransition, OrderService, RefundFailed
from marketplace.orders.transitions import OrderTransitions
from marketplace.payments.gateway import GatewayError, PaymentGateway


class Refunds:
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

    async def refund_after_settlement(
        self, admin: Principal, order_id: uuid.UUID, reason: str
    ) -> tuple[Order, RefundPath]:
        """An administrator refunds a completed, settled or paid-out order in full; returns it with the path
        its money took, which the audit entry names too:

        - `escrow` (completed): escrow -> refunds;
        - `reversal` (settled, no payout has claimed it): provider payable -> refunds (its share) and
          platform revenue -> refunds (the fee), both REVERSAL;
        - `provider_debt` (paid out, or claimed by a payout not yet sent): the provider's share becomes
          its debt (provider_debt -> refunds, DEBT), repaid from its next payout first; the fee is reversed
          from revenue as above.

        The order's row is locked first, so a settlement or payout running meanwhile either finishes
        with it before (and the path follows) or skips it. The gateway refund is asked for next, before
        any shared lock is taken; it is keyed by the order, so a retry after a failed commit refunds once."""
        order = await self.orders.as_admin(admin, order_id)
        order = await self.transitions.lock(order.id)
        was = order.status
        if was not in (OrderStatus.COMPLETED, OrderStatus.SETTLED, OrderStatus.PAID_OUT):
            raise InvalidTransition(
                Message(
                    "orders.not-refundable",
                    "the order is {status}; only completed, settled and paid-out orders are refunded this way",
                    status=was.value,
                ),
                current_status=was.value,
            )
        path: RefundPath
        if was == OrderStatus.COMPLETED:
            path = "escrow"
        elif was == OrderStatus.SETTLED and order.payout_id is None:
            path = "reversal"
        else:
            path = "provider_debt"
        provider_minor, fee_minor = split(order.amount_minor, order.fee_bps)
        currency, provider = order.currency, order.provider_organization_id
        reference = None
        postings: list[tuple[str, LedgerAccount, int, TransferKind]] = []
        if order.amount_minor > 0:
            assert order.payment_reference is not None
            try:
                reference = await self.gateway.refund(
                    order_id=order.id,
                    reference=order.payment_reference,
                    amount_minor=order.amount_minor,
                    currency=currency,
                )
            except GatewayError as exc:
                raise RefundFailed(exc.message, order_id=str(order.id)) from exc
            if path == "escrow":
                postings.append(
                    ("refund", await escrow_of(self.ledger, order), order.amount_minor, TransferKind.REFUND)
                )
            else:
                code = AccountCode.PROVIDER_PAYABLE if path == "reversal" else AccountCode.PROVIDER_DEBT
                source = await self.ledger.account(code, currency, organization_id=provider)
                revenue = await self.ledger.account(AccountCode.PLATFORM_REVENUE, currency)
                await self.ledger.lock(source, revenue)
                if path == "reversal":
                    postings.append(("settlement-reversal", source, provider_minor, TransferKind.REVERSAL))
                else:
                    postings.append(("debt", source, provider_minor, TransferKind.DEBT))
                postings.append(("fee-reversal", revenue, fee_minor, TransferKind.REVERSAL))
        await self.transitions.move_locked(order, OrderStatus.REFUNDED, refund_reference=reference)
        payload = {
            "path": path,
            "refund_reference": reference,
            "provider_minor": provider_minor,
            "fee_minor": fee_minor,
            "payout_id": str(order.payout_id) if order.payout_id else None,
        }
        if postings:
            refunds = await self.ledger.account(AccountCode.REFUNDS, currency)
            for step, debit, amount, kind in postings:
                if amount:
                    await self.ledger.post(
                        transfer_id(order.id, step), debit, refunds, amount, currency, kind, order_id=order.id
                    )
        await self.catalog.release_licences(order.product_id, order.licences_reserved)
        await self.licences.revoke_for_order(order.id, f"refunded: {reason}", admin.actor)
        await self.transitions.record_moves(
            [order], was, OrderStatus.REFUNDED, admin.actor, reason, {order.id: payload}
        )
        order.refund_reference = reference
        return order, path
