"""Benchmark: order placement over HTTP on PostgreSQL, against pgbench (TPC-B) on the same machine.

Builds a fresh PostgreSQL database with the migrations, serves it with the production server
(`marketplace serve`, granian) on loopback, and seeds a market through the API: an administrator,
an admitted provider with listed products (a few with limited licences, far more than the run can
sell, most unlimited), each with two price plans, a sample and its hosted dataset, and admitted buyer
organisations, each with a person (JWT) and an API key (orders:write). Then it places orders over HTTP for a fixed
time, every one under its own Idempotency-Key, spread over the buyers and products: the full trade
stage, the licence reservation where limited, the stored verdict and the audit entry, one
transaction per order. Once with one worker and once with two. Then two references for the same time
with as many clients as the HTTP load has connections: the same-statements floor, pgbench replaying the
very statements one order sent (captured in-process from a real order, parameters written in, fresh ids,
idempotency key per transaction, the audit entry numbered by the database as the service's is, as
prepared statements) in the bench's own database; and pgbench TPC-B in a scratch database. Prints, per
worker count, orders/s, p50 and p99 latency and the ratios orders/s : floor TPS (target >= 0.5) and
orders/s : TPC-B TPS (target >= 0.12), where the two cores' time went (load generator, app server,
PostgreSQL, other processes), the CPU time per order of each, and the database round trips one order
costs (counted in-process on the same database, with this process's CPU time per order meanwhile: the app
without an HTTP server, a steadier figure on a busy machine than the server's share under load).

The load generator runs in processes of its own (`--loaders`), so its CPU time is measured apart
from the server's; it shares the machine's cores with the server and PostgreSQL, as pgbench does.
Its HTTP client is aiohttp (a dependency of the dev extras' localstripe), which costs about half the
CPU per request of httpx (`--client httpx`). The server runs the code beside this file.

    .venv/bin/python bench/orders.py [--duration 20] [--concurrency 16] [--workers 1 2] [--loaders 1]
        [--client aiohttp|httpx] [--buyers 32] [--products 8] [--show-statements]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx
from sqlalchemy import event, make_url, text

from marketplace.app import create_app
from marketplace.cli import db_upgrade
from marketplace.config import Settings
from marketplace.db import create_engine, create_sessionmaker
from marketplace.demo.factories import ROAD_TRAFFIC, licence_terms, organization_body, plan_body, product_body
from marketplace.jobs import sequence_audit
from marketplace.wiring import Runtime
from tests.fixtures.database import create_postgres_database, drop_postgres_database

ROOT = Path(__file__).resolve().parent.parent
# orders/s at least this share of pgbench replaying one order's statements, and of pgbench TPC-B
FLOOR_TARGET = 0.5
TPC_B_TARGET = 0.12
MAX_DURATION = 600
PASSWORD = "bench-password-not-a-secret"  # noqa: S105 - a throwaway database's accounts
SAMPLE = ROAD_TRAFFIC.sample.encode()
SCENARIOS = ROAD_TRAFFIC.permitted_scenarios
LIMITED_LICENCES = 1_000_000


# the market


@dataclass(frozen=True)
class Market:
    # (authorization header, buyer organisation id): a person's token and an API key per buyer
    callers: list[tuple[str, str]]
    # (product id, plan id, limited)
    offers: list[tuple[str, str, bool]]


def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


class Seeder:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def token(self, email: str) -> str:
        response = await self.client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        return f"Bearer {_ok(response, 200)['access_token']}"

    async def person(self, name: str) -> str:
        email = f"{name}.{uuid.uuid4().hex[:8]}@bench.example"
        _ok(await self.client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}))
        return await self.token(email)

    async def admitted(self, owner: str, admin: str, kind: str) -> str:
        organization = _ok(
            await self.client.post(
                "/api/v1/organizations", json=organization_body(kind), headers={"Authorization": owner}
            )
        )
        organization_id = str(organization["id"])
        admission = _ok(
            await self.client.post(
                f"/api/v1/organizations/{organization_id}/admission", headers={"Authorization": owner}
            ),
            200,
        )
        if admission["status"] == "under_review":
            _ok(
                await self.client.post(
                    f"/api/v1/admin/organizations/{organization_id}/decision",
                    json={"decision": "approve", "reason": "qualification reviewed"},
                    headers={"Authorization": admin},
                ),
                200,
            )
        elif admission["status"] != "admitted":
            raise RuntimeError(f"{kind} not admitted: {admission}")
        return organization_id

    async def provider_and_buyer(self, admin_email: str) -> tuple[str, str, str, str]:
        """(provider's credentials, its organisation, buyer's credentials, its organisation), both admitted."""
        admin = await self.token(admin_email)
        provider = await self.person("provider")
        provider_org = await self.admitted(provider, admin, "provider")
        buyer = await self.person("buyer")
        buyer_org = await self.admitted(buyer, admin, "buyer")
        return provider, provider_org, buyer, buyer_org

    async def listed_product(self, owner: str, organization_id: str, n: int, *, limited: bool) -> list[str]:
        headers = {"Authorization": owner}
        licence = licence_terms(max_licences=LIMITED_LICENCES if limited else None)
        body = product_body(organization_id, serial=n, title=f"{ROAD_TRAFFIC.title} {n}", licence=licence)
        product_id = str(_ok(await self.client.post("/api/v1/products", json=body, headers=headers))["id"])
        plans = []
        for plan in (plan_body(1_000_000 + 10_000 * n), plan_body(100_000 + n, "subscription")):
            added = await self.client.post(f"/api/v1/products/{product_id}/plans", json=plan, headers=headers)
            plans.append(str(_ok(added)["id"]))
        _ok(
            await self.client.post(
                f"/api/v1/products/{product_id}/samples",
                files={"file": ("sample.csv", SAMPLE, "text/csv")},
                headers=headers,
            )
        )
        # its full dataset (the sample's rows): a version lists only once what it sells can be delivered (R1)
        dataset = {**headers, "Content-Type": "text/csv"}
        _ok(await self.client.put(f"/api/v1/products/{product_id}/dataset", content=SAMPLE, headers=dataset))
        submitted = _ok(await self.client.post(f"/api/v1/products/{product_id}/submit", headers=headers), 200)
        if submitted["status"] != "listed":
            raise RuntimeError(f"product not listed: {submitted['verdict']}")
        return [product_id, *plans]


async def create_admin(settings: Settings) -> str:
    """An administrator made in the database (there is no endpoint for the first one); returns its e-mail."""
    runtime = Runtime.start(settings)
    admin_email = f"admin.{uuid.uuid4().hex[:8]}@bench.example"
    try:
        async with runtime.transaction() as services:
            await services.accounts.create_admin(email=admin_email, password=PASSWORD, name="Admin", actor="bench")
    finally:
        await runtime.stop()
    return admin_email


async def seed(base_url: str, settings: Settings, buyers: int, products: int, limited: int) -> Market:
    admin_email = await create_admin(settings)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        seeder = Seeder(client)
        admin = await seeder.token(admin_email)
        provider = await seeder.person("provider")
        provider_org = await seeder.admitted(provider, admin, "provider")
        offers: list[tuple[str, str, bool]] = []
        for n in range(products):
            product_id, *plans = await seeder.listed_product(provider, provider_org, n, limited=n < limited)
            offers.extend((product_id, plan_id, n < limited) for plan_id in plans)

        async def buyer(n: int) -> list[tuple[str, str]]:
            owner = await seeder.person(f"buyer{n}")
            organization_id = await seeder.admitted(owner, admin, "buyer")
            key = _ok(
                await client.post(
                    "/api/v1/api-keys",
                    json={"organization_id": organization_id, "name": "bench", "scopes": ["orders:write"]},
                    headers={"Authorization": owner},
                )
            )
            return [(owner, organization_id), (f"Bearer {key['key']}", organization_id)]

        callers: list[tuple[str, str]] = []
        for start in range(0, buyers, 8):
            for pair in await asyncio.gather(*(buyer(n) for n in range(start, min(buyers, start + 8)))):
                callers.extend(pair)
    return Market(callers, offers)


# the load (in processes of their own)


@dataclass
class LoadResult:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, accepted orders in the window only
    errors: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the load process's CPU time during the window
    window: float = 0.0


def drive(
    client: str, base_url: str, market: Market, connections: int, warmup: float, duration: float, seed: int
) -> LoadResult:
    return asyncio.run(_drive(client, base_url, market, connections, warmup, duration, seed))


# One POST: (status, JSON body or text) -- through aiohttp or httpx.
Post = Callable[[dict[str, Any], dict[str, str]], Awaitable[tuple[int, Any]]]


@asynccontextmanager
async def http_client(kind: str, base_url: str, connections: int) -> AsyncIterator[Post]:
    url = f"{base_url}/api/v1/orders"
    if kind == "aiohttp":
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def post_aiohttp(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
                async with session.post(url, json=body, headers=headers) as response:
                    if response.status == 201:
                        return response.status, await response.json()
                    return response.status, await response.text()

            yield post_aiohttp
        return
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def post_httpx(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
            response = await client.post(url, json=body, headers=headers)
            return response.status_code, response.json() if response.status_code == 201 else response.text

        yield post_httpx


async def _drive(
    client: str, base_url: str, market: Market, connections: int, warmup: float, duration: float, seed: int
) -> LoadResult:
    result = LoadResult()
    picks = itertools.count(seed * 7919)
    async with http_client(client, base_url, connections) as post:
        started = time.perf_counter()
        window_start, window_end = started + warmup, started + warmup + duration
        cpu_at_start: list[float] = []

        async def one_connection() -> None:
            while (now := time.perf_counter()) < window_end:
                if now >= window_start and not cpu_at_start:
                    cpu_at_start.append(time.process_time())
                n = next(picks)
                authorization, buyer = market.callers[n % len(market.callers)]
                product_id, plan_id, _ = market.offers[(n // len(market.callers)) % len(market.offers)]
                body = {
                    "product_id": product_id,
                    "plan_id": plan_id,
                    "buyer_organization_id": buyer,
                    "scenario": SCENARIOS[n % 2],
                    "delivery_mode": "file",
                    "quantity": 1,
                    "accept_licence_terms": True,
                }
                headers = {"Authorization": authorization, "Idempotency-Key": uuid.uuid4().hex}
                sent = time.perf_counter()
                try:
                    status, answer = await post(body, headers)
                except (httpx.HTTPError, aiohttp.ClientError, TimeoutError) as exc:
                    outcome = f"error {type(exc).__name__}"
                else:
                    outcome = f"201 {answer['status']}" if status == 201 else str(status)
                    if status != 201 and len(result.errors) < 5:
                        result.errors.append(f"{status}: {str(answer)[:300]}")
                done = time.perf_counter()
                if window_start <= sent and done <= window_end:
                    result.statuses[outcome] += 1
                    if outcome == "201 accepted":
                        result.latencies.append(done - sent)
            if not cpu_at_end:
                cpu_at_end.append(time.process_time())

        cpu_at_end: list[float] = []
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        result.cpu_seconds = cpu_at_end[0] - (cpu_at_start[0] if cpu_at_start else 0.0)
        result.window = duration
    return result


# where the CPU time went


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _processes() -> dict[int, tuple[str, int]]:
    """pid -> (command name, parent pid)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            found[int(entry.name)] = (name, int(text.rpartition(")")[2].split()[1]))
    return found


def _tree(root: int, processes: dict[int, tuple[str, int]]) -> set[int]:
    pids, grew = {root}, True
    while grew:
        more = {pid for pid, (_, parent) in processes.items() if parent in pids} - pids
        grew, pids = bool(more), pids | more
    return pids


def _machine() -> tuple[int, int]:
    """(busy ticks, all ticks) of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


@dataclass
class CpuSample:
    server: int
    postgres_backends: dict[int, int]  # ticks per backend process
    machine_busy: int
    machine_all: int

    def postgres_since(self, before: CpuSample) -> int:
        """The backends' ticks since `before`: a backend that started since counts whole; one that exited
        meanwhile is not seen (an undercount, never a negative figure)."""
        return sum(ticks - before.postgres_backends.get(pid, 0) for pid, ticks in self.postgres_backends.items())


def _serves(pid: int, database: str) -> bool:
    """A PostgreSQL backend connected to `database` (its process title names it)."""
    try:
        return f" {database} " in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def cpu_sample(server_pid: int, database: str) -> CpuSample:
    """CPU ticks so far of the app server's processes, of the PostgreSQL backends serving the bench's
    database (not those of other databases on the same server), and of the whole machine."""
    processes = _processes()
    server = sum(_ticks(pid) for pid in _tree(server_pid, processes))
    backends = [pid for pid, (name, _) in processes.items() if name.startswith("postgres") and _serves(pid, database)]
    postgres = {pid: _ticks(pid) for pid in backends}
    busy, everything = _machine()
    return CpuSample(server, postgres, busy, everything)


# the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(database_url: str, storage: Path, workers: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STORAGE_DIR": str(storage),
        "JWT_TTL_SECONDS": "7200",  # the seeded tokens outlive the run
        "REGISTRATION_MAX_PER_ADDRESS": "1000000",  # every seeded buyer registers from loopback
        "LOG_LEVEL": "WARNING",
        # the code beside this benchmark, whichever checkout the installed command points at
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [str(Path(sys.executable).with_name("marketplace")), "serve", "--host", "127.0.0.1"]
    log = (storage / f"server-{workers}.log").open("wb")
    server = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        env=environment,
        cwd=storage,  # no stray .env from the working directory
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                log.flush()
                tail = Path(log.name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the server exited ({server.returncode}):\n{tail}")
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /health within 60 s")
            time.sleep(0.2)
        yield base_url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@dataclass
class RunResult:
    workers: int
    orders_per_second: float
    p50_ms: float
    p99_ms: float
    statuses: Counter[str]
    errors: list[str]
    cpu_share: dict[str, float]  # percent of the whole machine (all cores)
    cpu_per_order_ms: dict[str, float]  # CPU time per accepted order


async def run_load(
    base_url: str, server_pid: int, database: str, market: Market, args: argparse.Namespace, workers: int
) -> RunResult:
    loop = asyncio.get_running_loop()
    per_loader = [args.concurrency // args.loaders + (i < args.concurrency % args.loaders) for i in range(args.loaders)]
    with ProcessPoolExecutor(max_workers=args.loaders, mp_context=get_context("spawn")) as pool:
        # start the pool's processes before timing anything
        await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.5) for _ in range(args.loaders)))
        futures = [
            loop.run_in_executor(pool, drive, args.client, base_url, market, connections, args.warmup, args.duration, n)
            for n, connections in enumerate(per_loader)
        ]
        await asyncio.sleep(args.warmup)
        before = cpu_sample(server_pid, database)
        await asyncio.sleep(args.duration)
        after = cpu_sample(server_pid, database)
        results: list[LoadResult] = await asyncio.gather(*futures)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    errors: list[str] = []
    load_cpu = 0.0
    for result in results:
        statuses.update(result.statuses)
        latencies.extend(result.latencies)
        errors.extend(result.errors)
        load_cpu += result.cpu_seconds
    latencies.sort()
    accepted = statuses["201 accepted"]
    machine = max(1, after.machine_all - before.machine_all)
    clock_ticks = os.sysconf("SC_CLK_TCK")
    load_ticks = load_cpu * clock_ticks
    share = {
        "load generator": 100 * load_ticks / machine,
        "app server": 100 * (after.server - before.server) / machine,
        "PostgreSQL (its backends)": 100 * after.postgres_since(before) / machine,
    }
    share["other processes"] = max(
        0.0, 100 * (after.machine_busy - before.machine_busy) / machine - sum(share.values())
    )
    share["idle"] = 100 * (1 - (after.machine_busy - before.machine_busy) / machine)
    per_order = {
        "app server": (after.server - before.server) / clock_ticks,
        "PostgreSQL": after.postgres_since(before) / clock_ticks,
        "load generator": load_cpu,
    }
    return RunResult(
        workers=workers,
        orders_per_second=accepted / args.duration,
        p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
        p99_ms=1000 * latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan"),
        statuses=statuses,
        errors=errors,
        cpu_share=share,
        cpu_per_order_ms={name: 1000 * seconds / max(1, accepted) for name, seconds in per_order.items()},
    )


# after the runs: what the orders left behind must add up


async def check_books(settings: Settings, market: Market) -> str:
    """The audit log verifies once the sequencer has made every entry a leaf; every order has its verdict, its
    first event and its "order.placed" entry; no limited product sold more licences than it had (remaining +
    reserved = the limit)."""
    runtime = Runtime.start(settings)
    try:
        await sequence_audit(runtime)
        async with runtime.transaction() as services:
            report = await services.transparency.verify()
    finally:
        await runtime.stop()
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            counts = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM trade_order), "
                        "(SELECT count(*) FROM verdict WHERE subject_type = 'order'), "
                        "(SELECT count(*) FROM order_event WHERE from_status IS NULL), "
                        "(SELECT count(*) FROM audit_entry WHERE action = 'order.placed')"
                    )
                )
            ).one()
            limited = [uuid.UUID(product) for product, _, is_limited in market.offers if is_limited]
            licences = (
                await session.execute(
                    text(
                        "SELECT p.id, p.licences_remaining, coalesce(sum(o.licences_reserved), 0) FROM product p "
                        "LEFT JOIN trade_order o ON o.product_id = p.id WHERE p.id = ANY(:ids) GROUP BY p.id"
                    ),
                    {"ids": list(set(limited))},
                )
            ).all()
    finally:
        await engine.dispose()
    problems = []
    if not report.ok:
        problems.append(f"audit log broken at leaf {report.first_broken_leaf}: {report.reason}")
    if len(set(counts)) != 1:
        problems.append(f"orders, verdicts, first events, order.placed entries: {tuple(counts)}")
    for product_id, remaining, reserved in licences:
        if remaining + reserved != LIMITED_LICENCES:
            problems.append(f"product {product_id}: {remaining} left + {reserved} reserved != {LIMITED_LICENCES}")
    sold = sum(reserved for _, _, reserved in licences)
    summary = f"{counts[0]} orders, audit log of {report.entries} leaves verified, {sold} limited licences reserved"
    return f"books: {summary}; " + ("; ".join(problems) if problems else "everything adds up")


# round trips per order, counted in-process on the same database


@dataclass
class CapturedOrder:
    """The statements one order sent (with their parameters, BEGIN and COMMIT as bare words), and the values
    it made afresh, which a replay must make anew each time."""

    statements: list[tuple[str, Any]]
    fresh: dict[Any, str]  # a fresh value -> the name of the pgbench expression that replaces it


def most_common_order(market: Market) -> int:
    """The first order the load makes through an API key (callers alternate a person's JWT and a key) of a
    product with unlimited licences, if any product has them."""
    unlimited = (n for n in range(1, 2 * len(market.offers), 2) if not market.offers[n % len(market.offers)][2])
    return next(unlimited, 1)


def order_body(market: Market, n: int) -> tuple[dict[str, Any], dict[str, str]]:
    authorization, buyer = market.callers[n % len(market.callers)]
    product_id, plan_id, _ = market.offers[n % len(market.offers)]
    body = {
        "product_id": product_id,
        "plan_id": plan_id,
        "buyer_organization_id": buyer,
        "scenario": SCENARIOS[0],
        "delivery_mode": "file",
        "quantity": 1,
        "accept_licence_terms": True,
    }
    return body, {"Authorization": authorization, "Idempotency-Key": uuid.uuid4().hex}


async def count_round_trips(
    settings: Settings, market: Market, orders: int, show: bool
) -> tuple[float, float, CapturedOrder]:
    """Statements, BEGINs and COMMITs the app sends per order (one worker, sequential requests), and the CPU
    time of this process per order meanwhile (the app and httpx's in-process client: no HTTP server, no load
    generator); and the statements of the most common kind of order under the load, for the same-statements
    floor: through an API key whose last use is fresh (its first order stamps it; the second, captured, does
    not) and of a product with unlimited licences (three offers in four)."""
    app = create_app(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # create_app set up logging at INFO
    engine = app.state.runtime.db_sessions.kw["bind"].sync_engine
    statements: list[tuple[str, Any]] = []

    def on_execute(*parts: Any) -> None:
        statements.append((str(parts[2]), parts[3]))

    event.listen(engine, "before_cursor_execute", on_execute)

    def on_transaction(word: str) -> Callable[[Any], None]:
        def sent(connection: Any) -> None:
            # SQLAlchemy announces a transaction on a connection in autocommit too, where none is sent
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                statements.append((word, None))

        return sent

    for word in ("BEGIN", "COMMIT", "ROLLBACK"):
        event.listen(engine, word.lower(), on_transaction(word))
    counts = []
    cpu_seconds = 0.0
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for n in [*range(orders + 3), *[most_common_order(market)] * 2]:
            body, headers = order_body(market, n)
            statements.clear()
            started = time.process_time()
            response = await client.post("/api/v1/orders", json=body, headers=headers)
            spent = time.process_time() - started
            if response.status_code != 201:
                raise RuntimeError(f"order in the round-trip count: {response.status_code} {response.text}")
            counted = len(counts) < orders and n >= 3  # the first requests warm the pool and its statements
            if counted:
                counts.append(len(statements))
                cpu_seconds += spent
            if show and counted and len(counts) <= 2:
                kind = "API key" if "mkt_" in headers["Authorization"] else "JWT"
                licences = "limited" if market.offers[n % len(market.offers)][2] else "unlimited"
                print(f"  statements of one order ({kind}, {licences} licences):")
                for statement, _ in statements:
                    print(f"    {' '.join(statement.split())[:160]}")
    await engine_dispose(app)
    captured = await fresh_values(settings, response.json(), headers["Idempotency-Key"], statements)
    return statistics.mean(counts), cpu_seconds / len(counts), captured


async def fresh_values(
    settings: Settings, placed: dict[str, Any], key: str, statements: list[tuple[str, Any]]
) -> CapturedOrder:
    """What the captured order made afresh: its ids, its history's and outbox events' ids, its idempotency key
    (its audit entry is numbered by the database's sequence as it is inserted)."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            events = (
                (
                    await connection.execute(
                        text("SELECT id FROM order_event WHERE order_id = :id"), {"id": uuid.UUID(placed["id"])}
                    )
                )
                .scalars()
                .all()
            )
            outbox = (
                (await connection.execute(text("SELECT id FROM event WHERE subject_id = :id"), {"id": placed["id"]}))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    fresh: dict[Any, str] = {uuid.UUID(placed["id"]): "uuid", uuid.UUID(placed["verdict"]["id"]): "uuid"}
    fresh.update(dict.fromkeys([*events, *outbox], "uuid"))
    fresh.update({key: "key"})
    return CapturedOrder(list(statements), fresh)


async def engine_dispose(app: Any) -> None:
    await app.state.runtime.db_sessions.kw["bind"].dispose()


# pgbench


def run_pgbench(arguments: list[str], server_url: str, database: str) -> str:
    """pgbench on the bench's PostgreSQL server (`--postgres`); its output."""
    url = make_url(server_url)
    connection = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    done = subprocess.run(["pgbench", *connection, *arguments, database], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def tps_and_latency(output: str) -> tuple[float, float]:
    """TPS and mean latency (ms) from pgbench's report."""
    tps = re.search(r"^tps = ([\d.]+)", output, re.MULTILINE)
    latency = re.search(r"^latency average = ([\d.]+) ms", output, re.MULTILINE)
    if tps is None:
        raise RuntimeError(f"pgbench printed no TPS:\n{output}")
    return float(tps.group(1)), float(latency.group(1)) if latency else float("nan")


def pgbench(server_url: str, scale: int, clients: int, duration: int) -> tuple[float, float, str]:
    """TPS and mean latency (ms) of TPC-B against a scratch database, and the command line used."""
    name = f"marketplace_bench_pgbench_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_postgres_database(f"{server_url}/postgres", name))
    try:
        run_pgbench(["-i", "-q", "-s", str(scale)], server_url, name)
        tps, latency = tps_and_latency(
            run_pgbench(["-c", str(clients), "-j", "2", "-T", str(duration)], server_url, name)
        )
    finally:
        asyncio.run(drop_postgres_database(f"{server_url}/postgres", name))
    return tps, latency, f"pgbench -i -s {scale}; pgbench -c {clients} -j 2 -T {duration}"


def same_statements_floor(
    captured: CapturedOrder, server_url: str, database: str, clients: int, duration: int
) -> tuple[float, float]:
    """TPS and mean latency (ms) of pgbench replaying the captured order's statements in the bench's own
    database (its market), with fresh ids, key and audit entry per transaction, as prepared statements."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="order-replay-") as script:
        script.write(replay_script(captured))
        script.flush()
        arguments = ["-n", "-M", "prepared", "-f", script.name, "-c", str(clients), "-j", "2", "-T", str(duration)]
        return tps_and_latency(run_pgbench(arguments, server_url, database))


def replay_script(captured: CapturedOrder) -> str:
    """A pgbench script of the captured order: its statements with their parameters written in, each value
    it made afresh replaced by one derived from a random number drawn per transaction."""
    lines = ["\\set fresh random(1, 9223372036854775806)"]
    numbers = {value: n for n, value in enumerate(captured.fresh)}
    fresh = dict(captured.fresh)
    for value, kind in captured.fresh.items():  # a uuid is passed as text too (a verdict's subject, say)
        if kind == "uuid":
            fresh[str(value)], numbers[str(value)] = kind, numbers[value]
    for statement, parameters in captured.statements:
        if parameters is None:
            lines.append(f"{statement};")
            continue
        template = " ".join(statement.split())

        def value_of(match: re.Match[str], parameters: Any = parameters) -> str:
            value = parameters[int(match.group(1)) - 1]
            if isinstance(value, (str, uuid.UUID)) and value in fresh:
                return fresh_expression(fresh[value], numbers[value], isinstance(value, str))
            if isinstance(value, str) and any(made in value for made in fresh if isinstance(made, str)):
                return text_with_fresh_ids(value, fresh, numbers)
            return sql_literal(value)

        rendered = re.sub(r"\$(\d+)", value_of, template)
        lines.append(f"{rendered};")
    return "\n".join(lines) + "\n"


def text_with_fresh_ids(value: str, fresh: dict[Any, str], numbers: dict[Any, int]) -> str:
    """A text parameter with fresh ids inside it (the JSON batch of a transaction's events), the ids made
    anew: the text cut at each of them, the pieces joined around each id's expression."""
    pieces = [value]
    for made, kind in fresh.items():
        if kind == "uuid" and isinstance(made, str):
            expression = f"({fresh_expression(kind, numbers[made], True)})"
            pieces = [
                part
                for piece in pieces
                for part in ([piece] if piece.startswith("(") else _between(piece, made, expression))
            ]
    return "(" + " || ".join(piece if piece.startswith("(") else sql_literal(piece) for piece in pieces) + ")"


def _between(text_value: str, made: str, expression: str) -> list[str]:
    parts = text_value.split(made)
    joined = [parts[0]]
    for part in parts[1:]:
        joined += [expression, part]
    return joined


def fresh_expression(kind: str, n: int, as_text: bool) -> str:
    seed = f"md5(:fresh::text || '.{n}')"
    if kind == "uuid":
        return f"{seed}::uuid::text" if as_text else f"{seed}::uuid"
    if kind == "hash":
        return f"{seed} || md5(:fresh::text || '.{n}b')"
    return seed


def sql_literal(value: Any) -> str:
    """A parameter written into the statement. Text goes in E'' strings with every colon escaped: pgbench
    would take `:word` for one of its variables."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list) and value and all(isinstance(item, uuid.UUID) for item in value):
        value = "{" + ",".join(map(str, value)) + "}"  # an array parameter (an event's parties)
    elif isinstance(value, (dict, list)):
        value = json.dumps(value, default=str)  # ids in event payloads are stored as their text
    elif isinstance(value, datetime):
        value = value.isoformat()
    text_value = str(value).replace("\\", "\\\\").replace("'", "\\'").replace(":", "\\x3a")
    return f"E'{text_value}'"


# the run


def print_run(run: RunResult) -> None:
    others = {k: v for k, v in run.statuses.items() if k != "201 accepted"}
    cpu = ", ".join(f"{name} {share:.0f}%" for name, share in run.cpu_share.items())
    print(
        f"  workers={run.workers}: {run.orders_per_second:7.1f} orders/s  p50 {run.p50_ms:6.1f} ms  "
        f"p99 {run.p99_ms:6.1f} ms  accepted {run.statuses['201 accepted']}  other outcomes {dict(others) or 'none'}"
    )
    per_order = ", ".join(f"{name} {ms:.1f} ms" for name, ms in run.cpu_per_order_ms.items())
    print(f"    CPU of the machine: {cpu}")
    print(f"    CPU time per order: {per_order}")
    for error in run.errors:
        print(f"    e.g. {error}")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20, help="seconds of measured load per run (and pgbench)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP connections (and pgbench clients)")
    parser.add_argument("--loaders", type=int, default=1, help="load-generator processes sharing the connections")
    parser.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp", help="the load's HTTP client")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--buyers", type=int, default=32)
    parser.add_argument("--products", type=int, default=8)
    parser.add_argument("--limited", type=int, default=2, help="how many of the products have limited licences")
    parser.add_argument("--pgbench-scale", type=int, default=None, help="default: the concurrency")
    parser.add_argument("--trips", type=int, default=20, help="orders to count round trips over (at least 1)")
    parser.add_argument("--show-statements", action="store_true", help="print the statements of one order")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if not 1 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration must be between 1 and {MAX_DURATION} seconds")
    if args.trips < 1:
        parser.error("--trips must be at least 1: one order's statements are the floor's script")
    if not 1 <= args.loaders <= args.concurrency <= 256:
        parser.error("need 1 <= --loaders <= --concurrency <= 256")
    scale = args.pgbench_scale or args.concurrency
    server_url = args.postgres.rpartition("/")[0]
    name = f"marketplace_bench_orders_{uuid.uuid4().hex[:8]}"
    runs: list[RunResult] = []
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp)
        settings = Settings(database_url=f"{server_url}/{name}", storage_dir=storage, jwt_ttl_seconds=7200)
        await create_postgres_database(f"{server_url}/postgres", name)
        try:
            await asyncio.to_thread(db_upgrade, settings)
            started = time.perf_counter()
            with serving(settings.database_url, storage, 2) as (base_url, _):
                market = await seed(base_url, settings, args.buyers, args.products, args.limited)
            print(
                f"seeded {args.buyers} buyer organisations ({len(market.callers)} callers: a person's JWT and an "
                f"API key each), {args.products} products ({args.limited} with {LIMITED_LICENCES} licences) x 2 "
                f"plans in {time.perf_counter() - started:.1f} s"
            )
            trips, cpu, captured = await count_round_trips(settings, market, args.trips, args.show_statements)
            print(f"database round trips per order (statements + BEGIN/COMMIT): {trips:.1f}")
            print(
                f"in-process CPU per order (sequential, through httpx's ASGI transport, client included): "
                f"{cpu * 1000:.2f} ms"
            )
            print(
                f"placing orders over HTTP for {args.duration} s after {args.warmup:.0f} s of warm-up, "
                f"{args.concurrency} connections from {args.loaders} load process(es) ({args.client}):"
            )
            for workers in args.workers:
                with serving(settings.database_url, storage, workers) as (base_url, server_pid):
                    run = await run_load(base_url, server_pid, name, market, args, workers)
                runs.append(run)
                print_run(run)
            print(await check_books(settings, market))
            floor, floor_latency = await asyncio.to_thread(
                same_statements_floor, captured, server_url, name, args.concurrency, args.duration
            )
            print(
                f"pgbench replaying one order's {len(captured.statements)} statements (-M prepared, fresh ids per "
                f"transaction, -c {args.concurrency} -j 2 -T {args.duration}): {floor:.1f} TPS, "
                f"latency average {floor_latency:.1f} ms"
            )
        finally:
            await drop_postgres_database(f"{server_url}/postgres", name)
    tps, pg_latency, command = await asyncio.to_thread(pgbench, server_url, scale, args.concurrency, args.duration)
    print(f"pgbench TPC-B ({command}): {tps:.1f} TPS, latency average {pg_latency:.1f} ms")
    print()
    print(
        f"{'workers':>7}  {'orders/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'floor TPS':>9}  {': floor':>7}  "
        f"{'TPC-B TPS':>9}  {': TPC-B':>7}"
    )
    for run in runs:
        print(
            f"{run.workers:>7}  {run.orders_per_second:>9.1f}  {run.p50_ms:>7.1f}  {run.p99_ms:>7.1f}  "
            f"{floor:>9.1f}  {run.orders_per_second / floor:>7.3f}  {tps:>9.1f}  {run.orders_per_second / tps:>7.3f}"
        )
    best = max(run.orders_per_second for run in runs)
    for reference, target, value in (("floor", FLOOR_TARGET, floor), ("TPC-B", TPC_B_TARGET, tps)):
        met = "met" if best / value >= target else "NOT met"
        print(f"target orders/s >= {target} x {reference}: {met} (best {best / value:.3f})")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
