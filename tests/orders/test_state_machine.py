"""Property: whatever orders are placed and moved -- paid, delivered, confirmed, disputed, resolved,
cancelled, swept as time passes -- by whom, in whatever order, replayed or refused, the orders and the
ledger in the database equal a pure-Python model of them, and the books balance.

Every step is one service call in its own transaction, as a request would make it (no HTTP: the
organisations and products are made once per test through the API; each example starts from no orders
and an empty ledger). After every step: each order's status and reservation equal the model's, the
products' licences left equal their limit less what open orders reserve, the ledger check passes with
the escrow OrderService.expected_escrow() says open orders hold, and every kind of account holds what
the model says it should (money neither made nor lost: what left the clearing account is in escrow,
refunds, payable, revenue or payouts).

Hypothesis drives the machine from a worker thread; every database call runs on the test's event loop,
where the run's engine lives. ORDER_STATEFUL_EXAMPLES sets how many examples run (CI asks for 2,000)."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
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
from marketplace.compliance.models import StoredVerdict
from marketplace.errors import DomainError, Forbidden, NotFound
from marketplace.kit import clock
from marketplace.ledger.models import AccountCode, LedgerAccount, Transfer
from marketplace.ledger.service import LedgerCheck
from marketplace.orders.models import ESCROW_STATUSES, RESERVING_STATUSES, Order, OrderEvent, OrderStatus
from marketplace.orders.service import InvalidTransition, OrderService, SweepResult
from tests.fixtures.api import Api
from tests.orders.conftest import PRICE_MINOR
from tests.orders.factories import Listing, OrderServices, Trader, admin_principal, admitted_buyers, listing

T = TypeVar("T")

EXAMPLES = int(os.environ.get("ORDER_STATEFUL_EXAMPLES", "50"))
STEPS = 50
LIMIT = 3  # licences of the limited product: few, so they run out
MAX_ORDERS = 8  # per example: enough to interleave, few enough that most steps move orders along
FORBIDDEN_SCENARIO = "credit_scoring"  # a purpose the products do not permit: the gate rejects it
SCENARIOS = ["traffic_planning", "traffic_planning", "logistics_routing", FORBIDDEN_SCENARIO]
CURRENCY = "CNY"

S = OrderStatus

# Which statuses each transition leaves from, and where it goes.
TRANSITIONS: dict[str, tuple[frozenset[OrderStatus], OrderStatus]] = {
    "pay": (frozenset({S.ACCEPTED}), S.PAID),
    "deliver": (frozenset({S.PAID}), S.DELIVERED),
    "confirm": (frozenset({S.DELIVERED}), S.COMPLETED),
    "dispute": (frozenset({S.PAID, S.DELIVERED}), S.DISPUTED),
    "cancel": (frozenset({S.PENDING_REVIEW, S.ACCEPTED}), S.CANCELLED),
    "refund": (frozenset({S.DISPUTED}), S.REFUNDED),
    "release": (frozenset({S.DISPUTED}), S.COMPLETED),
}
BY_PROVIDER = frozenset({"deliver"})
BY_ADMIN = frozenset({"refund", "release"})


class ModelClock:
    """The service's clock during the test: a fixed start, moved forward by the machine, plus one
    microsecond a reading so that the history of an order keeps its order."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.offset = timedelta(0)
        self.ticks = itertools.count()

    def now(self) -> datetime:
        return self.start + self.offset + timedelta(microseconds=next(self.ticks))


@dataclass
class ModelOrder:
    buyer: int
    product: str  # "limited" | "unlimited"
    amount: int
    status: OrderStatus
    reserved: int
    changed_at: timedelta  # the clock's offset when its status last changed


@dataclass(frozen=True)
class Snapshot:
    """What the database holds after a step, read in the step's session right after its call."""

    orders: dict[uuid.UUID, tuple[OrderStatus, int]]  # status, licences reserved
    licences: dict[uuid.UUID, int | None]  # licences left, per product
    held: dict[tuple[AccountCode, str], int]  # credits - debits, summed per kind of account and currency
    expected_escrow: Mapping[tuple[uuid.UUID, str], int]  # as OrderService.expected_escrow() says
    check: LedgerCheck  # LedgerService.check(expected_escrow)


async def read_snapshot(service: OrderService, product_ids: list[uuid.UUID]) -> Snapshot:
    """Orders, licences and account totals in one statement, then the orders' expected escrow and the
    check of the books with it."""
    text = String(64)
    rows = await service.session.execute(
        union_all(
            select(
                literal("order"),
                cast(col(Order.id), text),
                cast(col(Order.status), text),
                col(Order.licences_reserved),
            ),
            select(literal("product"), cast(col(Product.id), text), null(), col(Product.licences_remaining)).where(
                col(Product.id).in_(product_ids)
            ),
            select(
                literal("account"),
                cast(col(LedgerAccount.code), text),
                col(LedgerAccount.currency),
                func.sum(col(LedgerAccount.credits_posted) - col(LedgerAccount.debits_posted)),
            ).group_by(col(LedgerAccount.code), col(LedgerAccount.currency)),
        )
    )
    orders: dict[uuid.UUID, tuple[OrderStatus, int]] = {}
    licences: dict[uuid.UUID, int | None] = {}
    held: dict[tuple[AccountCode, str], int] = {}
    for kind, key, value, amount in rows.all():
        if kind == "order":
            orders[uuid.UUID(key)] = (OrderStatus(value), int(amount))
        elif kind == "product":
            licences[uuid.UUID(key)] = None if amount is None else int(amount)
        else:
            held[AccountCode(key), value] = int(amount)
    expected_escrow = await service.expected_escrow()
    return Snapshot(orders, licences, held, expected_escrow, await service.ledger.check(expected_escrow))


class OrderMachine(RuleBasedStateMachine):
    # bound by the test: the event loop the database lives on, the services, the parties, the products
    loop: ClassVar[asyncio.AbstractEventLoop]
    services: ClassVar[OrderServices]
    clock: ClassVar[ModelClock]
    admin: ClassVar[Principal]
    provider: ClassVar[Trader]
    buyers: ClassVar[list[Trader]]
    products: ClassVar[dict[str, Listing]]

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[uuid.UUID, ModelOrder] = {}
        self.transfers = 0
        self.paid = 0  # what came in through the gateway: the clearing account's outflow
        self.refunded = 0
        self.last: tuple[str, uuid.UUID] | None = None  # the last transition made, to replay
        self.snapshot: Snapshot | None = None  # read by the step just made

    # talking to the database

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def call(self, action: Callable[[OrderService], Coroutine[Any, Any, T]]) -> T | DomainError:
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
        async def act(service: OrderService) -> Any:
            if action == "pay":
                return await service.pay(principal, order_id, None)
            if action == "deliver":
                return await service.deliver(principal, order_id)
            if action == "confirm":
                return await service.confirm(principal, order_id)
            if action == "dispute":
                return await service.dispute(principal, order_id, "rows missing")
            if action == "cancel":
                return await service.cancel(principal, order_id, "changed our mind")
            return await service.resolve_dispute(principal, order_id, action, "decided on the evidence")

        return self.call(act)

    # the model

    def in_status(self, *statuses: OrderStatus) -> list[uuid.UUID]:
        return [order_id for order_id, order in self.orders.items() if order.status in statuses]

    def remaining(self, product: str) -> int:
        return LIMIT - sum(
            o.reserved for o in self.orders.values() if o.product == product and o.status in RESERVING_STATUSES
        )

    def moved(self, order: ModelOrder, to: OrderStatus) -> None:
        order.status = to
        order.changed_at = self.clock.offset

    # rules

    @initialize()
    def start_from_no_orders(self) -> None:
        limited = self.products["limited"].product_id

        async def empty(service: OrderService) -> None:
            session = service.session
            await session.execute(delete(OrderEvent))
            await session.execute(delete(Order))
            await session.execute(delete(StoredVerdict).where(col(StoredVerdict.subject_type) == "order"))
            await session.execute(delete(Transfer))
            await session.execute(delete(LedgerAccount))
            await session.execute(update(Product).where(col(Product.id) == limited).values(licences_remaining=LIMIT))

        self.clock.offset = timedelta(0)
        assert self.call(empty) is None

    @precondition(lambda self: len(self.orders) < MAX_ORDERS)
    @rule(
        buyer=st.sampled_from([0, 1]),
        product=st.sampled_from(["limited", "unlimited"]),
        quantity=st.integers(min_value=1, max_value=2),
        scenario=st.sampled_from(SCENARIOS),
    )
    def place(self, buyer: int, product: str, quantity: int, scenario: str) -> None:
        trader, listing = self.buyers[buyer], self.products[product]

        async def place(service: OrderService) -> Order:
            trade = listing.trade(trader, quantity=quantity, scenario=scenario)
            return (await service.place(trader.principal, trade)).order

        order = self.call(place)
        assert isinstance(order, Order), order
        limited = product == "limited"
        if scenario == FORBIDDEN_SCENARIO:
            # a purpose the product does not permit: rejected, nothing reserved
            assert (order.status, order.licences_reserved) == (S.REJECTED, 0)
        elif limited and self.remaining(product) < quantity:
            # R1: fewer licences left than asked for; the attempt is kept, nothing reserved
            assert (order.status, order.flagged_rules, order.licences_reserved) == (S.REJECTED, ["R1"], 0)
        else:
            assert (order.status, order.licences_reserved) == (S.ACCEPTED, quantity if limited else 0)
        assert order.amount_minor == PRICE_MINOR * quantity
        self.orders[order.id] = ModelOrder(
            buyer, product, order.amount_minor, order.status, order.licences_reserved, self.clock.offset
        )

    def make(self, action: str, order_id: uuid.UUID) -> None:
        """A transition the order can make: it is made, with its money and licences."""
        order = self.orders[order_id]
        allowed, to = TRANSITIONS[action]
        assert order.status in allowed
        result = self.transition(action, order_id, self.principal_for(action, order))
        assert not isinstance(result, DomainError), (action, order, result)
        if action == "pay":
            self.transfers += 1
            self.paid += order.amount
        elif action == "refund":
            self.transfers += 1
            self.refunded += order.amount
        self.moved(order, to)
        self.last = (action, order_id)

    def can(self, action: str) -> list[uuid.UUID]:
        return self.in_status(*TRANSITIONS[action][0])

    @precondition(lambda self: self.can("pay"))
    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        self.make("pay", data.draw(st.sampled_from(self.can("pay"))))

    @precondition(lambda self: self.can("deliver"))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        self.make("deliver", data.draw(st.sampled_from(self.can("deliver"))))

    @precondition(lambda self: self.can("confirm"))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        self.make("confirm", data.draw(st.sampled_from(self.can("confirm"))))

    @precondition(lambda self: self.can("dispute"))
    @rule(data=st.data())
    def dispute(self, data: st.DataObject) -> None:
        self.make("dispute", data.draw(st.sampled_from(self.can("dispute"))))

    @precondition(lambda self: self.can("cancel"))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.make("cancel", data.draw(st.sampled_from(self.can("cancel"))))

    @precondition(lambda self: self.can("refund"))
    @rule(data=st.data(), outcome=st.sampled_from(["refund", "release"]))
    def resolve(self, data: st.DataObject, outcome: str) -> None:
        self.make(outcome, data.draw(st.sampled_from(self.can(outcome))))

    @precondition(lambda self: self.last is not None)
    @rule()
    def replay(self) -> None:
        """The last transition again (a retried request): refused, nothing changes."""
        assert self.last is not None
        action, order_id = self.last
        result = self.transition(action, order_id, self.principal_for(action, self.orders[order_id]))
        assert isinstance(result, InvalidTransition), (action, self.orders[order_id], result)

    def refusable(self) -> list[tuple[str, uuid.UUID]]:
        return [
            (action, order_id)
            for action, (allowed, _) in TRANSITIONS.items()
            for order_id, order in self.orders.items()
            if order.status not in allowed
        ]

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def refused(self, data: st.DataObject) -> None:
        """A transition the order's status does not allow: InvalidTransition, nothing changes."""
        action, order_id = data.draw(st.sampled_from(self.refusable()))
        result = self.transition(action, order_id, self.principal_for(action, self.orders[order_id]))
        assert isinstance(result, InvalidTransition), (action, self.orders[order_id], result)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), action=st.sampled_from(sorted(TRANSITIONS)), stranger=st.booleans())
    def wrong_party(self, data: st.DataObject, action: str, stranger: bool) -> None:
        """The other buyer does not see the order at all (404); the provider doing the buyer's part, or
        the buyer the provider's, is refused (403). Nothing changes. (Resolving a dispute is guarded as
        an administrator's act by its endpoint, so only the stranger tries it here.)"""
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        order = self.orders[order_id]
        expected: type[DomainError]
        if stranger or action in BY_ADMIN:
            principal, expected = self.buyers[1 - order.buyer].principal, NotFound
        elif action in BY_PROVIDER:
            principal, expected = self.buyers[order.buyer].principal, Forbidden
        else:
            principal, expected = self.provider.principal, Forbidden
        result = self.transition(action, order_id, principal)
        assert isinstance(result, expected), (action, stranger, order, result)

    def window(self, name: str) -> timedelta:
        settings = self.services.settings
        seconds = settings.order_payment_window_seconds if name == "payment" else settings.order_confirm_window_seconds
        return timedelta(seconds=seconds)

    @rule(elapsed=st.sampled_from([None, "payment", "confirmation"]))
    def sweep(self, elapsed: str | None) -> None:
        """Time passes -- not at all, just past the payment window, or just past the confirmation window --
        and the sweep runs: unpaid orders past the payment window are cancelled (their licences
        released), delivered orders past the confirmation window completed. Run again at once, it finds
        nothing to do."""
        if elapsed is not None:
            self.clock.offset += self.window(elapsed) + timedelta(seconds=1)
        now = self.clock.offset
        unpaid = [o for o in self.in_status(S.ACCEPTED) if now - self.orders[o].changed_at > self.window("payment")]
        unconfirmed = [
            o for o in self.in_status(S.DELIVERED) if now - self.orders[o].changed_at > self.window("confirmation")
        ]

        async def sweep(service: OrderService) -> SweepResult:
            return await service.sweep()

        assert self.call(sweep) == SweepResult(cancelled=len(unpaid), auto_confirmed=len(unconfirmed))
        for order_id in unpaid:
            self.moved(self.orders[order_id], S.CANCELLED)
        for order_id in unconfirmed:
            self.moved(self.orders[order_id], S.COMPLETED)

    # invariants

    def expected_held(self) -> dict[AccountCode, int]:
        """What each kind of account holds in the model (credits - debits; clearing is debit-normal)."""
        escrow = sum(o.amount for o in self.orders.values() if o.status in ESCROW_STATUSES)
        return {
            AccountCode.PLATFORM_CLEARING: -self.paid,
            AccountCode.ESCROW: escrow,
            AccountCode.REFUNDS: self.refunded,
        }

    @invariant()
    def database_matches_the_model(self) -> None:
        snapshot, self.snapshot = self.snapshot, None
        assert snapshot is not None, "every step reads the database after its call"
        assert snapshot.orders == {order_id: (o.status, o.reserved) for order_id, o in self.orders.items()}
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
        expected = self.expected_held()
        assert held == {code: expected.get(code, 0) for code in AccountCode}
        # money is neither made nor lost: what left the clearing account is somewhere else
        assert -held[AccountCode.PLATFORM_CLEARING] == sum(
            amount for code, amount in held.items() if code != AccountCode.PLATFORM_CLEARING
        )


async def test_orders_and_ledger_match_their_model(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = await api.admin()
    provider_person = await api.person("Provider")
    provider_org = await api.admitted_organization(provider_person, admin, kind="provider", dsmm_level=3)
    provider = Trader(provider_person, uuid.UUID(provider_org["id"]))
    products = {"limited": await listing(api, provider, LIMIT), "unlimited": await listing(api, provider, None)}
    buyers = await admitted_buyers(api, admin, 2)
    model_clock = ModelClock()
    monkeypatch.setattr(clock, "now", model_clock.now)
    bound = type(
        "BoundOrderMachine",
        (OrderMachine,),
        {
            "loop": asyncio.get_running_loop(),
            "services": OrderServices.of(api),
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
