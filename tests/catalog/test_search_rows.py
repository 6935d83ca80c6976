"""SQLite's search rows and contentless FTS5 index (migration 0026) follow every change of a version."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.catalog.models import LISTED_INDEX_COLUMNS, ProductVersion, VersionStatus
from marketplace.catalog.search_text import search_document
from marketplace.db import SessionMaker, unit_of_work
from marketplace.demo.factories import product_body
from tests.catalog.test_products import create
from tests.fixtures.api import Api
from tests.fixtures.database import is_postgres_url

# what the triggers copy, as stored
SEARCHED = ", ".join(("id", "status", *LISTED_INDEX_COLUMNS))


@pytest.fixture(autouse=True)
def sqlite_only(sessions: SessionMaker) -> None:
    if is_postgres_url(str(sessions.kw["bind"].url)):
        pytest.skip("the search rows and FTS5 exist on SQLite only")


async def postings(session: AsyncSession) -> set[tuple[str, int]]:
    """Every (token, row key) the FTS5 index holds, read through a vocabulary view of this connection."""
    await session.execute(
        text("CREATE VIRTUAL TABLE IF NOT EXISTS temp.postings USING fts5vocab(main, product_version_fts, instance)")
    )
    return {(term, key) for term, key in (await session.execute(text("SELECT term, doc FROM temp.postings")))}


async def assert_in_step(session: AsyncSession) -> None:
    """The search rows hold the versions' searched columns, and the index each version's document tokens under
    its row's key, nothing more."""
    copied = (await session.execute(text(f"SELECT {SEARCHED} FROM product_version_search"))).all()
    stored = (await session.execute(text(f"SELECT {SEARCHED} FROM product_version"))).all()
    assert sorted(copied) == sorted(stored)
    documents = text(
        "SELECT s.fts_rowid, v.search_text FROM product_version v JOIN product_version_search s ON s.id = v.id"
    )
    expected = {(token, key) for key, document in await session.execute(documents) for token in document.split()}
    assert await postings(session) == expected


async def test_inserts_updates_and_deletes_of_versions_reach_the_search_rows_and_the_index(
    api: Api, sessions: SessionMaker
) -> None:
    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    product = await create(api, owner, product_body(organization["id"], title="Harbour tides 潮汐观测"))
    async with unit_of_work(sessions) as session:
        await assert_in_step(session)
        version = (await session.scalars(select(ProductVersion))).one()
        # a new document: the old one's tokens leave the index
        version.search_text = search_document("Estuary salinity", "盐度")
        version.status = VersionStatus.LISTED
        version.grade = "important"
        version.regions = ["520100", "520200"]
        version.min_price_minor = 5_000
    async with unit_of_work(sessions) as session:
        await assert_in_step(session)
        second = ProductVersion(
            product_id=uuid.UUID(product["id"]),
            organization_id=uuid.UUID(organization["id"]),
            version=2,
            title="Estuary salinity, second edition",
            category="environment",
            industry_code="7410",
            grade="general",
            data_source="self_generated",
            search_text=search_document("Estuary salinity second edition"),
        )
        session.add(second)
    async with unit_of_work(sessions) as session:
        await assert_in_step(session)
        await session.delete(await session.get(ProductVersion, second.id))
    async with unit_of_work(sessions) as session:
        await assert_in_step(session)
        assert {term for term, _ in await postings(session)} == {"estuary", "salinity", "盐度", "度"}
