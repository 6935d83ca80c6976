"""Two orders of different buyers, on different products of different providers, go through their whole path
side by side on PostgreSQL: at each step order A's transaction is held open at its commit (its events written),
and order B's same step runs meanwhile with `lock_timeout = '2s'`. B may wait only for the locks every order
still shares by design (`SHARED`); any other wait fails the test."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from marketplace.config import Settings
from marketplace.db import SessionMaker, create_engine, create_sessionmaker, unit_of_work
from marketplace.events.service import write_recorded
from marketplace.ledger.models import POOLED_CODES, AccountCode, LedgerAccount
from marketplace.ledger.service import LedgerService
from marketplace.orders.models import Order, OrderStatus
from marketplace.wiring import Services
from tests.fixtures.api import Api
from tests.ledger.trades import ACTOR, Shop, open_shop

pytestmark = pytest.mark.postgres

# The locks any two orders still share, by the table of the statement that waits (and a ledger account's code):
# none: audit entries are plain inserts that the log's sequencer integrates later, events likewise.
SHARED: set[str] = set()
LOCK_TIMEOUT = "2s"

Step = Callable[[Shop, Services, uuid.UUID | None], Awaitable[uuid.UUID | None]]
# Whether A's transaction, about to commit, is the one to hold (settlement commits several).
Moment = Callable[[AsyncSession, uuid.UUID | None], Awaitable[bool]]


async def place(shop: Shop, services: Services, _: uuid.UUID | None) -> uuid.UUID:
    placed = await services.trading.place(shop.buyer.principal, shop.listing.trade(shop.buyer))
    assert placed.order.status == OrderStatus.ACCEPTED
    return placed.order.id


async def pay(shop: Shop, services: Services, order_id: uuid.UUID | None) -> None:
    assert order_id is not None
    await services.payment.pay(shop.buyer.principal, order_id, None)


async def deliver(shop: Shop, services: Services, order_id: uuid.UUID | None) -> None:
    assert order_id is not None
    await services.transitions.deliver(order_id, shop.provider.principal.actor)


async def confirm(shop: Shop, services: Services, order_id: uuid.UUID | None) -> None:
    assert order_id is not None
    await services.transitions.confirm(shop.buyer.principal, order_id)


async def settle(_: Shop, services: Services, __: uuid.UUID | None) -> None:
    await services.settlement.run(ACTOR)


async def at_its_commit(_: AsyncSession, __: uuid.UUID | None) -> bool:
    return True


async def once_settled(session: AsyncSession, order_id: uuid.UUID | None) -> bool:
    """The settlement run's transaction that settled the order (its own uncommitted change)."""
    status = await session.scalar(select(col(Order.status)).where(col(Order.id) == order_id))
    return status == OrderStatus.SETTLED


# Each step, when A's transaction is held, and whether B's order is kept out of A's step (a settlement run takes
# every completed order it can lock: B's is locked meanwhile, as a refund or another run would, so that each
# run settles its own).
PATH: list[tuple[str, Step, Moment, bool]] = [
    ("place", place, at_its_commit, False),
    ("pay", pay, at_its_commit, False),
    ("deliver", deliver, at_its_commit, False),
    ("confirm", confirm, at_its_commit, False),
    ("settle", settle, once_settled, True),
]


async def waited_on(sessions: SessionMaker, refused: DBAPIError) -> str:
    """The table of the statement that timed out waiting for a lock ("advisory" for an advisory lock), and the code
    of the ledger account it moved."""
    statement = str(refused.statement)
    if "advisory" in statement:
        return "advisory"
    found = re.search(r"\b(?:UPDATE|INSERT INTO|DELETE FROM|FROM)\s+\"?(\w+)", statement)
    table = found.group(1) if found else statement
    if table != "ledger_account":
        return table
    params = list(refused.params or ())
    # an UPDATE names the account by id; an INSERT (opening it on first use, a unique key's wait) by its code
    codes = {value for value in params if value in {code.value for code in AccountCode}}
    async with sessions() as session:
        ids = [value for value in params if isinstance(value, uuid.UUID)]
        codes |= set(await session.scalars(select(col(LedgerAccount.code)).where(col(LedgerAccount.id).in_(ids))))
    return ",".join(sorted(f"{table}:{code}" for code in codes))


@pytest.fixture
async def impatient(settings: Settings) -> AsyncIterator[SessionMaker]:
    """Sessions whose every statement gives up after waiting LOCK_TIMEOUT for a lock."""
    engine = create_engine(settings.model_copy(update={"database_pool_size": 0}))

    @event.listens_for(engine.sync_engine, "connect")
    def set_lock_timeout(connection: Any, _: Any) -> None:
        connection.run_async(lambda raw: raw.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))

    yield create_sessionmaker(engine)
    await engine.dispose()


async def side_by_side(
    a: Shop,
    b: Shop,
    step: Step,
    moment: Moment,
    orders: dict[str, uuid.UUID | None],
    impatient: SessionMaker,
    *,
    b_kept_out: bool,
) -> set[str]:
    """A's step held open at its commit while B's runs; the tables B timed out waiting on (B's step is then run
    again after A's commit, so that the path goes on)."""
    held, released = asyncio.Event(), asyncio.Event()
    keeper = b.sessions()
    if b_kept_out:
        await keeper.execute(select(col(Order.id)).where(col(Order.id) == orders["b"]).with_for_update())

    async def run_a() -> None:
        async with a.sessions() as session:
            commit = session.commit

            async def commit_when_released() -> None:
                if not released.is_set() and await moment(session, orders["a"]):
                    await session.run_sync(write_recorded)  # its last statements: then it only commits
                    held.set()
                    await released.wait()
                await commit()

            session.commit = commit_when_released  # type: ignore[method-assign]
            found = await step(a, a.orders(session), orders["a"])
            await session.commit()
        orders["a"] = found or orders["a"]

    task = asyncio.create_task(run_a())
    await asyncio.wait_for(held.wait(), 30)
    await keeper.close()
    waits = set()
    try:
        async with unit_of_work(impatient) as session:
            found = await step(b, b.orders(session), orders["b"])
    except DBAPIError as refused:
        if "lock timeout" not in str(refused.orig):
            raise
        waits.add(await waited_on(b.sessions, refused))
        released.set()
        await task
        async with unit_of_work(b.sessions) as session:
            found = await step(b, b.orders(session), orders["b"])
    released.set()
    await task
    orders["b"] = found or orders["b"]
    return waits


async def test_two_orders_go_through_their_whole_path_without_waiting_on_each_other(
    api: Api, impatient: SessionMaker
) -> None:
    a, b = await open_shop(api), await open_shop(api)
    async with unit_of_work(api.sessions) as session:  # as the exchange's first payment, settlement and refund did
        for code in POOLED_CODES:  # (two orders opening one at once meet at its unique key)
            await LedgerService(session).account(code, "CNY")
    orders: dict[str, uuid.UUID | None] = {"a": None, "b": None}
    waits = {
        name: await side_by_side(a, b, step, moment, orders, impatient, b_kept_out=kept_out)
        for name, step, moment, kept_out in PATH
    }
    assert {name: found - SHARED for name, found in waits.items()} == {name: set() for name, *_ in PATH}
    for shop, order_id in ((a, orders["a"]), (b, orders["b"])):
        assert order_id is not None
        assert (await shop.status(order_id)).status == OrderStatus.PAID_OUT  # settled, its provider paid out
    assert (await a.check()).ok
