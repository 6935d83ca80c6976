"""Concurrent transfers on PostgreSQL, each in its own transaction: no lost update, no overdraft, no
deadlock, a transfer id posted once however many times it is replayed at once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from marketplace.db import SessionMaker, unit_of_work
from marketplace.ledger.models import AccountCode, LedgerAccount, TransferKind
from marketplace.ledger.service import LedgerService, Overdraft, PostResult

pytestmark = pytest.mark.postgres


async def open_account(sessions: SessionMaker, code: AccountCode, **where: uuid.UUID) -> LedgerAccount:
    async with unit_of_work(sessions) as session:
        return await LedgerService(session).account(code, "CNY", **where)


async def post(
    sessions: SessionMaker, transfer_id: uuid.UUID, debit: LedgerAccount, credit: LedgerAccount, amount: int
) -> PostResult | Overdraft:
    async with unit_of_work(sessions) as session:
        try:
            return await LedgerService(session).post(transfer_id, debit, credit, amount, "CNY", TransferKind.PAYOUT)
        except Overdraft as refused:
            return refused


async def held(sessions: SessionMaker, account: LedgerAccount) -> int:
    async with sessions() as session:
        return await LedgerService(session).held(account)


async def fund(sessions: SessionMaker, account: LedgerAccount, amount: int) -> None:
    clearing = await open_account(sessions, AccountCode.PLATFORM_CLEARING)
    assert await post(sessions, uuid.uuid4(), clearing, account, amount) == PostResult.CREATED


async def check_ok(sessions: SessionMaker) -> int:
    async with sessions() as session:
        check = await LedgerService(session).check()
    assert check.ok, check
    return check.transfers


async def test_a_no_overdraft_account_pays_out_exactly_what_it_holds(
    sessions: SessionMaker, providers: list[uuid.UUID]
) -> None:
    payable = await open_account(sessions, AccountCode.PROVIDER_PAYABLE, organization_id=providers[0])
    payouts = await open_account(sessions, AccountCode.PAYOUTS, organization_id=providers[0])
    refunds = await open_account(sessions, AccountCode.REFUNDS)
    await fund(sessions, payable, 1_000)
    done = asyncio.Event()
    seen: list[int] = []

    async def watch() -> None:
        while not done.is_set():
            seen.append(await held(sessions, payable))

    watcher = asyncio.create_task(watch())
    # two destinations, so the account rows are locked in both orders of their ids
    results = await asyncio.gather(
        *(post(sessions, uuid.uuid4(), payable, (payouts, refunds)[n % 2], 10) for n in range(200))
    )
    done.set()
    await watcher
    outcomes = Counter(type(result).__name__ if isinstance(result, Overdraft) else result for result in results)
    assert outcomes == {PostResult.CREATED: 100, "Overdraft": 100}
    assert await held(sessions, payable) == 0
    assert await held(sessions, payouts) + await held(sessions, refunds) == 1_000
    assert seen
    assert min(seen) >= 0
    assert await check_ok(sessions) == 101


async def test_opposite_transfers_between_two_accounts_do_not_deadlock(
    sessions: SessionMaker, providers: list[uuid.UUID]
) -> None:
    first = await open_account(sessions, AccountCode.PROVIDER_PAYABLE, organization_id=providers[0])
    second = await open_account(sessions, AccountCode.PROVIDER_PAYABLE, organization_id=providers[1])
    await fund(sessions, first, 1_000)
    await fund(sessions, second, 1_000)
    results = await asyncio.gather(
        *(post(sessions, uuid.uuid4(), *((first, second) if n % 2 else (second, first)), 7) for n in range(200))
    )
    assert set(results) == {PostResult.CREATED}
    assert await held(sessions, first) == await held(sessions, second) == 1_000
    assert await check_ok(sessions) == 202


async def test_concurrent_replays_post_a_transfer_once(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    payable = await open_account(sessions, AccountCode.PROVIDER_PAYABLE, organization_id=providers[0])
    payouts = await open_account(sessions, AccountCode.PAYOUTS, organization_id=providers[0])
    await fund(sessions, payable, 1_000)
    transfer_id = uuid.uuid4()
    results = await asyncio.gather(*(post(sessions, transfer_id, payable, payouts, 600) for _ in range(50)))
    assert Counter(results) == {PostResult.CREATED: 1, PostResult.EXISTS: 49}
    assert await held(sessions, payable) == 400
    assert await held(sessions, payouts) == 600
    assert await check_ok(sessions) == 2


async def test_concurrent_openings_of_an_account_create_one(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    order = uuid.uuid4()
    accounts = await asyncio.gather(
        *(open_account(sessions, AccountCode.ESCROW, organization_id=providers[0], order_id=order) for _ in range(50))
    )
    assert len({account.id for account in accounts}) == 1
