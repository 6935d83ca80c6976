"""Ledger service examples: accounts, the escrow path, refused transfers, the check of the books."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from marketplace.db import SessionMaker, unit_of_work
from marketplace.kit.money import split, transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, Transfer, TransferKind
from marketplace.ledger.repository import account_totals
from marketplace.ledger.service import (
    InvalidAccount,
    InvalidTransfer,
    LedgerService,
    Overdraft,
    PostResult,
    TransferIdReused,
)

PAYMENT = TransferKind.PAYMENT


async def posted(sessions: SessionMaker) -> dict[str, tuple[int, int]]:
    """Every account's (debits, credits) by key, as committed (a pooled account's: its transfers')."""
    totals = account_totals()
    async with sessions() as session:
        rows = await session.execute(
            select(col(LedgerAccount.key), totals.c.debits, totals.c.credits).join(
                totals, totals.c.id == col(LedgerAccount.id)
            )
        )
        return {key: (debits, credits) for key, debits, credits in rows}


async def transfer_count(sessions: SessionMaker) -> int:
    async with sessions() as session:
        return len((await session.scalars(select(Transfer))).all())


async def funded_escrow(session: AsyncSession, provider: uuid.UUID, order: uuid.UUID, amount: int) -> LedgerAccount:
    ledger = LedgerService(session)
    clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, "CNY")
    escrow = await ledger.account(AccountCode.ESCROW, "CNY", organization_id=provider, order_id=order)
    await ledger.post(transfer_id(order, "payment"), clearing, escrow, amount, "CNY", PAYMENT, order_id=order)
    return escrow


async def test_an_account_is_created_once_per_purpose(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    provider, order = providers[0], uuid.uuid4()
    async with unit_of_work(sessions) as session:
        ledger = LedgerService(session)
        escrow = await ledger.account(AccountCode.ESCROW, "CNY", organization_id=provider, order_id=order)
        payable = await ledger.account(AccountCode.PROVIDER_PAYABLE, "CNY", organization_id=provider)
        revenue = await ledger.account(AccountCode.PLATFORM_REVENUE, "CNY")
        clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, "CNY")
        debt = await ledger.account(AccountCode.PROVIDER_DEBT, "CNY", organization_id=provider)
        revenue_in_usd = await ledger.account(AccountCode.PLATFORM_REVENUE, "USD")
    async with unit_of_work(sessions) as session:
        again = await LedgerService(session).account(
            AccountCode.ESCROW, "CNY", organization_id=provider, order_id=order
        )
    assert again.id == escrow.id
    assert escrow.key == f"escrow:{order}:CNY"
    assert payable.key == f"provider_payable:{provider}:CNY"
    assert revenue.key == "platform_revenue:CNY"
    assert revenue_in_usd.id != revenue.id
    # the debit-normal accounts may go below zero, every other must not
    assert (clearing.no_overdraft, debt.no_overdraft) == (False, False)
    assert (escrow.no_overdraft, payable.no_overdraft, revenue.no_overdraft) == (True, True, True)


@pytest.mark.parametrize(
    ("code", "currency", "with_organization", "with_order"),
    [
        (AccountCode.ESCROW, "CNY", True, False),
        (AccountCode.ESCROW, "CNY", False, True),
        (AccountCode.PROVIDER_PAYABLE, "CNY", False, False),
        (AccountCode.PROVIDER_PAYABLE, "CNY", True, True),
        (AccountCode.PLATFORM_REVENUE, "CNY", True, False),
        (AccountCode.PLATFORM_CLEARING, "CNY", False, True),
        (AccountCode.PLATFORM_REVENUE, "XYZ", False, False),
        (AccountCode.PLATFORM_REVENUE, "cny", False, False),
    ],
)
async def test_accounts_belong_to_what_their_code_says(
    sessions: SessionMaker,
    providers: list[uuid.UUID],
    code: AccountCode,
    currency: str,
    with_organization: bool,
    with_order: bool,
) -> None:
    async with sessions() as session:
        with pytest.raises(InvalidAccount):
            await LedgerService(session).account(
                code,
                currency,
                organization_id=providers[0] if with_organization else None,
                order_id=uuid.uuid4() if with_order else None,
            )


async def test_an_orders_escrow_has_one_provider(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    order = uuid.uuid4()
    async with unit_of_work(sessions) as session:
        await LedgerService(session).account(AccountCode.ESCROW, "CNY", organization_id=providers[0], order_id=order)
    async with sessions() as session:
        with pytest.raises(InvalidAccount, match="another organisation"):
            await LedgerService(session).account(
                AccountCode.ESCROW, "CNY", organization_id=providers[1], order_id=order
            )


async def test_payment_settlement_and_payout_move_money_once(
    sessions: SessionMaker, providers: list[uuid.UUID]
) -> None:
    provider, order = providers[0], uuid.uuid4()
    price = 12_345
    provider_share, fee = split(price, 500)
    async with unit_of_work(sessions) as session:
        escrow = await funded_escrow(session, provider, order, price)
        ledger = LedgerService(session)
        pending = await ledger.balance(provider, "CNY")
    assert (pending.pending_minor, pending.available_minor, pending.paid_out_minor) == (price, 0, 0)

    async def settle_and_pay_out() -> list[PostResult]:
        async with unit_of_work(sessions) as session:
            ledger = LedgerService(session)
            payable = await ledger.account(AccountCode.PROVIDER_PAYABLE, "CNY", organization_id=provider)
            revenue = await ledger.account(AccountCode.PLATFORM_REVENUE, "CNY")
            payouts = await ledger.account(AccountCode.PAYOUTS, "CNY", organization_id=provider)
            return [
                await ledger.post(
                    transfer_id(order, "settlement"), escrow, payable, provider_share, "CNY", TransferKind.SETTLEMENT
                ),
                await ledger.post(transfer_id(order, "fee"), escrow, revenue, fee, "CNY", TransferKind.FEE),
                await ledger.post(
                    transfer_id(order, "payout"), payable, payouts, provider_share, "CNY", TransferKind.PAYOUT
                ),
            ]

    assert await settle_and_pay_out() == [PostResult.CREATED] * 3
    assert await settle_and_pay_out() == [PostResult.EXISTS] * 3
    async with sessions() as session:
        ledger = LedgerService(session)
        balance = await ledger.balance(provider, "CNY")
        other_provider = await ledger.balance(providers[1], "CNY")
        check = await ledger.check()
    assert (balance.pending_minor, balance.available_minor, balance.paid_out_minor) == (0, 0, provider_share)
    assert balance.debt_minor == 0
    assert other_provider.paid_out_minor == 0
    assert check.ok
    assert check.transfers == 4
    assert (await posted(sessions))["platform_revenue:CNY"] == (0, fee)


async def test_refused_transfers_leave_nothing_even_when_the_caller_goes_on(
    sessions: SessionMaker, providers: list[uuid.UUID]
) -> None:
    provider, order = providers[0], uuid.uuid4()
    async with unit_of_work(sessions) as session:
        escrow = await funded_escrow(session, provider, order, 100)
    before = await posted(sessions)
    async with unit_of_work(sessions) as session:
        ledger = LedgerService(session)
        refunds = await ledger.account(AccountCode.REFUNDS, "CNY")
        with pytest.raises(Overdraft) as overdraft:
            await ledger.post(uuid.uuid4(), escrow, refunds, 101, "CNY", TransferKind.REFUND)
        clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, "CNY")
        with pytest.raises(TransferIdReused):
            await ledger.post(transfer_id(order, "payment"), clearing, escrow, 99, "CNY", PAYMENT, order_id=order)
        # the caller catches the errors and commits what else it did
    assert overdraft.value.status == 409
    assert overdraft.value.extra["account_id"] == str(escrow.id)
    assert await posted(sessions) == before | {"refunds:CNY": (0, 0)}
    assert await transfer_count(sessions) == 1


async def test_a_transfer_rolls_back_with_its_callers_transaction(
    sessions: SessionMaker, providers: list[uuid.UUID]
) -> None:
    """The transfer is the first write of the transaction (its accounts exist): on SQLite its savepoint
    must not open a transaction of its own, which would commit it on release."""
    provider, order = providers[0], uuid.uuid4()
    async with unit_of_work(sessions) as session:
        escrow = await funded_escrow(session, provider, order, 100)
        await LedgerService(session).account(AccountCode.REFUNDS, "CNY")
    before = await posted(sessions)

    async def refund_then_fail() -> None:
        async with unit_of_work(sessions) as session:
            ledger = LedgerService(session)
            refunds = await ledger.account(AccountCode.REFUNDS, "CNY")
            await ledger.post(uuid.uuid4(), escrow, refunds, 40, "CNY", TransferKind.REFUND)
            raise RuntimeError("a later step of the same use case failed")

    with pytest.raises(RuntimeError, match="later step"):
        await refund_then_fail()
    assert await posted(sessions) == before
    assert await transfer_count(sessions) == 1


async def test_malformed_transfers_are_refused(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    async with unit_of_work(sessions) as session:
        ledger = LedgerService(session)
        clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, "CNY")
        revenue = await ledger.account(AccountCode.PLATFORM_REVENUE, "CNY")
        dollars = await ledger.account(AccountCode.PLATFORM_REVENUE, "USD")
        attempts = [
            (clearing, revenue, 0, "CNY"),
            (clearing, revenue, -5, "CNY"),
            (clearing, revenue, 2**63, "CNY"),
            (clearing, clearing, 5, "CNY"),
            (clearing, dollars, 5, "CNY"),
            (clearing, revenue, 5, "USD"),
        ]
        for debit, credit, amount, currency in attempts:
            with pytest.raises(InvalidTransfer):
                await ledger.post(uuid.uuid4(), debit, credit, amount, currency, PAYMENT)
    assert await transfer_count(sessions) == 0


async def test_check_finds_totals_that_do_not_match_their_transfers(
    sessions: SessionMaker, providers: list[uuid.UUID]
) -> None:
    async with unit_of_work(sessions) as session:
        escrow = await funded_escrow(session, providers[0], uuid.uuid4(), 100)
    async with unit_of_work(sessions) as session:
        # written around the ledger, as a faulty migration or a hand edit would
        await session.execute(
            update(LedgerAccount).where(col(LedgerAccount.id) == escrow.id).values(credits_posted=130)
        )
    async with sessions() as session:
        check = await LedgerService(session).check()
    assert not check.ok
    assert check.imbalance_minor == 30
    assert [a.id for a in check.mismatched_accounts] == [escrow.id]
    assert (check.mismatched_accounts[0].credits_posted, check.mismatched_accounts[0].credits_from_transfers) == (
        130,
        100,
    )
    assert check.negative_accounts == []


async def test_check_finds_overdrawn_accounts(sessions: SessionMaker, providers: list[uuid.UUID]) -> None:
    """The check constraint forbids an overdrawn no-overdraft account; lift it for one transaction to
    show that the check would still see one."""
    async with unit_of_work(sessions) as session:
        escrow = await funded_escrow(session, providers[0], uuid.uuid4(), 100)
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("ALTER TABLE ledger_account DROP CONSTRAINT ck_ledger_account_no_overdraft"))
        else:
            await session.execute(text("PRAGMA ignore_check_constraints = ON"))
        await session.execute(update(LedgerAccount).where(col(LedgerAccount.id) == escrow.id).values(debits_posted=150))
        check = await LedgerService(session).check()
        await session.rollback()
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(text("PRAGMA ignore_check_constraints = OFF"))
    assert not check.ok
    assert [a.id for a in check.negative_accounts] == [escrow.id]
    assert [a.id for a in check.mismatched_accounts] == [escrow.id]


async def test_check_compares_escrow_with_what_open_orders_should_hold(
    sessions: SessionMaker, providers: list[uuid.UUID]
) -> None:
    held_order, settled_order, missing_order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(sessions) as session:
        await funded_escrow(session, providers[0], held_order, 100)
        await funded_escrow(session, providers[1], settled_order, 70)
    async with sessions() as session:
        ledger = LedgerService(session)
        assert (await ledger.check()).escrow_checked is False
        right = await ledger.check({(held_order, "CNY"): 100, (settled_order, "CNY"): 70})
        wrong = await ledger.check({(held_order, "CNY"): 100, (missing_order, "CNY"): 20})
    assert right.ok
    assert right.escrow_checked
    assert not wrong.ok
    mismatches = {(m.order_id, m.held_minor, m.expected_minor) for m in wrong.escrow_mismatches}
    assert mismatches == {(settled_order, 70, 0), (missing_order, 0, 20)}
