"""Benchmark: catalog search over 100,000 listed products, on PostgreSQL and on SQLite.

Seeds each database (a fresh one, built by the migrations) with 100,000 listed product versions
of generated but realistic descriptions and their search vocabulary, then runs 1,000 mixed queries
(full text in Chinese and English, English prefixes and misspelt words, filters, sorting, facet
counts) through the same search code the API uses, and prints
p50 and p95 in milliseconds for each database side by side. Targets: p95 <= 50 ms on PostgreSQL,
<= 60 ms on SQLite (the embedded default).

    .venv/bin/python bench/search.py [--products 100000] [--queries 1000]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text

from marketplace.accounts.models import Organization
from marketplace.catalog.models import Product, ProductStatus, ProductVersion, SearchTerm, VersionStatus
from marketplace.catalog.repository import CatalogSearch, SearchFilters
from marketplace.catalog.search_text import query_terms, search_document, vocabulary
from marketplace.cli import db_upgrade
from marketplace.config import Settings
from marketplace.db import create_engine, create_sessionmaker
from marketplace.kit import clock
from marketplace.kit.codelists import industries
from marketplace.kit.ids import new_id
from tests.fixtures.database import create_postgres_database, drop_postgres_database

TARGET_P95_MS = {"PostgreSQL": 50.0, "SQLite": 60.0}
PLACES = ["贵阳", "遵义", "六盘水", "安顺", "毕节", "铜仁", "黔东南", "黔南", "黔西南", "贵安新区"]
SUBJECTS = [
    "道路路况",
    "公交客流",
    "气象观测",
    "电力负荷",
    "企业信用",
    "农产品价格",
    "医疗机构",
    "旅游客流",
    "物流轨迹",
    "环境监测",
    "房产交易",
    "通信基站",
    "水文监测",
    "工业能耗",
    "消费趋势",
]
QUALIFIERS = ["实时", "逐小时", "月度", "年度", "脱敏", "汇总", "明细", "历史"]
ENGLISH = [
    "traffic",
    "transit",
    "weather",
    "power",
    "credit",
    "agriculture",
    "health",
    "tourism",
    "logistics",
    "environment",
    "housing",
    "telecom",
    "hydrology",
    "energy",
    "consumer",
]
CATEGORIES = [
    "transport",
    "meteorology",
    "energy",
    "finance",
    "agriculture",
    "healthcare",
    "culture_tourism",
    "commerce",
    "environment",
    "telecom",
    "manufacturing",
    "geospatial",
]
REGIONS = ["520100", "520200", "520300", "520400", "520500", "520600", "522300", "522600", "522700"]
MODES = [["file"], ["api"], ["file", "api"], ["privacy_computing"], ["api", "privacy_computing"]]
GRADES = ["general"] * 8 + ["important"] * 2


def generated_version(
    rng: random.Random, product_id: uuid.UUID, organization_id: uuid.UUID, codes: list[str]
) -> dict[str, Any]:
    n = rng.randrange(len(SUBJECTS))
    place, qualifier = rng.choice(PLACES), rng.choice(QUALIFIERS)
    title = f"{place}{qualifier}{SUBJECTS[n]}数据 {place} {ENGLISH[n]} data"
    description = f"{place}{SUBJECTS[n]}，{qualifier}更新，覆盖{rng.randint(3, 90)}个区县。 {ENGLISH[n]} records."
    tags = [ENGLISH[n], SUBJECTS[n][:2]]
    category, industry_code = CATEGORIES[n % len(CATEGORIES)], rng.choice(codes)
    now = clock.now()
    return {
        "id": new_id(),
        "product_id": product_id,
        "organization_id": organization_id,
        "version": 1,
        "status": VersionStatus.LISTED,
        "title": title,
        "description": description,
        "tags": tags,
        "category": category,
        "industry_code": industry_code,
        "regions": rng.sample(REGIONS, rng.randint(1, 3)),
        "grade": rng.choice(GRADES),
        "contains_personal_info": rng.random() < 0.2,
        "data_source": "self_generated",
        "permitted_scenarios": ["analysis"],
        "delivery_modes": rng.choice(MODES),
        "details": {},
        "search_text": search_document(title, description, " ".join(tags), category, industry_code),
        "min_price_minor": rng.randrange(0, 5_000_000, 100),
        "listed_at": now,
        "created_at": now,
        "updated_at": now,
    }


def generated_query(rng: random.Random, providers: list[uuid.UUID]) -> tuple[SearchFilters, str, str]:
    """A query as a buyer types it, its sort, and its kind of text (for the breakdown)."""
    n = rng.randrange(len(SUBJECTS))
    word = ENGLISH[n]
    cut = rng.randrange(1, len(word))
    misspelt = word[:cut] + word[cut + 1 :] if len(word) > 5 else word  # a character dropped
    # as typed: whole, a prefix, or with a typo
    english = rng.choice([(word, "English word"), (word[:3], "English prefix"), (misspelt, "English misspelt")])
    texts = [
        (SUBJECTS[n], "Chinese subject"),
        english,
        (rng.choice(PLACES), "Chinese place"),
        (f"{rng.choice(PLACES)} {SUBJECTS[n][:2]}", "place + subject"),
        ("", "no text"),
        ("", "no text"),
    ]
    q, kind = rng.choice(texts)
    filters = SearchFilters(
        terms=tuple(query_terms(q)),
        category=rng.choice([None, None, CATEGORIES[n % len(CATEGORIES)]]),
        region=rng.choice([None, None, rng.choice(REGIONS)]),
        grade=rng.choice([None, None, None, "important"]),
        delivery_mode=rng.choice([None, None, "api", "file"]),
        min_price=rng.choice([None, None, 100_000]),
        max_price=rng.choice([None, None, 2_000_000]),
        provider=rng.choice([None] * 5 + providers[:1]),
    )
    return filters, rng.choice(["relevance", "relevance", "price", "newest"]), kind


async def seed(settings: Settings, products: int) -> list[uuid.UUID]:
    await asyncio.to_thread(db_upgrade, settings)
    engine = create_engine(settings)
    rng = random.Random(7)
    codes = [code for code, entry in industries().items() if entry.level == "class"]
    providers: list[uuid.UUID] = []
    async with engine.begin() as connection:
        for p in range(20):
            organization = {
                "id": new_id(),
                "name": f"Provider {p}",
                "uscc": f"91520100MA{p:08d}",
                "kind": "provider",
                "jurisdiction": "520100",
                "status": "admitted",
                "dsmm_level": 3,
                "max_data_grade": "important",
                "penalties_last_3y": 0,
                "security_certifications": [],
                "created_at": clock.now(),
                "updated_at": clock.now(),
            }
            await connection.execute(insert(Organization).values(**organization))
            providers.append(organization["id"])
        batch = 2_000
        words: set[str] = set()
        for start in range(0, products, batch):
            rows = []
            versions = []
            for _ in range(min(batch, products - start)):
                product_id, organization_id = new_id(), rng.choice(providers)
                now = clock.now()
                rows.append(
                    {
                        "id": product_id,
                        "organization_id": organization_id,
                        "status": ProductStatus.LISTED,
                        "latest_version": 1,
                        "listed_version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                versions.append(generated_version(rng, product_id, organization_id, codes))
            await connection.execute(insert(Product), rows)
            await connection.execute(insert(ProductVersion), versions)
            words.update(word for version in versions for word in vocabulary(version["search_text"]))
        # what listing adds to the vocabulary, version by version
        await connection.execute(insert(SearchTerm), [{"term": word} for word in sorted(words)])
    # What autovacuum and a periodic ANALYZE do in service: planner statistics and, on PostgreSQL,
    # the visibility map that lets an index-only scan skip the table.
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    await engine.dispose()
    return providers


@dataclass
class Timing:
    wall_ms: float
    cpu_ms: float  # this process's CPU (every thread): SQLite's work and ours; on PostgreSQL ours alone
    kinds: tuple[str, ...]  # the breakdown's rows this query counts in


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(int(len(ordered) * 0.95) - 1, 0)]


def query_kinds(filters: SearchFilters, sort: str, text: str, offset: int) -> tuple[str, ...]:
    filtered = sum(
        value is not None
        for value in (
            filters.category,
            filters.region,
            filters.grade,
            filters.delivery_mode,
            filters.min_price,
            filters.max_price,
            filters.provider,
        )
    )
    json_lists = " (region or delivery mode)" if filters.region or filters.delivery_mode else ""
    return (
        f"text: {text}",
        f"sort: {sort}" + (" (with text)" if filters.terms else " (no text)"),
        f"filters: {min(filtered, 3)}{'+' if filtered >= 3 else ''}{json_lists}",
        f"page: offset {offset}",
    )


async def run_queries(settings: Settings, providers: list[uuid.UUID], queries: int) -> tuple[list[Timing], int]:
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    rng = random.Random(11)
    timings: list[Timing] = []
    found = 0
    async with sessions() as session:
        search = CatalogSearch(session)
        for _ in range(20):  # warm up
            filters, sort, _ = generated_query(rng, providers)
            await search.search(filters, sort=sort, limit=20, offset=0)
        for _ in range(queries):
            filters, sort, text = generated_query(rng, providers)
            offset = rng.choice([0, 0, 20])
            wall, cpu = time.perf_counter(), time.process_time()
            _, total, _ = await search.search(filters, sort=sort, limit=20, offset=offset)
            wall, cpu = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
            timings.append(Timing(wall, cpu, query_kinds(filters, sort, text, offset)))
            found += total
    await engine.dispose()
    return timings, found // queries


def print_breakdown(timings: list[Timing]) -> None:
    """p50 and p95 by kind of query: which kinds make the tail."""
    rows: dict[str, list[Timing]] = {}
    for timing in timings:
        for kind in timing.kinds:
            rows.setdefault(kind, []).append(timing)
    print(f"  {'kind':<48}{'queries':>8}{'p50 ms':>9}{'p95 ms':>9}{'cpu p50':>9}{'cpu p95':>9}")
    for kind in sorted(rows):
        wall_p50, wall_p95 = percentiles([t.wall_ms for t in rows[kind]])
        cpu_p50, cpu_p95 = percentiles([t.cpu_ms for t in rows[kind]])
        print(f"  {kind:<48}{len(rows[kind]):>8}{wall_p50:>9.1f}{wall_p95:>9.1f}{cpu_p50:>9.1f}{cpu_p95:>9.1f}")


async def measure(name: str, settings: Settings, products: int, queries: int) -> tuple[float, float]:
    started = time.perf_counter()
    providers = await seed(settings, products)
    seeded = time.perf_counter() - started
    timings, mean_hits = await run_queries(settings, providers, queries)
    p50, p95 = percentiles([t.wall_ms for t in timings])
    cpu_p50, cpu_p95 = percentiles([t.cpu_ms for t in timings])
    print(
        f"{name:<10} seeded {products} products in {seeded:5.1f} s; {queries} queries: "
        f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (mean {mean_hits} matches per query; "
        f"this process's CPU per query p50 {cpu_p50:.1f} ms p95 {cpu_p95:.1f} ms)"
    )
    print_breakdown(timings)
    return p50, p95


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", storage_dir=Path(tmp))
        server = args.postgres.rpartition("/")[0]
        name = f"marketplace_bench_{uuid.uuid4().hex[:8]}"
        await create_postgres_database(f"{server}/postgres", name)
        try:
            postgres = Settings(database_url=f"{server}/{name}", storage_dir=Path(tmp))
            pg_p50, pg_p95 = await measure("PostgreSQL", postgres, args.products, args.queries)
        finally:
            await drop_postgres_database(f"{server}/postgres", name)
        lite_p50, lite_p95 = await measure("SQLite", sqlite, args.products, args.queries)
    print(f"ratio SQLite/PostgreSQL: p50 {lite_p50 / pg_p50:.2f}  p95 {lite_p95 / pg_p95:.2f}")
    for name, p95 in (("PostgreSQL", pg_p95), ("SQLite", lite_p95)):
        target = TARGET_P95_MS[name]
        print(f"target {name} p95 <= {target:.0f} ms: {'met' if p95 <= target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
