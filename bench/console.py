"""Benchmark: the console's pages over 100,000 orders, on PostgreSQL.

Builds a fresh database with the migrations, seeds the demo (accounts, catalog, one complete trade), then
inserts 100,000 orders with their trade verdicts in bulk (multi-row inserts, not through the API): placed over
the last 30 days, of mixed statuses and decisions, a fifth of them with failed findings. Signs in to the console
in process and times each page's server side (the median of --runs requests), beside the reference measured in
the same run: `GET /health` (one trivial SELECT). Prints each page's milliseconds and its ratio to the
reference. Target: the overview < 300 ms.

    .venv/bin/python bench/console.py [--orders 100000] [--runs 7]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import insert, select

from marketplace.app import create_app
from marketplace.cli import db_upgrade
from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.models import StoredVerdict
from marketplace.config import Settings
from marketplace.demo import seed_demo
from marketplace.demo.seed import ADMIN_EMAIL, ADMIN_PASSWORD
from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.orders.models import Order, OrderStatus
from tests.fixtures.database import create_postgres_database, drop_postgres_database

TARGET_OVERVIEW_MS = 300.0
BATCH = 5_000
# Statuses whose escrow is empty, so the ledger check has nothing to flag on orders the ledger never saw.
STATUSES = [OrderStatus.PAID_OUT, OrderStatus.SETTLED, OrderStatus.REJECTED, OrderStatus.CANCELLED]
PAGES = [
    "/console/",
    "/console/queues/trades",
    "/console/trades",
    "/console/trades?status=rejected&rule_id=R5",
    "/console/audit",
    "/console/ledger",
    "/console/rules",
]
FAILED = [
    {"rule_id": "R5", "check": "R5.price-in-band", "outcome": "fail", "message": "price out of band", "evidence": {}},
    {"rule_id": "S3", "check": "S3.consent", "outcome": "fail", "message": "no consent recorded", "evidence": {}},
]


async def bulk_orders(app: Any, count: int) -> None:
    """`count` orders like the demo's one, with trade verdicts, inserted a batch per statement."""
    runtime = app.state.runtime
    async with runtime.transaction() as services:
        template = (await services.session.scalars(select(Order))).first()
        verdict = await services.session.get(StoredVerdict, template.verdict_id)
    assert template is not None, "the demo's trade"
    assert verdict is not None
    order_values = template.model_dump(exclude={"id", "verdict_id", "payment_reference", "payout_id"})
    now, rng = clock.now(), random.Random(17)
    for start in range(0, count, BATCH):
        verdicts, orders = [], []
        for _ in range(min(BATCH, count - start)):
            verdict_id, at = new_id(), now - timedelta(seconds=rng.randrange(30 * 86_400))
            failing = rng.random() < 0.2
            findings = verdict.findings + (rng.sample(FAILED, rng.randint(1, 2)) if failing else [])
            decision = Decision.REJECTED if failing else Decision.ACCEPTED
            verdicts.append(
                {
                    "id": verdict_id,
                    "stage": Stage.TRADE,
                    "subject_type": "order",
                    "subject_id": str(uuid.uuid4()),
                    "decision": decision,
                    "findings": findings,
                    "rulebook_fingerprint": verdict.rulebook_fingerprint,
                    "snapshot": verdict.snapshot,
                    "parts": verdict.parts,
                    "created_at": at,
                }
            )
            status = OrderStatus.REJECTED if failing else rng.choice(STATUSES)
            flagged = sorted({f["rule_id"] for f in findings if f["outcome"] == "fail"})
            orders.append(
                {
                    **order_values,
                    "id": uuid.uuid4(),
                    "verdict_id": verdict_id,
                    "decision": decision,
                    "flagged_rules": flagged,
                    "status": status,
                    "created_at": at,
                    "status_changed_at": at,
                }
            )
        async with runtime.transaction() as services:
            await services.session.execute(insert(StoredVerdict), verdicts)
            await services.session.execute(insert(Order), orders)
        print(f"  {start + len(orders):>7} orders", end="\r", flush=True)
    print()


async def timed(client: httpx.AsyncClient, path: str, runs: int) -> float:
    """The median milliseconds of `runs` requests (after one to warm caches), asserting each succeeds."""
    await client.get(path)
    spent = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = await client.get(path)
        spent.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return statistics.median(spent)


async def measure(settings: Settings, orders: int, runs: int) -> bool:
    await asyncio.to_thread(db_upgrade, settings)
    app = create_app(settings)
    async with app.state.runtime.transaction() as services:
        await seed_demo(services, only_if_empty=True)
    started = time.perf_counter()
    await bulk_orders(app, orders)
    print(f"seeded {orders:,} orders in {time.perf_counter() - started:.1f} s")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        form = await client.get("/console/sign-in")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
        assert token
        signed = await client.post(
            "/console/sign-in", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "_csrf_token": token[1]}
        )
        assert signed.status_code == 303, signed.text
        reference = await timed(client, "/health", runs)
        print(f"{'GET /health (reference)':<48} {reference:8.1f} ms")
        results = {path: await timed(client, path, runs) for path in PAGES}
    for path, ms in results.items():
        print(f"{'GET ' + path:<48} {ms:8.1f} ms  {ms / reference:7.1f} x reference")
    await app.state.runtime.stop()
    overview = results["/console/"]
    met = overview < TARGET_OVERVIEW_MS
    print(f"overview {overview:.1f} ms (target < {TARGET_OVERVIEW_MS:.0f} ms): {'met' if met else 'NOT met'}")
    return met


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    server = args.postgres.rpartition("/")[0]
    name = f"marketplace_console_bench_{uuid.uuid4().hex[:8]}"
    await create_postgres_database(f"{server}/postgres", name)
    try:
        with tempfile.TemporaryDirectory() as storage:
            settings = Settings(
                database_url=f"{server}/{name}", storage_dir=Path(storage), log_level="WARNING", in_process_jobs=False
            )
            met = await measure(settings, args.orders, args.runs)
    finally:
        await drop_postgres_database(f"{server}/postgres", name)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
