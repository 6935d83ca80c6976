"""Trading: the trade stage's preview, placing an order (the gate), an administrator's decision on a held
trade, and the buyer's cancellation before payment."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.catalog.models import PlanKind
from marketplace.catalog.service import CatalogService
from marketplace.compliance.contract import Stage
from marketplace.compliance.engine import Verdict
from marketplace.compliance.parts import Part, part_of
from marketplace.compliance.service import ComplianceService
from marketplace.compliance.snapshots import Snapshot, TradeFacts
from marketplace.db import TableRow
from marketplace.errors import Conflict, NotFound, Unprocessable
from marketplace.flows.facts import Facts, organization_part
from marketplace.kit.i18n import Message
from marketplace.kit.memo import StampedMemo
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.schemas import TradeRequest
from marketplace.orders.service import (
    PLACED_STATUS,
    ListingChanged,
    OrderService,
    Placement,
    SoldOut,
    Trade,
    amount_of,
)
from marketplace.orders.transitions import OrderTransitions


@dataclass(frozen=True)
class Listed:
    """A product's listed version as an order reads it: plain values, no ORM objects (a kept one outlives the
    session it was read in, whose rollback would expire them)."""

    product_id: uuid.UUID
    provider_organization_id: uuid.UUID
    version_id: uuid.UUID
    unlimited: bool  # whether the product's licences are unlimited (its licences left are never read again)
    facts: Snapshot  # the provider and the version (its plans among them) as the rulebook sees them
    # the provider's and the version's snapshot parts, and each plan's by its id: digested once per listing
    parts: dict[str, Part]
    plan_parts: dict[str, Part]

    @classmethod
    def of(
        cls, product_id: uuid.UUID, provider_id: uuid.UUID, version_id: uuid.UUID, unlimited: bool, facts: Snapshot
    ) -> Listed:
        assert facts.provider is not None
        assert facts.product is not None
        parts = {"provider": part_of("provider", facts.provider), "product": part_of("product", facts.product)}
        plans = {plan.id: part_of("plan", plan) for plan in facts.product.plans}
        return cls(product_id, provider_id, version_id, unlimited, facts, parts, plans)


# The listings orders were placed on, by product: the next order reuses one while none of the rows it was read
# from changed (their stamp), for `LISTINGS_REUSE_SECONDS` at most.
Listings = StampedMemo[uuid.UUID, Listed]
LISTINGS_KEPT = 10_000
LISTINGS_REUSE_SECONDS = 10.0


class Trading:
    def __init__(
        self,
        accounts: AccountService,
        catalog: CatalogService,
        compliance: ComplianceService,
        facts: Facts,
        orders: OrderService,
        transitions: OrderTransitions,
        listings: Listings,
    ) -> None:
        self.accounts = accounts
        self.catalog = catalog
        self.compliance = compliance
        self.facts = facts
        self.orders = orders
        self.transitions = transitions
        self.listings = listings

    async def on_sale(self, product_id: uuid.UUID, *, unread: bool = False) -> tuple[Listed, int | None, str | None]:
        """A product on sale as an order reads it, its licences left (read every time) and, with `unread`, the
        stamp of a listing returned without reading anything. The listing is the one kept from an earlier
        order while the rows it was read from are unchanged (PostgreSQL): one light read instead of the
        listing's rows and their facts. With `unread`, a kept listing of a product whose licences are unlimited
        is returned as it is, for the order's placement statement to check its stamp (no read at all)."""
        if unread and (latest := self.listings.latest(product_id)) is not None and latest[1].unlimited:
            return latest[1], None, str(latest[0])
        stamped = await self.catalog.on_sale_stamp(product_id)
        if stamped is not None:
            licences, stamp = stamped
            if (kept := self.listings.get(product_id, stamp)) is not None:
                return kept, licences, None
        view = await self.catalog.for_sale(product_id)
        facts = await self.facts.listing(view)
        licences = view.product.licences_remaining
        listed = Listed.of(view.product.id, view.product.organization_id, view.version.id, licences is None, facts)
        if stamped is not None:
            self.listings.put(product_id, stamp, listed)
        return listed, licences, None

    async def trade(self, principal: Principal, request: TradeRequest, *, unread: bool = False) -> Trade:
        """Resolve a trade request into its frozen snapshot. The caller must act for the buyer. With `unread`,
        on a kept listing not read again (`on_sale`), whose stamp the trade carries for its placement to check."""
        buyer = await self.accounts.acting_for(principal, request.buyer_organization_id)
        listed, licences, listing_stamp = await self.on_sale(request.product_id, unread=unread)
        product = listed.facts.product
        assert product is not None
        plan = next((facts for facts in product.plans if facts.id == str(request.plan_id)), None)
        if plan is None:
            raise Unprocessable(
                Message("orders.plan-not-listed", "plan_id is not a plan of the product's listed version"),
                field="plan_id",
            )
        buyer_facts, buyer_part = organization_part(buyer)
        parts = {**listed.parts, "plan": listed.plan_parts[plan.id], "buyer": buyer_part}
        intermediary = None
        if request.intermediary_organization_id is not None:
            intermediary, parts["intermediary"] = organization_part(
                await self.accounts.organization(request.intermediary_organization_id)
            )
        amount = amount_of(PlanKind(plan.kind), plan.price_minor, request.quantity)
        snapshot = Snapshot(
            provider=listed.facts.provider,
            buyer=buyer_facts,
            intermediary=intermediary,
            product=product,
            plan=plan,
            trade=TradeFacts(
                scenario=request.scenario,
                delivery_mode=request.delivery_mode,
                quantity=request.quantity,
                amount_minor=amount,
                currency=plan.currency,
                licence_terms_accepted=request.accept_licence_terms,
                dispute_route=product.dispute_route,
                licences_available=licences,
            ),
        )
        return Trade(
            request=request,
            snapshot=snapshot,
            product_id=listed.product_id,
            product_version_id=listed.version_id,
            provider_organization_id=listed.provider_organization_id,
            amount_minor=amount,
            currency=plan.currency,
            limited_licences=licences is not None,
            parts=parts,
            listing_stamp=listing_stamp,
        )

    async def preview(self, principal: Principal, request: TradeRequest) -> tuple[Trade, Verdict]:
        """The verdict placing this order would get now; writes nothing."""
        trade = await self.trade(principal, request)
        return trade, self.compliance.preview(Stage.TRADE, trade.snapshot)

    async def place(
        self, principal: Principal, request: TradeRequest, also: Callable[[Placement], TableRow] | None = None
    ) -> Placement:
        """Run the trade stage, then record the order: rejected (nothing reserved), pending review, or
        accepted with its licences reserved and its amount fixed; with it, the row `also` makes of the
        placement (the request's stored answer). Raises SoldOut (nothing recorded) when the last licences
        went to another order first. Where the placement runs in a transaction of its own, the order is judged
        on a kept listing without reading it again, and judged again on the listing read afresh in the rare case
        the placement finds the listing changed meanwhile (nothing written)."""
        if await self.orders.placing_alone():
            try:
                return await self._place(principal, await self.trade(principal, request, unread=True), also)
            except ListingChanged:
                pass
        return await self._place(principal, await self.trade(principal, request), also)

    async def _place(
        self, principal: Principal, trade: Trade, also: Callable[[Placement], TableRow] | None
    ) -> Placement:
        order_id = uuid.uuid4()
        # The verdict is stored with the order and its first event, and recorded in the order's one audit
        # entry, where `judge` would store and audit it on its own.
        rows, verdict = self.compliance.assess(
            stage=Stage.TRADE, subject_type="order", subject_id=order_id, snapshot=trade.snapshot, parts=trade.parts
        )
        accepted = PLACED_STATUS[verdict.decision] == OrderStatus.ACCEPTED
        reserved = trade.request.quantity if accepted and trade.limited_licences else 0
        answer = (lambda order: also(Placement(order, verdict, rows.id))) if also else None
        order = await self.orders.record(principal, trade, order_id, rows, verdict, reserved, answer)
        return Placement(order, verdict, rows.id)

    async def decide(self, admin: Principal, order_id: uuid.UUID, decision: str, reason: str) -> Order:
        """An administrator's decision on a trade the gate held for review."""
        order = await self.orders.as_admin(admin, order_id)
        if decision == "reject":
            await self.transitions.move(
                order,
                frozenset({OrderStatus.PENDING_REVIEW}),
                OrderStatus.REJECTED,
                admin.actor,
                reason=reason,
                action=Message("orders.action-reject", "be rejected"),
            )
            return order
        try:
            view = await self.catalog.for_sale(order.product_id)
        except NotFound:
            raise Conflict(
                Message("orders.product-not-on-sale", "the product is no longer on sale"),
                product_id=str(order.product_id),
            ) from None
        limited = view.product.licences_remaining is not None

        async def reserve() -> None:
            if limited and not await self.catalog.reserve_licences(order.product_id, order.quantity):
                raise SoldOut(
                    Message("orders.sold-out", "no licences of this product are left"), product_id=str(order.product_id)
                )

        await self.transitions.move(
            order,
            frozenset({OrderStatus.PENDING_REVIEW}),
            OrderStatus.ACCEPTED,
            admin.actor,
            reason=reason,
            action=Message("orders.action-approve", "be approved"),
            effects=reserve,
            licences_reserved=order.quantity if limited else 0,
        )
        return order

    async def cancel(self, principal: Principal, order_id: uuid.UUID, reason: str | None) -> Order:
        order = await self.orders.as_party(principal, order_id, "buyer")
        await self.transitions.move(
            order,
            frozenset({OrderStatus.PENDING_REVIEW, OrderStatus.ACCEPTED}),
            OrderStatus.CANCELLED,
            principal.actor,
            reason=reason,
            action=Message("orders.action-cancel", "be cancelled"),
            effects=lambda: self.catalog.release_licences(order.product_id, order.licences_reserved),
        )
        return order
