"""Every query on the catalog tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    column,
    func,
    literal,
    literal_column,
    null,
    select,
    table,
    text,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.expression import TableClause
from sqlmodel import SQLModel, col

from marketplace.accounts.models import Organization
from marketplace.catalog.models import (
    LISTED_INDEX_COLUMNS,
    LISTING_STAMP,
    PricePlan,
    Product,
    ProductStatus,
    ProductVersion,
    Sample,
    SearchTerm,
    VersionStatus,
)
from marketplace.catalog.search_text import fts5_match, is_typo_tolerant, one_edit_apart, tsquery
from marketplace.db import DriverStatement, table_of, upsert_insert
from marketplace.kit import clock

# Built once, with bound parameters: an order's snapshot reads it on every request.
_ON_SALE = (
    select(Product, ProductVersion, Organization, Sample, PricePlan)
    .join(
        ProductVersion,
        and_(
            col(ProductVersion.product_id) == col(Product.id),
            col(ProductVersion.version) == col(Product.listed_version),
        ),
    )
    .join(Organization, col(Organization.id) == col(Product.organization_id))
    .outerjoin(Sample, col(Sample.id) == col(ProductVersion.sample_id))
    .outerjoin(PricePlan, col(PricePlan.product_version_id) == col(ProductVersion.id))
    .where(col(Product.id) == bindparam("product_id"), col(Product.status) == ProductStatus.LISTED)
    .order_by(col(PricePlan.created_at), col(PricePlan.id))
)

_PRODUCTS = table_of(Product)
# PostgreSQL: what an order reads of a listed product every time (the licences left, which change with every
# limited sale) and the stamp of what it reads only when that changes (`LISTING_STAMP`); no row when the product
# is not on sale.
_LISTING_ROWS = """product pr JOIN product_version v ON v.product_id = pr.id AND v.version = pr.listed_version
  JOIN organization po ON po.id = pr.organization_id LEFT JOIN sample s ON s.id = v.sample_id"""
_OFFER = DriverStatement(
    text(
        f"""SELECT pr.licences_remaining, {LISTING_STAMP} FROM {_LISTING_ROWS}
  WHERE pr.id = :product_id AND pr.status = :listed"""  # noqa: S608 - our names only
    ).bindparams(
        bindparam("product_id", type_=_PRODUCTS.c.id.type),
        bindparam("listed", ProductStatus.LISTED, type_=_PRODUCTS.c.status.type),
    )
)
# PostgreSQL: product `listing_product_id` if it is on sale with unlimited licences and its listing's stamp is still
# `listing_stamp`; no row otherwise. Read by an order's placement statement (orders.repository), which stands only
# if the listing it judged, kept from an earlier order and not read again, is the listing now.
LISTING_UNCHANGED = (
    text(
        f"""SELECT pr.id FROM {_LISTING_ROWS}
  WHERE pr.id = :listing_product_id AND pr.status = :listing_listed AND pr.licences_remaining IS NULL
  AND {LISTING_STAMP} = :listing_stamp"""  # noqa: S608 - our names only
    )
    .bindparams(
        bindparam("listing_product_id", type_=_PRODUCTS.c.id.type),
        bindparam("listing_listed", ProductStatus.LISTED, type_=_PRODUCTS.c.status.type),
        bindparam("listing_stamp", type_=String()),
    )
    .columns(_PRODUCTS.c.id)
)
# Takes `reserve_quantity` licences of product `reserve_product_id` if that many are left, never below zero,
# returning its id. Also written by an order's placement statement (orders.repository), which stands only if it
# took them.
RESERVE_LICENCES = DriverStatement(
    update(_PRODUCTS)
    .where(
        _PRODUCTS.c.id == bindparam("reserve_product_id", type_=_PRODUCTS.c.id.type),
        _PRODUCTS.c.licences_remaining >= bindparam("reserve_quantity", type_=_PRODUCTS.c.licences_remaining.type),
    )
    .values(licences_remaining=_PRODUCTS.c.licences_remaining - bindparam("reserve_quantity"))
    .returning(_PRODUCTS.c.id)
)


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *rows: SQLModel) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def delete(self, row: SQLModel) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    async def add_search_terms(self, words: Iterable[str]) -> None:
        """Words of a listed version into the search vocabulary (those already there stay as they are)."""
        rows = [{"term": word} for word in sorted(set(words))]
        if rows:
            await self.session.execute(upsert_insert(self.session)(table_of(SearchTerm)).on_conflict_do_nothing(), rows)

    async def get_product(self, product_id: uuid.UUID) -> Product | None:
        return await self.session.get(Product, product_id)

    async def products_with_status(
        self, status: ProductStatus, *, limit: int, offset: int
    ) -> tuple[Sequence[Product], int]:
        """Products in `status`, the longest waiting first (the queue's order)."""
        query = select(Product).where(col(Product.status) == status)
        total = (await self.session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        page = query.order_by(col(Product.updated_at), col(Product.id)).limit(limit).offset(offset)
        return (await self.session.scalars(page)).all(), int(total)

    async def lock_product(self, product_id: uuid.UUID) -> Product | None:
        """Read for a change; the row lock serialises concurrent edits and decisions (PostgreSQL)."""
        query = select(Product).where(col(Product.id) == product_id).with_for_update()
        return (await self.session.scalars(query)).first()

    async def offer(self, product_id: uuid.UUID) -> tuple[int | None, str] | None:
        """PostgreSQL: the licences left of a product on sale and its listing's stamp; None when it is not on
        sale."""
        rows = (await _OFFER.execute(self.session, {"product_id": product_id})).rows
        return (rows[0][0], rows[0][1]) if rows else None

    async def reserve_licences(self, product_id: uuid.UUID, quantity: int) -> bool:
        """Guarded decrement: takes `quantity` licences if that many are left; never below zero. A Core
        statement built once: the ORM's version re-evaluates its criteria against the session's objects
        on every call (a Product read earlier in the session keeps the count it was read with)."""
        result = await RESERVE_LICENCES.execute(
            self.session, {"reserve_product_id": product_id, "reserve_quantity": quantity}
        )
        return bool(result.rows)

    async def release_licences(self, product_id: uuid.UUID, quantity: int) -> None:
        statement = (
            update(Product)
            .where(col(Product.id) == product_id, col(Product.licences_remaining).is_not(None))
            .values(licences_remaining=col(Product.licences_remaining) + quantity)
        )
        await self.session.execute(statement)

    async def version(self, product_id: uuid.UUID, version: int) -> ProductVersion | None:
        query = select(ProductVersion).where(
            col(ProductVersion.product_id) == product_id, col(ProductVersion.version) == version
        )
        return (await self.session.scalars(query)).first()

    async def get_plan(self, plan_id: uuid.UUID) -> PricePlan | None:
        return await self.session.get(PricePlan, plan_id)

    async def version_by_id(self, version_id: uuid.UUID) -> ProductVersion | None:
        return await self.session.get(ProductVersion, version_id)

    async def regrade_versions(self, product_id: uuid.UUID, grade: str) -> set[str]:
        """Set the grade of every version of the product; returns the grades they had."""
        versions = (
            await self.session.scalars(select(ProductVersion).where(col(ProductVersion.product_id) == product_id))
        ).all()
        previous = {version.grade for version in versions}
        for version in versions:
            version.grade = grade
            version.updated_at = clock.now()
        await self.session.flush()
        return previous

    async def plans_of(self, version_id: uuid.UUID) -> Sequence[PricePlan]:
        query = (
            select(PricePlan).where(col(PricePlan.product_version_id) == version_id).order_by(col(PricePlan.created_at))
        )
        return (await self.session.scalars(query)).all()

    async def get_sample(self, sample_id: uuid.UUID) -> Sample | None:
        return await self.session.get(Sample, sample_id)

    async def on_sale(
        self, product_id: uuid.UUID
    ) -> tuple[Product, ProductVersion, Organization, Sample | None, list[PricePlan]] | None:
        """A listed product with its listed version, its provider, its sample and its plans (oldest first),
        in one round trip (a row per plan), or None when it is not on sale: every order reads all of them."""
        rows = (await self.session.execute(_ON_SALE, {"product_id": product_id})).all()
        if not rows:
            return None
        product, version, provider, sample, _ = rows[0]
        return product, version, provider, sample, [row[4] for row in rows if row[4] is not None]

    # the DCAT catalog feed

    async def listed_versions(
        self, *, limit: int, offset: int
    ) -> tuple[Sequence[tuple[Product, ProductVersion, Organization, str | None]], int]:
        """Listed products' listed versions with their provider and sample media type, newest listing first."""
        listed = and_(
            col(Product.status) == ProductStatus.LISTED,
            col(ProductVersion.product_id) == col(Product.id),
            col(ProductVersion.version) == col(Product.listed_version),
            LISTED_VERSION,
        )
        total_query = select(func.count()).select_from(Product).join(ProductVersion, listed)
        total = (await self.session.execute(total_query)).scalar_one()
        query = (
            select(Product, ProductVersion, Organization, col(Sample.media_type))
            .join(ProductVersion, listed)
            .join(Organization, col(Organization.id) == col(Product.organization_id))
            .outerjoin(Sample, col(Sample.id) == col(ProductVersion.sample_id))
            .order_by(col(ProductVersion.listed_at).desc(), col(Product.id))
            .limit(limit)
            .offset(offset)
        )
        result = await self.session.execute(query)
        return [(product, version, provider, media_type) for product, version, provider, media_type in result], total

    async def plans_of_versions(self, version_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[PricePlan]]:
        if not version_ids:
            return {}
        query = (
            select(PricePlan)
            .where(col(PricePlan.product_version_id).in_(version_ids))
            .order_by(col(PricePlan.created_at), col(PricePlan.id))
        )
        plans: dict[uuid.UUID, list[PricePlan]] = {version_id: [] for version_id in version_ids}
        for plan in (await self.session.scalars(query)).all():
            plans[plan.product_version_id].append(plan)
        return plans


@dataclass(frozen=True)
class SearchFilters:
    terms: tuple[str, ...] = ()
    # misspelt words' corrections from the vocabulary, found by CatalogSearch (see search_text.py)
    corrections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    category: str | None = None
    industry_code: str | None = None
    region: str | None = None
    grade: str | None = None
    delivery_mode: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    provider: uuid.UUID | None = None


FACETS = ("category", "grade")
# Bounds on typo tolerance, so a long hostile query costs a few indexed reads, not a scan.
MAX_CORRECTED_TERMS = 4
MAX_CORRECTIONS = 8
# A literal, not a bound parameter: the indexes of listed versions are partial (`status = 'listed'`),
# and SQLite uses a partial index only when the query states its condition; with `status = ?` every
# search scanned the whole table (135 ms at 100,000 products instead of 9 ms).
_LISTED = literal(VersionStatus.LISTED.value, literal_execute=True)
LISTED_VERSION = col(ProductVersion.status) == _LISTED

# Structures that live outside the models: on SQLite (migration 0026) a narrow copy of every version's
# searched columns under their names, kept by triggers, and a contentless FTS5 index of `search_text` keyed
# by that copy's integer key; on PostgreSQL (migration 0005) the stored tsvector column.
_SEARCH_ROWS = table(
    "product_version_search",
    column("fts_rowid", Integer()),
    *(column(name, table_of(ProductVersion).c[name].type) for name in ("id", "status", *LISTED_INDEX_COLUMNS)),
)
_FTS5 = table("product_version_fts", column("rowid", Integer()), column("rank"))
_TSVECTOR: ColumnElement[Any] = literal_column("product_version.search_vector")


class CatalogSearch:
    """Listed versions matching text and filters, with facet counts: one aggregate (the total
    and every facet, from the counts per category and grade), then the page's ids, then its rows.

    Text search is FTS5 on SQLite and a GIN-indexed stored tsvector on PostgreSQL, both over the
    bigram document of search_text.py. On SQLite a text search reads each match's searched columns from
    the narrow search rows by the FTS5 rowid, never the wide version row. Without text the filters read
    the partial index of listed versions (`ix_product_version_listed`), which holds every filtered and
    sorted column, so an aggregate over the whole catalog never reads the wide rows."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    async def search(
        self, filters: SearchFilters, *, sort: str, limit: int, offset: int
    ) -> tuple[Sequence[tuple[ProductVersion, Product]], int, dict[str, dict[str, int]]]:
        if filters.terms:
            filters = replace(filters, corrections=await self._corrections(filters.terms))
            counts, ids = await self._in_one_pass(filters, sort, limit=limit, offset=offset)
        else:
            counts, ids = await self._by_index(filters, sort, limit=limit, offset=offset)
        facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
        for category, grade, count in counts:
            facets["category"][category] = facets["category"].get(category, 0) + count
            facets["grade"][grade] = facets["grade"].get(grade, 0) + count
        total = sum(count for _, _, count in counts)
        if not ids:
            return [], total, facets
        rows = await self.session.execute(
            select(ProductVersion, Product)
            .join(Product, col(Product.id) == col(ProductVersion.product_id))
            .where(col(ProductVersion.id).in_(ids))
        )
        by_id = {version.id: (version, product) for version, product in rows}
        return [by_id[version_id] for version_id in ids], total, facets

    async def _by_index(
        self, filters: SearchFilters, sort: str, *, limit: int, offset: int
    ) -> tuple[list[tuple[str, str, int]], Sequence[uuid.UUID]]:
        """Without text: the counts from the covering index, then the page's ids from a sort index,
        which stops after the page instead of sorting every match."""
        versions = table_of(ProductVersion)
        counts_query = self._matching(filters, versions, versions.c.category, versions.c.grade, func.count())
        counts_query = counts_query.group_by(versions.c.category, versions.c.grade)
        counts = [(category, grade, count) for category, grade, count in await self.session.execute(counts_query)]
        if offset >= sum(count for _, _, count in counts):
            return counts, []
        order = self._order(sort, versions.c)
        page = self._matching(filters, versions, versions.c.id).order_by(*order).limit(limit).offset(offset)
        return counts, (await self.session.scalars(page)).all()

    async def _in_one_pass(
        self, filters: SearchFilters, sort: str, *, limit: int, offset: int
    ) -> tuple[list[tuple[str, str, int]], Sequence[uuid.UUID]]:
        """With text: the counts and the page's ids in one pass over the matches, which the text
        index bounds. Ranking must read every match anyway; reading them once halves the cost of
        a broad query."""
        source = table_of(ProductVersion) if self.postgres else _SEARCH_ROWS
        c = source.c
        columns: list[Any] = [c.id, c.category, c.grade, c.listed_at, c.min_price_minor]
        if sort == "relevance":
            # higher is more relevant: ts_rank on PostgreSQL; FTS5's rank is bm25, where lower is better
            relevance = func.ts_rank(_TSVECTOR, self._tsquery(filters)) if self.postgres else -_FTS5.c.rank
            columns.append(relevance.label("relevance"))
        matched = self._matching(filters, source, *columns).cte("matched").prefix_with("MATERIALIZED")
        page = select(matched.c.id).order_by(*self._order(sort, matched.c)).limit(limit).offset(offset).subquery()
        count_rows = select(
            matched.c.category, matched.c.grade, func.count(), type_coerce(null(), Uuid()).label("id")
        ).group_by(matched.c.category, matched.c.grade)
        rows = (await self.session.execute(union_all(count_rows, select(null(), null(), null(), page.c.id)))).all()
        # a count row has a category (never null); a page row only an id
        counts = [(category, grade, count) for category, grade, count, _ in rows if category is not None]
        return counts, [version_id for category, _, _, version_id in rows if category is None]

    async def _corrections(self, terms: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The vocabulary's words one edit from each long query word, first character kept: one range of
        the vocabulary's primary key (words beginning with that character, of a length one apart) a word."""
        corrections: dict[str, tuple[str, ...]] = {}
        for term in [t for t in terms if is_typo_tolerant(t)][:MAX_CORRECTED_TERMS]:
            first = term[0]
            length = func.length(col(SearchTerm.term))
            query = (
                select(col(SearchTerm.term))
                .where(col(SearchTerm.term) >= first, col(SearchTerm.term) < chr(ord(first) + 1))
                .where(length.between(len(term) - 1, len(term) + 1))
            )
            words = sorted(word for word in await self.session.scalars(query) if one_edit_apart(term, word))
            if words:
                corrections[term] = tuple(words[:MAX_CORRECTIONS])
        return corrections

    def _matching(self, filters: SearchFilters, source: TableClause, *columns: Any) -> Select[Any]:
        """`columns` of the listed versions that match the filters, read from `source`: the version table, or
        on SQLite with text the search rows (which have the version table's searched columns)."""
        c = source.c
        query = select(*columns).where(c.status == _LISTED)
        if filters.terms:
            if self.postgres:
                query = query.select_from(source).where(_TSVECTOR.op("@@")(self._tsquery(filters)))
            else:
                # Joined rather than `IN (subquery)` so the page can order by the FTS5 rank (bm25).
                query = query.select_from(source.join(_FTS5, _FTS5.c.rowid == c.fts_rowid)).where(
                    literal_column("product_version_fts").op("MATCH")(fts5_match(filters.terms, filters.corrections))
                )
        else:
            query = query.select_from(source)
        for name in ("category", "industry_code", "grade"):
            value = getattr(filters, name)
            if value is not None:
                query = query.where(c[name] == value)
        for name, value in (("regions", filters.region), ("delivery_modes", filters.delivery_mode)):
            if value is not None:
                query = query.where(self._contains(c[name], value))
        # On SQLite the price is compared as `min_price_minor + 0`, not a bare column: otherwise its
        # planner reads a price range through a price index and sorts every match (80-130 ms at
        # 100,000 products) where the covering index or the page's sort index takes 1-10 ms.
        price = c.min_price_minor if self.postgres else c.min_price_minor + 0
        if filters.min_price is not None:
            query = query.where(price >= filters.min_price)
        if filters.max_price is not None:
            query = query.where(price <= filters.max_price)
        if filters.provider is not None:
            query = query.where(c.organization_id == filters.provider)
        return query

    def _tsquery(self, filters: SearchFilters) -> ColumnElement[Any]:
        return func.to_tsquery(literal_column("'simple'"), tsquery(filters.terms, filters.corrections))

    def _contains(self, json_list: ColumnElement[Any], value: str) -> ColumnElement[bool]:
        """A JSON list column holds the value: jsonb containment on PostgreSQL. On SQLite the
        quoted value inside the stored JSON text: exact, because stored values and filter values
        alike (division codes, delivery modes) are validated to letters, digits and underscores,
        so a quote is always an element's boundary; and five times faster than json_each."""
        if self.postgres:
            return type_coerce(json_list, JSONB).contains([value])
        return func.instr(json_list, f'"{value}"') > 0

    @staticmethod
    def _order(sort: str, columns: ReadOnlyColumnCollection[str, Any]) -> list[Any]:
        """The page order, over the version table's columns or the matched rows' columns."""
        newest = [columns["listed_at"].desc(), columns["id"]]
        if sort == "price":
            return [columns["min_price_minor"].asc().nulls_last(), *newest]
        if sort == "-price":
            return [columns["min_price_minor"].desc().nulls_last(), *newest]
        if sort == "relevance" and "relevance" in columns:
            return [columns["relevance"].desc(), *newest]
        return newest  # "newest", and "relevance" without text
