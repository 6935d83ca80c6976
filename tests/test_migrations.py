"""The migrations build exactly the models' schema, and can be undone and redone."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from alembic import command
from sqlalchemy import column, func, inspect, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from marketplace.accounts.models import Organization
from marketplace.audit.service import AuditService
from marketplace.catalog.models import Product, ProductVersion
from marketplace.catalog.search_text import search_document
from marketplace.cli import db_downgrade, db_upgrade
from marketplace.compliance.contract import Stage
from marketplace.compliance.engine import evaluate
from marketplace.compliance.models import SnapshotPart, StoredVerdict
from marketplace.compliance.rulebook import load_rulebook
from marketplace.compliance.service import ComplianceService
from marketplace.compliance.snapshots import Snapshot
from marketplace.config import Settings
from marketplace.db import alembic_config, create_engine, create_sessionmaker, table_of
from marketplace.tables import metadata
from tests.fixtures.database import is_postgres_url
from tests.rules.snapshots import (
    BUYER,
    INTERMEDIARY,
    NOW,
    TRADE,
    admission_snapshot,
    delivery_snapshot,
    listing_snapshot,
    replace,
    settlement_snapshot,
    trade_snapshot,
)


async def table_names(settings: Settings) -> set[str]:
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    # the FTS5 index, its shadow tables and the search rows on SQLite (migrations 0004 and 0026) and the job
    # engine's tables on PostgreSQL (0016) are created outside the models
    outside = ("product_version_fts", "product_version_search", "procrastinate_")
    return {name for name in names if not name.startswith(outside)} - {"alembic_version"}


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
    the triggers that keep the FTS5 index of migration 0004 in step; it must create them again.
    Migration 0026 replaces them with those of the search rows, and its downgrade puts them back."""
    if is_postgres_url(scratch_settings.database_url):
        pytest.skip("FTS5 triggers exist on SQLite only")
    before_0026 = {"product_version_fts_insert", "product_version_fts_update", "product_version_fts_delete"}
    search_rows = {f"product_version_search_{name}" for name in ("insert", "update", "text", "delete")}
    await asyncio.to_thread(db_upgrade, scratch_settings)
    assert await search_triggers(scratch_settings) == search_rows
    await asyncio.to_thread(db_downgrade, scratch_settings, "0004")
    assert await search_triggers(scratch_settings) == before_0026
    await asyncio.to_thread(db_upgrade, scratch_settings)
    assert await search_triggers(scratch_settings) == search_rows


# Verdicts as they were stored before migration 0015: each with its whole snapshot.
JUDGED_BEFORE_0015 = [
    (Stage.TRADE, trade_snapshot()),
    (Stage.TRADE, trade_snapshot(trade=replace(TRADE, scenario="credit_scoring"))),
    (Stage.TRADE, trade_snapshot(intermediary=INTERMEDIARY)),
    (Stage.ADMISSION, admission_snapshot(BUYER)),
    (Stage.LISTING, listing_snapshot()),
    (Stage.DELIVERY, delivery_snapshot()),
    (Stage.SETTLEMENT, settlement_snapshot()),
]

# The verdict table as revision 0014 left it: no `parts`.
VERDICT_AT_0014 = table(
    "verdict", *(column(c.name, c.type) for c in table_of(StoredVerdict).columns if c.name != "parts")
)


def whole_verdict_row(stage: Stage, snapshot: Snapshot) -> dict[str, Any]:
    verdict = evaluate(load_rulebook(), stage, snapshot, NOW)
    return {
        "id": uuid.uuid4(),
        "stage": stage,
        "subject_type": "order",
        "subject_id": str(uuid.uuid4()),
        "decision": verdict.decision,
        "findings": [f.as_json() for f in verdict.findings],
        "rulebook_fingerprint": verdict.rulebook_fingerprint,
        "snapshot": snapshot.model_dump(mode="json"),
        "created_at": NOW,
    }


async def test_verdicts_stored_whole_are_split_into_shared_parts_and_replay_alike(scratch_settings: Settings) -> None:
    """Migration 0015 on verdicts stored before it: each snapshot read back is the one judged and replays to
    the stored decision and findings; the parts are shared, with the digests the service computes; downgrade
    puts every snapshot back whole."""
    await asyncio.to_thread(db_upgrade, scratch_settings, "0014")
    rows = [whole_verdict_row(stage, snapshot) for stage, snapshot in JUDGED_BEFORE_0015]
    assert {row["decision"].value for row in rows} >= {"accepted", "rejected"}
    engine = create_engine(scratch_settings)
    async with engine.begin() as connection:
        await connection.execute(VERDICT_AT_0014.insert(), rows)

    await asyncio.to_thread(db_upgrade, scratch_settings)

    rulebook = load_rulebook()
    async with create_sessionmaker(engine)() as session:
        compliance = ComplianceService(session, rulebook, AuditService(session))
        found = [await compliance.verdict(row["id"]) for row in rows]
        stored = [verdict for verdict in found if verdict is not None]
        snapshots = await compliance.snapshots(stored)
        parts = await session.scalar(select(func.count()).select_from(SnapshotPart))
        again, _ = compliance.assess(stage=Stage.TRADE, subject_type="order", subject_id="x", snapshot=trade_snapshot())
    for (stage, judged), row, verdict, snapshot in zip(JUDGED_BEFORE_0015, rows, stored, snapshots, strict=True):
        assert snapshot == judged
        replayed = evaluate(rulebook, stage, snapshot, verdict.created_at)
        assert (replayed.decision, replayed.rulebook_fingerprint) == (row["decision"], row["rulebook_fingerprint"])
        assert [f.as_json() for f in replayed.findings] == row["findings"] == verdict.findings
    trades = [verdict.parts for verdict in stored[:3]]
    assert trades[0] == trades[1] == {role: trades[2][role] for role in ("provider", "buyer", "product", "plan")}
    assert stored[3].parts == {"organization": trades[0]["buyer"]}  # the admitted buyer, later buying
    # provider, buyer, intermediary, product and plan: once each, whatever the number of verdicts naming them
    assert parts == 5
    assert again.verdict["parts"] == trades[0]  # the service's digests are the migration's

    await asyncio.to_thread(db_downgrade, scratch_settings, "0014")
    async with engine.connect() as connection:
        query = select(VERDICT_AT_0014.c.id, VERDICT_AT_0014.c.snapshot)
        whole = dict((await connection.execute(query)).all())
    await engine.dispose()
    assert whole == {row["id"]: row["snapshot"] for row in rows}


# The verdict table as revision 0019 left it: no `failed_checks`.
VERDICT_AT_0019 = table(
    "verdict", *(column(c.name, c.type) for c in table_of(StoredVerdict).columns if c.name != "failed_checks")
)


async def test_failed_checks_are_filled_from_the_findings_of_verdicts_stored_before(
    scratch_settings: Settings,
) -> None:
    """Migration 0021 on verdicts stored before it: each one's failed checks are its failed findings' rule and
    check, in their order, as the service now writes them; downgrade drops them."""
    await asyncio.to_thread(db_upgrade, scratch_settings, "0019")
    rows = [whole_verdict_row(stage, snapshot) for stage, snapshot in JUDGED_BEFORE_0015]
    expected = {
        row["id"]: [{"rule_id": f["rule_id"], "check": f["check"]} for f in row["findings"] if f["outcome"] == "fail"]
        for row in rows
    }
    assert any(expected.values()), "some verdicts failed checks"
    assert not all(expected.values()), "some failed none"
    engine = create_engine(scratch_settings)
    async with engine.begin() as connection:
        await connection.execute(VERDICT_AT_0019.insert(), rows)

    await asyncio.to_thread(db_upgrade, scratch_settings)

    async with create_sessionmaker(engine)() as session:
        stored = (await session.execute(select(StoredVerdict.id, StoredVerdict.failed_checks))).all()
        compliance = ComplianceService(session, load_rulebook(), AuditService(session))
        for stage, snapshot in JUDGED_BEFORE_0015:
            assessed, _ = compliance.assess(stage=stage, subject_type="order", subject_id="x", snapshot=snapshot)
            row = next(r for r in rows if r["stage"] == stage and r["snapshot"] == snapshot.model_dump(mode="json"))
            assert assessed.verdict["failed_checks"] == expected[row["id"]]
    assert dict(stored) == expected

    await asyncio.to_thread(db_downgrade, scratch_settings, "0019")
    await engine.dispose()


# Versions in every state, their words repeated unevenly so that bm25 tells them apart.
SEARCHED_TEXTS = [
    ("listed", "贵阳 traffic traffic congestion 交通路况"),
    ("listed", "weather observations weather 气象观测 贵阳"),
    ("draft", "traffic draft 贵阳交通"),
    ("superseded", "weather weather weather hourly"),
    ("listed", "tourism visitors 旅游客流 traffic"),
]
MATCHES = ['"traffic"', '"weather"', '"贵阳"', '"tra"*', '"交通" AND "traffic"', '"nothing"']
RANKED_BEFORE_0026 = text("SELECT version_id, rank FROM product_version_fts WHERE product_version_fts MATCH :match")
RANKED_AFTER_0026 = text(
    "SELECT s.id, f.rank FROM product_version_fts f JOIN product_version_search s ON s.fts_rowid = f.rowid "
    "WHERE product_version_fts MATCH :match"
)


async def ranked(settings: Settings, query: Any) -> list[set[tuple[str, float]]]:
    engine = create_engine(settings)
    async with engine.connect() as connection:
        found = [set((await connection.execute(query, {"match": match})).tuples()) for match in MATCHES]
    await engine.dispose()
    return found


async def test_search_rows_index_every_version_with_the_same_matches_and_ranks(scratch_settings: Settings) -> None:
    """Migration 0026 on SQLite, on versions stored before it: the contentless index keyed by the search rows
    matches the same versions as the index it replaces, with the same bm25 ranks (so the same order), and its
    downgrade gives the old index back."""
    if is_postgres_url(scratch_settings.database_url):
        pytest.skip("FTS5 exists on SQLite only")
    await asyncio.to_thread(db_upgrade, scratch_settings, "0025")
    engine = create_engine(scratch_settings)
    async with create_sessionmaker(engine)() as session:
        provider = Organization(name="P", uscc="91520100MA0000001X", kind="provider", jurisdiction="520100")
        session.add(provider)
        for status, words in SEARCHED_TEXTS:
            product = Product(organization_id=provider.id)
            session.add(product)
            session.add(
                ProductVersion(
                    product_id=product.id,
                    organization_id=provider.id,
                    version=1,
                    status=status,
                    title=words,
                    category="transport",
                    industry_code="5430",
                    grade="general",
                    data_source="self_generated",
                    search_text=search_document(words),
                )
            )
        await session.commit()
    await engine.dispose()
    before = await ranked(scratch_settings, RANKED_BEFORE_0026)
    assert [len(found) for found in before] == [3, 2, 3, 3, 2, 0]

    await asyncio.to_thread(db_upgrade, scratch_settings)
    assert await ranked(scratch_settings, RANKED_AFTER_0026) == before

    await asyncio.to_thread(db_downgrade, scratch_settings, "0025")
    assert await ranked(scratch_settings, RANKED_BEFORE_0026) == before
