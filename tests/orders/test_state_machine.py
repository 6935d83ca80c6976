"""Property: whatever orders are placed and moved -- paid, delivered, confirmed, disputed, resolved,
cancelled, swept as time passes, settled and paid out, refunded after settlement -- by whom, in whatever
order, replayed or refused, and whatever recurring billing does meanwhile -- metered calls billed, months
stated and their statements collected or declined, subscriptions renewed or declined, licences suspended,
reinstated and expired for it -- the orders, payouts, usage statements, renewals, licences and ledger in the
database equal a pure-Python model of them, and the books balance.

Every step is one call of a flow or an order transition (or a settlement run) in its own session, as a
request or the batch would make it (no HTTP: the organisations and products are made once per test
through the API; each example starts from no orders, no payouts and an empty ledger). After every step,
read in that step's session: each order's status, reservation and payout claim, and each payout, equal
the model's; the products' licences left equal their limit less what open orders reserve; every paid
order holds exactly one licence (delivery.models.Licence), active until a refund revokes it or billing
suspends or expires it, and a subscription's ends where its renewals took it; every statement and renewal
has the model's amount, status, attempts and settlement; the check of the books (Books.check: escrows,
receivables and accrued usage included) passes; and every kind of account holds what the model says
(money neither made nor lost: what left the clearing account is in escrow, payable, revenue, refunds,
payouts or accrued usage, less what providers and buyers owe).

Payouts go through the local gateway, told before each settlement run whether its transfers go through,
fail for a while (the payout stays pending and the next run sends it again) or find no such account
(the payout fails and is reversed), so that settled orders, pending payouts and provider debt occur; and
before each billing run whether its off-session charges go through or are declined. Metered calls are
metered as the data API meters an answered call (DataCalls' metering batch; the query itself is delivery's
tests' business).

Hypothesis drives the machine from a worker thread; every database call runs on the test's event loop,
where the run's engine lives. ORDER_STATEFUL_EXAMPLES sets how many sequences of 50 steps run (default
50; CI asks the SQLite pass for 2,000)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import os
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
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
from marketplace.billing.models import COLLECTABLE, ChargeStatus, SubscriptionRenewal, UsageStatement
from marketplace.catalog.models import Product
from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.rulebook import DEFAULT_RULEBOOK_PATH, build_rulebook, read_config
from marketplace.delivery.models import (
    AccessKey,
    Licence,
    LicenceRateWindow,
    LicenceUsage,
    RateWindow,
    UsageEvent,
    next_period_start,
    usage_period,
)
from marketplace.delivery.repository import DeliveryRepository
from marketplace.demo.factories import plan_body
from marketplace.errors import DomainError, Forbidden, NotFound
from marketplace.events.models import Event, EventParty, EventType, PendingEvent
from marketplace.flows.billing import STATEMENT_DELAY, Collection
from marketplace.flows.data_calls import DataCall, PendingMeter
from marketplace.flows.settlement import SettlementReport
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.kit.money import split
from marketplace.ledger.models import AccountCode, LedgerAccount, Payout, PayoutStatus, Transfer
from marketplace.ledger.repository import account_totals
from marketplace.ledger.service import ExpectedUsage, LedgerCheck
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
from marketplace.wiring import Services
from tests.billing.conftest import DecliningGateway
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

# Recurring billing: a metered plan (the first call of a month included, each further one billed) and a 30-day
# subscription, both at PRICE_MINOR a licence.
UNIT_PRICE_MINOR = 7
INCLUDED_CALLS = 1
PLANS = {
    "metered": plan_body(
        PRICE_MINOR, "metered", pricing_basis="cost", unit_price_minor=UNIT_PRICE_MINOR, included_calls=INCLUDED_CALLS
    ),
    "subscription": plan_body(PRICE_MINOR, "subscription", period_days=30),
}
PERIOD = timedelta(days=30)  # the subscription's
TERM = timedelta(days=365)  # the licence terms' term_days: where a metered licence ends
BILLING_ACTOR = "system"
STATEMENT, RENEWAL = "statement", "renewal"
# Short retries, grace and suspension, so that a few declined runs suspend a licence and a few more expire it.
BILLING_SETTINGS = {
    "billing_retry_seconds": (86_400,),
    "billing_grace_seconds": 2 * 86_400,
    "subscription_suspension_seconds": 2 * 86_400,
}
# Charges declined more often than not: runs of them suspend and expire licences.
declines = st.sampled_from([True, True, False])

buyer_indexes = st.sampled_from([0, 1])
product_names = st.sampled_from(["limited", "unlimited", "metered", "subscription"])
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
        self.tick = 0  # the last reading's

    def now(self) -> datetime:
        self.tick = next(self.ticks)
        return self.start + self.offset + timedelta(microseconds=self.tick)

    def latest(self) -> datetime:
        """The time now, with the last reading's microseconds: later than anything the service read before, as
        the service's next reading is (two instants the offsets make equal are ordered by their readings)."""
        return self.start + self.offset + timedelta(microseconds=self.tick)


class SwitchableGateway(DecliningGateway):
    """The local gateway, whose payouts (transfers) go through, fail for now, or find no account; and whose
    off-session charges (statements, renewals) go through or are declined (`declining`)."""

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
    paid: bool = False  # was paid, so holds a licence
    licence: str | None = None  # its licence's status once paid: active, suspended, revoked or expired
    suspended_for: bool = False  # billing suspended its licence (an unpaid charge), so a payment reinstates it
    paid_at: timedelta | None = None  # the clock's offset when it was paid
    end: datetime | None = None  # a subscription's licence end, as the database set it at payment, then renewed
    calls: Counter[str] = field(default_factory=Counter)  # a metered licence's calls per month
    key_id: uuid.UUID | None = None  # the access key its metered calls are made with

    @property
    def quantity(self) -> int:
        return self.amount // PRICE_MINOR

    @property
    def shares(self) -> tuple[int, int]:
        """(provider's share, platform fee) when it settles."""
        return split(self.amount, FEE_BPS)


FEE_BPS = 500  # the test settings' platform fee; checked against the settings when the test starts


@dataclass
class ModelCharge:
    """A usage statement (a metered licence's month) or a subscription's renewal (a licence's next period)."""

    kind: str  # STATEMENT | RENEWAL
    order_id: uuid.UUID
    start: datetime  # a renewal's period start (the licence's end it renews from)
    amount: int
    status: ChargeStatus
    attempts: int = 0
    next_at: datetime | None = None
    failed_since: datetime | None = None
    settled: bool = False

    @property
    def unpaid(self) -> bool:
        return self.status in COLLECTABLE


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
    ends: dict[uuid.UUID, datetime | None]  # each order's licence end
    charges: dict[tuple[uuid.UUID, str], tuple[int, str, int, bool]]  # statements and renewals, see `charges_of`
    history: Counter[tuple[uuid.UUID, str | None, str]]  # each order's moves (from, to) in its history
    order_events: Counter[tuple[uuid.UUID, str]]  # the event types written for each order
    held: dict[tuple[AccountCode, str], int]  # credits - debits, summed per kind of account and currency
    expected_escrow: Mapping[tuple[uuid.UUID, str], int]  # as OrderService.expected_escrow() says
    check: LedgerCheck  # Books.check(): the orders', renewals' and billing's expectations


@functools.cache
def snapshot_query(product_ids: tuple[uuid.UUID, ...]) -> Any:
    """`read_snapshot`'s one statement, built once: building it costs more than running it on the few rows an
    example has, and it runs after every step."""
    text = String(64)
    totals = account_totals()  # a pooled account's totals are its transfers'
    return union_all(
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
        select(literal("product"), cast(col(Product.id), text), null(), col(Product.licences_remaining), null()).where(
            col(Product.id).in_(product_ids)
        ),
        select(
            literal("account"),
            cast(totals.c.code, text),
            totals.c.currency,
            func.sum(totals.c.credits - totals.c.debits),
            null(),
        ).group_by(totals.c.code, totals.c.currency),
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


async def read_snapshot(service: Services, product_ids: tuple[uuid.UUID, ...]) -> Snapshot:
    """Orders, payouts, licences and account totals in one statement, then the orders' expected escrow
    and the check of the books with it."""
    await service.events.sequence()  # the events committed so far, numbered (PostgreSQL)
    rows = await service.session.execute(snapshot_query(product_ids))
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
    ends = {
        row[0]: row[1]
        for row in (await service.session.execute(select(col(Licence.order_id), col(Licence.ends_at)))).all()
    }
    charges = await charges_of(service)
    # Books.check's reading, with the orders' escrow read once for both
    expected_escrow = await service.orders.expected_escrow()
    usage = ExpectedUsage(*await service.billing.expected_usage())
    check = await service.ledger.check(expected_escrow | await service.billing.renewal_escrow(), usage)
    return Snapshot(
        orders, payouts, licences, grants, ends, charges, history, order_events, held, expected_escrow, check
    )


async def charges_of(service: Services) -> dict[tuple[uuid.UUID, str], tuple[int, str, int, bool]]:
    """Every statement by (order, month) and renewal by (order, period start): amount, status, attempts, settled."""
    found: dict[tuple[uuid.UUID, str], tuple[int, str, int, bool]] = {}
    models: tuple[type[UsageStatement] | type[SubscriptionRenewal], ...] = (UsageStatement, SubscriptionRenewal)
    for model in models:
        key: Any = col(UsageStatement.period) if model is UsageStatement else col(SubscriptionRenewal.period_start)
        query = select(
            col(model.order_id),
            key,
            col(model.amount_minor),
            col(model.status),
            col(model.attempts),
            col(model.settled_at).is_not(None),
        )
        rows: Any = (await service.session.execute(query)).all()
        for order_id, period, amount, status, attempts, settled in rows:
            found[order_id, charge_key(period)] = (
                int(amount),
                ChargeStatus(status).value,
                int(attempts),
                bool(settled),
            )
    return found


def charge_key(period: str | datetime) -> str:
    """A statement's month as it is; a renewal's period start as an instant in UTC."""
    return period if isinstance(period, str) else period.astimezone(UTC).isoformat()


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
        # statements by (order, month), renewals by (order, period start): see `charge_key`
        self.charges: dict[tuple[uuid.UUID, str], ModelCharge] = {}
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
        product_ids = tuple(listing.product_id for listing in self.products.values())

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
            for table in (UsageStatement, SubscriptionRenewal, UsageEvent, RateWindow, LicenceRateWindow, LicenceUsage):
                await session.execute(delete(table))
            await session.execute(delete(AccessKey))
            await session.execute(delete(OrderEvent))
            order_events = select(col(Event.seq)).where(col(Event.subject_type) == "order")
            await session.execute(delete(EventParty).where(col(EventParty.event_seq).in_(order_events)))
            await session.execute(delete(Event).where(col(Event.subject_type) == "order"))
            await session.execute(delete(PendingEvent).where(col(PendingEvent.subject_type) == "order"))
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
        if action in ("refund", "refund_after_settlement") and order.licence in ("active", "suspended"):
            order.licence, order.suspended_for = "revoked", False
        if action == "pay":
            self.post(C.PLATFORM_CLEARING, C.ESCROW, order.amount)
            order.paid, order.licence, order.paid_at = True, "active", self.clock.offset
            if order.product == "subscription":
                assert self.snapshot is not None
                order.end = self.snapshot.ends[order_id]
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
            or any(c.status == ChargeStatus.PAID and not c.settled for c in self.charges.values())
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
        # then the statements and renewals collected: their money to the payable, less the fee
        collected = [c for c in self.charges.values() if c.status == ChargeStatus.PAID and not c.settled]
        for charge in collected:
            share, fee = split(charge.amount, FEE_BPS)
            held_in = C.USAGE_ACCRUED if charge.kind == STATEMENT else C.ESCROW
            self.post(held_in, C.PROVIDER_PAYABLE, share)
            self.post(held_in, C.PLATFORM_REVENUE, fee)
            charge.settled = True
        for index, payout in enumerate(self.payouts):
            if payout.status == PayoutStatus.PENDING:
                self.send(index, transfers)
        booked = self.book(transfers)
        assert (report.cancelled_orders, report.auto_confirmed_orders) == (swept.cancelled, swept.auto_confirmed)
        assert report.settled_orders == len(completed)
        assert report.settled_charges == len(collected)
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

    # recurring billing

    def now(self) -> datetime:
        """The service's time now, as the model reckons it."""
        return self.clock.latest()

    def billed(self, order: ModelOrder, period: str) -> int:
        """What a metered licence's calls of one month were billed: each beyond the included ones."""
        return max(0, order.calls[period] - INCLUDED_CALLS) * UNIT_PRICE_MINOR

    def meterable(self) -> list[uuid.UUID]:
        """Metered orders whose licence the data API would serve now (active, within its term, not disputed)."""
        return [
            order_id
            for order_id, o in self.orders.items()
            if o.product == "metered"
            and o.licence == "active"
            and o.status != S.DISPUTED
            and o.paid_at is not None
            and self.clock.offset < o.paid_at + TERM
        ]

    @precondition(lambda self: self.meterable())
    @rule(data=st.data(), calls=st.integers(min_value=1, max_value=3))
    def metered_calls(self, data: st.DataObject, calls: int) -> None:
        """A few calls answered on a metered licence, metered in one batch as the data API meters them: the first
        of the month included, each further one billed (buyer receivable -> the order's accrued usage)."""
        order_id = data.draw(st.sampled_from(self.meterable()))
        order = self.orders[order_id]

        async def meter(service: Services) -> list[int]:
            licence = await DeliveryRepository(service.session).licence_of_order(order_id)
            assert licence is not None
            key = await service.session.get(AccessKey, order.key_id) if order.key_id else None
            if key is None:
                key = AccessKey(
                    licence_id=licence.id,
                    prefix=f"sm{uuid.uuid4().hex[:12]}",
                    key_hash="0" * 64,
                    scopes=["rows"],
                    rate_limit_per_minute=1_000_000,
                    created_by="test",
                )
                await DeliveryRepository(service.session).add_access_key(key)
            plan = await service.catalog.plan(licence.plan_id)
            at = clock.now()
            answered: Any = None  # the hosted table: the metering never reads it
            batch: list[PendingMeter] = [
                (DataCall(licence, key, "rows", at, plan, answered, {}), None) for _ in range(calls)
            ]
            outcomes = await service.data_calls._meter_batch(batch)
            order.key_id = key.id
            return [outcome[0].charge_minor for outcome in outcomes if not isinstance(outcome, Exception)]

        charges = self.call(meter)
        period = usage_period(self.now())
        expected = []
        for _ in range(calls):
            charge = UNIT_PRICE_MINOR if order.calls[period] >= INCLUDED_CALLS else 0
            order.calls[period] += 1
            self.post(C.BUYER_RECEIVABLE, C.USAGE_ACCRUED, charge)
            expected.append(charge)
        assert charges == expected
        event(f"metered calls: {'billed' if any(expected) else 'included'}")

    def unstated(self) -> bool:
        """Some metered licence's month has calls and no statement yet."""
        return any((order_id, period) not in self.charges for order_id, o in self.orders.items() for period in o.calls)

    @precondition(lambda self: self.unstated())
    @rule()
    def state_the_month(self) -> None:
        """The month ends (the clock moves past its end and the statements' delay) and the statements of every
        month with calls are issued, once: one made again at once issues nothing."""
        self.clock.offset = next_period_start(self.now()) + STATEMENT_DELAY + timedelta(minutes=1) - self.clock.start

        async def issue(service: Services) -> int:
            return len(await service.recurring_billing.issue_statements(BILLING_ACTOR))

        issued = self.call(issue)
        ended = usage_period(self.now() - STATEMENT_DELAY)
        expected = 0
        for order_id, order in self.orders.items():
            for period in order.calls:
                if period < ended and (order_id, period) not in self.charges:
                    amount = self.billed(order, period)
                    status = ChargeStatus.ISSUED if amount else ChargeStatus.PAID
                    start = datetime.fromisoformat(f"{period}-01T00:00:00+00:00")
                    self.charges[order_id, period] = ModelCharge(
                        STATEMENT, order_id, start, amount, status, settled=not amount
                    )
                    expected += 1
        assert issued == expected, (issued, expected)
        event(f"statements issued: {min(expected, 2)}")

    def grace(self) -> timedelta:
        return timedelta(seconds=self.services.settings.billing_grace_seconds)

    def lapse(self) -> timedelta:
        """From a renewal's period start to its licence's expiry, unpaid: the grace, then the suspension."""
        return self.grace() + timedelta(seconds=self.services.settings.subscription_suspension_seconds)

    def next_billing_time(self, kind: str) -> None:
        """Move the clock to the next instant the billing of `kind` acts on (an attempt due, a grace or a
        suspension over, a subscription period ended), one second past it: every run of the jobs then has
        something to do."""
        instants = []
        for charge in self.charges.values():
            order = self.orders[charge.order_id]
            if charge.kind != kind or not charge.unpaid:
                continue
            instants.append(charge.next_at)
            grace_from = charge.failed_since if kind == STATEMENT else charge.start
            if grace_from is not None and order.licence == "active":
                instants.append(grace_from + self.grace())
            if kind == RENEWAL and order.licence == "suspended":
                instants.append(charge.start + self.lapse())
        if kind == RENEWAL:
            instants += [o.end for o in self.orders.values() if o.end is not None and o.licence == "active"]
        later = [instant for instant in instants if instant is not None and instant > self.now()]
        if later:
            self.clock.offset = min(later) - self.clock.start + timedelta(seconds=1)

    @precondition(lambda self: any(c.kind == STATEMENT and c.unpaid for c in self.charges.values()))
    @rule(declined=declines, wait=st.sampled_from([True, True, False]))
    def collect_usage(self, declined: bool, wait: bool) -> None:
        """Time passes -- not at all, or to the next attempt due or grace over -- and the statements due are
        collected, through or declined; a licence unpaid past the grace is suspended."""
        if wait:
            self.next_billing_time(STATEMENT)
        self.gateway.declining = declined

        async def collect(service: Services) -> Collection:
            return await service.recurring_billing.collect_usage(BILLING_ACTOR)

        done = self.call(collect)
        paid, failed = self.collect(STATEMENT, declined)
        assert done == Collection(paid, failed, 0, self.suspend_overdue(STATEMENT, "failed")), done
        event(f"statements: paid {min(done.paid, 1)}, failed {min(done.failed, 1)}, suspended {min(done.suspended, 1)}")

    def renewable(self) -> bool:
        return any(o.product == "subscription" and o.licence in ("active", "suspended") for o in self.orders.values())

    @precondition(lambda self: self.renewable() or any(c.kind == RENEWAL and c.unpaid for c in self.charges.values()))
    @rule(declined=declines, wait=st.sampled_from([True, True, False]))
    def renew_subscriptions(self, declined: bool, wait: bool) -> None:
        """Time passes -- not at all, or to the next period end, attempt due, grace or suspension over -- and the
        subscriptions are renewed: renewals opened, collected (through or declined; those of licences revoked
        meanwhile lapse uncharged), licences unpaid past the grace suspended, past the suspension expired."""
        if wait:
            self.next_billing_time(RENEWAL)
        self.gateway.declining = declined

        async def renew(service: Services) -> Collection:
            return await service.recurring_billing.renew_subscriptions(BILLING_ACTOR)

        done = self.call(renew)
        now = self.now()
        for order_id, order in self.orders.items():
            if order.end is not None and order.licence == "active" and order.end <= now:
                key = (order_id, charge_key(order.end))
                if key not in self.charges:
                    self.charges[key] = ModelCharge(RENEWAL, order_id, order.end, order.amount, ChargeStatus.ISSUED)
        for charge in self.charges.values():
            if (
                charge.kind == RENEWAL
                and charge.unpaid
                and self.orders[charge.order_id].licence in ("revoked", "expired")
            ):
                charge.status = ChargeStatus.LAPSED
        paid, failed = self.collect(RENEWAL, declined)
        suspended = self.suspend_overdue(RENEWAL, "period")
        lapse = self.lapse()
        expired = 0
        for charge in self.charges.values():
            order = self.orders[charge.order_id]
            if (
                charge.kind == RENEWAL
                and charge.unpaid
                and charge.start <= now - lapse
                and order.licence == "suspended"
            ):
                charge.status = ChargeStatus.LAPSED
                order.licence, order.suspended_for = "expired", False
                expired += 1
        assert done == Collection(paid, failed, 0, suspended, expired), done
        event(
            f"renewals: paid {min(paid, 1)}, failed {min(failed, 1)}, suspended {min(suspended, 1)}, expired {expired}"
        )
        if any(
            o.licence == "active" and o.suspended_for is False and o.product != "limited" for o in self.orders.values()
        ):
            event("a licence active")

    def collect(self, kind: str, declined: bool) -> tuple[int, int]:
        """The model's collection of the charges of `kind` due now: each paid (money in; a renewal extends its
        licence) or declined (its next attempt on the schedule); a licence billing suspended is reinstated once
        none of its charges is unpaid. Returns (paid, failed)."""
        now, schedule = self.now(), self.services.settings.billing_retry_seconds
        due = [
            c
            for c in self.charges.values()
            if c.kind == kind and c.unpaid and c.amount > 0 and (c.next_at is None or c.next_at <= now)
        ]
        for charge in due:
            if declined:
                charge.attempts += 1
                charge.status = ChargeStatus.FAILED
                charge.failed_since = charge.failed_since or now
                charge.next_at = now + timedelta(seconds=schedule[min(charge.attempts, len(schedule)) - 1])
                continue
            charge.status, charge.next_at = ChargeStatus.PAID, None
            order = self.orders[charge.order_id]
            self.post(C.PLATFORM_CLEARING, C.BUYER_RECEIVABLE if kind == STATEMENT else C.ESCROW, charge.amount)
            if kind == RENEWAL:
                order.end = charge.start + PERIOD
        for order in {id(self.orders[c.order_id]): self.orders[c.order_id] for c in due if not declined}.values():
            if order.licence == "suspended" and order.suspended_for and not self.unpaid_of(order):
                order.licence, order.suspended_for = "active", False
        return (0, len(due)) if declined else (len(due), 0)

    def unpaid_of(self, order: ModelOrder) -> bool:
        return any(c.unpaid for c in self.charges.values() if self.orders[c.order_id] is order)

    def suspend_overdue(self, kind: str, since: str) -> int:
        """Licences whose charge of `kind` is unpaid past the grace (from its first failure, or its period's
        start) and still active are suspended; how many."""
        limit = self.now() - self.grace()
        suspended = set()
        for charge in self.charges.values():
            started = charge.failed_since if since == "failed" else charge.start
            order = self.orders[charge.order_id]
            if (
                charge.kind == kind
                and charge.unpaid
                and started is not None
                and started <= limit
                and order.licence == "active"
            ):
                order.licence, order.suspended_for = "suspended", True
                suspended.add(charge.order_id)
        return len(suspended)

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
        # One licence per paid order, never a second; a refund revokes it, billing suspends, reinstates and
        # expires it; a subscription's ends where its renewals took it.
        assert snapshot.grants == {order_id: o.licence for order_id, o in self.orders.items() if o.paid}
        assert {order_id: snapshot.ends[order_id] for order_id, o in self.orders.items() if o.end is not None} == {
            order_id: o.end for order_id, o in self.orders.items() if o.end is not None
        }
        assert snapshot.charges == {
            key: (c.amount, c.status.value, c.attempts, c.settled) for key, c in self.charges.items()
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
            **{self.products[name].product_id: None for name in ("unlimited", *PLANS)},
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
        # the model's own books: escrow holds exactly what the orders holding their buyer's money paid, and the
        # renewals collected and not yet settled; the buyers owe the calls billed and not yet collected
        assert self.held[C.ESCROW] == sum(o.amount for o in self.orders.values() if o.status in ESCROW_STATUSES) + sum(
            c.amount
            for c in self.charges.values()
            if c.kind == RENEWAL and c.status == ChargeStatus.PAID and not c.settled
        )
        billed = sum(self.billed(o, period) for o in self.orders.values() for period in o.calls)
        collected = sum(
            c.amount for c in self.charges.values() if c.kind == STATEMENT and c.status == ChargeStatus.PAID
        )
        assert -held[C.BUYER_RECEIVABLE] == billed - collected
        assert check.usage_checked
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
    for kind, plan in PLANS.items():
        products[kind] = await listing(api, provider, None, plan=plan)
    buyers = await admitted_buyers(api, admin, 2)
    gateway = SwitchableGateway()
    rule_classes = {**load_rule_classes(), HoldForReview.id: HoldForReview}
    rulebook = build_rulebook(rule_classes, read_config(DEFAULT_RULEBOOK_PATH))
    services = OrderServices.of(api, gateway=gateway, rulebook=rulebook)
    services = OrderServices(
        dataclasses.replace(services.runtime, settings=services.settings.model_copy(update=BILLING_SETTINGS))
    )
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
