"""Delivery: licences granted by paid orders, the hosted datasets they deliver, the per-licence access
keys of API delivery, usage metering, and the receipts of what was delivered."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index
from sqlmodel import Field, SQLModel

from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column, json_document


class LicenceStatus(enum.StrEnum):
    ACTIVE = "active"
    # Held by the delivery stage for an administrator (a rule asked for review): nothing is delivered.
    SUSPENDED = "suspended"
    # A refund, a lost dispute or a failing delivery-stage verdict: final.
    REVOKED = "revoked"
    # Its term ran out.
    EXPIRED = "expired"


class Licence(SQLModel, table=True):
    """The buyer's right to the data, issued when its order is paid: the licence terms of the version
    bought, copied so that a later edit of the product cannot change what was sold."""

    __tablename__ = "licence"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="trade_order.id", unique=True)
    buyer_organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    provider_organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    product_id: uuid.UUID = Field(foreign_key="product.id", index=True)
    product_version_id: uuid.UUID = Field(foreign_key="product_version.id")
    plan_id: uuid.UUID = Field(foreign_key="price_plan.id")
    delivery_mode: str = Field(max_length=24)
    terms: dict[str, Any] = Field(default_factory=dict, sa_type=json_document())
    starts_at: datetime = Field(sa_type=UTCDateTime)
    # None: the terms set no end.
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A subscription's period in days: at its end the licence renews (marketplace/flows/billing.py), and only a
    # renewal left unpaid past its grace and suspension expires it. None: it does not renew.
    renewal_days: int | None = None
    status: LicenceStatus = Field(default=LicenceStatus.ACTIVE, sa_type=enum_column(LicenceStatus))
    status_reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class Dataset(SQLModel, table=True):
    """The full dataset of one product version, stored content-addressed under STORAGE_DIR by its sha256,
    which is the version's registered digest (`product_version.content_sha256`)."""

    __tablename__ = "dataset"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    product_version_id: uuid.UUID = Field(foreign_key="product_version.id", unique=True)
    sha256: str = Field(max_length=64)
    size_bytes: int = Field(sa_type=BigInteger)
    media_type: str = Field(max_length=40)
    uploaded_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class AccessKey(SQLModel, table=True):
    """A key for one licence's API delivery (`Authorization: Bearer dxk_...`); only its sha256 is kept."""

    __tablename__ = "access_key"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    licence_id: uuid.UUID = Field(foreign_key="licence.id", index=True)
    prefix: str = Field(max_length=16, unique=True)
    key_hash: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_type=json_document())
    rate_limit_per_minute: int
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RateWindow(SQLModel, table=True):
    """Calls of one access key in one minute: an upsert counts them in the database, so every worker
    process sees the same count."""

    __tablename__ = "access_key_rate_window"

    access_key_id: uuid.UUID = Field(foreign_key="access_key.id", primary_key=True)
    window_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    calls: int = 0


class LicenceRateWindow(SQLModel, table=True):
    """Calls of one licence in one minute, whichever of its access keys made them, counted like the key's:
    a new key (`POST /licences/{id}/access-keys`) does not start the licence's minute afresh."""

    __tablename__ = "licence_rate_window"

    licence_id: uuid.UUID = Field(foreign_key="licence.id", primary_key=True)
    window_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    calls: int = 0


class LicenceUsage(SQLModel, table=True):
    """A licence's metered calls in one calendar month (UTC), and what they were billed. One guarded
    update counts a call and its charge, so the monthly cap holds under concurrent calls."""

    __tablename__ = "licence_usage"
    __table_args__ = (
        CheckConstraint("calls >= 0 AND billed_minor >= 0", name="usage_not_negative"),
        CheckConstraint("cap_minor IS NULL OR billed_minor <= cap_minor", name="usage_within_cap"),
    )

    licence_id: uuid.UUID = Field(foreign_key="licence.id", primary_key=True)
    period: str = Field(max_length=7, primary_key=True)  # "2026-11"
    calls: int = 0
    billed_minor: int = Field(default=0, sa_type=BigInteger)
    cap_minor: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class PrivacyBudget(SQLModel, table=True):
    """The differential privacy a privacy-computing licence may spend over its life (epsilon, in millionths, as
    its product's terms set it at the first query) and what its answers have spent. One guarded update spends
    a query's epsilon, so concurrent queries never pass the budget."""

    __tablename__ = "licence_privacy_budget"
    __table_args__ = (
        CheckConstraint("spent_micro >= 0 AND spent_micro <= budget_micro", name="privacy_within_budget"),
    )

    licence_id: uuid.UUID = Field(foreign_key="licence.id", primary_key=True)
    budget_micro: int = Field(sa_type=BigInteger)
    spent_micro: int = Field(default=0, sa_type=BigInteger)
    queries: int = 0
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class UsageEvent(SQLModel, table=True):
    """One metered call: what the buyer asked, when, and what it cost."""

    __tablename__ = "usage_event"
    __table_args__ = (Index("ix_usage_event_licence_at", "licence_id", "at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    licence_id: uuid.UUID = Field(foreign_key="licence.id")
    access_key_id: uuid.UUID = Field(foreign_key="access_key.id")
    endpoint: str = Field(max_length=16)
    period: str = Field(max_length=7)
    call_number: int
    charge_minor: int = Field(default=0, sa_type=BigInteger)
    rows: int = 0
    at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class ReceiptKind(enum.StrEnum):
    DOWNLOAD = "download"
    API_ACCESS = "api_access"
    COMPUTATION = "computation"


class DeliveryReceipt(SQLModel, table=True):
    """What was delivered under a licence, its digest and when: the buyer's acceptance window runs
    from the first receipt."""

    __tablename__ = "delivery_receipt"
    __table_args__ = (Index("ix_delivery_receipt_order_at", "order_id", "at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="trade_order.id")
    licence_id: uuid.UUID = Field(foreign_key="licence.id")
    kind: ReceiptKind = Field(sa_type=enum_column(ReceiptKind))
    content_sha256: str = Field(max_length=64)
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=json_document())
    actor: str = Field(max_length=80)
    at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


def usage_period(now: datetime) -> str:
    """The month a call is counted in, e.g. 2026-12."""
    return f"{now.year:04d}-{now.month:02d}"


def next_period_start(now: datetime) -> datetime:
    """When the next month's count starts."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)
