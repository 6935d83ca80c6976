"""Alembic environment: async engine, URL from the service's settings."""

import asyncio
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from marketplace.config import Settings
from marketplace.db import create_engine
from marketplace.tables import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    url = config.attributes.get("database_url")
    settings = Settings.from_env()
    return Settings(**{**settings.__dict__, "database_url": url}) if url else settings


# Search structures that live outside the models because they differ between the databases:
# FTS5 and the search rows it is keyed by on SQLite (migrations 0004 and 0026); a stored tsvector column
# and its GIN index on PostgreSQL, and the sort indexes (migration 0005).
SEARCH_OBJECTS = (
    "product_version_fts",
    "product_version_search",
    "search_vector",
    "ix_product_version_search_vector",
    "ix_product_version_sort_",
)


# The job engine's tables on PostgreSQL (migration 0016), which procrastinate defines, not our models.
JOB_ENGINE_OBJECTS = ("procrastinate_",)


def _include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (name or "").startswith(SEARCH_OBJECTS + JOB_ENGINE_OBJECTS)


def _varchar(type_: Any) -> bool:
    """A plain VARCHAR, as reflected or as modelled (SQLModel's AutoString wraps one); not TEXT, not an enum."""
    return type(getattr(type_, "impl_instance", type_)) in (sa.String, sa.VARCHAR)


def _compare_type(
    migration: MigrationContext, inspected: Any, modelled: Any, inspected_type: Any, modelled_type: Any
) -> bool | None:
    """SQLite does not enforce a VARCHAR's length, so lengths alone differ in nothing there (PostgreSQL's run
    compares them); None leaves every other comparison to Alembic."""
    if migration.dialect.name == "sqlite" and _varchar(inspected_type) and _varchar(modelled_type):
        return False
    return None


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=_compare_type,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(_settings())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_settings().database_url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
