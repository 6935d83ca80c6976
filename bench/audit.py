"""Benchmark: `marketplace audit verify` over a transparency log of 1,000,000 entries, on PostgreSQL.

Builds a fresh database with the migrations and seeds the entries in the server with one INSERT ... SELECT over
generate_series: order moves (`order.paid`, with the payload the service writes), each with the leaf text the
service would have written (some are checked against marketplace/audit/leaves.py here). Then runs the sequencer
(`marketplace audit sequence`'s job, in process), which makes them leaves in batches of AUDIT_SEQUENCER_BATCH, each
batch under its own signed tree head, and times `marketplace audit verify`'s work (TransparencyLog.verify:
recompute the tree from every stored leaf, check every head's root and signature, check every entry's columns
against its leaf text), then the command itself in a process of its own (start-up included). Beside it, in the
same run, hashlib's SHA-256 over the same leaf texts (one hash per leaf, as 0x00 || text). Prints entries/s of
each and their ratio. Target: the command, start-up included, >= 200,000 entries/s.

The command's start-up is timed apart, as the command over the log while it is still empty. It runs as once
installed: Python caches each module's compiled bytecode on its first import, so the first run (printed too)
compiles them and later ones do not; the command is run without PYTHONDONTWRITEBYTECODE, which some shells set
and which would make every run compile every module again.

    .venv/bin/python bench/audit.py [--entries 1000000] [--batch 50000]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from marketplace.audit.leaves import body, leaf_text
from marketplace.cli import db_upgrade
from marketplace.config import Settings
from marketplace.jobs import sequence_audit
from marketplace.wiring import Runtime
from tests.fixtures.database import create_postgres_database, drop_postgres_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_PER_SECOND = 200_000
# Entry n: order n moved from accepted to paid, a millisecond after entry n - 1. Its payload and its leaf text are
# canonical JSON (sorted keys, no spaces) written out, as AuditService.record writes them.
SEED = """
INSERT INTO audit_entry (id, at, actor, action, object_type, object_id, payload, leaf)
SELECT n, at, 'system', 'order.paid', 'order', order_id,
       payload,
       '{"action":"order.paid","actor":"system","at":"'
       || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || '","id":' || n
       || ',"object_id":"' || order_id || '","object_type":"order","payload":' || payload || '}'
FROM (
    SELECT n, timestamptz '2026-01-01 00:00:00+00' + n * interval '1 millisecond' AS at,
           md5(n::text)::uuid::text AS order_id,
           '{"from":"accepted","payment_gateway":"local","payment_reference":"pay_' || md5('p' || n)
           || '","reason"\\:null,"to":"paid"}' AS payload
    FROM generate_series(1, :entries) AS n
) AS made
"""


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000, help="entries per sequencer transaction (and head)")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


async def seed(runtime: Runtime, entries: int) -> None:
    async with runtime.transaction() as services:
        await services.session.execute(text(SEED), {"entries": entries})
        await services.session.execute(text("SELECT setval('audit_entry_id_seq', :entries)"), {"entries": entries})
    async with runtime.transaction() as services:
        await services.session.execute(text("ANALYZE audit_entry"))
        samples = await services.session.execute(
            text("SELECT * FROM audit_entry WHERE id IN (1, 2, 777, :entries)"), {"entries": entries}
        )
        for row in samples.mappings():
            fields = {name: row[name] for name in ("at", "actor", "action", "object_type", "object_id")}
            fields["payload"] = json.loads(row["payload"])
            assert leaf_text(body(id=row["id"], **fields)) == row["leaf"], row["leaf"]


async def leaf_texts(runtime: Runtime) -> list[bytes]:
    async with runtime.transaction() as services:
        rows = await services.session.execute(text("SELECT leaf FROM audit_entry ORDER BY leaf_index"))
        return [leaf.encode() for (leaf,) in rows]


def sha256_rate(leaves: list[bytes]) -> float:
    """Leaves hashed per second by hashlib, one SHA-256 of 0x00 || text each (the leaf hash alone)."""
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for leaf in leaves:
        sha256(b"\x00" + leaf).digest()
    return len(leaves) / (time.perf_counter() - started)


async def verify(runtime: Runtime) -> tuple[float, object]:
    started = time.perf_counter()
    async with runtime.transaction() as services:
        report = await services.transparency.verify()
    return time.perf_counter() - started, report


def verify_command(settings: Settings) -> tuple[float, dict[str, object]]:
    """`marketplace audit verify` in a process of its own: its wall time (start-up included) and its report."""
    environment = {**os.environ, "DATABASE_URL": settings.database_url, "STORAGE_DIR": str(settings.storage_dir)}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "marketplace"), "audit", "verify"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=settings.storage_dir,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"marketplace audit verify failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def start_up(settings: Settings) -> tuple[float, float]:
    """The command's wall time over the empty log: the first run's (which compiles the modules it imports, unless
    an earlier run did) and the best of three after it."""
    first, report = verify_command(settings)
    assert (report["ok"], report["entries"]) == (True, 0), report
    return first, min(verify_command(settings)[0] for _ in range(3))


async def run(args: argparse.Namespace, settings: Settings) -> None:
    first_start, start = start_up(settings)
    print(f"`marketplace audit verify` start-up (over the empty log): {start:.2f} s (first run: {first_start:.2f} s)")
    runtime = Runtime.start(settings)
    try:
        started = time.perf_counter()
        await seed(runtime, args.entries)
        print(f"seeded {args.entries:,} entries in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        done = await sequence_audit(runtime)
        seconds = time.perf_counter() - started
        leaves = done["integrated_entries"]
        print(f"sequencer: {leaves:,} leaves in {seconds:.1f} s ({leaves / seconds:,.0f}/s)")
        seconds, report = await verify(runtime)
        print(f"report: {json.dumps(report.__dict__)}")
        assert getattr(report, "ok", False), report
        verify_rate = args.entries / seconds
        texts = await leaf_texts(runtime)
    finally:
        await runtime.stop()
    hash_rate = sha256_rate(texts)
    command_seconds, command_report = verify_command(settings)
    assert command_report["ok"] is True, command_report
    print(
        f"verify (TransparencyLog.verify): {args.entries:,} entries in {seconds:.2f} s = {verify_rate:,.0f} entries/s"
    )
    command_rate = args.entries / command_seconds
    print(
        f"`marketplace audit verify` (own process, start-up included): {command_seconds:.2f} s"
        f" = {command_rate:,.0f} entries/s (start-up {start:.2f} s of it)"
    )
    print(f"hashlib SHA-256 of the same {len(texts):,} leaf texts: {hash_rate:,.0f} hashes/s")
    print(
        f"command : SHA-256 = {command_rate / hash_rate:.2f}; target {TARGET_PER_SECOND:,} entries/s: "
        f"{'met' if command_rate >= TARGET_PER_SECOND else 'NOT met'}"
    )


def main() -> None:
    args = arguments()
    server, _, _ = args.postgres.rpartition("/")
    name = f"marketplace_bench_audit_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_postgres_database(f"{server}/postgres", name))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as storage:
            settings = Settings(
                database_url=f"{server}/{name}",
                storage_dir=Path(storage),
                audit_sequencer_batch=args.batch,
                log_json=False,
            )
            db_upgrade(settings)
            asyncio.run(run(args, settings))
    finally:
        asyncio.run(drop_postgres_database(f"{server}/postgres", name))


if __name__ == "__main__":
    main()
