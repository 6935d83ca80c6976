"""Double-entry ledger after TigerBeetle's rules: accounts with running totals, immutable transfers.

Every transfer debits one account and credits another of the same currency for a positive amount
of minor units. An account's totals (`debits_posted`, `credits_posted`) move in the same
transaction as the transfer that moves them, and always equal the sums of its transfers -- except
the platform's pooled accounts (`POOLED_CODES`), which every order moves: they keep no running
totals (0), their totals are the sums of their transfers (`repository.account_totals`).

Sides. An account's balance is read as `credits_posted - debits_posted` ("what it holds"), except
for the accounts whose normal side is the debit (`platform_clearing`, `provider_debt` and
`buyer_receivable`), which hold `debits_posted - credits_posted`. `no_overdraft` accounts can never hold less than
nothing: their credits always cover their debits (`credits_posted - debits_posted >= 0`), which
a guarded update enforces and a check constraint backs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index
from sqlmodel import Field, SQLModel

from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column


class AccountCode(enum.StrEnum):
    # Money entering or leaving the platform through the gateway. Debit-normal, may go
    # "negative": it is where money starts in the system.
    PLATFORM_CLEARING = "platform_clearing"
    # A buyer's payment held for one order until it settles or is refunded.
    ESCROW = "escrow"
    # What the platform owes a provider, settled and not yet paid out.
    PROVIDER_PAYABLE = "provider_payable"
    # The platform's fees.
    PLATFORM_REVENUE = "platform_revenue"
    # Money owed back to buyers.
    REFUNDS = "refunds"
    # What has been paid out to a provider (through the gateway).
    PAYOUTS = "payouts"
    # What a provider owes the platform when a refund comes after its payout. Debit-normal.
    PROVIDER_DEBT = "provider_debt"
    # What a buyer owes for metered calls beyond a plan's included ones, invoiced monthly. Debit-normal.
    BUYER_RECEIVABLE = "buyer_receivable"
    # The metered calls one order has billed, held for its provider until the month's invoice is paid.
    USAGE_ACCRUED = "usage_accrued"


# Accounts whose credits must always cover their debits. The debit-normal accounts are left out:
# their balance is expected to be debits over credits.
DEBIT_NORMAL_CODES = frozenset({AccountCode.PLATFORM_CLEARING, AccountCode.PROVIDER_DEBT, AccountCode.BUYER_RECEIVABLE})
NO_OVERDRAFT_CODES = frozenset(AccountCode) - DEBIT_NORMAL_CODES
# The platform's own accounts of a currency, which every payment, settlement or refund moves: updating their
# running totals would make each one's row a lock every payer shares. Their transfers are their totals. A
# debit of one that is no-overdraft (a fee reversal from revenue) locks its row and sums its transfers.
POOLED_CODES = frozenset({AccountCode.PLATFORM_CLEARING, AccountCode.PLATFORM_REVENUE, AccountCode.REFUNDS})
# Accounts of one organisation (the provider, or the buyer for its receivable); escrow and accrued usage
# are of one order and name its provider too.
ORGANIZATION_CODES = frozenset(
    {
        AccountCode.ESCROW,
        AccountCode.PROVIDER_PAYABLE,
        AccountCode.PAYOUTS,
        AccountCode.PROVIDER_DEBT,
        AccountCode.BUYER_RECEIVABLE,
        AccountCode.USAGE_ACCRUED,
    }
)
ORDER_CODES = frozenset({AccountCode.ESCROW, AccountCode.USAGE_ACCRUED})


class TransferKind(enum.StrEnum):
    PAYMENT = "payment"  # clearing -> escrow
    SETTLEMENT = "settlement"  # escrow -> provider payable (price - fee)
    FEE = "fee"  # escrow -> platform revenue
    REFUND = "refund"  # escrow (or payable, revenue, debt) -> refunds
    PAYOUT = "payout"  # provider payable -> payouts
    REVERSAL = "reversal"  # undoes an earlier transfer, which stays as it was
    DEBT = "debt"  # a provider's debt and its repayment from payable
    USAGE = "usage"  # buyer receivable -> usage accrued: one billed metered call


class LedgerAccount(SQLModel, table=True):
    """One account. Its totals change only through `LedgerRepository.post_transfer`; an instance
    holds the totals as they were when it was read."""

    __tablename__ = "ledger_account"
    __table_args__ = (
        CheckConstraint("debits_posted >= 0 AND credits_posted >= 0", name="posted_not_negative"),
        CheckConstraint("NOT no_overdraft OR credits_posted >= debits_posted", name="no_overdraft"),
        # An organisation's balance reads its accounts in one currency.
        Index("ix_ledger_account_organization_currency", "organization_id", "currency"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # What the account is for, e.g. "escrow:<order_id>:CNY": get-or-create is one unique key.
    key: str = Field(max_length=120, unique=True)
    code: AccountCode = Field(sa_type=enum_column(AccountCode, length=24))
    organization_id: uuid.UUID | None = Field(default=None, foreign_key="organization.id")
    # No foreign key: orders live in another domain, whose table comes later.
    order_id: uuid.UUID | None = None
    currency: str = Field(max_length=3)
    no_overdraft: bool
    debits_posted: int = Field(default=0, sa_type=BigInteger)
    credits_posted: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class Transfer(SQLModel, table=True):
    """An immutable movement of money; its id is chosen by the caller (see kit.money.transfer_id)."""

    __tablename__ = "ledger_transfer"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        # Each side's index holds the amount: a pooled account's totals are summed from the index alone.
        Index("ix_ledger_transfer_debit_account_id", "debit_account_id", "amount_minor"),
        Index("ix_ledger_transfer_credit_account_id", "credit_account_id", "amount_minor"),
    )

    id: uuid.UUID = Field(primary_key=True)
    debit_account_id: uuid.UUID = Field(foreign_key="ledger_account.id")
    credit_account_id: uuid.UUID = Field(foreign_key="ledger_account.id")
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    kind: TransferKind = Field(sa_type=enum_column(TransferKind))
    order_id: uuid.UUID | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class PayoutStatus(enum.StrEnum):
    # Booked in the ledger (payable -> payouts) and its orders claimed; the gateway has not yet
    # confirmed the transfer. A later settlement run sends it again under the same id.
    PENDING = "pending"
    SENT = "sent"  # the gateway accepted the transfer: `reference` names it
    FAILED = "failed"  # the gateway refused the destination: the booking was reversed, the orders freed


class Payout(SQLModel, table=True):
    """One transfer of a provider's settled money in one currency to its account at the gateway.

    `amount_minor` is what the gateway is asked to send: the provider shares of the orders it claims
    (`trade_order.payout_id`), plus anything else left in the provider's payable, less the provider's
    debt repaid first (`debt_repaid_minor`). A payout whose whole amount went to the debt is 0 and is
    sent at once without calling the gateway."""

    __tablename__ = "payout"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("debt_repaid_minor >= 0", name="debt_repaid_not_negative"),
        # Settlement resends payouts still pending, oldest first.
        Index("ix_payout_status_created", "status", "created_at"),
        Index("ix_payout_organization_created", "organization_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    currency: str = Field(max_length=3)
    amount_minor: int = Field(sa_type=BigInteger)
    debt_repaid_minor: int = Field(default=0, sa_type=BigInteger)
    gateway: str = Field(max_length=16)
    # The provider's account at the gateway (the local gateway: its organisation id when none is set).
    destination: str = Field(max_length=64)
    # The gateway's id of the transfer, once sent.
    reference: str | None = Field(default=None, max_length=120, unique=True)
    status: PayoutStatus = Field(sa_type=enum_column(PayoutStatus))
    failure: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
