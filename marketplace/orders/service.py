"""The trade path: the compliance gate, the order state machine, and the money each step moves.

    placed ──trade stage──> rejected | pending_review | accepted
    accepted ──pay──> paid ──deliver──> delivered ──confirm / auto-confirm──> completed
    paid | delivered ──dispute──> disputed ──resolve──> refunded | completed
    pending_review | accepted ──cancel / payment fails / times out──> cancelled
    completed ──settle──> settled ──payout sent──> paid_out
    completed | settled | paid_out ──administrator's refund──> refunded

Settlement and payouts are the ledger domain's batch (ledger.settlement), through the section of
OrderService marked for it. Every transition is a
guarded update from the status the order was read in, an event in its history and an audit entry,
in the caller's transaction: a replayed or concurrent request finds the order moved and changes nothing."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Scope
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService, organization_facts
from marketplace.audit.service import SYSTEM_ACTOR, AuditService
from marketplace.catalog.models import PlanKind
from marketplace.catalog.service import CatalogService
from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.engine import Verdict
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.service import ComplianceService, verdict_audit_facts
from marketplace.compliance.snapshots import Snapshot, TradeFacts
from marketplace.config import Settings
from marketplace.delivery.licences import LicenceService
from marketplace.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable
from marketplace.kit import clock
from marketplace.kit.money import split, transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, TransferKind
from marketplace.ledger.service import LedgerService
from marketplace.orders.models import Order, OrderEvent, OrderStatus
from marketplace.orders.repository import OrderRepository, TradeFilters
from marketplace.orders.schemas import RefundPath, TradeRequest
from marketplace.payments.gateway import GatewayError, PaymentGateway, PaymentState, PaymentStatus

# How many orders one sweep moves at most; the next run takes the rest.
SWEEP_BATCH = 500


class SoldOut(Conflict):
    code = "order-sold-out"
    title = "No licences left"


class InvalidTransition(Conflict):
    code = "order-invalid-transition"
    title = "Order cannot make this transition"


class PaymentFailed(DomainError):
    """The gateway refused or failed the payment: nothing changed; the buyer may try again."""

    status = 502
    code = "payment-gateway-error"
    title = "Payment gateway error"


class RefundFailed(DomainError):
    """The gateway refused or failed the refund: nothing changed; the administrator may try again."""

    status = 502
    code = "refund-gateway-error"
    title = "Payment gateway error"


@dataclass(frozen=True)
class Trade:
    """A trade request resolved against the catalog: what the gate judges and the order records."""

    request: TradeRequest
    snapshot: Snapshot
    product_id: uuid.UUID
    product_version_id: uuid.UUID
    provider_organization_id: uuid.UUID
    amount_minor: int
    currency: str
    limited_licences: bool


@dataclass(frozen=True)
class Placement:
    order: Order
    verdict: Verdict
    stored_verdict: StoredVerdict


@dataclass(frozen=True)
class OrderView:
    order: Order
    verdict: StoredVerdict
    history: Sequence[OrderEvent]


@dataclass(frozen=True)
class SweepResult:
    cancelled: int
    auto_confirmed: int


def amount_of(kind: PlanKind, price_minor: int, quantity: int) -> int:
    """What the buyer pays now: the plan's price times the quantity (a subscription's price is per
    period, a metered plan's the base fee; calls are billed on delivery); free plans cost nothing."""
    return 0 if kind == PlanKind.FREE else price_minor * quantity


class OrderService:
    def __init__(self, session: AsyncSession, settings: Settings, rulebook: Rulebook, gateway: PaymentGateway) -> None:
        self.session = session
        self.settings = settings
        self.rulebook = rulebook
        self.gateway = gateway
        self.repository = OrderRepository(session)
        self.accounts = AccountService(session)
        self.catalog = CatalogService(session)
        self.compliance = ComplianceService(session, rulebook)
        self.ledger = LedgerService(session)
        self.audit = AuditService(session)
        self.licences = LicenceService(session)

    # the gate

    async def trade(self, principal: Principal, request: TradeRequest) -> Trade:
        """Resolve a trade request into its frozen snapshot. The caller must act for the buyer."""
        principal.require_scope(Scope.ORDERS_WRITE)
        buyer = await self.accounts.acting_for(principal, request.buyer_organization_id)
        view = await self.catalog.for_sale(request.product_id)
        plan = next((p for p in view.plans if p.id == request.plan_id), None)
        if plan is None:
            raise Unprocessable("plan_id is not a plan of the product's listed version", field="plan_id")
        intermediary = None
        if request.intermediary_organization_id is not None:
            intermediary = await self.accounts.organization(request.intermediary_organization_id)
        listing = await self.catalog.snapshot_of(view)
        amount = amount_of(plan.kind, plan.price_minor, request.quantity)
        product = listing.product
        assert product is not None
        snapshot = Snapshot(
            provider=listing.provider,
            buyer=organization_facts(buyer),
            intermediary=organization_facts(intermediary) if intermediary else None,
            product=product,
            plan=next(facts for facts in product.plans if facts.id == str(plan.id)),
            trade=TradeFacts(
                scenario=request.scenario,
                delivery_mode=request.delivery_mode,
                quantity=request.quantity,
                amount_minor=amount,
                currency=plan.currency,
                licence_terms_accepted=request.accept_licence_terms,
                dispute_route=product.dispute_route,
                licences_available=view.product.licences_remaining,
            ),
        )
        return Trade(
            request=request,
            snapshot=snapshot,
            product_id=view.product.id,
            product_version_id=view.version.id,
            provider_organization_id=view.product.organization_id,
            amount_minor=amount,
            currency=plan.currency,
            limited_licences=view.product.licences_remaining is not None,
        )

    async def preview(self, principal: Principal, request: TradeRequest) -> tuple[Trade, Verdict]:
        """The verdict placing this order would get now; writes nothing."""
        trade = await self.trade(principal, request)
        return trade, self.compliance.preview(Stage.TRADE, trade.snapshot)

    async def place(self, principal: Principal, request: TradeRequest) -> Placement:
        """Run the trade stage, then record the order: rejected (nothing reserved), pending review, or
        accepted with its licences reserved and its amount fixed. Raises SoldOut (nothing recorded) when
        the last licences went to another order first."""
        trade = await self.trade(principal, request)
        order_id = uuid.uuid4()
        # The verdict is stored with the order and its first event (one statement on PostgreSQL) and
        # recorded in the order's one audit entry, where `judge` would store and audit it on its own.
        verdict_row, stored, verdict = self.compliance.assess(
            stage=Stage.TRADE, subject_type="order", subject_id=order_id, snapshot=trade.snapshot
        )
        status = {
            Decision.ACCEPTED: OrderStatus.ACCEPTED,
            Decision.REVIEW: OrderStatus.PENDING_REVIEW,
            Decision.REJECTED: OrderStatus.REJECTED,
        }[verdict.decision]
        reserved = 0
        if status == OrderStatus.ACCEPTED and trade.limited_licences:
            if not await self.catalog.reserve_licences(trade.product_id, request.quantity):
                raise SoldOut("no licences of this product are left", product_id=str(trade.product_id))
            reserved = request.quantity
        now = clock.now()
        values: dict[str, Any] = {
            "id": order_id,
            "buyer_organization_id": request.buyer_organization_id,
            "provider_organization_id": trade.provider_organization_id,
            "intermediary_organization_id": request.intermediary_organization_id,
            "product_id": trade.product_id,
            "product_version_id": trade.product_version_id,
            "plan_id": request.plan_id,
            "placed_by": principal.actor,
            "scenario": request.scenario,
            "delivery_mode": request.delivery_mode,
            "quantity": request.quantity,
            "amount_minor": trade.amount_minor,
            "currency": trade.currency,
            "fee_bps": self.settings.platform_fee_bps,
            "status": status,
            "verdict_id": stored.id,
            "decision": verdict.decision,
            "flagged_rules": sorted({f.rule_id for f in verdict.failures()}),
            "licences_reserved": reserved,
            "status_changed_at": now,
            "created_at": now,
        }
        await self.repository.insert_placed(verdict_row, values, principal.actor)
        await self.audit.record(
            actor=principal.actor,
            action="order.placed",
            object_type="order",
            object_id=order_id,
            payload={
                "status": status.value,
                "verdict_id": str(stored.id),
                "product_id": str(trade.product_id),
                "buyer_organization_id": str(request.buyer_organization_id),
                "amount_minor": trade.amount_minor,
                "currency": trade.currency,
                "licences_reserved": reserved,
                "verdict": verdict_audit_facts(stored, verdict),
            },
        )
        return Placement(Order(**values), verdict, stored)

    # reading

    async def _visible(self, principal: Principal, order_id: uuid.UUID) -> Order:
        """The order if the caller buys, provides or administers; otherwise it does not exist for them."""
        principal.require_scope(Scope.ORDERS_READ)
        order = await self.repository.get(order_id)
        if order is None:
            raise NotFound("order not found")
        if principal.is_admin and not principal.is_api_key:
            return order
        mine = await self.accounts.member_organization_ids(principal)
        if order.buyer_organization_id not in mine and order.provider_organization_id not in mine:
            raise NotFound("order not found")
        return order

    async def visible(self, principal: Principal, order_id: uuid.UUID) -> Order:
        return await self._visible(principal, order_id)

    async def bought(self, principal: Principal, order_id: uuid.UUID) -> Order:
        """The order, when the caller acts for its buyer: what it bought is delivered to it alone (its
        provider and administrators see the order, not the data)."""
        order = await self._visible(principal, order_id)
        if order.buyer_organization_id not in await self.accounts.member_organization_ids(principal):
            raise Forbidden("only the buyer takes delivery")
        return order

    async def get(self, order_id: uuid.UUID) -> Order:
        order = await self.repository.get(order_id)
        assert order is not None
        return order

    async def _as_party(self, principal: Principal, order_id: uuid.UUID, side: Literal["buyer", "provider"]) -> Order:
        """The order, when the caller acts for its buyer (or provider): others who see it are refused."""
        order = await self._visible(principal, order_id)
        principal.require_scope(Scope.ORDERS_WRITE)
        party = order.buyer_organization_id if side == "buyer" else order.provider_organization_id
        if party not in await self.accounts.member_organization_ids(principal):
            raise Forbidden(f"only the {side} may do this")
        return order

    async def _as_admin(self, principal: Principal, order_id: uuid.UUID) -> Order:
        """Administrators' decisions check the caller here too, not only in the HTTP guard (an order the
        caller cannot see is still not found)."""
        order = await self._visible(principal, order_id)
        if not principal.is_admin or principal.is_api_key:
            raise Forbidden("platform administrators only")
        return order

    async def view(self, principal: Principal, order_id: uuid.UUID) -> OrderView:
        order = await self._visible(principal, order_id)
        verdict = await self.compliance.verdict(order.verdict_id)
        assert verdict is not None
        return OrderView(order, verdict, await self.repository.events(order.id))

    async def list(
        self, principal: Principal, *, status: OrderStatus | None, limit: int, offset: int
    ) -> tuple[Sequence[Order], int]:
        """Orders the caller's organisations buy or provide (administrators: all of them)."""
        principal.require_scope(Scope.ORDERS_READ)
        organizations = None
        if not (principal.is_admin and not principal.is_api_key):
            organizations = await self.accounts.member_organization_ids(principal)
        return await self.repository.visible_to(organizations, status=status, limit=limit, offset=offset)

    # transitions

    async def _move(
        self,
        order: Order,
        allowed: frozenset[OrderStatus],
        to: OrderStatus,
        actor: str,
        *,
        reason: str | None = None,
        action: str,
        effects: Callable[[], Awaitable[None]] | None = None,
        **values: Any,
    ) -> OrderStatus:
        """Move `order` to `to` from the status it was read in; raises InvalidTransition when that status
        does not allow it or another request moved the order first. Returns the status it left.

        `effects` (ledger postings, licences) run after the move and before the audit entry: every
        transaction takes its locks in one order -- the order's row, ledger accounts, the product's
        licences, the audit chain's head last -- so no two can deadlock."""
        was = order.status
        if was not in allowed or not await self.repository.move(order.id, was, to, **values):
            current = await self.repository.get(order.id)
            assert current is not None
            raise InvalidTransition(
                f"the order is {current.status.value}; it cannot {action}", current_status=current.status.value
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
        return was

    async def _release(self, order: Order) -> None:
        if order.licences_reserved:
            await self.catalog.release_licences(order.product_id, order.licences_reserved)

    async def decide(self, admin: Principal, order_id: uuid.UUID, decision: str, reason: str) -> Order:
        """An administrator's decision on a trade the gate held for review."""
        order = await self._as_admin(admin, order_id)
        if decision == "reject":
            await self._move(
                order,
                frozenset({OrderStatus.PENDING_REVIEW}),
                OrderStatus.REJECTED,
                admin.actor,
                reason=reason,
                action="be rejected",
            )
            return order
        try:
            view = await self.catalog.for_sale(order.product_id)
        except NotFound:
            raise Conflict("the product is no longer on sale", product_id=str(order.product_id)) from None
        limited = view.product.licences_remaining is not None

        async def reserve() -> None:
            if limited and not await self.catalog.reserve_licences(order.product_id, order.quantity):
                raise SoldOut("no licences of this product are left", product_id=str(order.product_id))

        await self._move(
            order,
            frozenset({OrderStatus.PENDING_REVIEW}),
            OrderStatus.ACCEPTED,
            admin.actor,
            reason=reason,
            action="be approved",
            effects=reserve,
            licences_reserved=order.quantity if limited else 0,
        )
        return order

    async def pay(
        self, principal: Principal, order_id: uuid.UUID, payment_method: str | None
    ) -> tuple[Order, PaymentState]:
        """Charge the buyer through the gateway. The local gateway (and a free order) pays at once; a gateway
        that confirms later leaves the order accepted until its webhook reports the outcome."""
        order = await self._as_party(principal, order_id, "buyer")
        if order.status != OrderStatus.ACCEPTED:
            raise InvalidTransition(
                f"the order is {order.status.value}; it cannot be paid", current_status=order.status.value
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
                raise PaymentFailed(str(exc), order_id=str(order.id)) from exc
            gateway_name = self.gateway.name
        if order.payment_reference != state.reference:
            await self.repository.set_values(
                order.id, OrderStatus.ACCEPTED, payment_gateway=gateway_name, payment_reference=state.reference
            )
            order.payment_gateway, order.payment_reference = gateway_name, state.reference
        await self._apply(order, state, principal.actor)
        return order, state

    async def apply_payment_state(self, state: PaymentState, actor: str) -> Order | None:
        """What the gateway reports about a payment (after a webhook, re-fetched): mark the order paid
        when it succeeded, cancel it when it failed; idempotent. Returns the order, if it is ours."""
        order = await self.repository.by_payment_reference(state.reference)
        if order is None and state.order_id is not None:
            order = await self.repository.get(state.order_id)
        if order is None:
            return None
        # Events about one payment may arrive at once (created, succeeded): the row lock makes the later
        # one read what the earlier one left, so it finds the order paid and does nothing.
        locked = await self.repository.lock(order.id)
        assert locked is not None
        await self._apply(locked, state, actor)
        return locked

    async def _apply(self, order: Order, state: PaymentState, actor: str) -> None:
        if state.status == PaymentStatus.SUCCEEDED:
            if (state.amount_minor, state.currency.upper()) != (order.amount_minor, order.currency):
                raise Conflict("the payment's amount differs from the order's", order_id=str(order.id))
            if order.status == OrderStatus.ACCEPTED:
                await self._move(
                    order,
                    frozenset({OrderStatus.ACCEPTED}),
                    OrderStatus.PAID,
                    actor,
                    action="be paid",
                    effects=lambda: self._on_paid(order, actor),
                )
            elif order.status == OrderStatus.CANCELLED and order.amount_minor > 0:
                await self._refund_late_payment(order, state, actor)
        elif state.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) and order.status == OrderStatus.ACCEPTED:
            await self._move(
                order,
                frozenset({OrderStatus.ACCEPTED}),
                OrderStatus.CANCELLED,
                actor,
                reason=f"payment {state.status.value}",
                action="be cancelled",
                effects=lambda: self._release(order),
            )

    async def _on_paid(self, order: Order, actor: str) -> None:
        """The buyer's money goes into escrow and the buyer gets its licence."""
        await self._post_payment(order)
        terms, period_days = await self.catalog.sold_terms(order.product_version_id, order.plan_id)
        await self.licences.issue(order, terms, period_days, actor)

    async def _post_payment(self, order: Order) -> None:
        if order.amount_minor == 0:
            return
        clearing = await self.ledger.account(AccountCode.PLATFORM_CLEARING, order.currency)
        escrow = await self.ledger.account(
            AccountCode.ESCROW, order.currency, organization_id=order.provider_organization_id, order_id=order.id
        )
        await self.ledger.post(
            transfer_id(order.id, "payment"),
            clearing,
            escrow,
            order.amount_minor,
            order.currency,
            TransferKind.PAYMENT,
            order_id=order.id,
        )

    async def _refund_late_payment(self, order: Order, state: PaymentState, actor: str) -> None:
        """Money for an order already cancelled (it timed out while the buyer paid): it goes back, and
        the books show it arriving and leaving."""
        await self._post_payment(order)
        escrow = await self.ledger.account(
            AccountCode.ESCROW, order.currency, organization_id=order.provider_organization_id, order_id=order.id
        )
        refunds = await self.ledger.account(AccountCode.REFUNDS, order.currency)
        await self.ledger.post(
            transfer_id(order.id, "refund"),
            escrow,
            refunds,
            order.amount_minor,
            order.currency,
            TransferKind.REFUND,
            order_id=order.id,
        )
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

    async def deliver(self, order_id: uuid.UUID, actor: str) -> Order:
        """paid -> delivered, made by the first delivery act under the order's licence (a download, API
        access granted; see delivery.service): the buyer's acceptance window starts."""
        order = await self.get(order_id)
        await self._move(order, frozenset({OrderStatus.PAID}), OrderStatus.DELIVERED, actor, action="be delivered")
        return order

    async def record_delivery(self, order_id: uuid.UUID, actor: str) -> None:
        """A delivery act: the first one delivers a paid order; later ones change nothing."""
        order = await self.get(order_id)
        if order.status == OrderStatus.PAID:
            with contextlib.suppress(InvalidTransition):  # a concurrent delivery act moved it first
                await self.deliver(order_id, actor)

    def acceptance_deadline(self, order: Order) -> datetime | None:
        """Until when the buyer of a delivered order may confirm or dispute; after it the order completes."""
        if order.status != OrderStatus.DELIVERED:
            return None
        return order.status_changed_at + timedelta(seconds=self.settings.order_confirm_window_seconds)

    async def confirm(self, principal: Principal, order_id: uuid.UUID) -> Order:
        order = await self._as_party(principal, order_id, "buyer")
        await self._move(
            order, frozenset({OrderStatus.DELIVERED}), OrderStatus.COMPLETED, principal.actor, action="be confirmed"
        )
        return order

    async def dispute(self, principal: Principal, order_id: uuid.UUID, reason: str) -> Order:
        order = await self._as_party(principal, order_id, "buyer")
        deadline = self.acceptance_deadline(order)
        if deadline is not None and clock.now() >= deadline:
            raise InvalidTransition(
                "the acceptance window has closed; the delivery counts as accepted",
                current_status=order.status.value,
                acceptance_deadline=deadline.isoformat(),
            )
        await self._move(
            order,
            frozenset({OrderStatus.PAID, OrderStatus.DELIVERED}),
            OrderStatus.DISPUTED,
            principal.actor,
            reason=reason,
            action="be disputed",
            dispute_reason=reason,
        )
        return order

    async def cancel(self, principal: Principal, order_id: uuid.UUID, reason: str | None) -> Order:
        order = await self._as_party(principal, order_id, "buyer")
        await self._move(
            order,
            frozenset({OrderStatus.PENDING_REVIEW, OrderStatus.ACCEPTED}),
            OrderStatus.CANCELLED,
            principal.actor,
            reason=reason,
            action="be cancelled",
            effects=lambda: self._release(order),
        )
        return order

    async def resolve_dispute(self, admin: Principal, order_id: uuid.UUID, outcome: str, reason: str) -> Order:
        """Refund the buyer (escrow -> refunds, through the gateway; the licence is released) or release
        the order to settlement as completed."""
        await self._as_admin(admin, order_id)
        disputed = frozenset({OrderStatus.DISPUTED})
        # The row lock keeps the order disputed while the gateway refunds: the refund is asked for only
        # for an order this transaction will move (keyed by the order, so a retry refunds once).
        order = await self.repository.lock(order_id)
        assert order is not None
        if outcome == "release":
            await self._move(order, disputed, OrderStatus.COMPLETED, admin.actor, reason=reason, action="be released")
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
                raise RefundFailed(str(exc), order_id=str(order.id)) from exc

        async def refund() -> None:
            if order.amount_minor > 0:
                escrow = await self.ledger.account(
                    AccountCode.ESCROW,
                    order.currency,
                    organization_id=order.provider_organization_id,
                    order_id=order.id,
                )
                refunds = await self.ledger.account(AccountCode.REFUNDS, order.currency)
                await self.ledger.post(
                    transfer_id(order.id, "refund"),
                    escrow,
                    refunds,
                    order.amount_minor,
                    order.currency,
                    TransferKind.REFUND,
                    order_id=order.id,
                )
            await self._release(order)
            await self.licences.revoke_for_order(order.id, f"refunded after a dispute: {reason}", admin.actor)

        await self._move(
            order,
            disputed,
            OrderStatus.REFUNDED,
            admin.actor,
            reason=reason,
            action="be refunded",
            effects=refund,
            refund_reference=reference,
        )
        return order

    # time

    async def sweep(self) -> SweepResult:
        """Cancel accepted orders left unpaid past the payment window (their licences released) and
        complete delivered orders left unconfirmed past the confirmation window. The moves and the
        licences come first, the audit entries last (the lock order of `_move`)."""
        now = clock.now()
        unpaid_before = now - timedelta(seconds=self.settings.order_payment_window_seconds)
        unconfirmed_before = now - timedelta(seconds=self.settings.order_confirm_window_seconds)
        cancelled = await self._move_due(OrderStatus.ACCEPTED, OrderStatus.CANCELLED, unpaid_before)
        for order in sorted(cancelled, key=lambda o: (o.product_id, o.id)):
            await self._release(order)
        completed = await self._move_due(OrderStatus.DELIVERED, OrderStatus.COMPLETED, unconfirmed_before)
        cancelled_reason, completed_reason = "payment window expired", "auto-confirmed"
        await self._record_moves(
            cancelled, OrderStatus.ACCEPTED, OrderStatus.CANCELLED, SYSTEM_ACTOR, cancelled_reason, {}
        )
        await self._record_moves(
            completed, OrderStatus.DELIVERED, OrderStatus.COMPLETED, SYSTEM_ACTOR, completed_reason, {}
        )
        return SweepResult(cancelled=len(cancelled), auto_confirmed=len(completed))

    async def _move_due(self, was: OrderStatus, to: OrderStatus, changed_before: datetime) -> Sequence[Order]:
        """Move the orders in `was` since before `changed_before` (a batch of them) to `to`."""
        moved = await self.repository.move_many(await self.repository.due(was, changed_before, SWEEP_BATCH), was, to)
        orders = [await self.repository.get(order_id) for order_id in sorted(moved)]
        return tuple(order for order in orders if order is not None)

    async def expected_escrow(self) -> dict[tuple[uuid.UUID, str], int]:
        return await self.repository.escrow_held()

    # administrators' trade queries

    # Orders whose trade verdict still matters: placed, and neither rejected, settled, refunded nor cancelled.
    OPEN_STATUSES = frozenset(
        {
            OrderStatus.PENDING_REVIEW,
            OrderStatus.ACCEPTED,
            OrderStatus.PAID,
            OrderStatus.DELIVERED,
            OrderStatus.COMPLETED,
            OrderStatus.DISPUTED,
        }
    )

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not principal.is_admin or principal.is_api_key:
            raise Forbidden("platform administrators only")

    async def trades(
        self, admin: Principal, filters: TradeFilters, *, limit: int, offset: int
    ) -> tuple[Sequence[dict[str, Any]], int]:
        """One page of the trades matching `filters`, newest first (see TRADE_COLUMNS), and how many match."""
        self._require_admin(admin)
        rows, total = await self.repository.trades(filters, limit=limit, offset=offset)
        return [dict(row) for row in rows], total

    async def trades_after(
        self, admin: Principal, filters: TradeFilters, after: uuid.UUID | None, limit: int
    ) -> Sequence[dict[str, Any]]:
        """The next batch of an export: up to `limit` matching trades in id order after the trade `after`."""
        self._require_admin(admin)
        return [dict(row) for row in await self.repository.trades_after(filters, after, limit)]

    async def open_orders(self) -> dict[uuid.UUID, OrderStatus]:
        """Every order whose trade verdict still matters (OPEN_STATUSES), with its status: what a candidate
        rulebook's impact is measured on."""
        return await self.repository.open_statuses(self.OPEN_STATUSES)

    # settlement (used by ledger.settlement)
    #
    # Every transaction below takes its locks in one order, so none can deadlock with another: order
    # rows first (settlement and payouts skip rows someone else holds, never waiting for them), then
    # ledger accounts (escrow; a provider's payable before its debt, payables in id order; platform
    # revenue, then refunds), then the product's licences, then the audit head (see `_move`).

    async def settle_completed(self, limit: int, actor: str) -> Sequence[Order]:
        """Settle up to `limit` completed orders, oldest first, in the caller's transaction: each moves to
        settled and its escrow is split, escrow -> provider payable (price - fee) and escrow -> platform
        revenue (the fee, `split` rounds it half up); parts of 0 are not posted, so a free order just moves.
        Orders another transaction holds (a refund, a concurrent run) are left for the next run. A disputed
        order is never completed, so it never settles while disputed."""
        locked = await self.repository.lock_completed(limit)
        moved = await self.repository.move_many([o.id for o in locked], OrderStatus.COMPLETED, OrderStatus.SETTLED)
        orders = [o for o in locked if o.id in moved]
        paid = [o for o in orders if o.amount_minor > 0]
        # Open (or create) the shared accounts in one order, so concurrent runs creating them cannot deadlock.
        shared: dict[tuple[AccountCode, str, uuid.UUID | None], LedgerAccount] = {}
        for code, currency, owner in sorted(
            {(AccountCode.PROVIDER_PAYABLE, o.currency, o.provider_organization_id) for o in paid}
            | {(AccountCode.PLATFORM_REVENUE, o.currency, None) for o in paid},
            key=str,
        ):
            shared[code, currency, owner] = await self.ledger.account(code, currency, organization_id=owner)
        parts = []
        for order in paid:
            provider_minor, fee_minor = split(order.amount_minor, order.fee_bps)
            escrow = await self.ledger.account(
                AccountCode.ESCROW, order.currency, organization_id=order.provider_organization_id, order_id=order.id
            )
            payable = shared[AccountCode.PROVIDER_PAYABLE, order.currency, order.provider_organization_id]
            revenue = shared[AccountCode.PLATFORM_REVENUE, order.currency, None]
            parts.append((order, escrow, payable, revenue, provider_minor, fee_minor))
        # Payables in id order, then revenue: the lock order above.
        for order, escrow, payable, _, provider_minor, _ in sorted(parts, key=lambda p: (p[2].id, p[0].id)):
            if provider_minor:
                await self.ledger.post(
                    transfer_id(order.id, "settlement"),
                    escrow,
                    payable,
                    provider_minor,
                    order.currency,
                    TransferKind.SETTLEMENT,
                    order_id=order.id,
                )
        for order, escrow, _, revenue, _, fee_minor in sorted(parts, key=lambda p: (p[3].id, p[0].id)):
            if fee_minor:
                await self.ledger.post(
                    transfer_id(order.id, "fee"),
                    escrow,
                    revenue,
                    fee_minor,
                    order.currency,
                    TransferKind.FEE,
                    order_id=order.id,
                )
        split_of = {p[0].id: {"provider_minor": p[4], "fee_minor": p[5]} for p in parts}
        await self._record_moves(orders, OrderStatus.COMPLETED, OrderStatus.SETTLED, actor, "settled", split_of)
        return orders

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
        await self._record_moves(orders, OrderStatus.SETTLED, OrderStatus.PAID_OUT, actor, "paid out", payloads)
        return orders

    async def release_payout_claim(self, payout_id: uuid.UUID) -> int:
        """The payout failed: its orders still settled wait for the next payout."""
        return await self.repository.release_claim(payout_id)

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
        order = await self._as_admin(admin, order_id)
        locked = await self.repository.lock(order.id)
        assert locked is not None
        order = locked
        was = order.status
        if was not in (OrderStatus.COMPLETED, OrderStatus.SETTLED, OrderStatus.PAID_OUT):
            raise InvalidTransition(
                f"the order is {was.value}; only completed, settled and paid-out orders are refunded this way",
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
                raise RefundFailed(str(exc), order_id=str(order.id)) from exc
            if path == "escrow":
                escrow = await self.ledger.account(
                    AccountCode.ESCROW, currency, organization_id=provider, order_id=order.id
                )
                postings.append(("refund", escrow, order.amount_minor, TransferKind.REFUND))
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
        if not await self.repository.move(order.id, was, OrderStatus.REFUNDED, refund_reference=reference):
            raise AssertionError("the locked order moved")
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
        await self._release(order)
        await self.licences.revoke_for_order(order.id, f"refunded: {reason}", admin.actor)
        await self._record_moves([order], was, OrderStatus.REFUNDED, admin.actor, reason, {order.id: payload})
        order.refund_reference = reference
        return order, path

    async def _record_moves(
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
