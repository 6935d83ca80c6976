"""Data products, their versions, price plans and samples.

Buyers buy a published version. A listed version never changes: an edit makes a new draft
version, which is reviewed again by the listing stage before it replaces the listed one."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column, json_document


class ProductStatus(enum.StrEnum):
    DRAFT = "draft"
    UNDER_REVIEW = "under_review"
    LISTED = "listed"
    REJECTED = "rejected"
    DELISTED = "delisted"


class VersionStatus(enum.StrEnum):
    DRAFT = "draft"
    UNDER_REVIEW = "under_review"
    LISTED = "listed"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    DELISTED = "delisted"


EDITABLE_VERSION_STATUSES = frozenset({VersionStatus.DRAFT, VersionStatus.REJECTED})


class Product(SQLModel, table=True):
    __tablename__ = "product"
    __table_args__ = (CheckConstraint("licences_remaining >= 0", name="licences_not_negative"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    status: ProductStatus = Field(default=ProductStatus.DRAFT, sa_type=enum_column(ProductStatus), index=True)
    latest_version: int = 1
    listed_version: int | None = None
    # Licences still for sale when the licence terms limit them (exclusive: 1; N copies: N), or None
    # when unlimited. Orders reserve with a guarded decrement, so it never goes below zero.
    licences_remaining: int | None = None
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


LISTED_INDEX_COLUMNS = (
    "category",
    "grade",
    "min_price_minor",
    "listed_at",
    "organization_id",
    "industry_code",
    "regions",
    "delivery_modes",
)


# PostgreSQL text: the row versions (xmin) of what the rulebook sees of a listing -- a version named `v`, its
# plans, its sample `s`, its provider `po` and the organisations that assessed it (its reports' and its
# valuation's assessors) -- which change whenever one of those rows does: the stamp of facts kept in memory
# (`StampedMemo`). Our names only, no input.
_ASSESSOR_IDS = ", ".join(
    [
        *(
            f"v.details -> '{name}' ->> 'assessor_organization_id'"
            for name in ("compliance_report", "risk_assessment", "cross_border_assessment")
        ),
        "v.details -> 'valuation' -> 'assessment' ->> 'assessor_organization_id'",
    ]
)
LISTING_STAMP = f"""concat_ws(';', v.id, v.xmin, po.xmin, coalesce(s.xmin::text, ''),
    coalesce((SELECT string_agg(p.xmin::text, ',' ORDER BY p.id) FROM price_plan p
              WHERE p.product_version_id = v.id), ''),
    (SELECT string_agg(o.id::text || ':' || o.xmin::text, ',' ORDER BY o.id) FROM organization o
     WHERE o.id::text IN ({_ASSESSOR_IDS})))"""  # noqa: S608


class ProductVersion(SQLModel, table=True):
    """One version's description. Columns hold what search filters on; `details` holds the rest
    of what the rules read (personal information, source, assessments, licence, cost, quality...)."""

    __tablename__ = "product_version"
    __table_args__ = (
        UniqueConstraint("product_id", "version"),
        # Search reads listed versions through this index alone (see CatalogSearch). JSON lists in
        # an index key: the regions limit (100 codes) keeps an entry far below PostgreSQL's limit.
        Index(
            "ix_product_version_listed",
            *LISTED_INDEX_COLUMNS,
            postgresql_where=text("status = 'listed'"),
            sqlite_where=text("status = 'listed'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    product_id: uuid.UUID = Field(foreign_key="product.id", index=True)
    # The product's provider, repeated here so that search filters by provider on the version alone.
    organization_id: uuid.UUID = Field(foreign_key="organization.id")
    version: int
    status: VersionStatus = Field(default=VersionStatus.DRAFT, sa_type=enum_column(VersionStatus))
    title: str = Field(max_length=300)
    description: str = Field(default="", sa_type=Text)
    tags: list[str] = Field(default_factory=list, sa_type=json_document())
    category: str = Field(max_length=40)
    industry_code: str = Field(max_length=32, index=True)
    regions: list[str] = Field(default_factory=list, sa_type=json_document())
    grade: str = Field(max_length=16)
    contains_personal_info: bool = False
    data_source: str = Field(max_length=32)
    permitted_scenarios: list[str] = Field(default_factory=list, sa_type=json_document())
    delivery_modes: list[str] = Field(default_factory=list, sa_type=json_document())
    details: dict[str, Any] = Field(default_factory=dict, sa_type=json_document())
    # Search: the indexed document (CJK bigrams, see search_text.py) and the cheapest plan's price.
    search_text: str = Field(default="", sa_type=Text)
    min_price_minor: int | None = Field(default=None, index=True, sa_type=BigInteger)
    sample_id: uuid.UUID | None = Field(default=None, foreign_key="sample.id")
    content_sha256: str | None = Field(default=None, max_length=64)
    decision_reason: str | None = Field(default=None, max_length=2000)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    listed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class SearchTerm(SQLModel, table=True):
    """A word (letters and digits, not CJK) of a listed version's search document: the vocabulary a misspelt
    query word is corrected against. Added at listing, never removed (a word of a delisted product only
    widens a query, whose results are still listed products)."""

    __tablename__ = "search_term"

    term: str = Field(primary_key=True, max_length=64)


class PlanKind(enum.StrEnum):
    ONE_TIME = "one_time"
    SUBSCRIPTION = "subscription"
    METERED = "metered"
    FREE = "free"


class PricePlan(SQLModel, table=True):
    """A way to buy one version. Money in integer minor units of an ISO 4217 currency (64-bit)."""

    __tablename__ = "price_plan"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    product_version_id: uuid.UUID = Field(foreign_key="product_version.id", index=True)
    kind: PlanKind = Field(sa_type=enum_column(PlanKind))
    price_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    pricing_basis: str | None = Field(default=None, max_length=16)
    period_days: int | None = None
    unit_price_minor: int | None = Field(default=None, sa_type=BigInteger)
    included_calls: int | None = None
    monthly_cap_minor: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class Sample(SQLModel, table=True):
    """An uploaded sample, stored content-addressed under STORAGE_DIR by its sha256."""

    __tablename__ = "sample"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    product_id: uuid.UUID = Field(foreign_key="product.id", index=True)
    sha256: str = Field(max_length=64)
    media_type: str = Field(max_length=40)
    size_bytes: int = Field(sa_type=BigInteger)
    rows: int
    columns: list[str] = Field(default_factory=list, sa_type=json_document())
    head: list[list[str | None]] = Field(default_factory=list, sa_type=json_document())
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
