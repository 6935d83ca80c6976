"""Users, organisations, memberships, API keys and failed-login records."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column, json_document


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"


class OrganizationKind(enum.StrEnum):
    PROVIDER = "provider"
    BUYER = "buyer"
    INTERMEDIARY = "intermediary"


class OrganizationStatus(enum.StrEnum):
    PENDING = "pending"
    UNDER_REVIEW = "under_review"
    ADMITTED = "admitted"
    REJECTED = "rejected"
    SUSPENDED = "suspended"


class DataGrade(enum.StrEnum):
    """DSL Art. 21 grades; an organisation declares the highest it will handle."""

    GENERAL = "general"
    IMPORTANT = "important"
    CORE = "core"


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


MANAGING_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class Scope(enum.StrEnum):
    """What an API key may do for its organisation, a read or write scope per area; each operation names the
    one it needs. Keys never manage members, keys or where payouts go."""

    ORGANIZATIONS_READ = "organizations:read"
    CATALOG_READ = "catalog:read"
    CATALOG_WRITE = "catalog:write"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    DELIVERY_READ = "delivery:read"
    LICENCES_READ = "licences:read"
    LICENCES_WRITE = "licences:write"
    BALANCE_READ = "balance:read"
    PAYOUTS_READ = "payouts:read"
    EVENTS_READ = "events:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    BILLING_READ = "billing:read"


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    name: str = Field(max_length=200)
    password_hash: str = Field(max_length=200)
    is_admin: bool = False
    status: UserStatus = Field(default=UserStatus.ACTIVE, sa_type=enum_column(UserStatus))
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class Organization(SQLModel, table=True):
    __tablename__ = "organization"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    uscc: str = Field(max_length=64, unique=True)
    kind: OrganizationKind = Field(sa_type=enum_column(OrganizationKind))
    jurisdiction: str = Field(max_length=16)
    status: OrganizationStatus = Field(
        default=OrganizationStatus.PENDING, sa_type=enum_column(OrganizationStatus), index=True
    )
    # Qualification: what admission reviews (RULEBOOK R7, R8, S1, S10).
    legal_representative: str | None = Field(default=None, max_length=100)
    registered_address: str | None = Field(default=None, max_length=300)
    business_scope: str | None = Field(default=None, max_length=2000)
    dsmm_level: int = 0
    max_data_grade: DataGrade = Field(default=DataGrade.GENERAL, sa_type=enum_column(DataGrade))
    penalties_last_3y: int = 0
    last_penalty_on: date | None = None
    security_certifications: list[str] = Field(default_factory=list, sa_type=json_document())
    intermediary: dict[str, Any] | None = Field(default=None, sa_type=json_document())
    decision_reason: str | None = Field(default=None, max_length=2000)
    admitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Payouts (set by the payments domain): the provider's account at the payment gateway (a Stripe
    # Connect account id), and whether the gateway lets payouts reach it.
    payment_account_id: str | None = Field(default=None, max_length=64)
    payouts_enabled: bool = False
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class Membership(SQLModel, table=True):
    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("user_id", "organization_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    role: Role = Field(sa_type=enum_column(Role))
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    """Only the SHA-256 of the secret is stored; the prefix is what people see and search by."""

    __tablename__ = "api_key"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    created_by: uuid.UUID = Field(foreign_key="user_account.id")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=32, unique=True)
    secret_hash: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_type=json_document())
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

    def scopes_enum(self) -> list[Scope]:
        return [Scope(value) for value in self.scopes]


class LoginFailure(SQLModel, table=True):
    """One failed login; `subject` is an HMAC of the account's e-mail or the client address,
    so the table holds no personal data in clear."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_subject_at", "subject", "at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    subject: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
