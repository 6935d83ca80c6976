"""`/ready` answers 200 only when the database answers, is migrated to the code's head and storage is
writable; otherwise 503 naming the part that is not, on a database of its own for each case. The
`marketplace db current | check | history` commands report the same migration state."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.app import create_app
from marketplace.cli import db_downgrade, db_upgrade, main
from marketplace.config import Settings
from marketplace.db import migrations_head


async def readiness(settings: Settings, meanwhile: Callable[[], None] = lambda: None) -> tuple[int, dict[str, Any]]:
    """`/ready` of a process started on `settings`, after `meanwhile` happened to its surroundings."""
    app = create_app(settings.model_copy(update={"database_pool_size": 1}))
    meanwhile()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/ready")
    finally:
        await app.state.runtime.stop()
    return response.status_code, response.json()


@pytest.fixture
async def migrated(scratch_settings: Settings) -> Settings:
    await asyncio.to_thread(db_upgrade, scratch_settings)
    return scratch_settings


async def test_a_database_never_migrated_is_not_ready_until_it_is(scratch_settings: Settings) -> None:
    status, body = await readiness(scratch_settings)
    assert (status, body["status"], body["migrations"], body["migration"]) == (503, "not_ready", "not_migrated", None)
    assert body["database"] == "ok"

    await asyncio.to_thread(db_upgrade, scratch_settings)
    status, body = await readiness(scratch_settings)
    assert status == 200, body
    assert body == {
        "status": "ready",
        "database": "ok",
        "migrations": "at_head",
        "migration": migrations_head(),
        "migration_head": migrations_head(),
        "storage": "ok",
    }


async def test_a_database_behind_the_code_is_not_ready(migrated: Settings) -> None:
    await asyncio.to_thread(db_downgrade, migrated, "-1")
    status, body = await readiness(migrated)
    assert (status, body["migrations"]) == (503, "behind")
    assert body["migration"] != body["migration_head"] == migrations_head()


async def test_storage_that_cannot_be_written_is_not_ready(migrated: Settings, tmp_path: Path) -> None:
    storage = tmp_path / "storage"

    def replaced_by_a_file() -> None:  # as a volume unmounted under a running process
        shutil.rmtree(storage)
        storage.write_text("not a directory")

    status, body = await readiness(migrated.model_copy(update={"storage_dir": storage}), replaced_by_a_file)
    assert (status, body["storage"], body["database"], body["migrations"]) == (503, "not_writable", "ok", "at_head")


async def test_an_unreachable_database_is_not_ready(tmp_path: Path) -> None:
    unreachable = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'no-such-directory' / 'db.sqlite'}", storage_dir=tmp_path
    )
    status, body = await readiness(unreachable)
    assert (status, body["database"], body["migrations"], body["migration"]) == (503, "unavailable", "unknown", None)


async def run_command(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("STORAGE_DIR", str(settings.storage_dir))
    return await asyncio.to_thread(main, list(args))


async def test_db_check_fails_until_the_database_is_at_head(
    scratch_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_command(scratch_settings, monkeypatch, "db", "check") == 1
    assert "never migrated" in capsys.readouterr().err
    assert await run_command(scratch_settings, monkeypatch, "db", "upgrade") == 0
    capsys.readouterr()
    assert await run_command(scratch_settings, monkeypatch, "db", "check", "--json") == 0
    head = migrations_head()
    assert json.loads(capsys.readouterr().out) == {"current": head, "head": head, "at_head": True}
    await asyncio.to_thread(db_downgrade, scratch_settings, "-1")
    assert await run_command(scratch_settings, monkeypatch, "db", "current", "--json") == 0  # current only reports
    reported = json.loads(capsys.readouterr().out)
    assert reported["at_head"] is False
    assert reported["current"] != head


async def test_db_history_lists_every_migration_from_base_to_head(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], scratch_settings: Settings
) -> None:
    assert await run_command(scratch_settings, monkeypatch, "db", "history", "--json") == 0
    history = json.loads(capsys.readouterr().out)
    assert history[0]["down_revision"] is None
    assert history[-1]["revision"] == migrations_head()
    assert all(later["down_revision"] == earlier["revision"] for earlier, later in itertools.pairwise(history))
    assert all(entry["message"] for entry in history)
