"""Every query on the ledger tables.

Balances move through plain guarded UPDATE statements, never through ORM objects: a transfer is
one INSERT and up to two UPDATEs inside a savepoint (none for a pooled account, models.POOLED_CODES)."""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Select,
    Subquery,
    Uuid,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    not_,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from marketplace.db import upsert_insert
from marketplace.ledger.models import POOLED_CODES, AccountCode, LedgerAccount, Payout, PayoutStatus, Transfer


class Posting(enum.Enum):
    POSTED = "posted"
    DUPLICATE_ID = "duplicate_id"  # a transfer with this id exists: nothing was written
    OVERDRAFT = "overdraft"  # the debit account cannot cover the amount: nothing was written


class _Overdraft(Exception):
    """Leaves the savepoint by rolling it back."""


@dataclass(frozen=True)
class OrganizationTotals:
    payable_minor: int
    escrow_minor: int
    paid_out_minor: int
    debt_minor: int


@dataclass(frozen=True)
class CurrencyTotals:
    currency: str
    transfers: int
    debits_posted: int
    credits_posted: int


@dataclass(frozen=True)
class AccountTotals:
    """An account's running totals beside the sums of its transfers."""

    id: uuid.UUID
    key: str
    code: AccountCode
    currency: str
    organization_id: uuid.UUID | None
    order_id: uuid.UUID | None
    no_overdraft: bool
    debits_posted: int
    credits_posted: int
    debits_from_transfers: int
    credits_from_transfers: int

    @property
    def negative(self) -> bool:
        return self.no_overdraft and self.credits_posted < self.debits_posted

    @property
    def mismatched(self) -> bool:
        return (self.debits_posted, self.credits_posted) != (self.debits_from_transfers, self.credits_from_transfers)


@dataclass(frozen=True)
class LedgerTotals:
    """What one statement read: totals per currency, the accounts that break a rule, and (when
    asked for) every account of the given codes that holds money (escrows, receivables, accrued usage)."""

    currencies: list[CurrencyTotals]
    flagged_accounts: list[AccountTotals]
    holding: list[AccountTotals]


def account_totals() -> Subquery:
    """Every account's (id, code, currency, debits, credits): its running totals, or for a pooled account the sums
    of its transfers, read index-only (each side's index of the transfer table includes the amount). The pooled
    accounts are a branch of their own: a sum correlated to every account row is estimated once per account, and
    over 64,000 accounts that estimate alone made PostgreSQL plan its JIT and sort every account on disk."""
    pooled = col(LedgerAccount.code).in_(POOLED_CODES)

    def summed(side: Any) -> Any:
        return (
            select(func.coalesce(func.sum(col(Transfer.amount_minor)), 0))
            .where(side == col(LedgerAccount.id))
            .scalar_subquery()
        )

    def branch(debits: Any, credits: Any) -> Select[Any]:
        identity = (col(LedgerAccount.id), col(LedgerAccount.code), col(LedgerAccount.currency))
        return select(*identity, debits.label("debits"), credits.label("credits"))

    running = branch(col(LedgerAccount.debits_posted), col(LedgerAccount.credits_posted)).where(not_(pooled))
    summed_up = branch(summed(col(Transfer.debit_account_id)), summed(col(Transfer.credit_account_id))).where(pooled)
    return union_all(running, summed_up).subquery("account_totals")


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # accounts

    async def account_by_key(self, key: str) -> LedgerAccount | None:
        # populate_existing: an instance already in the session may hold totals read earlier
        query = select(LedgerAccount).where(col(LedgerAccount.key) == key).execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def get_or_create_account(self, candidate: LedgerAccount) -> LedgerAccount:
        """The account with the candidate's key: the existing one, else the candidate, inserted.
        Concurrent callers meet at the unique key, so exactly one row is ever created."""
        account = await self.account_by_key(candidate.key)
        if account is not None:
            return account
        insert = upsert_insert(self.session)(LedgerAccount).values(candidate.model_dump())
        await self.session.execute(insert.on_conflict_do_nothing(index_elements=["key"]))
        account = await self.account_by_key(candidate.key)
        assert account is not None
        return account

    async def lock_account(self, account_id: uuid.UUID) -> LedgerAccount:
        """The account as it is now, its row locked until the transaction ends. SQLite has no row locks: an
        update that changes nothing takes the database's write lock instead, until the transaction ends."""
        if self.session.get_bind().dialect.name == "sqlite":
            await self.session.execute(
                update(LedgerAccount)
                .where(col(LedgerAccount.id) == account_id)
                .values(debits_posted=col(LedgerAccount.debits_posted))
                .execution_options(synchronize_session=False)
            )
        query = (
            select(LedgerAccount)
            .where(col(LedgerAccount.id) == account_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).one()

    async def posted(self, account_id: uuid.UUID) -> tuple[int, int]:
        """An account's (debits, credits) as committed, or as this transaction moved them (see `account_totals`)."""
        totals = account_totals()
        row = (
            await self.session.execute(select(totals.c.debits, totals.c.credits).where(totals.c.id == account_id))
        ).one()
        return int(row[0]), int(row[1])

    async def holding_payables(self) -> set[tuple[uuid.UUID, str]]:
        """(organisation, currency) of every provider payable account that holds money."""
        query = select(col(LedgerAccount.organization_id), col(LedgerAccount.currency)).where(
            col(LedgerAccount.code) == AccountCode.PROVIDER_PAYABLE,
            col(LedgerAccount.credits_posted) > col(LedgerAccount.debits_posted),
        )
        return {(row[0], row[1]) for row in (await self.session.execute(query)).all() if row[0] is not None}

    # transfers

    async def get_transfer(self, transfer_id: uuid.UUID) -> Transfer | None:
        query = select(Transfer).where(col(Transfer.id) == transfer_id)
        return (await self.session.scalars(query)).first()

    async def post_transfer(self, transfer: Transfer, pooled: Sequence[LedgerAccount] = ()) -> Posting:
        """Insert the transfer and move both accounts' totals, all or nothing; a pooled account's (of `pooled`)
        are its transfers, so it is not updated: only a debit of a no-overdraft one locks its row.

        A savepoint holds the three statements, so an overdraft leaves no trace even when the caller
        goes on with its transaction. The two account rows are updated in the order of their ids:
        concurrent transfers between the same accounts, in either direction, lock them in the same
        order and cannot deadlock. On PostgreSQL a concurrent transfer with the same id waits for
        the first to commit or roll back, then finds it (DUPLICATE_ID) or takes its place."""
        await self._open_transaction()
        try:
            async with self.session.begin_nested():
                insert = (
                    upsert_insert(self.session)(Transfer)
                    .values(transfer.model_dump())
                    .on_conflict_do_nothing(index_elements=["id"])
                    .returning(col(Transfer.id))
                )
                if (await self.session.execute(insert)).first() is None:
                    return Posting.DUPLICATE_ID
                guarded = {a.id: a.no_overdraft for a in pooled}
                for account_id in sorted((transfer.debit_account_id, transfer.credit_account_id)):
                    if account_id == transfer.debit_account_id:
                        covered = (
                            await self._debit_pooled(account_id, guarded=guarded[account_id])
                            if account_id in guarded
                            else await self._debit(account_id, transfer.amount_minor)
                        )
                        if not covered:
                            raise _Overdraft
                    elif account_id not in guarded:
                        await self._credit(account_id, transfer.amount_minor)
        except _Overdraft:
            return Posting.OVERDRAFT
        return Posting.POSTED

    async def _open_transaction(self) -> None:
        """SQLite's driver opens a transaction only before INSERT, UPDATE or DELETE: a SAVEPOINT sent
        first would open one of its own, and releasing it would commit the transfer whatever the
        caller's transaction does afterwards. Open the caller's transaction first."""
        if self.session.get_bind().dialect.name != "sqlite":
            return
        connection = await self.session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        if not driver.in_transaction:
            await connection.exec_driver_sql("BEGIN")

    async def _debit(self, account_id: uuid.UUID, amount_minor: int) -> bool:
        """Add to the account's debits unless that would overdraw a no-overdraft account."""
        guarded = (
            update(LedgerAccount)
            .where(
                col(LedgerAccount.id) == account_id,
                or_(
                    not_(col(LedgerAccount.no_overdraft)),
                    col(LedgerAccount.credits_posted) - col(LedgerAccount.debits_posted) >= amount_minor,
                ),
            )
            .values(debits_posted=col(LedgerAccount.debits_posted) + amount_minor)
            .returning(col(LedgerAccount.id))
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(guarded)).first() is not None

    async def _debit_pooled(self, account_id: uuid.UUID, *, guarded: bool) -> bool:
        """Whether a pooled account, its debit inserted, still holds enough: always, unless it is no-overdraft
        (`guarded`); then its row is locked first (only such debits take it) and a statement of its own sums its
        transfers, so it sees every debit committed before the lock was granted (credits can only add)."""
        if not guarded:
            return True
        await self.lock_account(account_id)
        totals = account_totals()
        held = select(totals.c.credits - totals.c.debits).where(totals.c.id == account_id)
        return int((await self.session.execute(held)).scalar_one()) >= 0

    async def _credit(self, account_id: uuid.UUID, amount_minor: int) -> None:
        credit = (
            update(LedgerAccount)
            .where(col(LedgerAccount.id) == account_id)
            .values(credits_posted=col(LedgerAccount.credits_posted) + amount_minor)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(credit)

    # reading balances

    async def organization_totals(self, organization_id: uuid.UUID, currency: str) -> OrganizationTotals:
        """An organisation's accounts in one currency, summed by code in one statement."""
        held = col(LedgerAccount.credits_posted) - col(LedgerAccount.debits_posted)

        def total(code: AccountCode, amount: Any) -> Any:
            return func.coalesce(func.sum(case((col(LedgerAccount.code) == code, amount))), 0)

        query = select(
            total(AccountCode.PROVIDER_PAYABLE, held),
            total(AccountCode.ESCROW, held),
            total(AccountCode.PAYOUTS, held),
            total(AccountCode.PROVIDER_DEBT, -held),
        ).where(col(LedgerAccount.organization_id) == organization_id, col(LedgerAccount.currency) == currency)
        payable, escrow, paid_out, debt = (await self.session.execute(query)).one()
        return OrganizationTotals(int(payable), int(escrow), int(paid_out), int(debt))

    async def totals(self, *, holding: frozenset[AccountCode] = frozenset()) -> LedgerTotals:
        """Every account's totals against the sums of its transfers, in ONE statement, so that it reads
        one snapshot of the database and transfers committed meanwhile cannot look like an error. A pooled
        account's totals are the sums of its transfers (it has no running totals to compare).

        Rows come back of three kinds: one per currency (sums over its accounts), one per account
        that is mismatched or overdrawn, and one per account of a `holding` code that holds money."""
        rows = (await self.session.execute(_totals_query(holding))).all()
        result = LedgerTotals(currencies=[], flagged_accounts=[], holding=[])
        for row in rows:
            if row.row_kind == "currency":
                result.currencies.append(
                    CurrencyTotals(row.currency, int(row.transfers), int(row.debits_posted), int(row.credits_posted))
                )
                continue
            totals = AccountTotals(
                id=row.id,
                key=row.key,
                code=AccountCode(row.code),
                currency=row.currency,
                organization_id=row.organization_id,
                order_id=row.order_id,
                no_overdraft=bool(row.no_overdraft),
                debits_posted=int(row.debits_posted),
                credits_posted=int(row.credits_posted),
                debits_from_transfers=int(row.debits_from_transfers),
                credits_from_transfers=int(row.credits_from_transfers),
            )
            (result.flagged_accounts if row.row_kind == "account" else result.holding).append(totals)
        return result


@functools.cache
def _totals_query(holding: frozenset[AccountCode]) -> Any:
    """`LedgerRepository.totals`'s statement: built once per set of holding codes (building it costs more than
    running it on a small ledger, and the check runs after every step of the orders' state machine)."""
    pooled = col(LedgerAccount.code).in_(POOLED_CODES)
    debited = (
        select(
            col(Transfer.debit_account_id).label("account_id"),
            func.sum(col(Transfer.amount_minor)).label("amount"),
            func.count().label("transfers"),
        )
        .group_by(col(Transfer.debit_account_id))
        .cte("debited")
    )
    credited = (
        select(
            col(Transfer.credit_account_id).label("account_id"),
            func.sum(col(Transfer.amount_minor)).label("amount"),
        )
        .group_by(col(Transfer.credit_account_id))
        .cte("credited")
    )
    accounts = (
        select(
            col(LedgerAccount.id),
            col(LedgerAccount.key),
            col(LedgerAccount.code),
            col(LedgerAccount.currency),
            col(LedgerAccount.organization_id),
            col(LedgerAccount.order_id),
            col(LedgerAccount.no_overdraft),
            # a pooled account's totals are its transfers'
            case((pooled, func.coalesce(debited.c.amount, 0)), else_=col(LedgerAccount.debits_posted)).label(
                "debits_posted"
            ),
            case((pooled, func.coalesce(credited.c.amount, 0)), else_=col(LedgerAccount.credits_posted)).label(
                "credits_posted"
            ),
            func.coalesce(debited.c.amount, 0).label("debits_from_transfers"),
            func.coalesce(credited.c.amount, 0).label("credits_from_transfers"),
            func.coalesce(debited.c.transfers, 0).label("transfers"),
        )
        .select_from(LedgerAccount)
        .outerjoin(debited, debited.c.account_id == col(LedgerAccount.id))
        .outerjoin(credited, credited.c.account_id == col(LedgerAccount.id))
        .cte("accounts")
    )
    a = accounts.c
    no_id = cast(null(), Uuid)

    def account_rows(kind: str) -> Any:
        return select(
            literal(kind).label("row_kind"),
            a.id,
            a.key,
            a.code,
            a.currency,
            a.organization_id,
            a.order_id,
            a.no_overdraft,
            a.debits_posted,
            a.credits_posted,
            a.debits_from_transfers,
            a.credits_from_transfers,
            a.transfers,
        )

    per_currency = select(
        literal("currency").label("row_kind"),
        no_id,
        null(),
        null(),
        a.currency,
        no_id,
        no_id,
        null(),
        func.sum(a.debits_posted),
        func.sum(a.credits_posted),
        func.sum(a.debits_from_transfers),
        func.sum(a.credits_from_transfers),
        func.sum(a.transfers),
    ).group_by(a.currency)
    flagged = account_rows("account").where(
        or_(
            a.debits_posted != a.debits_from_transfers,
            a.credits_posted != a.credits_from_transfers,
            and_(a.no_overdraft, a.credits_posted < a.debits_posted),
        )
    )
    # The first part names the columns of the union.
    parts = [flagged, per_currency]
    if holding:
        parts.append(account_rows("holding").where(a.code.in_(holding), a.credits_posted != a.debits_posted))
    return union_all(*parts)


class PayoutRepository:
    """Every query on the payout table. A payout leaves `pending` by one guarded update."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, payout: Payout) -> None:
        await self.session.execute(insert(Payout).values(payout.model_dump()))

    async def get(self, payout_id: uuid.UUID) -> Payout | None:
        query = select(Payout).where(col(Payout.id) == payout_id).execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def pending(self, created_before: Any, limit: int) -> list[Payout]:
        """Payouts still pending that were booked before `created_before`, oldest first."""
        query = (
            select(Payout)
            .where(col(Payout.status) == PayoutStatus.PENDING, col(Payout.created_at) < created_before)
            .order_by(col(Payout.created_at), col(Payout.id))
            .limit(limit)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.scalars(query)).all())

    async def finish(self, payout_id: uuid.UUID, to: PayoutStatus, **values: Any) -> bool:
        """Move a pending payout to `to`; False when it is no longer pending (another run finished it)."""
        statement = (
            update(Payout)
            .where(col(Payout.id) == payout_id, col(Payout.status) == PayoutStatus.PENDING)
            .values(status=to, **values)
            .execution_options(synchronize_session=False)
        )
        return bool((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def note_failure(self, payout_id: uuid.UUID, failure: str) -> None:
        """Why the last attempt to send a payout, still pending, did not go through."""
        statement = (
            update(Payout)
            .where(col(Payout.id) == payout_id, col(Payout.status) == PayoutStatus.PENDING)
            .values(failure=failure)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(statement)
