"""Benchmark: the console's pages over 100,000 orders, on PostgreSQL.

Builds a fresh database with the migrations, seeds the demo (accounts, catalog, one complete trade), then makes
100,000 orders like its trade in the server (INSERT ... SELECT over generate_series, not through the API): placed
over the last 30 days, a fifth of them rejected on failed findings, the others settled (with the history, escrow
account and transfers of the demo's trade) or cancelled. Signs in to the console in process and times each page's
server side (the median of --runs requests), beside the reference measured in the same run: `GET /health` (one
trivial SELECT). Prints the seeding's seconds, each page's milliseconds and its ratio to the reference. Target:
the overview < 300 ms.

    .venv/bin/python bench/console.py [--orders 100000] [--runs 7]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx

from marketplace.app import create_app
from marketplace.cli import db_upgrade
from marketplace.config import Settings
from marketplace.db import table_of
from marketplace.demo import seed_demo
from marketplace.demo.seed import ADMIN_EMAIL, ADMIN_PASSWORD
from marketplace.kit import clock
from marketplace.orders.models import Order
from tests.fixtures.database import create_postgres_database, drop_postgres_database

TARGET_OVERVIEW_MS = 300.0
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
# What a seeded order's verdict failed beyond the demo trade's findings: nothing (kind 0), or one or both of
# FAILED (kinds 1-3, a fifth of the orders): its extra findings, failed checks and flagged rules.
FAILURE_KINDS = [[], [FAILED[0]], [FAILED[1]], FAILED]

# One row per order: its ids, when it was placed (over the last 30 days), what its verdict failed and its status
# (rejected when it failed; else settled as the demo's trade was, or cancelled before paying). random() follows
# the setseed() before it: the same orders every run.
_SEED = """
    CREATE TEMPORARY TABLE seed AS
    SELECT gen_random_uuid() AS order_id, gen_random_uuid() AS verdict_id,
           $2::timestamptz - random() * interval '30 days' AS at, kind,
           CASE WHEN kind > 0 THEN 'rejected' WHEN random() < 0.8 THEN 'settled' ELSE 'cancelled' END AS status
    FROM (SELECT CASE WHEN random() < 0.2 THEN 1 + floor(random() * 3)::int ELSE 0 END AS kind
          FROM generate_series(1, $1)) AS drawn"""
_KINDS = """
    CREATE TEMPORARY TABLE kind (kind int PRIMARY KEY, findings jsonb, failed_checks jsonb, flagged_rules jsonb)"""
# Each kind's whole findings and failed checks, the demo trade's and its own, made once: a verdict copies its
# kind's stored document (compressed once), rather than concatenating and compressing its own.
_WHOLE_KINDS = """
    UPDATE kind SET findings = t.findings || kind.findings, failed_checks = t.failed_checks || kind.failed_checks
    FROM verdict AS t WHERE t.id = $1"""
_VERDICTS = """
    INSERT INTO verdict (id, stage, subject_type, subject_id, decision, findings, failed_checks, rulebook_fingerprint,
                         snapshot, parts, created_at)
    SELECT s.verdict_id, t.stage, t.subject_type, s.order_id::text,
           CASE WHEN s.kind > 0 THEN 'rejected' ELSE t.decision END, k.findings, k.failed_checks,
           t.rulebook_fingerprint, t.snapshot, t.parts, s.at
    FROM seed AS s JOIN kind AS k USING (kind), verdict AS t WHERE t.id = $1"""
# The demo's trade's history, shifted to each settled order's time; a cancelled one accepted then cancelled; a
# rejected one rejected as it was placed.
_EVENTS = """
    INSERT INTO order_event (id, order_id, from_status, to_status, actor, reason, at)
    SELECT gen_random_uuid(), s.order_id, e.from_status, e.to_status, e.actor, e.reason, s.at + (e.at - t.created_at)
    FROM seed AS s, order_event AS e JOIN trade_order AS t ON t.id = e.order_id
    WHERE s.status = 'settled' AND e.order_id = $1
    UNION ALL
    SELECT gen_random_uuid(), s.order_id, NULL, s.status, 'bench', NULL, s.at FROM seed AS s WHERE s.status = 'rejected'
    UNION ALL
    SELECT gen_random_uuid(), s.order_id, moves.from_status, moves.to_status, 'bench', NULL, s.at + moves.after
    FROM seed AS s, (VALUES (NULL, 'accepted', interval '0'), ('accepted', 'cancelled', interval '1 hour'))
         AS moves (from_status, to_status, after)
    WHERE s.status = 'cancelled'"""
# Each settled order's own accounts (its escrow) as the demo trade's are now, and its transfers between the
# same accounts (the order's own in place of the demo's), shifted to its time.
_ACCOUNTS = """
    INSERT INTO ledger_account (id, key, code, organization_id, order_id, currency, no_overdraft, debits_posted,
                                credits_posted, created_at)
    SELECT gen_random_uuid(), replace(a.key, a.order_id::text, s.order_id::text), a.code, a.organization_id,
           s.order_id, a.currency, a.no_overdraft, a.debits_posted, a.credits_posted, s.at
    FROM seed AS s, ledger_account AS a WHERE s.status = 'settled' AND a.order_id = $1"""
_TRANSFERS = """
    INSERT INTO ledger_transfer (id, debit_account_id, credit_account_id, amount_minor, currency, kind, order_id,
                                 created_at)
    SELECT gen_random_uuid(), coalesce(own_debit.id, x.debit_account_id), coalesce(own_credit.id, x.credit_account_id),
           x.amount_minor, x.currency, x.kind, s.order_id, s.at + (x.created_at - t.created_at)
    FROM seed AS s
    CROSS JOIN ledger_transfer AS x JOIN trade_order AS t ON t.id = x.order_id
    JOIN ledger_account AS debit ON debit.id = x.debit_account_id
    JOIN ledger_account AS credit ON credit.id = x.credit_account_id
    LEFT JOIN ledger_account AS own_debit ON own_debit.order_id = s.order_id AND debit.order_id = x.order_id
         AND own_debit.code = debit.code AND own_debit.currency = debit.currency
    LEFT JOIN ledger_account AS own_credit ON own_credit.order_id = s.order_id AND credit.order_id = x.order_id
         AND own_credit.code = credit.code AND own_credit.currency = credit.currency
    WHERE s.status = 'settled' AND x.order_id = $1"""
# The shared accounts' (clearing, payable, revenue) totals: the sums of their transfers, as each posting keeps them.
_TOTALS = """
    UPDATE ledger_account AS a
    SET debits_posted = (SELECT coalesce(sum(amount_minor), 0) FROM ledger_transfer WHERE debit_account_id = a.id),
        credits_posted = (SELECT coalesce(sum(amount_minor), 0) FROM ledger_transfer WHERE credit_account_id = a.id)
    WHERE a.order_id IS NULL"""


def order_copy(columns: list[str]) -> str:
    """Each seeded order: the demo's trade (`t`) with the seed's ids, time, status and verdict."""
    own = {
        "id": "s.order_id",
        "verdict_id": "s.verdict_id",
        "status": "s.status",
        "decision": "CASE WHEN s.kind > 0 THEN 'rejected' ELSE t.decision END",
        "flagged_rules": "t.flagged_rules || k.flagged_rules",
        "payment_reference": "NULL",
        "payout_id": "NULL",
        "created_at": "s.at",
        "status_changed_at": "s.at",
    }
    values = ", ".join(own.get(name, f"t.{name}") for name in columns)
    # the names are the model's columns, not input
    return f"""
        INSERT INTO trade_order ({", ".join(columns)})
        SELECT {values} FROM seed AS s JOIN kind AS k USING (kind), trade_order AS t WHERE t.id = $1"""  # noqa: S608


async def bulk_orders(database_url: str, count: int) -> None:
    """`count` orders like the demo's one, with their trade verdicts, history, escrow accounts and transfers,
    made by the server (INSERT ... SELECT over generate_series, nothing sent per row); then VACUUM ANALYZE, as
    autovacuum would after such a load."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    spent: dict[str, float] = {}

    async def step(name: str, statement: str, *arguments: Any) -> None:
        started = time.perf_counter()
        await connection.execute(statement, *arguments)
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

    try:
        async with connection.transaction():
            template = await connection.fetchrow("SELECT id, verdict_id FROM trade_order")
            assert template is not None, "the demo's trade"
            await connection.execute("SELECT setseed(0.17)")
            await step("draw", _SEED, count, clock.now())
            await connection.execute(_KINDS)
            await connection.executemany(
                "INSERT INTO kind VALUES ($1, $2::jsonb, $3::jsonb, $4::jsonb)",
                [
                    (
                        kind,
                        json.dumps(findings),
                        json.dumps([{"rule_id": f["rule_id"], "check": f["check"]} for f in findings]),
                        json.dumps(sorted({f["rule_id"] for f in findings})),
                    )
                    for kind, findings in enumerate(FAILURE_KINDS)
                ],
            )
            await connection.execute(_WHOLE_KINDS, template["verdict_id"])
            await step("verdicts", _VERDICTS, template["verdict_id"])
            await step("orders", order_copy([c.name for c in table_of(Order).columns]), template["id"])
            await step("history", _EVENTS, template["id"])
            await step("accounts", _ACCOUNTS, template["id"])
            await step("transfers", _TRANSFERS, template["id"])
            await step("account totals", _TOTALS)
        await step("vacuum analyze", "VACUUM ANALYZE")
    finally:
        await connection.close()
    print("  " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items()))


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
    await bulk_orders(settings.database_url, orders)
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
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (to EXPLAIN its queries)")
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
        if args.keep:
            print(f"kept the database {name}")
        else:
            await drop_postgres_database(f"{server}/postgres", name)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
