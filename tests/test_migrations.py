"""The migrations build exactly the models' schema, and can be undone and redone."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from marketplace.cli import db_downgrade, db_upgrade
from marketplace.config import Settings
from marketplace.db import alembic_config
from marketplace.tables import metadata
from tests.fixtures.database import is_postgres_url


async def table_names(settings: Settings) -> set[str]:
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    # the FTS5 index and its shadow tables are created by migration 0004, outside the models
    return {name for name in names if not name.startswith("product_version_fts")} - {"alembic_version"}


async def test_models_and_migrations_agree(scratch_settings: Settings) -> None:
    await asyncio.to_thread(db_upgrade, scratch_settings)
    # raises if autogenerate would write any operation
    await asyncio.to_thread(command.check, alembic_config(scratch_settings.database_url))
    assert await table_names(scratch_settings) == set(metadata.tables)


async def test_upgrade_downgrade_upgrade(scratch_settings: Settings) -> None:
    await asyncio.to_thread(db_upgrade, scratch_settings)
    await asyncio.to_thread(db_downgrade, scratch_settings, "base")
    assert await table_names(scratch_settings) == set()
    await asyncio.to_thread(db_upgrade, scratch_settings)
    assert await table_names(scratch_settings) == set(metadata.tables)
    await asyncio.to_thread(command.check, alembic_config(scratch_settings.database_url))


async def search_triggers(settings: Settings) -> set[str]:
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as connection:
        query = text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'product_version'")
        names = set((await connection.execute(query)).scalars())
    await engine.dispose()
    return names


async def test_fts_triggers_survive_table_rebuilds(scratch_settings: Settings) -> None:
    """Migration 0005 rebuilds product_version on SQLite (a new non-null foreign key), which drops
    the triggers that keep the FTS5 index of migration 0004 in step; it must create them again."""
    if is_postgres_url(scratch_settings.database_url):
        pytest.skip("FTS5 triggers exist on SQLite only")
    expected = {"product_version_fts_insert", "product_version_fts_update", "product_version_fts_delete"}
    await asyncio.to_thread(db_upgrade, scratch_settings)
    assert await search_triggers(scratch_settings) == expected
    await asyncio.to_thread(db_downgrade, scratch_settings, "0004")
    assert await search_triggers(scratch_settings) == expected
    await asyncio.to_thread(db_upgrade, scratch_settings)
    assert await search_triggers(scratch_settings) == expected
