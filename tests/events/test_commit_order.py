"""Events are written with their change and read in commit order: a change rolled back writes none, and on
PostgreSQL a reader paging while writers commit never skips an event that commits behind its cursor."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from sqlalchemy import text

from marketplace.db import SessionMaker, unit_of_work
from marketplace.events.models import EventType
from marketplace.events.service import EventService, write_recorded
from tests.events.feed import cursor_now, of, read_all
from tests.orders.conftest import Market
from tests.orders.factories import admin_principal

PARTY = uuid.UUID(int=7)


async def record(service: EventService, name: str) -> None:
    await service.record(
        EventType.ORDER_PAID, subject_type="order", subject_id=name, parties=[PARTY], payload={"name": name}
    )


async def read_from(sessions: SessionMaker, after: str | None, limit: int = 200) -> tuple[list[str], str]:
    """One page read in a transaction of its own: the subjects of its events and the cursor after them."""
    async with sessions() as session:
        page = await EventService(session).page(None, after=after, type_filter=None, limit=limit)
    return [e.subject_id for e in page.events], page.next_cursor


async def suspend_then_fail(market: Market) -> None:
    """The provider suspended, then the transaction fails."""
    async with market.api.services() as services:
        organization_id = uuid.UUID(market.provider_org["id"])
        await services.accounts.change_standing(admin_principal(market.admin), organization_id, "suspended", "x")
        raise RuntimeError("the request fails after the change")


async def test_a_change_rolled_back_writes_no_event(market: Market) -> None:
    api = market.api
    start = await cursor_now(api, market.admin)
    with pytest.raises(RuntimeError):
        await suspend_then_fail(market)
    order = await market.accepted_order()
    refused = await market.act(order["id"], "confirm", market.buyer)  # not delivered: 409, nothing moved
    assert refused.status_code == 409, refused.text
    assert of(await read_all(api, market.admin, after=start)) == ["order.placed", "order.accepted"]


@pytest.mark.postgres
async def test_events_are_numbered_in_commit_order_not_in_the_order_they_were_written(sessions: SessionMaker) -> None:
    """`first` writes its events before `second` but commits after it: with numbers taken when an event is
    written, `second` would commit number 3 while `first` still held 1 and 2, and a reader that read 3 would page
    past them for ever. `second` does not wait for `first` either: writers of events share no lock."""
    first_session = sessions()
    await first_session.begin()
    await record(EventService(first_session), "first")
    await record(EventService(first_session), "first, again")
    await first_session.run_sync(write_recorded)
    async with unit_of_work(sessions) as session:
        await session.execute(text("SET LOCAL lock_timeout = '2s'"))
        await record(EventService(session), "second")
    assert (await read_from(sessions, None))[0] == ["second"]
    await first_session.commit()
    await first_session.close()
    seen, _ = await read_from(sessions, None)
    assert seen == ["second", "first", "first, again"]


@pytest.mark.postgres
async def test_a_sequencer_pass_with_nothing_pending_takes_no_lock(sessions: SessionMaker) -> None:
    async with unit_of_work(sessions) as session:
        await record(EventService(session), "a")
    async with sessions() as session:
        assert await EventService(session).sequence() == 1
    async with sessions() as session:
        assert await EventService(session).sequence() == 0
        advisory = "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
        assert (await session.execute(text(advisory))).scalar_one() == 0


async def test_an_event_is_written_with_its_transaction_and_numbered_without_gaps(sessions: SessionMaker) -> None:
    """Several events of one transaction are written as it commits, numbered one after another in the order
    they were recorded, each with its parties."""
    async with unit_of_work(sessions) as session:
        for name in ("a", "b", "c"):
            await record(EventService(session), name)
    async with sessions() as session:
        page = await EventService(session).page([PARTY], after=None, type_filter=None, limit=10)
    assert [e.subject_id for e in page.events] == ["a", "b", "c"]
    assert [e.seq for e in page.events] == [1, 2, 3]
    assert all(page.parties[e.seq] == [PARTY] for e in page.events)


@pytest.mark.postgres
async def test_a_writer_rolled_back_leaves_no_gap(sessions: SessionMaker) -> None:
    async with sessions() as session:
        await session.begin()
        await record(EventService(session), "abandoned")
        await session.rollback()
    async with unit_of_work(sessions) as session:
        await record(EventService(session), "kept")
    seen, cursor = await read_from(sessions, None)
    assert seen == ["kept"]
    assert (await read_from(sessions, cursor))[0] == []


@pytest.mark.postgres
async def test_a_reader_paging_while_writers_commit_out_of_order_sees_every_event_once(
    sessions: SessionMaker,
) -> None:
    """Writers hold their transactions open for random times after recording (so, numbered by an
    autoincrement id, they would commit out of order); some roll back. A reader pages all along, from its
    cursor, in pages of random sizes, and sees exactly the committed events, each once."""
    rng = random.Random(16)
    committed: list[str] = []

    async def writer(index: int) -> None:
        await asyncio.sleep(rng.random() * 0.2)
        name = f"w{index}"
        async with sessions() as session:
            await session.begin()
            await record(EventService(session), name)
            await asyncio.sleep(rng.random() * 0.05)
            if index % 7 == 3:
                await session.rollback()
                return
            await session.commit()
            committed.append(name)

    writers = asyncio.gather(*(writer(i) for i in range(60)))
    seen: list[str] = []
    cursor: str | None = None
    while not writers.done():
        page, cursor = await read_from(sessions, cursor, limit=rng.randint(1, 5))
        seen.extend(page)
        await asyncio.sleep(0.005)
    await writers
    while True:
        page, cursor = await read_from(sessions, cursor)
        seen.extend(page)
        if not page:
            break
    assert sorted(seen) == sorted(committed)  # every committed event, none rolled back
    assert len(seen) == len(set(seen)) == 60 - len([i for i in range(60) if i % 7 == 3])  # each once
