"""How an order moves: every transition is a guarded update from the status the order was read in, an event
in its history and an audit entry, in the caller's transaction. A replayed or concurrent request finds the
order moved and changes nothing.

    placed ──trade stage──> rejected | pending_review | accepted
    accepted ──pay──> paid ──deliver──> delivered ──confirm / auto-confirm──> completed
    paid | delivered ──dispute──> disputed ──resolve──> refunded | completed
    pending_review | accepted ──cancel / payment fails / times out──> cancelled
    completed ──settle──> settled ──payout sent──> paid_out
    completed | settled | paid_out ──administrator's refund──> refunded

What a move does beyond the order (money, licences) the flows pass in as `effects`. Every transaction
takes its locks in one order, so none can deadlock with another: order rows first (settlement and payouts
skip rows someone else holds, never waiting for them), then ledger accounts (escrow; a provider's payable
before its debt, payables in id order; platform revenue, then refunds), then the product's licences; audit entries
and events are plain inserts that take no lock (`marketplace.audit`, `marketplace.events`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.audit.service import AuditService
from marketplace.config import Settings
from marketplace.events.models import EventType
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.kit.money import split
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.repository import OrderRepository
from marketplace.orders.service import InvalidTransition, OrderService, order_event_type

# How many orders one sweep moves at most; the next run takes the rest.
SWEEP_BATCH = 500


class OrderTransitions:
    def __init__(self, session: AsyncSession, settings: Settings, orders: OrderService, audit: AuditService) -> None:
        self.settings = settings
        self.repository = OrderRepository(session)
        self.orders = orders
        self.audit = audit

    async def move(
        self,
        order: Order,
        allowed: frozenset[OrderStatus],
        to: OrderStatus,
        actor: str,
        *,
        reason: str | None = None,
        action: Message,
        effects: Callable[[], Awaitable[None]] | None = None,
        **values: Any,
    ) -> OrderStatus:
        """Move `order` to `to` from the status it was read in; raises InvalidTransition when that status
        does not allow it or another request moved the order first. Returns the status it left.

        `effects` (ledger postings, licences) run after the move and before the audit entry and the event:
        every transaction takes its locks in one order -- the order's row, ledger accounts, the product's
        licences -- so no two can deadlock."""
        was = order.status
        if was not in allowed or not await self.repository.move(order.id, was, to, **values):
            current = await self.repository.get(order.id)
            assert current is not None
            raise InvalidTransition(
                Message(
                    "orders.invalid-transition",
                    "the order is {status}; it cannot {action}",
                    status=current.status.value,
                    action=action,
                ),
                current_status=current.status.value,
            )
        if effects is not None:
            await effects()
        await self.repository.add_event(order.id, was, to, actor, reason)
        await self.audit.record(
            actor=actor,
            action=f"order.{to.value}",
            object_type="order",
            object_id=order.id,
            payload={"from": was.value, "to": to.value, "reason": reason, **{k: str(v) for k, v in values.items()}},
        )
        order.status = to
        for name, value in values.items():
            setattr(order, name, value)
        await self._record_event(order, was)
        return was

    async def lock(self, order_id: uuid.UUID) -> Order:
        """The order, its row locked until the transaction ends."""
        order = await self.repository.lock(order_id)
        assert order is not None
        return order

    async def move_locked(self, order: Order, to: OrderStatus, **values: Any) -> None:
        """Move an order whose row this transaction has locked (nobody can have moved it meanwhile); its
        history and audit entry are the caller's to record (`record_moves`), after the effects."""
        if not await self.repository.move(order.id, order.status, to, **values):
            raise AssertionError("the locked order moved")

    async def set_payment(self, order: Order, gateway: str, reference: str) -> None:
        """Remember which payment pays an accepted order (the gateway's webhooks name it)."""
        if order.payment_reference != reference:
            await self.repository.set_values(
                order.id, OrderStatus.ACCEPTED, payment_gateway=gateway, payment_reference=reference
            )
            order.payment_gateway, order.payment_reference = gateway, reference

    # the buyer's transitions that concern the order alone

    async def deliver(self, order_id: uuid.UUID, actor: str) -> Order:
        """paid -> delivered, made by the first delivery act under the order's licence (a download, API
        access granted; see delivery.service): the buyer's acceptance window starts."""
        order = await self.orders.get(order_id)
        await self.move(
            order,
            frozenset({OrderStatus.PAID}),
            OrderStatus.DELIVERED,
            actor,
            action=Message("orders.action-deliver", "be delivered"),
        )
        return order

    async def record_delivery(self, order_id: uuid.UUID, actor: str) -> None:
        """A delivery act: the first one delivers a paid order; later ones change nothing."""
        order = await self.orders.get(order_id)
        if order.status == OrderStatus.PAID:
            with contextlib.suppress(InvalidTransition):  # a concurrent delivery act moved it first
                await self.deliver(order_id, actor)

    def acceptance_deadline(self, order: Order) -> datetime | None:
        """Until when the buyer of a delivered order may confirm or dispute; after it the order completes."""
        if order.status != OrderStatus.DELIVERED:
            return None
        return order.status_changed_at + timedelta(seconds=self.settings.order_confirm_window_seconds)

    async def confirm(self, principal: Principal, order_id: uuid.UUID) -> Order:
        order = await self.orders.as_party(principal, order_id, "buyer")
        await self.move(
            order,
            frozenset({OrderStatus.DELIVERED}),
            OrderStatus.COMPLETED,
            principal.actor,
            action=Message("orders.action-confirm", "be confirmed"),
        )
        return order

    async def dispute(self, principal: Principal, order_id: uuid.UUID, reason: str) -> Order:
        order = await self.orders.as_party(principal, order_id, "buyer")
        deadline = self.acceptance_deadline(order)
        if deadline is not None and clock.now() >= deadline:
            raise InvalidTransition(
                Message(
                    "orders.acceptance-window-closed",
                    "the acceptance window has closed; the delivery counts as accepted",
                ),
                current_status=order.status.value,
                acceptance_deadline=deadline.isoformat(),
            )
        await self.move(
            order,
            frozenset({OrderStatus.PAID, OrderStatus.DELIVERED}),
            OrderStatus.DISPUTED,
            principal.actor,
            reason=reason,
            action=Message("orders.action-dispute", "be disputed"),
            dispute_reason=reason,
        )
        return order

    # time

    async def due(self, was: OrderStatus, to: OrderStatus, window_seconds: int) -> Sequence[Order]:
        """Move the orders in `was` for longer than the window (a batch of them) to `to`; their history and
        audit entries are the caller's to record (`record_moves`), after the effects."""
        changed_before = clock.now() - timedelta(seconds=window_seconds)
        moved = await self.repository.move_many(await self.repository.due(was, changed_before, SWEEP_BATCH), was, to)
        orders = [await self.repository.get(order_id) for order_id in sorted(moved)]
        return tuple(order for order in orders if order is not None)

    # settlement

    async def settle_batch(self, limit: int) -> Sequence[Order]:
        """Up to `limit` completed orders, oldest first, moved to settled: rows locked with SKIP LOCKED, so
        orders another transaction holds (a refund, a concurrent run) are left for the next run. A disputed
        order is never completed, so it never settles while disputed."""
        locked = await self.repository.lock_completed(limit)
        moved = await self.repository.move_many([o.id for o in locked], OrderStatus.COMPLETED, OrderStatus.SETTLED)
        return [o for o in locked if o.id in moved]

    async def payable_orders(self) -> set[tuple[uuid.UUID, str]]:
        """(provider, currency) of every settled order no payout has claimed yet."""
        return await self.repository.settled_unpaid()

    async def unpaid_shares(self, provider_id: uuid.UUID, currency: str) -> dict[uuid.UUID, int]:
        """The provider's share of each of its settled orders no payout has claimed yet."""
        rows = await self.repository.settled_unpaid_of(provider_id, currency)
        return {order_id: split(amount, fee_bps)[0] for order_id, amount, fee_bps in rows}

    async def claim_for_payout(
        self, provider_id: uuid.UUID, currency: str, payout_id: uuid.UUID, limit: int
    ) -> Sequence[Order]:
        """Claim up to `limit` of the provider's settled orders for a payout; they stay settled (a refund
        meanwhile counts them as paid out) until the payout is sent. Orders others hold are skipped."""
        return await self.repository.claim_for_payout(provider_id, currency, payout_id, limit)

    async def mark_paid_out(self, payout_id: uuid.UUID, actor: str, *, unlink: bool = False) -> Sequence[Order]:
        """The payout was sent: its orders still settled move to paid_out. `unlink`: there was nothing to
        send (free orders), and no payout row: the orders forget the payout id they were claimed under."""
        values: dict[str, Any] = {"payout_id": None} if unlink else {}
        orders = await self.repository.move_claimed(payout_id, OrderStatus.PAID_OUT, **values)
        payout = {"payout_id": None if unlink else str(payout_id)}
        payloads = {o.id: payout for o in orders}
        await self.record_moves(orders, OrderStatus.SETTLED, OrderStatus.PAID_OUT, actor, "paid out", payloads)
        return orders

    async def release_payout_claim(self, payout_id: uuid.UUID) -> int:
        """The payout failed: its orders still settled wait for the next payout."""
        return await self.repository.release_claim(payout_id)

    async def record_moves(
        self,
        orders: Sequence[Order],
        was: OrderStatus,
        to: OrderStatus,
        actor: str,
        reason: str | None,
        payloads: dict[uuid.UUID, dict[str, Any]],
    ) -> None:
        """History and audit of orders already moved by a guarded update (the audit entries last: they
        take the chain's head lock)."""
        await self.repository.add_events(
            [{"order_id": o.id, "from_status": was, "to_status": to, "actor": actor, "reason": reason} for o in orders]
        )
        for order in orders:
            await self.audit.record(
                actor=actor,
                action=f"order.{to.value}",
                object_type="order",
                object_id=order.id,
                payload={"from": was.value, "to": to.value, "reason": reason, **payloads.get(order.id, {})},
            )
            order.status = to
            await self._record_event(order, was)

    async def _record_event(self, order: Order, was: OrderStatus) -> None:
        """The event of the move `order` just made (a decided dispute's outcome first), next to its audit
        entry (written as the transaction commits, taking no lock)."""
        if was == OrderStatus.DISPUTED:
            outcome = "refund" if order.status == OrderStatus.REFUNDED else "release"
            await self.orders.record_event(EventType.ORDER_RESOLVED, order, previous_status=was.value, outcome=outcome)
        await self.orders.record_event(order_event_type(order.status), order, previous_status=was.value)
