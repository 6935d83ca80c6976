"""Ledger use cases: open accounts, post transfers, read balances, check the books.

Other domains move money only through `LedgerService.account` and `LedgerService.post`:

    ledger = LedgerService(session)
    clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, "CNY")
    escrow = await ledger.account(AccountCode.ESCROW, "CNY", organization_id=provider_id, order_id=order.id)
    await ledger.post(transfer_id(order.id, "payment"), clearing, escrow, 1000, "CNY", TransferKind.PAYMENT,
                      order_id=order.id)

The service never commits: a transfer is part of its caller's transaction."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.errors import Conflict, Unprocessable
from marketplace.kit.codelists import is_currency
from marketplace.kit.i18n import Message
from marketplace.ledger.models import (
    DEBIT_NORMAL_CODES,
    NO_OVERDRAFT_CODES,
    ORDER_CODES,
    ORGANIZATION_CODES,
    POOLED_CODES,
    AccountCode,
    LedgerAccount,
    Transfer,
    TransferKind,
)
from marketplace.ledger.repository import AccountTotals, CurrencyTotals, LedgerRepository, Posting

# The largest amount a 64-bit column holds.
MAX_AMOUNT_MINOR = 2**63 - 1


class Overdraft(Conflict):
    """The debit account is flagged no-overdraft and does not hold the amount: nothing was posted."""

    code = "ledger-overdraft"
    title = "Insufficient balance"


class TransferIdReused(Conflict):
    """A transfer with this id exists and differs from the one posted: ids are never reused."""

    code = "ledger-transfer-id-reused"
    title = "Transfer id already used"


class InvalidTransfer(Unprocessable):
    code = "ledger-invalid-transfer"
    title = "Invalid transfer"


class InvalidAccount(Unprocessable):
    code = "ledger-invalid-account"
    title = "Invalid ledger account"


class PostResult(enum.StrEnum):
    CREATED = "created"
    EXISTS = "exists"  # the same transfer was posted before: nothing moved this time


@dataclass(frozen=True)
class Balance:
    """An organisation's money in one currency, in minor units."""

    currency: str
    available_minor: int  # settled to it and not paid out (provider payable)
    pending_minor: int  # held in escrow on its orders
    paid_out_minor: int
    debt_minor: int  # owed to the platform for refunds after payout


@dataclass(frozen=True)
class EscrowMismatch:
    order_id: uuid.UUID
    currency: str
    held_minor: int
    expected_minor: int


@dataclass(frozen=True)
class ReceivableMismatch:
    organization_id: uuid.UUID
    currency: str
    owed_minor: int
    expected_minor: int


@dataclass(frozen=True)
class LedgerCheck:
    ok: bool
    transfers: int
    imbalance_minor: int  # per currency |debits - credits| over all accounts, summed
    currencies: list[CurrencyTotals]
    negative_accounts: list[AccountTotals]
    mismatched_accounts: list[AccountTotals]
    escrow_checked: bool
    escrow_mismatches: list[EscrowMismatch]
    usage_checked: bool = False
    # a buyer's receivable against the usage billed to it and not yet collected
    receivable_mismatches: list[ReceivableMismatch] = field(default_factory=list)
    # an order's accrued usage against the usage billed on it and not yet settled (order_id, held, expected)
    accrued_mismatches: list[EscrowMismatch] = field(default_factory=list)


# Expected escrow, in minor units, per (order id, currency): what open orders hold.
ExpectedEscrow = Mapping[tuple[uuid.UUID, str], int]


@dataclass(frozen=True)
class ExpectedUsage:
    """Where the billing domain plugs in: what each buyer's receivable should be owed, per (buyer, currency), and
    what each order's accrued usage should hold, per (order, currency)."""

    receivable: Mapping[tuple[uuid.UUID, str], int]
    accrued: Mapping[tuple[uuid.UUID, str], int]


def account_key(code: AccountCode, currency: str, organization_id: uuid.UUID | None, order_id: uuid.UUID | None) -> str:
    """e.g. "escrow:<order_id>:CNY", "provider_payable:<organization_id>:CNY", "platform_revenue:CNY".
    An escrow's key names its order alone: an order has one escrow, whoever its provider."""
    owner = order_id if code in ORDER_CODES else organization_id
    return ":".join([code.value, *([str(owner)] if owner else []), currency])


class LedgerService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = LedgerRepository(session)

    async def account(
        self,
        code: AccountCode,
        currency: str,
        organization_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
    ) -> LedgerAccount:
        """The account for this purpose, created on first use. Escrow takes the order and its provider;
        provider payable, payouts and provider debt take the provider; the platform's accounts neither."""
        if not is_currency(currency):
            raise InvalidAccount(
                Message("ledger.currency-unknown", "{currency!r} is not an ISO 4217 currency code", currency=currency)
            )
        if code in ORGANIZATION_CODES and organization_id is None:
            raise InvalidAccount(
                Message(
                    "ledger.account-needs-organisation", "a {code} account belongs to an organisation", code=code.value
                )
            )
        if code not in ORGANIZATION_CODES and organization_id is not None:
            raise InvalidAccount(
                Message(
                    "ledger.account-without-organisation",
                    "a {code} account belongs to no organisation",
                    code=code.value,
                )
            )
        if code in ORDER_CODES and order_id is None:
            raise InvalidAccount(
                Message("ledger.account-needs-order", "a {code} account belongs to an order", code=code.value)
            )
        if code not in ORDER_CODES and order_id is not None:
            raise InvalidAccount(
                Message("ledger.account-without-order", "a {code} account belongs to no order", code=code.value)
            )
        account = await self.repository.get_or_create_account(
            LedgerAccount(
                key=account_key(code, currency, organization_id, order_id),
                code=code,
                organization_id=organization_id,
                order_id=order_id,
                currency=currency,
                no_overdraft=code in NO_OVERDRAFT_CODES,
            )
        )
        if account.organization_id != organization_id:
            raise InvalidAccount(
                Message("ledger.escrow-of-another", "this order's escrow belongs to another organisation")
            )
        return account

    async def lock(self, *accounts: LedgerAccount) -> list[LedgerAccount]:
        """Lock the accounts' rows one after the other, in the order given, until the transaction ends;
        returns them as they are now. A caller about to post several transfers locks their accounts first
        in one agreed order (see ledger.settlement), so that concurrent callers cannot deadlock."""
        return [await self.repository.lock_account(account.id) for account in accounts]

    async def post(
        self,
        transfer_id: uuid.UUID,
        debit: LedgerAccount,
        credit: LedgerAccount,
        amount_minor: int,
        currency: str,
        kind: TransferKind,
        order_id: uuid.UUID | None = None,
    ) -> PostResult:
        """Move `amount_minor` from `debit` to `credit`, once: posting the same transfer id again with
        the same fields reports EXISTS and moves nothing; with other fields it raises TransferIdReused.
        Raises Overdraft, leaving nothing behind, when a no-overdraft debit account cannot cover it."""
        if not 0 < amount_minor <= MAX_AMOUNT_MINOR:
            raise InvalidTransfer(
                Message("ledger.amount-not-positive", "a transfer moves a positive amount of minor units")
            )
        if debit.id == credit.id:
            raise InvalidTransfer(Message("ledger.same-account", "a transfer debits one account and credits another"))
        if not currency == debit.currency == credit.currency:
            raise InvalidTransfer(
                Message(
                    "ledger.currency-mismatch",
                    "a {currency} transfer between {debit_currency} and {credit_currency} accounts",
                    currency=currency,
                    debit_currency=debit.currency,
                    credit_currency=credit.currency,
                ),
            )
        transfer = Transfer(
            id=transfer_id,
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount_minor=amount_minor,
            currency=currency,
            kind=kind,
            order_id=order_id,
        )
        posting = await self.repository.post_transfer(transfer, [a for a in (debit, credit) if a.code in POOLED_CODES])
        if posting is Posting.POSTED:
            return PostResult.CREATED
        if posting is Posting.OVERDRAFT:
            raise Overdraft(
                Message(
                    "ledger.overdraft",
                    "account {account} cannot cover {amount_minor} {currency}",
                    account=debit.key,
                    amount_minor=amount_minor,
                    currency=currency,
                ),
                account_id=str(debit.id),
                transfer_id=str(transfer_id),
            )
        existing = await self.repository.get_transfer(transfer_id)
        assert existing is not None
        if _fields(existing) != _fields(transfer):
            raise TransferIdReused(
                Message("ledger.transfer-id-reused", "transfer id exists with different fields"),
                transfer_id=str(transfer_id),
            )
        return PostResult.EXISTS

    async def held(self, account: LedgerAccount) -> int:
        """What an account holds now, credits - debits (a pooled account's from its transfers)."""
        debits, credits = await self.repository.posted(account.id)
        return credits - debits

    async def holding_payables(self) -> set[tuple[uuid.UUID, str]]:
        """(organisation, currency) of every provider payable account that holds money."""
        return await self.repository.holding_payables()

    async def balance(self, organization_id: uuid.UUID, currency: str) -> Balance:
        totals = await self.repository.organization_totals(organization_id, currency)
        return Balance(
            currency=currency,
            available_minor=totals.payable_minor,
            pending_minor=totals.escrow_minor,
            paid_out_minor=totals.paid_out_minor,
            debt_minor=totals.debt_minor,
        )

    async def check(
        self, expected_escrow: ExpectedEscrow | None = None, expected_usage: ExpectedUsage | None = None
    ) -> LedgerCheck:
        """Check the books: debits equal credits in every currency, every account's totals equal the
        sums of its transfers, no no-overdraft account is negative, all read in one statement.

        `expected_escrow` is where the orders domain plugs in: given what each open order should hold
        in escrow, every escrow account must hold exactly that (an order absent from it, nothing).
        `expected_usage`, the billing domain: every buyer receivable must be owed, and every order's accrued
        usage hold, exactly what it says (one absent from it, nothing)."""
        holding = frozenset(
            ({AccountCode.ESCROW} if expected_escrow is not None else set())
            | ({AccountCode.BUYER_RECEIVABLE, AccountCode.USAGE_ACCRUED} if expected_usage is not None else set())
        )
        totals = await self.repository.totals(holding=holding)
        negative = [account for account in totals.flagged_accounts if account.negative]
        mismatched = [account for account in totals.flagged_accounts if account.mismatched]
        imbalance = sum(abs(c.debits_posted - c.credits_posted) for c in totals.currencies)
        escrow_mismatches = []
        if expected_escrow is not None:
            escrow_mismatches = _differences(totals.holding, AccountCode.ESCROW, expected_escrow)
        receivable_mismatches, accrued_mismatches = [], []
        if expected_usage is not None:
            owed = _differences(totals.holding, AccountCode.BUYER_RECEIVABLE, expected_usage.receivable)
            receivable_mismatches = [
                ReceivableMismatch(m.order_id, m.currency, m.held_minor, m.expected_minor) for m in owed
            ]
            accrued_mismatches = _differences(totals.holding, AccountCode.USAGE_ACCRUED, expected_usage.accrued)
        return LedgerCheck(
            ok=not (
                imbalance or negative or mismatched or escrow_mismatches or receivable_mismatches or accrued_mismatches
            ),
            transfers=sum(c.transfers for c in totals.currencies),
            imbalance_minor=imbalance,
            currencies=totals.currencies,
            negative_accounts=negative,
            mismatched_accounts=mismatched,
            escrow_checked=expected_escrow is not None,
            escrow_mismatches=escrow_mismatches,
            usage_checked=expected_usage is not None,
            receivable_mismatches=receivable_mismatches,
            accrued_mismatches=accrued_mismatches,
        )


def _differences(
    accounts: list[AccountTotals], code: AccountCode, expected: Mapping[tuple[uuid.UUID, str], int]
) -> list[EscrowMismatch]:
    """The accounts of `code` that do not hold what `expected` says, by their subject (the order an escrow or
    accrued usage is of, the organisation a receivable is of) and currency. A debit-normal account (a
    receivable) "holds" what it is owed: debits less credits."""
    sign = -1 if code in DEBIT_NORMAL_CODES else 1
    held: dict[tuple[uuid.UUID, str], int] = {}
    for account in accounts:
        if account.code == code:
            subject = account.order_id if code in ORDER_CODES else account.organization_id
            assert subject is not None
            held[subject, account.currency] = sign * (account.credits_posted - account.debits_posted)
    return [
        EscrowMismatch(subject, currency, held.get((subject, currency), 0), expected.get((subject, currency), 0))
        for subject, currency in sorted(held.keys() | expected.keys(), key=str)
        if held.get((subject, currency), 0) != expected.get((subject, currency), 0)
    ]


def _fields(transfer: Transfer) -> tuple[object, ...]:
    """What makes two postings of one transfer id the same transfer."""
    return (
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount_minor,
        transfer.currency,
        transfer.kind,
        transfer.order_id,
    )
