"""Every query on the catalog tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, column, exists, func, literal_column, select, text, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from marketplace.accounts.models import Organization
from marketplace.catalog.models import PricePlan, Product, ProductVersion, Sample, VersionStatus
from marketplace.catalog.search_text import fts5_match, tsquery


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *rows: SQLModel) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    async def get_product(self, product_id: uuid.UUID) -> Product | None:
        return await self.session.get(Product, product_id)

    async def lock_product(self, product_id: uuid.UUID) -> Product | None:
        """Read for a change; the row lock serialises concurrent edits and decisions (PostgreSQL)."""
        query = select(Product).where(col(Product.id) == product_id).with_for_update()
        return (await self.session.scalars(query)).first()

    async def version(self, product_id: uuid.UUID, version: int) -> ProductVersion | None:
        query = select(ProductVersion).where(
            col(ProductVersion.product_id) == product_id, col(ProductVersion.version) == version
        )
        return (await self.session.scalars(query)).first()

    async def plans_of(self, version_id: uuid.UUID) -> Sequence[PricePlan]:
        query = (
            select(PricePlan).where(col(PricePlan.product_version_id) == version_id).order_by(col(PricePlan.created_at))
        )
        return (await self.session.scalars(query)).all()

    async def get_sample(self, sample_id: uuid.UUID) -> Sample | None:
        return await self.session.get(Sample, sample_id)

    # the DCAT catalog feed

    async def listed_versions(
        self, *, limit: int, offset: int
    ) -> tuple[Sequence[tuple[Product, ProductVersion, Organization, str | None]], int]:
        """Listed products' listed versions with their provider and sample media type, newest listing first."""
        from sqlalchemy import and_, func

        from marketplace.catalog.models import ProductStatus, VersionStatus

        listed = and_(
            col(Product.status) == ProductStatus.LISTED,
            col(ProductVersion.product_id) == col(Product.id),
            col(ProductVersion.version) == col(Product.listed_version),
            col(ProductVersion.status) == VersionStatus.LISTED,
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
    category: str | None = None
    industry_code: str | None = None
    region: str | None = None
    grade: str | None = None
    delivery_mode: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    provider: uuid.UUID | None = None


SORTS = ("relevance", "price", "-price", "newest")


class CatalogSearch:
    """Listed versions matching text and filters, with facet counts. Text search is FTS5 on SQLite
    and a GIN-indexed tsvector on PostgreSQL, both over the bigram document of search_text.py."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def _conditions(self, filters: SearchFilters) -> list[ColumnElement[bool]]:
        version = ProductVersion
        conditions: list[ColumnElement[bool]] = [col(version.status) == VersionStatus.LISTED]
        if filters.terms:
            if self.postgres:
                conditions.append(
                    func.to_tsvector(literal_column("'simple'"), col(version.search_text)).op("@@")(
                        func.to_tsquery(literal_column("'simple'"), tsquery(filters.terms))
                    )
                )
            else:
                matching = text("SELECT version_id FROM product_version_fts WHERE product_version_fts MATCH :match")
                conditions.append(
                    col(version.id).in_(
                        matching.bindparams(match=fts5_match(filters.terms)).columns(column("version_id"))
                    )
                )
        for name in ("category", "industry_code", "grade"):
            value = getattr(filters, name)
            if value is not None:
                conditions.append(getattr(version, name) == value)
        for name, value in (("regions", filters.region), ("delivery_modes", filters.delivery_mode)):
            if value is not None:
                conditions.append(self._contains(name, value))
        if filters.min_price is not None:
            conditions.append(col(version.min_price_minor) >= filters.min_price)
        if filters.max_price is not None:
            conditions.append(col(version.min_price_minor) <= filters.max_price)
        if filters.provider is not None:
            conditions.append(col(Product.organization_id) == filters.provider)
        return conditions

    def _contains(self, column_name: str, value: str) -> ColumnElement[bool]:
        """A JSON list column holds the value: jsonb containment on PostgreSQL, json_each on SQLite."""
        json_list = getattr(ProductVersion, column_name)
        if self.postgres:
            return type_coerce(json_list, JSONB).contains([value])
        elements = func.json_each(json_list).table_valued("value")
        return exists().select_from(elements).where(elements.c.value == value)

    async def search(
        self, filters: SearchFilters, *, sort: str, limit: int, offset: int
    ) -> tuple[Sequence[tuple[ProductVersion, Product]], int, dict[str, dict[str, int]]]:
        conditions = self._conditions(filters)
        base = select(ProductVersion, Product).join(Product, col(Product.id) == col(ProductVersion.product_id))
        filtered = base.where(*conditions)
        total = (await self.session.execute(select(func.count()).select_from(filtered.subquery()))).scalar_one()
        rows = (
            await self.session.execute(filtered.order_by(*self._order(filters, sort)).limit(limit).offset(offset))
        ).all()
        facets = {name: await self._facet(getattr(ProductVersion, name), conditions) for name in ("category", "grade")}
        return [(row[0], row[1]) for row in rows], int(total), facets

    def _order(self, filters: SearchFilters, sort: str) -> list[Any]:
        newest = col(ProductVersion.listed_at).desc()
        if sort == "price":
            return [col(ProductVersion.min_price_minor).asc().nulls_last(), newest]
        if sort == "-price":
            return [col(ProductVersion.min_price_minor).desc().nulls_last(), newest]
        if sort == "relevance" and filters.terms and self.postgres:
            rank = func.ts_rank(
                func.to_tsvector(literal_column("'simple'"), col(ProductVersion.search_text)),
                func.to_tsquery(literal_column("'simple'"), tsquery(filters.terms)),
            )
            return [rank.desc(), newest]
        # SQLite: relevance falls back to newest (bm25 needs the FTS row in the outer query)
        return [newest, col(ProductVersion.id)]

    async def _facet(self, column_: Any, conditions: list[ColumnElement[bool]]) -> dict[str, int]:
        query = (
            select(column_, func.count())
            .select_from(ProductVersion)
            .join(Product, col(Product.id) == col(ProductVersion.product_id))
            .where(*conditions)
            .group_by(column_)
        )
        return {str(value): int(count) for value, count in (await self.session.execute(query)).all()}
