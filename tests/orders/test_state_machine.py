"""Property: whatever orders are placed and moved -- paid, delivered, confirmed, disputed, resolved,
cancelled, swept as time passes, settled and paid out, refunded after settlement -- by whom, in whatever
order, replayed or refused, the orders, payouts and ledger in the database equal a pure-Python model of
them, and the books balance.

Every step is one call of a flow or an order transition (or a settlement run) in its own session, as a
request or the batch would make it (no HTTP: the organisations and products are made once per test
through the API; each example starts from no orders, no payouts and an empty ledger). After every step,
read in that step's session: each order's status, reservation and payout claim, and each payout, equal
the model's; the products' licences left equal their limit less what open orders reserve; every paid
order holds exactly one licence (delivery.models.Licence), active until a refund revokes it; the ledger
check passes with the escrow OrderService.expected_escrow() says open orders hold; and every kind of
account holds what the model says (money neither made nor lost: what left the clearing account is in
escrow, payable, revenue, refunds or payouts, less what providers owe).

Payouts go through the local gateway, told before each settlement run whether its transfers go through,
fail for a while (the payout stays pending and the next run sends it again) or find no such account
(the payout fails and is reversed), so that settled orders, pending payouts and provider debt occur.

Hypothesis drives the machine from a worker thread; every database call runs on the test's event loop,
where the run's engine lives. ORDER_STATEFUL_EXAMPLES sets how many sequences of 50 steps run (default
50; CI asks the SQLite pass for 2,000)."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import String, cast, delete, func, literal, null, select, union_all, update
from sqlmodel import col

from marketplace.accounts.principal import Principal
from marketplace.catalog.models import Product
from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.rulebook import DEFAULT_RULEBOOK_PATH, build_rulebook, read_config
from marketplace.delivery.models import Licence
from marketplace.errors import DomainError, Forbidden, NotFound
from marketplace.events.models import Event, EventParty, EventType
from marketplace.flows.settlement import SettlementReport
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.kit.money import split
from marketplace.ledger.models import AccountCode, LedgerAccount, Payout, PayoutStatus, Transfer
from marketplace.ledger.service import LedgerCheck
from marketplace.orders.models import (
    ESCROW_STATUSES,
    FINAL_STATUSES,
    RESERVING_STATUSES,
    Order,
    OrderEvent,
    OrderStatus,
)
from marketplace.orders.schemas import OrderRead
from marketplace.orders.service import InvalidTransition, SoldOut, SweepResult, order_event_type
from marketplace.payments.gateway import GatewayError, UnknownAccount
from marketplace.payments.local import LocalGateway
from marketplace.wiring import Services
from tests.fixtures.api import Api
from tests.orders.conftest import PRICE_MINOR
from tests.orders.factories import Listing, OrderServices, Trader, admin_principal, admitted_buyers, listing

T = TypeVar("T")

EXAMPLES = int(os.environ.get("ORDER_STATEFUL_EXAMPLES", "50"))
STEPS = 50
LIMIT = 3  # licences of the limited product: few, so they run out
# Orders per example: enough open at once to interleave, and new ones while others finish.
MAX_OPEN_ORDERS = 5
MAX_ORDERS = 16
FORBIDDEN_SCENARIO = "credit_scoring"  # a purpose the products do not permit: the gate rejects it
PERMITTED_SCENARIO = "traffic_planning"
HELD_SCENARIO = "logistics_routing"  # permitted, and held for an administrator by the rule below
SCENARIOS = [PERMITTED_SCENARIO, PERMITTED_SCENARIO, HELD_SCENARIO, FORBIDDEN_SCENARIO]
CURRENCY = "CNY"

S = OrderStatus
C = AccountCode

buyer_indexes = st.sampled_from([0, 1])
product_names = st.sampled_from(["limited", "unlimited"])
quantities = st.integers(min_value=1, max_value=2)

# Which statuses each transition leaves from, and where it goes.
TRANSITIONS: dict[str, tuple[frozenset[OrderStatus], OrderStatus]] = {
    "pay": (frozenset({S.ACCEPTED}), S.PAID),
    "deliver": (frozenset({S.PAID}), S.DELIVERED),
    "confirm": (frozenset({S.DELIVERED}), S.COMPLETED),
    "dispute": (frozenset({S.PAID, S.DELIVERED}), S.DISPUTED),
    "cancel": (frozenset({S.PENDING_REVIEW, S.ACCEPTED}), S.CANCELLED),
    "approve": (frozenset({S.PENDING_REVIEW}), S.ACCEPTED),
    "reject": (frozenset({S.PENDING_REVIEW}), S.REJECTED),
    "refund": (frozenset({S.DISPUTED}), S.REFUNDED),
    "release": (frozenset({S.DISPUTED}), S.COMPLETED),
    "refund_after_settlement": (frozenset({S.COMPLETED, S.SETTLED, S.PAID_OUT}), S.REFUNDED),
}
# The first delivery act delivers a paid order (delivery.service); the act's own checks are delivery's tests.
BY_PROVIDER = frozenset({"deliver"})
BY_ADMIN = frozenset({"refund", "release", "refund_after_settlement", "approve", "reject"})


class HoldForReview(Rule):
    """A vendor rule of the test's rulebook: trades for HELD_SCENARIO wait for an administrator."""

    id: ClassVar[str] = "X-HOLD"
    title_zh: ClassVar[str] = "人工复核"
    title_en: ClassVar[str] = "Held for review"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = ("test",)
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.TRADE})
    default_severity: ClassVar[Severity] = Severity.REVIEW

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        trade = ctx.snapshot.trade
        held = trade is not None and trade.scenario == HELD_SCENARIO
        return [self.finding("X-HOLD.scenario", Outcome.REVIEW if held else Outcome.PASS, "held for a person")]


# What the gateway does with payouts during a settlement run.
SENT, GATEWAY_DOWN, UNKNOWN_ACCOUNT = "sent", "gateway down", "unknown account"


class ModelClock:
    """The service's clock during the test: a fixed start, moved forward by the machine, plus one
    microsecond a reading so that the history of an order keeps its order."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.offset = timedelta(0)
        self.ticks = itertools.count()

    def now(self) -> datetime:
        return self.start + self.offset + timedelta(microseconds=next(self.ticks))


class SwitchableGateway(LocalGateway):
    """The local gateway, whose payouts (transfers) go through, fail for now, or find no account."""

    transfers = SENT

    async def transfer(
        self, *, payout_id: uuid.UUID, destination: str, amount_minor: int, currency: str, transfer_group: str | None
    ) -> str:
        if self.transfers == GATEWAY_DOWN:
            raise GatewayError(Message("test.gateway", "the gateway is not answering"))
        if self.transfers == UNKNOWN_ACCOUNT:
            raise UnknownAccount(Message("test.gateway", "no account {destination}", destination=destination))
        return await super().transfer(
            payout_id=payout_id,
            destination=destination,
            amount_minor=amount_minor,
            currency=currency,
            transfer_group=transfer_group,
        )


@dataclass
class ModelOrder:
    buyer: int
    product: str  # "limited" | "unlimited"
    amount: int
    status: OrderStatus
    reserved: int
    changed_at: timedelta  # the clock's offset when its status last changed
    payout: int | None = None  # the model payout (an index) that claimed it
    paid: bool = False  # was paid, so holds a licence: active, or revoked once refunded

    @property
    def quantity(self) -> int:
        return self.amount // PRICE_MINOR

    @property
    def shares(self) -> tuple[int, int]:
        """(provider's share, platform fee) when it settles."""
        return split(self.amount, FEE_BPS)


FEE_BPS = 500  # the test settings' platform fee; checked against the settings when the test starts


@dataclass
class ModelPayout:
    amount: int
    debt_repaid: int
    status: PayoutStatus
    id: uuid.UUID | None = None  # learnt from the database when the run that books it returns


@dataclass(frozen=True)
class Snapshot:
    """What the database holds after a step, read in the step's session right after its call."""

    orders: dict[uuid.UUID, tuple[OrderStatus, int, uuid.UUID | None]]  # status, licences reserved, payout
    payouts: dict[uuid.UUID, tuple[PayoutStatus, int, int]]  # status, amount, debt repaid
    licences: dict[uuid.UUID, int | None]  # licences left, per product
    grants: dict[uuid.UUID, str]  # the status of each order's licence (delivery.models.Licence)
    history: Counter[tuple[uuid.UUID, str | None, str]]  # each order's moves (from, to) in its history
    order_events: Counter[tuple[uuid.UUID, str]]  # the event types written for each order
    held: dict[tuple[AccountCode, str], int]  # credits - debits, summed per kind of account and currency
    expected_escrow: Mapping[tuple[uuid.UUID, str], int]  # as OrderService.expected_escrow() says
    check: LedgerCheck  # LedgerService.check(expected_escrow)


async def read_snapshot(service: Services, product_ids: list[uuid.UUID]) -> Snapshot:
    """Orders, payouts, licences and account totals in one statement, then the orders' expected escrow
    and the check of the books with it."""
    text = String(64)
    rows = await service.session.execute(
        union_all(
            select(
                literal("order"),
                cast(col(Order.id), text),
                cast(col(Order.status), text),
                col(Order.licences_reserved),
                cast(col(Order.payout_id), text),
            ),
            select(
                literal("payout"),
                cast(col(Payout.id), text),
                cast(col(Payout.status), text),
                col(Payout.amount_minor),
                cast(col(Payout.debt_repaid_minor), text),
            ),
            select(
                literal("product"), cast(col(Product.id), text), null(), col(Product.licences_remaining), null()
            ).where(col(Product.id).in_(product_ids)),
            select(
                literal("account"),
                cast(col(LedgerAccount.code), text),
                col(LedgerAccount.currency),
                func.sum(col(LedgerAccount.credits_posted) - col(LedgerAccount.debits_posted)),
                null(),
            ).group_by(col(LedgerAccount.code), col(LedgerAccount.currency)),
            select(
                literal("licence"),
                cast(col(Licence.order_id), text),
                cast(col(Licence.status), text),
                literal(0),
                null(),
            ),
            select(
                literal("history"),
                cast(col(OrderEvent.order_id), text),
                cast(col(OrderEvent.to_status), text),
                func.count(),
                cast(col(OrderEvent.from_status), text),
            ).group_by(col(OrderEvent.order_id), col(OrderEvent.to_status), col(OrderEvent.from_status)),
            select(literal("event"), col(Event.subject_id), col(Event.type), func.count(), null())
            .where(col(Event.subject_type) == "order")
            .group_by(col(Event.subject_id), col(Event.type)),
        )
    )
    orders: dict[uuid.UUID, tuple[OrderStatus, int, uuid.UUID | None]] = {}
    payouts: dict[uuid.UUID, tuple[PayoutStatus, int, int]] = {}
    licences: dict[uuid.UUID, int | None] = {}
    held: dict[tuple[AccountCode, str], int] = {}
    grants: dict[uuid.UUID, str] = {}
    history: Counter[tuple[uuid.UUID, str | None, str]] = Counter()
    order_events: Counter[tuple[uuid.UUID, str]] = Counter()
    for kind, key, value, amount, extra in rows.all():
        if kind == "order":
            orders[uuid.UUID(key)] = (OrderStatus(value), int(amount), uuid.UUID(extra) if extra else None)
        elif kind == "payout":
            payouts[uuid.UUID(key)] = (PayoutStatus(value), int(amount), int(extra))
        elif kind == "product":
            licences[uuid.UUID(key)] = None if amount is None else int(amount)
        elif kind == "licence":
            grants[uuid.UUID(key)] = value
        elif kind == "history":
            history[uuid.UUID(key), extra, value] = int(amount)
        elif kind == "event":
            order_events[uuid.UUID(key), value] = int(amount)
        else:
            held[AccountCode(key), value] = int(amount)
    expected_escrow = await service.orders.expected_escrow()
    check = await service.ledger.check(expected_escrow)
    return Snapshot(orders, payouts, licences, grants, history, order_events, held, expected_escrow, check)


class OrderMachine(RuleBasedStateMachine):
    # bound by the test: the event loop the database lives on, the services, the parties, the products
    loop: ClassVar[asyncio.AbstractEventLoop]
    services: ClassVar[OrderServices]
    gateway: ClassVar[SwitchableGateway]
    clock: ClassVar[ModelClock]
    admin: ClassVar[Principal]
    provider: ClassVar[Trader]
    buyers: ClassVar[list[Trader]]
    products: ClassVar[dict[str, Listing]]

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[uuid.UUID, ModelOrder] = {}
        self.payouts: list[ModelPayout] = []
        # the ledger as the model sees it: what each kind of account holds (credits - debits), and how
        # many transfers were posted
        self.held: Counter[AccountCode] = Counter()
        self.transfers = 0
        self.last: tuple[str, uuid.UUID] | None = None  # the last transition made, to replay
        self.snapshot: Snapshot | None = None  # read by the step just made

    # talking to the database

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def call(self, action: Callable[[Services], Coroutine[Any, Any, T]]) -> T | DomainError:
        """One step: a service call in its own transaction (committed, or rolled back when it raises),
        then, in the same session, what the database holds now (for the invariant to compare)."""
        product_ids = [listing.product_id for listing in self.products.values()]

        async def step() -> tuple[T | DomainError, Snapshot]:
            async with self.services.sessions() as session:
                service = self.services.service(session)
                result: T | DomainError
                try:
                    result = await action(service)
                    await session.commit()
                except DomainError as refused:
                    await session.rollback()
                    result = refused
                return result, await read_snapshot(service, product_ids)

        result, self.snapshot = self.run(step())
        return result

    def principal_for(self, action: str, order: ModelOrder) -> Principal:
        if action in BY_ADMIN:
            return self.admin
        if action in BY_PROVIDER:
            return self.provider.principal
        return self.buyers[order.buyer].principal

    def transition(self, action: str, order_id: uuid.UUID, principal: Principal) -> Any:
        async def act(service: Services) -> Any:
            if action == "pay":
                return await service.payment.pay(principal, order_id, None)
            if action == "deliver":
                return await service.transitions.deliver(order_id, principal.actor)
            if action == "confirm":
                return await service.transitions.confirm(principal, order_id)
            if action == "dispute":
                return await service.transitions.dispute(principal, order_id, "rows missing")
            if action == "cancel":
                return await service.trading.cancel(principal, order_id, "changed our mind")
            if action in ("approve", "reject"):
                return await service.trading.decide(principal, order_id, action, "reviewed by a person")
            if action == "refund_after_settlement":
                return await service.refunds.refund_after_settlement(principal, order_id, "licence terms breached")
            return await service.disputes.resolve_dispute(principal, order_id, action, "decided on the evidence")

        return self.call(act)

    # the model

    def in_status(self, *statuses: OrderStatus) -> list[uuid.UUID]:
        return [order_id for order_id, order in self.orders.items() if order.status in statuses]

    def open_orders(self) -> list[uuid.UUID]:
        return [order_id for order_id, order in self.orders.items() if order.status not in FINAL_STATUSES]

    def remaining(self, product: str) -> int:
        return LIMIT - sum(
            o.reserved for o in self.orders.values() if o.product == product and o.status in RESERVING_STATUSES
        )

    def post(self, debit: AccountCode, credit: AccountCode, amount: int) -> None:
        if amount:
            self.held[debit] -= amount
            self.held[credit] += amount
            self.transfers += 1

    def moved(self, order: ModelOrder, to: OrderStatus) -> None:
        order.status = to
        order.changed_at = self.clock.offset

    # rules

    @initialize(first=st.lists(st.tuples(buyer_indexes, product_names, quantities), min_size=1, max_size=3))
    def start_from_a_few_orders(self, first: list[tuple[int, str, int]]) -> None:
        """No orders, no payouts and an empty ledger, then a few orders placed: every example has orders
        to move, whichever rules it leaves out."""
        limited = self.products["limited"].product_id

        async def empty(service: Services) -> None:
            session = service.session
            await session.execute(delete(OrderEvent))
            order_events = select(col(Event.seq)).where(col(Event.subject_type) == "order")
            await session.execute(delete(EventParty).where(col(EventParty.event_seq).in_(order_events)))
            await session.execute(delete(Event).where(col(Event.subject_type) == "order"))
            await session.execute(delete(Licence))
            await session.execute(delete(Order))
            await session.execute(delete(StoredVerdict).where(col(StoredVerdict.subject_type) == "order"))
            await session.execute(delete(Payout))
            await session.execute(delete(Transfer))
            await session.execute(delete(LedgerAccount))
            await session.execute(update(Product).where(col(Product.id) == limited).values(licences_remaining=LIMIT))

        self.clock.offset = timedelta(0)
        assert self.call(empty) is None
        for buyer, product, quantity in first:
            self.place_order(buyer, product, quantity, PERMITTED_SCENARIO)

    @precondition(lambda self: len(self.orders) < MAX_ORDERS and len(self.open_orders()) < MAX_OPEN_ORDERS)
    @rule(buyer=buyer_indexes, product=product_names, quantity=quantities, scenario=st.sampled_from(SCENARIOS))
    def place(self, buyer: int, product: str, quantity: int, scenario: str) -> None:
        self.place_order(buyer, product, quantity, scenario)

    def place_order(self, buyer: int, product: str, quantity: int, scenario: str) -> None:
        trader, listing = self.buyers[buyer], self.products[product]

        async def place(service: Services) -> OrderRead:
            trade = listing.trade(trader, quantity=quantity, scenario=scenario)
            return (await service.trading.place(trader.principal, trade)).order

        order = self.call(place)
        assert isinstance(order, OrderRead), order
        limited = product == "limited"
        if scenario == FORBIDDEN_SCENARIO:
            # a purpose the product does not permit: rejected, nothing reserved
            assert (order.status, order.licences_reserved) == (S.REJECTED, 0)
        elif limited and self.remaining(product) < quantity:
            # R1: fewer licences left than asked for; the attempt is kept, nothing reserved
            flagged = ["R1", "X-HOLD"] if scenario == HELD_SCENARIO else ["R1"]
            assert (order.status, order.flagged_rules, order.licences_reserved) == (S.REJECTED, flagged, 0)
        elif scenario == HELD_SCENARIO:
            # held for an administrator: nothing reserved until approved
            assert (order.status, order.flagged_rules, order.licences_reserved) == (S.PENDING_REVIEW, ["X-HOLD"], 0)
        else:
            assert (order.status, order.licences_reserved) == (S.ACCEPTED, quantity if limited else 0)
        assert (order.amount_minor, order.fee_bps) == (PRICE_MINOR * quantity, FEE_BPS)
        self.orders[order.id] = ModelOrder(
            buyer, product, order.amount_minor, order.status, order.licences_reserved, self.clock.offset
        )

    def make(self, action: str, order_id: uuid.UUID) -> None:
        """A transition the order can make: it is made, with its money and licences."""
        order = self.orders[order_id]
        _, to = TRANSITIONS[action]
        assert self.allows(action, order)
        result = self.transition(action, order_id, self.principal_for(action, order))
        assert not isinstance(result, DomainError), (action, order, result)
        if action == "pay":
            self.post(C.PLATFORM_CLEARING, C.ESCROW, order.amount)
            order.paid = True
        elif action == "approve":  # the licences are reserved now
            order.reserved = order.quantity if order.product == "limited" else 0
        elif action == "refund":
            self.post(C.ESCROW, C.REFUNDS, order.amount)
        elif action == "refund_after_settlement":
            _, path = result
            share, fee = order.shares
            if order.status == S.COMPLETED:  # still in escrow
                assert path == "escrow"
                self.post(C.ESCROW, C.REFUNDS, order.amount)
            elif order.status == S.SETTLED and order.payout is None:  # settled, not yet claimed by a payout
                assert path == "reversal"
                self.post(C.PROVIDER_PAYABLE, C.REFUNDS, share)
                self.post(C.PLATFORM_REVENUE, C.REFUNDS, fee)
            else:  # paid out, or claimed by a payout: the provider owes its share
                assert path == "provider_debt"
                self.post(C.PROVIDER_DEBT, C.REFUNDS, share)
                self.post(C.PLATFORM_REVENUE, C.REFUNDS, fee)
        self.moved(order, to)
        self.last = (action, order_id)

    def advanceable(self) -> list[tuple[str, uuid.UUID]]:
        return [
            (action, order_id)
            for action in TRANSITIONS
            for order_id, order in self.orders.items()
            if self.allows(action, order)
        ]

    def allows(self, action: str, order: ModelOrder) -> bool:
        """Whether the order's status allows the action now: a delivered order is disputed only within the
        acceptance window (after it, the delivery counts as accepted, even before a sweep completes it)."""
        allowed, _ = TRANSITIONS[action]
        if action == "dispute" and order.status == S.DELIVERED:
            return self.clock.offset - order.changed_at < self.window("confirmation")
        if action == "approve" and order.status in allowed and self.sold_out_for(order):
            return False
        return order.status in allowed

    def sold_out_for(self, order: ModelOrder) -> bool:
        """Fewer licences left than the held order asks for: approving it is refused (SoldOut)."""
        return order.product == "limited" and self.remaining("limited") < order.quantity

    @precondition(lambda self: self.advanceable())
    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """Any transition an order can make now, by the party that makes it: pay, deliver, confirm,
        dispute, cancel, an administrator's resolution of a dispute (refund or release), or an
        administrator's refund of a completed, settled or paid-out order."""
        self.make(*data.draw(st.sampled_from(self.advanceable())))

    def refusable(self) -> list[tuple[str, uuid.UUID]]:
        return [
            (action, order_id)
            for action in TRANSITIONS
            for order_id, order in self.orders.items()
            if not self.allows(action, order)
        ]

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), how=st.sampled_from(["replay", "not now", "stranger", "other side"]))
    def refused(self, data: st.DataObject, how: str) -> None:
        """A request that must change nothing:

        - replay: the last transition made, again (a retried request) -- InvalidTransition;
        - not now: a transition the order's status does not allow -- InvalidTransition;
        - stranger: the other buyer, who does not see the order at all -- NotFound;
        - other side: the provider doing the buyer's part -- Forbidden
          (administrators' acts are guarded as such by their endpoints, so only the stranger tries them;
          delivery is the delivery act's, whose callers are checked by delivery's own tests)."""
        expected: type[DomainError] = InvalidTransition
        if how == "replay" and self.last is not None:
            action, order_id = self.last
            principal = self.principal_for(action, self.orders[order_id])
        elif how in ("replay", "not now"):
            action, order_id = data.draw(st.sampled_from(self.refusable()))
            principal = self.principal_for(action, self.orders[order_id])
        else:
            action = data.draw(st.sampled_from(sorted(TRANSITIONS.keys() - BY_PROVIDER)))
            order_id = data.draw(st.sampled_from(sorted(self.orders)))
            buyer = self.orders[order_id].buyer
            if how == "stranger" or action in BY_ADMIN:
                principal, expected = self.buyers[1 - buyer].principal, NotFound
            else:
                principal, expected = self.provider.principal, Forbidden
        if expected is InvalidTransition and action == "approve" and self.orders[order_id].status == S.PENDING_REVIEW:
            expected = SoldOut  # held, and the licences it asks for went to others meanwhile
        result = self.transition(action, order_id, principal)
        assert isinstance(result, expected), (how, action, self.orders[order_id], result)

    # time, sweeps and settlement

    def window(self, name: str) -> timedelta:
        settings = self.services.settings
        seconds = settings.order_payment_window_seconds if name == "payment" else settings.order_confirm_window_seconds
        return timedelta(seconds=seconds)

    def swept(self) -> SweepResult:
        """What a sweep does now: unpaid orders past the payment window are cancelled (their licences
        released), delivered orders past the confirmation window completed."""
        now = self.clock.offset
        unpaid = [o for o in self.in_status(S.ACCEPTED) if now - self.orders[o].changed_at > self.window("payment")]
        unconfirmed = [
            o for o in self.in_status(S.DELIVERED) if now - self.orders[o].changed_at > self.window("confirmation")
        ]
        for order_id in unpaid:
            self.moved(self.orders[order_id], S.CANCELLED)
        for order_id in unconfirmed:
            self.moved(self.orders[order_id], S.COMPLETED)
        return SweepResult(cancelled=len(unpaid), auto_confirmed=len(unconfirmed))

    @precondition(lambda self: self.in_status(S.ACCEPTED, S.DELIVERED))
    @rule(elapsed=st.sampled_from([None, "payment", "confirmation"]))
    def sweep(self, elapsed: str | None) -> None:
        """Time passes -- not at all, just past the payment window, or just past the confirmation window --
        and the sweep runs. Run again at once, it finds nothing to do."""
        if elapsed is not None:
            self.clock.offset += self.window(elapsed) + timedelta(seconds=1)

        async def sweep(service: Services) -> SweepResult:
            return await service.settlement.sweep()

        result = self.call(sweep)
        assert result == self.swept(), result

    def settleable(self) -> bool:
        return bool(
            self.in_status(S.ACCEPTED, S.DELIVERED, S.COMPLETED, S.SETTLED)
            or self.held[C.PROVIDER_PAYABLE]
            or any(p.status == PayoutStatus.PENDING for p in self.payouts)
        )

    @precondition(lambda self: self.settleable())
    @rule(transfers=st.sampled_from([SENT, GATEWAY_DOWN, UNKNOWN_ACCOUNT]))
    def settle(self, transfers: str) -> None:
        """A settlement run (sweep, settle completed orders, resend pending payouts, book and send a new
        one), with the gateway's payouts going through, failing for now, or finding no account. Run again
        at once, it finds nothing new to do."""
        self.gateway.transfers = transfers

        async def settle(service: Services) -> SettlementReport:
            return await service.settlement.run(self.admin.actor)

        report = self.call(settle)
        assert isinstance(report, SettlementReport), report
        # the model's run
        swept = self.swept()
        completed = self.in_status(S.COMPLETED)
        for order_id in completed:
            order = self.orders[order_id]
            share, fee = order.shares
            self.post(C.ESCROW, C.PROVIDER_PAYABLE, share)
            self.post(C.ESCROW, C.PLATFORM_REVENUE, fee)
            self.moved(order, S.SETTLED)
        for index, payout in enumerate(self.payouts):
            if payout.status == PayoutStatus.PENDING:
                self.send(index, transfers)
        booked = self.book(transfers)
        assert (report.cancelled_orders, report.auto_confirmed_orders) == (swept.cancelled, swept.auto_confirmed)
        assert report.settled_orders == len(completed)
        assert report.skipped == []
        # the new payout's id, as the database gave it
        assert self.snapshot is not None
        known = {p.id for p in self.payouts}
        new = [payout_id for payout_id in self.snapshot.payouts if payout_id not in known]
        assert len(new) == (booked is not None), (new, booked)
        if booked is not None:
            self.payouts[booked].id = new[0]

    def book(self, transfers: str) -> int | None:
        """The model's payout booking: everything the provider's payable holds, its debt repaid first,
        claiming every settled order not yet claimed; returns the new payout's index, if one is booked."""
        unclaimed = [o for o in self.in_status(S.SETTLED) if self.orders[o].payout is None]
        gross = self.held[C.PROVIDER_PAYABLE]
        if not unclaimed and gross <= 0:
            return None
        assert gross > 0, "no free orders here: settled orders leave their share in the payable"
        owed = max(-self.held[C.PROVIDER_DEBT], 0)
        repaid = min(owed, gross)
        amount = gross - repaid
        index = len(self.payouts)
        self.payouts.append(ModelPayout(amount, repaid, PayoutStatus.PENDING if amount else PayoutStatus.SENT))
        for order_id in unclaimed:
            self.orders[order_id].payout = index
        self.post(C.PROVIDER_PAYABLE, C.PROVIDER_DEBT, repaid)
        self.post(C.PROVIDER_PAYABLE, C.PAYOUTS, amount)
        if amount:
            self.send(index, transfers)
        else:  # all of it repaid the debt: nothing to send
            self.paid_out(index)
        return index

    def send(self, index: int, transfers: str) -> None:
        payout = self.payouts[index]
        if transfers == SENT:
            payout.status = PayoutStatus.SENT
            self.paid_out(index)
        elif transfers == UNKNOWN_ACCOUNT:  # failed: the booking reversed, its orders free again
            payout.status = PayoutStatus.FAILED
            for order in self.orders.values():
                if order.payout == index and order.status == S.SETTLED:
                    order.payout = None
            self.post(C.PAYOUTS, C.PROVIDER_PAYABLE, payout.amount)
            self.post(C.PROVIDER_DEBT, C.PROVIDER_PAYABLE, payout.debt_repaid)
        # the gateway down: it stays pending, for the next run

    def paid_out(self, index: int) -> None:
        for order in self.orders.values():
            if order.payout == index and order.status == S.SETTLED:
                self.moved(order, S.PAID_OUT)

    # invariants

    @invariant()
    def database_matches_the_model(self) -> None:
        snapshot, self.snapshot = self.snapshot, None
        assert snapshot is not None, "every step reads the database after its call"
        payout_ids = [p.id for p in self.payouts]
        assert snapshot.orders == {
            order_id: (o.status, o.reserved, None if o.payout is None else payout_ids[o.payout])
            for order_id, o in self.orders.items()
        }
        assert snapshot.payouts == {p.id: (p.status, p.amount, p.debt_repaid) for p in self.payouts}
        # One licence per paid order, never a second; a refund revokes it, nothing else does here.
        assert snapshot.grants == {
            order_id: "revoked" if o.status == S.REFUNDED else "active" for order_id, o in self.orders.items() if o.paid
        }
        # Every move in an order's history wrote its event (its placing, and a decided dispute, one more).
        expected_events: Counter[tuple[uuid.UUID, str]] = Counter()
        for (order_id, was, to), count in snapshot.history.items():
            expected_events[order_id, order_event_type(OrderStatus(to)).value] += count
            if was is None:
                expected_events[order_id, EventType.ORDER_PLACED.value] += count
            elif was == S.DISPUTED.value:
                expected_events[order_id, EventType.ORDER_RESOLVED.value] += count
        assert snapshot.order_events == expected_events
        assert {order_id for order_id, _, _ in snapshot.history} == set(self.orders)
        assert snapshot.licences == {
            self.products["limited"].product_id: self.remaining("limited"),
            self.products["unlimited"].product_id: None,
        }
        assert snapshot.expected_escrow == {
            (order_id, CURRENCY): o.amount for order_id, o in self.orders.items() if o.status in ESCROW_STATUSES
        }
        check = snapshot.check
        assert check.ok, check
        assert check.transfers == self.transfers
        assert not check.negative_accounts
        assert {currency for _, currency in snapshot.held} <= {CURRENCY}
        held = {code: snapshot.held.get((code, CURRENCY), 0) for code in AccountCode}
        assert held == {code: self.held[code] for code in AccountCode}
        # the model's own books: escrow holds exactly what the orders holding their buyer's money paid
        assert self.held[C.ESCROW] == sum(o.amount for o in self.orders.values() if o.status in ESCROW_STATUSES)
        # money is neither made nor lost: what left the clearing account is in escrow, payable, revenue,
        # refunds or payouts, less what the provider owes (its debt account's balance is negative)
        assert -held[C.PLATFORM_CLEARING] == sum(amount for code, amount in held.items() if code != C.PLATFORM_CLEARING)
        assert all(held[code] >= 0 for code in (C.ESCROW, C.PROVIDER_PAYABLE, C.PLATFORM_REVENUE, C.PAYOUTS))


async def test_orders_and_ledger_match_their_model(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = await api.admin()
    provider_person = await api.person("Provider")
    provider_org = await api.admitted_organization(provider_person, admin, kind="provider", dsmm_level=3)
    provider = Trader(provider_person, uuid.UUID(provider_org["id"]))
    products = {"limited": await listing(api, provider, LIMIT), "unlimited": await listing(api, provider, None)}
    buyers = await admitted_buyers(api, admin, 2)
    gateway = SwitchableGateway()
    rule_classes = {**load_rule_classes(), HoldForReview.id: HoldForReview}
    rulebook = build_rulebook(rule_classes, read_config(DEFAULT_RULEBOOK_PATH))
    services = OrderServices.of(api, gateway=gateway, rulebook=rulebook)
    assert services.settings.platform_fee_bps == FEE_BPS
    model_clock = ModelClock()
    monkeypatch.setattr(clock, "now", model_clock.now)
    bound = type(
        "BoundOrderMachine",
        (OrderMachine,),
        {
            "loop": asyncio.get_running_loop(),
            "services": services,
            "gateway": gateway,
            "clock": model_clock,
            "admin": admin_principal(admin),
            "provider": provider,
            "buyers": buyers,
            "products": products,
        },
    )
    machine_settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    await asyncio.to_thread(run_state_machine_as_test, bound, settings=machine_settings)
