"""Orders as their parties and administrators see them: who may see or act on an order, its history, the
administrators' trade queries, and recording a placed order with its verdict.

How an order moves is `orders.transitions`; what a move does to money, licences and deliveries is the
business of the flows (`marketplace.flows`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.catalog.models import PlanKind
from marketplace.compliance.contract import Decision
from marketplace.compliance.engine import Verdict
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.parts import Part
from marketplace.compliance.service import ComplianceService, VerdictRows, count_findings, verdict_audit_facts
from marketplace.compliance.snapshots import Snapshot
from marketplace.config import Settings
from marketplace.db import TableRow, runs_statements_alone
from marketplace.errors import Conflict, DomainError, Forbidden, NotFound
from marketplace.events.models import EventType
from marketplace.events.service import EventService
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.orders.models import Order, OrderEvent, OrderStatus
from marketplace.orders.repository import OrderRepository, Placed, StoredParts
from marketplace.orders.schemas import OrderRead, TradeRequest
from marketplace.orders.trades import TradeFilters, TradeRepository

# Where each trade-stage decision leaves a new order.
PLACED_STATUS = {
    Decision.ACCEPTED: OrderStatus.ACCEPTED,
    Decision.REVIEW: OrderStatus.PENDING_REVIEW,
    Decision.REJECTED: OrderStatus.REJECTED,
}


class SoldOut(Conflict):
    code = "order-sold-out"
    title = "No licences left"


class ListingChanged(Exception):
    """The kept listing an order was judged on changed before the order was placed: nothing was written, and
    the order is judged again on the listing read afresh (`flows.trading`), which cannot raise this again."""


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
    # parts of the snapshot digested already (the kept listing's provider, version and plan), by role
    parts: Mapping[str, Part]
    # the stamp of the kept listing judged without reading it again, which the placement checks is still the
    # listing's (None: the listing was read for this trade)
    listing_stamp: str | None = None


@dataclass(frozen=True)
class Placement:
    # the row just inserted, as read back: building the ORM instance cost a tenth of an order's CPU
    order: OrderRead
    verdict: Verdict
    verdict_id: uuid.UUID  # the stored verdict's


@dataclass(frozen=True)
class OrderView:
    order: Order
    verdict: StoredVerdict
    history: Sequence[OrderEvent]


@dataclass(frozen=True)
class SweepResult:
    cancelled: int
    auto_confirmed: int


# What a placed order has not had yet: it is unpaid and undisputed.
_NOT_YET = {"payment_gateway": None, "payment_reference": None, "dispute_reason": None}


def order_event_type(to: OrderStatus) -> EventType:
    """The event of an order's move to `to` (or of its placing, to where the trade stage left it): named
    after the status it reaches, pending review as `order.held`."""
    if to == OrderStatus.PENDING_REVIEW:
        return EventType.ORDER_HELD
    return EventType(f"order.{to.value}")


def amount_of(kind: PlanKind, price_minor: int, quantity: int) -> int:
    """What the buyer pays now: the plan's price times the quantity (a subscription's price is per
    period, a metered plan's the base fee; calls are billed on delivery); free plans cost nothing."""
    return 0 if kind == PlanKind.FREE else price_minor * quantity


class OrderService:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        accounts: AccountService,
        compliance: ComplianceService,
        audit: AuditService,
        events: EventService,
        stored_parts: StoredParts | None = None,
    ) -> None:
        self.settings = settings
        self.repository = OrderRepository(session, stored_parts)
        self.trade_rows = TradeRepository(session)
        self.accounts = accounts
        self.compliance = compliance
        self.audit = audit
        self.events = events

    async def record(
        self,
        principal: Principal,
        trade: Trade,
        order_id: uuid.UUID,
        rows: VerdictRows,
        verdict: Verdict,
        reserved: int,
        also: Callable[[OrderRead], TableRow] | None = None,
    ) -> OrderRead:
        """Record a placed order with its verdict, its first history event, its one audit entry (which carries
        the verdict too), its events (with any recorded before them in the transaction) and the row `also`
        makes of the order as read (the request's stored answer), having taken the `reserved` licences of its
        product: one statement on PostgreSQL. Returns the order as read; raises SoldOut, recording nothing, when
        fewer licences are left."""
        request = trade.request
        status = PLACED_STATUS[verdict.decision]
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
            "verdict_id": rows.id,
            "decision": verdict.decision,
            "flagged_rules": sorted({f.rule_id for f in verdict.failures()}),
            "licences_reserved": reserved,
            "status_changed_at": now,
            "created_at": now,
        }
        order = OrderRead.model_validate({**values, **_NOT_YET})
        earlier = self.events.take_recorded()
        await self.record_event(EventType.ORDER_PLACED, order)
        await self.record_event(order_event_type(status), order)
        entry = self.audit.entry(
            actor=principal.actor,
            action="order.placed",
            object_type="order",
            object_id=order_id,
            payload={
                "status": status.value,
                "verdict_id": str(rows.id),
                "product_id": str(trade.product_id),
                "buyer_organization_id": str(request.buyer_organization_id),
                "amount_minor": trade.amount_minor,
                "currency": trade.currency,
                "licences_reserved": reserved,
                "verdict": verdict_audit_facts(rows.id, verdict),
            },
        )
        placed = await self.repository.insert_placed(
            rows.written(),
            rows.parts,
            values,
            principal.actor,
            entry,
            earlier + self.events.take_recorded(),
            also(order) if also else None,
            trade.listing_stamp,
        )
        if placed == Placed.WRITTEN:
            count_findings(verdict)
        else:
            self.events.restore(earlier)  # this order's are not
        if placed == Placed.SOLD_OUT:
            raise SoldOut(
                Message("orders.sold-out", "no licences of this product are left"), product_id=str(trade.product_id)
            )
        if placed == Placed.LISTING_CHANGED:
            raise ListingChanged
        return order

    async def placing_alone(self) -> bool:
        """Whether an order's placement runs in a transaction of its own: one refused leaves nothing to undo."""
        return await runs_statements_alone(self.repository.session)

    async def record_event(self, event_type: EventType, order: Order | OrderRead, **facts: object) -> None:
        """The order's event, for its buyer, provider and intermediary: the order's public state."""
        await self.events.record(
            event_type,
            subject_type="order",
            subject_id=order.id,
            parties=[order.buyer_organization_id, order.provider_organization_id, order.intermediary_organization_id],
            payload={
                "order_id": str(order.id),
                "status": order.status.value,
                "buyer_organization_id": str(order.buyer_organization_id),
                "provider_organization_id": str(order.provider_organization_id),
                "product_id": str(order.product_id),
                "plan_id": str(order.plan_id),
                "quantity": order.quantity,
                "amount_minor": order.amount_minor,
                "currency": order.currency,
                **facts,
            },
        )

    # reading

    async def visible(self, principal: Principal, order_id: uuid.UUID) -> Order:
        """The order if the caller buys, provides or administers; otherwise it does not exist for them."""
        order = await self.repository.get(order_id)
        if order is None:
            raise NotFound(Message("orders.not-found", "order not found"))
        if principal.is_admin and not principal.is_api_key:
            return order
        mine = await self.accounts.member_organization_ids(principal)
        if order.buyer_organization_id not in mine and order.provider_organization_id not in mine:
            raise NotFound(Message("orders.not-found", "order not found"))
        return order

    async def bought(self, principal: Principal, order_id: uuid.UUID) -> Order:
        """The order, when the caller acts for its buyer: what it bought is delivered to it alone (its
        provider and administrators see the order, not the data)."""
        order = await self.visible(principal, order_id)
        if order.buyer_organization_id not in await self.accounts.member_organization_ids(principal):
            raise Forbidden(Message("orders.buyer-only", "only the buyer takes delivery"))
        return order

    async def get(self, order_id: uuid.UUID) -> Order:
        order = await self.repository.get(order_id)
        assert order is not None
        return order

    async def status_of(self, order_id: uuid.UUID) -> OrderStatus:
        status = await self.repository.status(order_id)
        assert status is not None
        return status

    async def paid_by(self, reference: str, order_id: uuid.UUID | None) -> Order | None:
        """The order a gateway's payment pays: by the payment's reference, or the order id it carries."""
        order = await self.repository.by_payment_reference(reference)
        if order is None and order_id is not None:
            order = await self.repository.get(order_id)
        return order

    async def as_party(self, principal: Principal, order_id: uuid.UUID, side: Literal["buyer", "provider"]) -> Order:
        """The order, when the caller acts for its buyer (or provider): others who see it are refused."""
        order = await self.visible(principal, order_id)
        party = order.buyer_organization_id if side == "buyer" else order.provider_organization_id
        if party not in await self.accounts.member_organization_ids(principal):
            raise Forbidden(Message("orders.side-only", "only the {side} may do this", side=side))
        return order

    async def as_admin(self, principal: Principal, order_id: uuid.UUID) -> Order:
        """Administrators' decisions check the caller here too, not only in the HTTP guard (an order the
        caller cannot see is still not found)."""
        order = await self.visible(principal, order_id)
        if not principal.is_admin or principal.is_api_key:
            raise Forbidden(Message("auth.administrators-only", "platform administrators only"))
        return order

    async def view(self, principal: Principal, order_id: uuid.UUID) -> OrderView:
        order = await self.visible(principal, order_id)
        verdict = await self.compliance.verdict(order.verdict_id)
        assert verdict is not None
        return OrderView(order, verdict, await self.repository.events(order.id))

    async def list(
        self, principal: Principal, *, status: OrderStatus | None, limit: int, offset: int
    ) -> tuple[Sequence[Order], int]:
        """Orders the caller's organisations buy or provide (administrators: all of them)."""
        organizations = None
        if not (principal.is_admin and not principal.is_api_key):
            organizations = await self.accounts.member_organization_ids(principal)
        return await self.repository.visible_to(organizations, status=status, limit=limit, offset=offset)

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
            raise Forbidden(Message("auth.administrators-only", "platform administrators only"))

    async def trades(
        self, admin: Principal, filters: TradeFilters, *, limit: int, offset: int
    ) -> tuple[Sequence[dict[str, Any]], int]:
        """One page of the trades matching `filters`, newest first (see TRADE_COLUMNS), and how many match."""
        self._require_admin(admin)
        rows, total = await self.trade_rows.trades(filters, limit=limit, offset=offset)
        return [dict(row) for row in rows], total

    async def trades_after(
        self, admin: Principal, filters: TradeFilters, after: uuid.UUID | None, limit: int
    ) -> Sequence[dict[str, Any]]:
        """The next batch of an export: up to `limit` matching trades in id order after the trade `after`."""
        self._require_admin(admin)
        return [dict(row) for row in await self.trade_rows.trades_after(filters, after, limit)]

    async def expected_escrow(self) -> dict[tuple[uuid.UUID, str], int]:
        """What each open order should hold in escrow, for the check of the books."""
        return await self.repository.escrow_held()

    async def open_orders(self) -> dict[uuid.UUID, OrderStatus]:
        """Every order whose trade verdict still matters (OPEN_STATUSES), with its status: what a candidate
        rulebook's impact is measured on."""
        return await self.repository.open_statuses(self.OPEN_STATUSES)
