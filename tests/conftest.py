"""Shared fixtures: one database and one app per run, empty tables for every test."""

from __future__ import annotations

import asyncio
import fcntl
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import hypothesis
import pytest
from argon2 import PasswordHasher
from litestar import Litestar

from marketplace.accounts import credentials
from marketplace.app import create_app
from marketplace.cli import db_upgrade
from marketplace.config import Settings
from marketplace.db import SessionMaker
from tests.fixtures.api import Api
from tests.fixtures.database import (
    create_postgres_database,
    database_url_for_run,
    drop_postgres_database,
    empty_all_tables,
    is_postgres_url,
    run_in_thread,
)

# Hypothesis's per-example deadline is a timed test: on a loaded machine (CI, two xdist workers) an example
# that takes 250 ms once fails a property that holds. Time is measured by the benchmarks instead.
hypothesis.settings.register_profile("marketplace", deadline=None)
hypothesis.settings.load_profile("marketplace")

# Production-strength argon2 costs ~50 ms a hash; tests hash hundreds of passwords.
credentials._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    return f"database: {'PostgreSQL' if is_postgres_url(url) else 'SQLite'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # xdist hands out tests in collection order: a long one collected last leaves the other worker idle
    # while it runs, so the long ones go first (the sort is stable: the rest keep their order)
    items.sort(key=lambda item: "long" not in item.keywords)
    if is_postgres_url(os.environ.get("TEST_DATABASE_URL", "")):
        browser = pytest.mark.skip(
            reason="the browser tests run in the SQLite pass (their server has its own database)"
        )
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(browser)
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (SQLite serialises writers and hides lost updates)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
async def settings(run_dir: Path) -> AsyncIterator[Settings]:
    url, admin_url = database_url_for_run(run_dir)
    name = url.rsplit("/", 1)[1]
    if admin_url:
        await create_postgres_database(admin_url, name)
    test_settings = Settings(
        database_url=url,
        storage_dir=run_dir / "storage",
        log_json=False,
        log_level="WARNING",
        # pytest-xdist runs a worker per core, each with its own pool on one server (100 connections by
        # default): 2 x (10 + 10 overflow), plus one test at a time that opens many (`many_connections`).
        database_pool_size=10,
        # tests register hundreds of people from one address; the throttle has its own test
        registration_max_per_address=1_000_000,
    )
    await run_in_thread(db_upgrade, test_settings)
    yield test_settings
    if admin_url:
        await drop_postgres_database(admin_url, name)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Requests run on the test's own event loop (Litestar's test client uses a second one,
    which the database connections of the same app cannot cross), so tests can be concurrent."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="session")
def sessions(app: Litestar) -> SessionMaker:
    return app.state.runtime.db_sessions  # type: ignore[no-any-return]


DATABASE_FIXTURES = {"client", "sessions", "api", "app"}


@pytest.fixture(autouse=True)
async def empty_database(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Tests that touch the database leave it empty for the next one."""
    yield
    if DATABASE_FIXTURES.intersection(request.fixturenames):
        app: Litestar = request.getfixturevalue("app")
        await empty_all_tables(app.state.runtime.db_sessions.kw["bind"])
        app.state.runtime.stored_parts.clear()  # the parts it knew stored are gone with the tables


@pytest.fixture
async def many_connections(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    """For a test that opens dozens of connections at once: it waits until no other worker runs one.

    The lock file is in the directory the workers' temporary directories share."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    with (shared / "many-connections.lock").open("w") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


@pytest.fixture
async def scratch_settings(tmp_path: Path) -> AsyncIterator[Settings]:
    """A database of its own, so downgrading does not disturb the run's database."""
    base = os.environ.get("TEST_DATABASE_URL", "")
    if not is_postgres_url(base):
        yield Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}", storage_dir=tmp_path)
        return
    server = base.rpartition("/")[0]
    name = f"marketplace_migrations_{uuid.uuid4().hex[:8]}"
    await create_postgres_database(f"{server}/postgres", name)
    yield Settings(database_url=f"{server}/{name}", storage_dir=tmp_path)
    await drop_postgres_database(f"{server}/postgres", name)


@pytest.fixture
def api(app: Litestar, client: httpx.AsyncClient) -> Api:
    return Api(app, client)
