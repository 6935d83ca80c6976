"""Benchmark: the data API (rows and aggregates) against `/health` on the same server, in the same run.

Builds a fresh PostgreSQL database with the migrations, serves it with the production server
(`marketplace serve --workers 2`, granian) on loopback, and seeds through the API an administrator, an
admitted provider with a product listed for API and privacy-computing delivery, an admitted buyer with one
licence of each mode, and a generated 100,000-row CSV hosted as the product's dataset. Then, with the same
load generator (aiohttp, `--connections` connections from a process of its own) for the same time each:
`GET /health`; `GET /api/v1/data/{licence}/rows?limit=10` at pages spread over the file, all on the API
licence; the same filtered (`where=district:eq:...`, most also on `kind`: 50 filters of 1,250 to 5,000
matching rows, pages spread over each); `POST /api/v1/data/{licence}/aggregate` (a grouped, filtered count and
sum, differentially private), all on the privacy-computing licence. The access keys' rate is raised out of the
way; everything else is metered as usual.

Prints, per kind of call, calls/s, p50 and p99, the CPU time per call of the app server and of the
PostgreSQL backends, the ratio to `/health` calls/s (targets: rows >= 0.25, filtered or not, aggregates >= 0.05),
and the
wait events of the database's active backends sampled from `pg_stat_activity` during the load (target: no
`Lock/transactionid`). Afterwards the licences' usage must equal the calls answered.

    .venv/bin/python bench/data_api.py [--rows 100000] [--duration 10] [--warmup 2] [--connections 16]
        [--workers 2] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
import httpx

from bench.orders import Seeder, _ok, cpu_sample, create_admin, serving
from marketplace.cli import db_upgrade
from marketplace.config import Settings
from marketplace.demo.factories import plan_body, product_body
from tests.fixtures.database import create_postgres_database, drop_postgres_database

MAX_DURATION = 120
ROWS_TARGET = 0.25
AGGREGATE_TARGET = 0.05
PAGE = 10
DISTRICTS = [f"5201{n:02d}" for n in range(20)]
KINDS = ["bus", "taxi", "metro", "bike"]
FIELDS = [
    {"name": "district", "type": "string"},
    {"name": "kind", "type": "string"},
    {"name": "amount", "type": "integer"},
    {"name": "person", "type": "string"},
]
COMPUTATION = {
    "group_by": ["district", "kind"],
    "filter": ["kind", "district"],
    "measure": ["amount"],
    # The smallest epsilon an answer may spend, so that the budget outlasts the run.
    "epsilon_per_query": 0.001,
    "epsilon_budget": 10.0,
    "bounds": {"amount": {"lower": 0, "upper": 2000}},
}
AGGREGATE_BODY = {
    "group_by": ["district"],
    "metrics": [{"fn": "count"}, {"fn": "sum", "column": "amount"}],
    "filters": [{"column": "kind", "op": "ne", "value": "bike"}],
}


def write_dataset(path: Path, rows: int) -> None:
    """A CSV of `rows` trips: district code (text with a leading zero kept), kind, amount, person."""
    with path.open("w") as out:
        out.write("district,kind,amount,person\n")
        for n in range(rows):
            out.write(f"{DISTRICTS[n % 20]},{KINDS[n // 20 % 4]},{n * 7919 % 2000},P{n:06d}\n")


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    urls: list[str]  # spread over the calls, in turn
    authorization: str | None
    body: dict[str, Any] | None


def filtered_pages(base_url: str, licence: str, rows: int) -> list[str]:
    """Pages of rows of one district, or of one district and kind, at offsets spread over their matching rows."""
    pages = []
    for n in range(160):
        district, kind = DISTRICTS[n % 20], KINDS[n // 20 % 4]
        where = f"where=district:eq:%22{district}%22" + (f"&where=kind:eq:{kind}" if n % 2 else "")
        matching = rows // 20 // (4 if n % 2 else 1)
        pages.append(f"{base_url}/api/v1/data/{licence}/rows?{where}&limit={PAGE}&offset={n * 997 % (matching - PAGE)}")
    return pages


async def seed(base_url: str, settings: Settings, dataset: Path, rows: int) -> tuple[Target, Target, Target]:
    """The rows targets (an API licence), whole and filtered, and the aggregate target (a privacy-computing
    licence)."""
    content = await asyncio.to_thread(dataset.read_bytes)
    admin_email = await create_admin(settings)
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        seeder = Seeder(client)
        provider, provider_org, buyer, buyer_org = await seeder.provider_and_buyer(admin_email)
        headers = {"Authorization": provider}
        body = product_body(
            provider_org, serial=0, delivery_modes=["api", "privacy_computing"], computation=COMPUTATION, fields=FIELDS
        )
        product_id = str(_ok(await client.post("/api/v1/products", json=body, headers=headers))["id"])
        plan = plan_body(1_000_000)
        plan_id = str(_ok(await client.post(f"/api/v1/products/{product_id}/plans", json=plan, headers=headers))["id"])
        sample = b"".join(content.splitlines(keepends=True)[:50])
        files = {"file": ("sample.csv", sample, "text/csv")}
        _ok(await client.post(f"/api/v1/products/{product_id}/samples", files=files, headers=headers))
        # hosted before it is submitted: a version lists only once what it sells can be delivered (R1)
        hosted = {**headers, "Content-Type": "text/csv"}
        _ok(await client.put(f"/api/v1/products/{product_id}/dataset", content=content, headers=hosted))
        submitted = _ok(await client.post(f"/api/v1/products/{product_id}/submit", headers=headers), 200)
        if submitted["status"] != "listed":
            raise RuntimeError(f"product not listed: {submitted['verdict']}")
        keys = {}
        for mode in ("api", "privacy_computing"):
            order = {
                "product_id": product_id,
                "plan_id": plan_id,
                "buyer_organization_id": buyer_org,
                "scenario": "traffic_planning",
                "delivery_mode": mode,
                "quantity": 1,
                "accept_licence_terms": True,
            }
            placed = _ok(await client.post("/api/v1/orders", json=order, headers={"Authorization": buyer}))
            _ok(await client.post(f"/api/v1/orders/{placed['id']}/pay", headers={"Authorization": buyer}), 200)
            access = _ok(
                await client.get(f"/api/v1/orders/{placed['id']}/delivery", headers={"Authorization": buyer}), 200
            )
            keys[mode] = (str(access["licence_id"]), f"Bearer {access['api_key']}")
    rows_licence, rows_key = keys["api"]
    pages = [f"{base_url}/api/v1/data/{rows_licence}/rows?limit={PAGE}&offset={n * 997 % 99_990}" for n in range(64)]
    private_licence, private_key = keys["privacy_computing"]
    aggregate_url = f"{base_url}/api/v1/data/{private_licence}/aggregate"
    return (
        Target("rows", "GET", pages, rows_key, None),
        Target("filtered", "GET", filtered_pages(base_url, rows_licence, rows), rows_key, None),
        Target("aggregate", "POST", [aggregate_url], private_key, AGGREGATE_BODY),
    )


# the load (in a process of its own, so that its CPU time is not the server's)


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, answered calls in the window only
    errors: list[str] = field(default_factory=list)


def drive(target: Target, connections: int, warmup: float, duration: float) -> LoadResult:
    return asyncio.run(_drive(target, connections, warmup, duration))


async def _drive(target: Target, connections: int, warmup: float, duration: float) -> LoadResult:
    result = LoadResult()
    headers = {"Authorization": target.authorization} if target.authorization else {}
    turn = iter(range(10**9))
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter()
        window_start, window_end = started + warmup, started + warmup + duration

        async def one_connection() -> None:
            while (sent := time.perf_counter()) < window_end:
                url = target.urls[next(turn) % len(target.urls)]
                async with session.request(target.method, url, json=target.body, headers=headers) as response:
                    text = await response.text()
                done = time.perf_counter()
                if response.status != 200 and len(result.errors) < 3:
                    result.errors.append(f"{response.status}: {text[:300]}")
                if window_start <= sent and done <= window_end:
                    result.statuses[response.status] += 1
                    if response.status == 200:
                        result.latencies.append(done - sent)

        await asyncio.gather(*(one_connection() for _ in range(connections)))
    return result


# the database's wait events, sampled during the load


async def sample_waits(
    admin_dsn: str, database: str, stop: asyncio.Event, every: float = 0.02
) -> tuple[Counter[str], int]:
    """(wait event -> backends seen in it, samples taken) of the active backends of `database`."""
    seen: Counter[str] = Counter()
    samples = 0
    connection = await asyncpg.connect(admin_dsn)
    try:
        while not stop.is_set():
            rows = await connection.fetch(
                "SELECT wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()",
                database,
            )
            samples += 1
            for row in rows:
                seen[f"{row['wait_event_type'] or 'CPU'}/{row['wait_event'] or 'running'}"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        await connection.close()
    return seen, samples


@dataclass
class Measured:
    name: str
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float  # per answered call
    postgres_cpu_ms: float
    statuses: Counter[int]
    errors: list[str]
    waits: Counter[str]
    samples: int


async def measure(target: Target, server_pid: int, database: str, admin_dsn: str, args: argparse.Namespace) -> Measured:
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        await loop.run_in_executor(pool, time.sleep, 0.5)  # the load process starts before any timing
        load = loop.run_in_executor(pool, drive, target, args.connections, args.warmup, args.duration)
        await asyncio.sleep(args.warmup)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_waits(admin_dsn, database, stop))
        before = cpu_sample(server_pid, database)
        await asyncio.sleep(args.duration)
        after = cpu_sample(server_pid, database)
        stop.set()
        waits, samples = await sampler
        result: LoadResult = await load
    answered = max(1, result.statuses[200])
    ticks = os.sysconf("SC_CLK_TCK")
    latencies = sorted(result.latencies)
    return Measured(
        name=target.name,
        calls_per_second=result.statuses[200] / args.duration,
        p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
        p99_ms=1000 * latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan"),
        server_cpu_ms=1000 * (after.server - before.server) / ticks / answered,
        postgres_cpu_ms=1000 * after.postgres_since(before) / ticks / answered,
        statuses=result.statuses,
        errors=result.errors,
        waits=waits,
        samples=samples,
    )


async def usage_calls(admin_dsn: str) -> list[tuple[str, int, int]]:
    """(endpoint, usage events, usage rows' calls) per endpoint: what the metering recorded."""
    connection = await asyncpg.connect(admin_dsn)
    try:
        rows = await connection.fetch(
            "SELECT e.endpoint, count(*) AS events, "
            "(SELECT sum(u.calls) FROM licence_usage u WHERE u.licence_id = e.licence_id) AS calls "
            "FROM usage_event e GROUP BY e.endpoint, e.licence_id ORDER BY e.endpoint"
        )
    finally:
        await connection.close()
    return [(str(row["endpoint"]), int(row["events"]), int(row["calls"])) for row in rows]


def print_measured(run: Measured, health: float) -> None:
    ratio = run.calls_per_second / health if health else float("nan")
    others = {status: n for status, n in run.statuses.items() if status != 200}
    print(
        f"  {run.name:>9}: {run.calls_per_second:8.1f} calls/s  p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms  "
        f"CPU per call: server {run.server_cpu_ms:5.2f} ms, PostgreSQL {run.postgres_cpu_ms:5.2f} ms  "
        f"ratio to /health {ratio:.3f}  other statuses {others or 'none'}"
    )
    waits = ", ".join(f"{event} {n}" for event, n in run.waits.most_common()) or "no active backend seen"
    print(f"             wait events of active backends over {run.samples} samples: {waits}")
    for error in run.errors:
        print(f"             e.g. {error}")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the hosted dataset")
    parser.add_argument("--duration", type=int, default=10, help="seconds of measured load per kind of call")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if not 1 <= args.duration <= MAX_DURATION or not 1 <= args.connections <= 256:
        parser.error(f"--duration is 1 to {MAX_DURATION} s and --connections 1 to 256")
    if not 1_000 <= args.rows <= 10_000_000:
        parser.error("--rows is 1,000 to 10,000,000")
    server_url = args.postgres.rpartition("/")[0]
    name = f"marketplace_bench_data_{uuid.uuid4().hex[:8]}"
    admin_dsn = f"{server_url.replace('postgresql+asyncpg', 'postgresql')}/{name}"
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    os.environ["ACCESS_KEY_RATE_LIMIT_PER_MINUTE"] = str(10**9)  # the server inherits it: the rate is not measured
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp)
        dataset = storage / "dataset.csv"
        await asyncio.to_thread(write_dataset, dataset, args.rows)
        settings = Settings(database_url=f"{server_url}/{name}", storage_dir=storage, jwt_ttl_seconds=7200)
        await create_postgres_database(f"{server_url}/postgres", name)
        try:
            await asyncio.to_thread(db_upgrade, settings)
            with serving(settings.database_url, storage, args.workers) as (base_url, server_pid):
                rows, filtered, aggregate = await seed(base_url, settings, dataset, args.rows)
                print(
                    f"seeded a product with a {args.rows:,}-row dataset, an API licence and a privacy-computing one; "
                    f"{args.connections} connections, {args.workers} workers, {args.duration} s per kind of call "
                    f"after {args.warmup:.0f} s of warm-up:"
                )
                health = Target("/health", "GET", [f"{base_url}/health"], None, None)
                runs = [
                    await measure(t, server_pid, name, admin_dsn, args) for t in (health, rows, filtered, aggregate)
                ]
            metered = await usage_calls(admin_dsn)
        finally:
            await drop_postgres_database(f"{server_url}/postgres", name)
    health_rate = runs[0].calls_per_second
    for run in runs:
        print_measured(run, health_rate)
    for endpoint, events, calls in metered:
        print(f"  metered {endpoint}: {events} usage events, the licence's usage counts {calls} calls")
    rows_ratio, filtered_ratio, aggregate_ratio = (run.calls_per_second / health_rate for run in runs[1:])
    locked = sum(n for run in runs for event, n in run.waits.items() if event == "Lock/transactionid")
    verdict = "met" if rows_ratio >= ROWS_TARGET else "NOT met"
    print(f"rows / health {rows_ratio:.3f} (target >= {ROWS_TARGET}): {verdict}")
    verdict = "met" if filtered_ratio >= ROWS_TARGET else "NOT met"
    print(f"filtered rows / health {filtered_ratio:.3f} (target >= {ROWS_TARGET}): {verdict}")
    verdict = "met" if aggregate_ratio >= AGGREGATE_TARGET else "NOT met"
    print(f"aggregate / health {aggregate_ratio:.3f} (target >= {AGGREGATE_TARGET}): {verdict}")
    print(f"backends seen waiting on Lock/transactionid: {locked} (target 0): {'met' if not locked else 'NOT met'}")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
