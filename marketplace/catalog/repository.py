"""Every query on the catalog tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from marketplace.catalog.models import PricePlan, Product, ProductVersion, Sample


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
