"""The recurring charges of a licence: a usage statement per metered licence and month, a renewal per subscription
licence and period. Each is one row under a unique (licence, period), so a job run twice, or by two workers at
once, makes one; its status moves only by guarded updates (see BillingRepository)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column


class ChargeStatus(enum.StrEnum):
    # Made, not yet collected: the collection job charges it through the gateway.
    ISSUED = "issued"
    PAID = "paid"
    # The last attempt failed; the next one is at `next_attempt_at`.
    FAILED = "failed"
    # A renewal never paid: the licence expired at the end of its grace and suspension.
    LAPSED = "lapsed"


# Charges the collection job tries (when their next attempt is due).
COLLECTABLE = frozenset({ChargeStatus.ISSUED, ChargeStatus.FAILED})


class Charge(SQLModel):
    """What a usage statement and a renewal share: the licence, its parties, the money and its collection."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    licence_id: uuid.UUID = Field(foreign_key="licence.id")
    order_id: uuid.UUID = Field(foreign_key="trade_order.id")
    buyer_organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    provider_organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    period_start: datetime = Field(sa_type=UTCDateTime)
    period_end: datetime = Field(sa_type=UTCDateTime)
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    # The order's platform fee: the collected money settles to the provider less it, as the order's did.
    fee_bps: int
    status: ChargeStatus = Field(sa_type=enum_column(ChargeStatus))
    # Failed attempts so far; the gateway's idempotency key of the next one names the count.
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the first attempt failed: the grace before suspension runs from it.
    failed_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    gateway: str | None = Field(default=None, max_length=16)
    payment_reference: str | None = Field(default=None, max_length=120)
    failure: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set with the settlement's transfers: the money went to the provider's payable and the platform's revenue.
    settled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UsageStatement(Charge, table=True):
    """A metered licence's billed calls in one calendar month (UTC, the month metering counts in)."""

    __tablename__ = "usage_statement"
    __table_args__ = (
        UniqueConstraint("licence_id", "period", name="uq_usage_statement_licence_period"),
        CheckConstraint("amount_minor >= 0 AND attempts >= 0", name="not_negative"),
        Index("ix_usage_statement_status_next_attempt", "status", "next_attempt_at"),
    )

    period: str = Field(max_length=7)  # "2026-11"
    calls: int
    billable_calls: int


class SubscriptionRenewal(Charge, table=True):
    """A subscription licence's next period, charged at the plan's price when the current one ends; paid, the
    licence runs to `period_end`."""

    __tablename__ = "subscription_renewal"
    __table_args__ = (
        UniqueConstraint("licence_id", "period_start", name="uq_subscription_renewal_licence_period"),
        CheckConstraint("amount_minor >= 0 AND attempts >= 0", name="not_negative"),
        Index("ix_subscription_renewal_status_next_attempt", "status", "next_attempt_at"),
    )
