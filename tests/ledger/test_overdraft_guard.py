"""The overdraft guard itself: a no-overdraft account's debit is refused by the ledger's guarded update, with
the database's CHECK constraint (the last line of defence) switched off for the test, so that a broken guard
cannot hide behind the constraint raising."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.db import SessionMaker, unit_of_work
from marketplace.ledger.models import AccountCode, TransferKind
from marketplace.ledger.service import LedgerService, Overdraft
from tests.ledger.test_ledger_service import funded_escrow, posted, transfer_count


async def without_the_check_constraint(session: AsyncSession) -> None:
    """For this transaction only: SQLite ignores CHECK constraints; PostgreSQL drops the one (DDL is
    transactional there, and the test's transaction is rolled back)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("ALTER TABLE ledger_account DROP CONSTRAINT ck_ledger_account_no_overdraft"))
    else:
        await session.execute(text("PRAGMA ignore_check_constraints = ON"))


async def restore_check_constraints(session: AsyncSession) -> None:
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(text("PRAGMA ignore_check_constraints = OFF"))


@pytest.mark.parametrize(("balance", "asked"), [(0, 1), (100, 101), (100, 10**12)])
async def test_the_guard_refuses_an_overdraft_on_its_own(
    sessions: SessionMaker, providers: list[uuid.UUID], balance: int, asked: int
) -> None:
    provider, order = providers[0], uuid.uuid4()
    async with unit_of_work(sessions) as session:
        escrow = await funded_escrow(session, provider, order, balance) if balance else None
        if escrow is None:
            escrow = await LedgerService(session).account(
                AccountCode.ESCROW, "CNY", organization_id=provider, order_id=order
            )
        await LedgerService(session).account(AccountCode.REFUNDS, "CNY")
    before, transfers = await posted(sessions), await transfer_count(sessions)
    async with sessions() as session:
        await without_the_check_constraint(session)
        ledger = LedgerService(session)
        refunds = await ledger.account(AccountCode.REFUNDS, "CNY")
        with pytest.raises(Overdraft):
            await ledger.post(uuid.uuid4(), escrow, refunds, asked, "CNY", TransferKind.REFUND)
        await restore_check_constraints(session)
        await session.rollback()
    assert await posted(sessions) == before
    assert await transfer_count(sessions) == transfers


async def test_the_guard_lets_an_account_be_emptied_exactly(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    provider, order = providers[0], uuid.uuid4()
    async with unit_of_work(sessions) as session:
        escrow = await funded_escrow(session, provider, order, 100)
        ledger = LedgerService(session)
        refunds = await ledger.account(AccountCode.REFUNDS, "CNY")
        await ledger.post(uuid.uuid4(), escrow, refunds, 100, "CNY", TransferKind.REFUND)
    assert (await posted(sessions))[escrow.key] == (100, 100)
