"""The periodic jobs: each is idempotent (run twice, one effect); in-process on SQLite a licence reaching its end
is expired within one tick; on PostgreSQL three `marketplace worker` processes do 500 due settlements and 500
due expiries once each, also when one is killed (-9) in the middle of its job."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlmodel import col

from marketplace.accounts.sessions import ConsoleSession
from marketplace.audit.models import AuditEntry
from marketplace.config import Settings
from marketplace.delivery.models import Licence, LicenceRateWindow, LicenceStatus
from marketplace.events.models import Event
from marketplace.events.service import EventService
from marketplace.jobs import expire_licences, in_process_schedule, prune
from marketplace.kit import clock
from marketplace.ledger.models import TransferKind
from marketplace.orders.models import OrderStatus
from marketplace.web.idempotency import IdempotencyRecord, IdempotencyState
from marketplace.wiring import Runtime
from tests.fixtures.api import Api
from tests.fixtures.database import is_postgres_url
from tests.ledger.trades import Shop, open_shop
from tests.webhooks.conftest import LOOPBACK, Receiver, create_endpoint, hooks, receiver, signatures_by

__all__ = ["hooks", "receiver"]  # the webhook tests' loopback receiver and allow-list, fixtures here too

DUE = 500


@pytest.fixture
async def shop(api: Api) -> Shop:
    return await open_shop(api)


def runtime_with(api: Api, **settings: Any) -> Runtime:
    runtime = api.runtime()
    return dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=settings))


async def licence_of(shop: Shop, order_id: uuid.UUID) -> Licence:
    async with shop.sessions() as session:
        licence = (await session.scalars(select(Licence).where(col(Licence.order_id) == order_id))).one()
        await session.refresh(licence)
        return licence


async def end_licences(shop: Shop, at: Any) -> None:
    async with shop.sessions.begin() as session:
        await session.execute(update(Licence).values(ends_at=at))


async def audit_count(shop: Shop, action: str) -> Counter[str]:
    async with shop.sessions() as session:
        rows = await session.scalars(select(col(AuditEntry.object_id)).where(col(AuditEntry.action) == action))
        return Counter(str(object_id) for object_id in rows)


async def test_expiry_expires_each_ended_licence_once_and_a_second_run_nothing(api: Api, shop: Shop) -> None:
    order_id = await shop.completed_order()
    await end_licences(shop, clock.now() - timedelta(seconds=1))
    runtime = api.runtime()
    assert await expire_licences(runtime) == {"expired_licences": 1}
    assert await expire_licences(runtime) == {"expired_licences": 0}
    licence = await licence_of(shop, order_id)
    assert (licence.status, licence.status_reason) == (LicenceStatus.EXPIRED, "the licence term has ended")
    assert await audit_count(shop, "licence.expired") == {str(licence.id): 1}
    assert await shop.audit_ok()
    async with shop.sessions() as session:  # and its event, for its buyer and provider
        await EventService(session).sequence()
        expired = (
            await session.execute(select(Event.subject_id, Event.payload).where(Event.type == "licence.expired"))
        ).all()
    assert [(subject, payload["status"]) for subject, payload in expired] == [(str(licence.id), "expired")]


async def test_prune_deletes_past_rate_windows_old_idempotency_records_and_ended_console_sessions(
    api: Api, shop: Shop
) -> None:
    order_id = await shop.completed_order()
    licence = await licence_of(shop, order_id)
    now = clock.now()
    async with shop.sessions.begin() as session:
        windows = [now - timedelta(minutes=10), now.replace(second=0, microsecond=0)]
        await session.execute(
            insert(LicenceRateWindow), [{"licence_id": licence.id, "window_start": w} for w in windows]
        )
        records = [("old", now - timedelta(days=2)), ("new", now)]
        await session.execute(
            insert(IdempotencyRecord),
            [
                {"actor": "a", "key": key, "request_hash": "0" * 64, "state": IdempotencyState.DONE, "started_at": at}
                for key, at in records
            ],
        )
    admin = uuid.UUID((await api.admin()).id)
    async with api.runtime().transaction() as services:
        tokens = [await services.console_sessions.open(admin) for _ in range(3)]
    settings = api.runtime().settings
    async with shop.sessions.begin() as session:  # one idled, one aged out, one in use
        idled = now - timedelta(seconds=settings.console_session_idle_seconds + 1)
        aged = now - timedelta(seconds=settings.console_session_max_seconds + 1)
        sessions = list(await session.scalars(select(ConsoleSession).order_by(col(ConsoleSession.created_at))))
        sessions[0].last_seen_at = idled
        sessions[1].created_at = sessions[1].last_seen_at = aged
    assert await prune(api.runtime()) == {"rate_windows": 1, "idempotency_records": 1, "console_sessions": 2}
    async with api.runtime().transaction() as services:
        live = [await services.console_sessions.resolve(token) is not None for token in tokens]
    assert sorted(live) == [False, False, True]
    async with shop.sessions() as session:
        assert list(await session.scalars(select(col(IdempotencyRecord.key)))) == ["new"]
        assert len((await session.scalars(select(ConsoleSession))).all()) == 1
        assert list(await session.scalars(select(col(LicenceRateWindow.window_start)))) == [windows[1]]


async def test_in_process_a_licence_reaching_its_end_is_expired_within_one_tick_with_its_webhook(
    api: Api, shop: Shop, receiver: Receiver, hooks: Runtime
) -> None:
    """`marketplace serve` on SQLite runs the jobs in-process (the app's lifespan enters this schedule): the
    licence expires at the first tick after its end, and the buyer's endpoint gets `licence.expired` signed."""
    if is_postgres_url(os.environ.get("TEST_DATABASE_URL", "")):
        pytest.skip("in-process jobs run on SQLite; on PostgreSQL the worker test below shows it")
    order_id = await shop.completed_order()
    tick = 1
    endpoint = await create_endpoint(
        api, shop.buyer.person, str(shop.buyer.organization_id), receiver.url(), ["licence."]
    )
    ends_at = clock.now() + timedelta(seconds=1.5)
    await end_licences(shop, ends_at)
    runtime = runtime_with(
        api,
        in_process_jobs=True,
        licence_expiry_interval_seconds=tick,
        webhook_interval_seconds=tick,
        webhook_allowed_networks=LOOPBACK,
    )
    async with in_process_schedule(runtime):
        while (licence := await licence_of(shop, order_id)).status != LicenceStatus.EXPIRED:
            assert clock.now() < ends_at + timedelta(seconds=tick + 2), "not expired within one tick"
            await asyncio.sleep(0.05)
        # and its event reaches the buyer's webhook endpoint at the webhook job's next tick
        while not (sent := [json.loads(r.body) for r in receiver.received]):
            assert clock.now() < licence.updated_at + timedelta(seconds=tick + 2), "no webhook within one tick"
            await asyncio.sleep(0.05)
    assert licence.ends_at is not None
    # expired at the first tick after its end (the job's own run time aside)
    assert ends_at <= licence.updated_at <= ends_at + timedelta(seconds=tick + 0.5)
    assert await audit_count(shop, "licence.expired") == {str(licence.id): 1}
    assert [(m["type"], m["data"]["status"]) for m in sent] == [("licence.expired", "expired")]
    assert signatures_by(endpoint["secret"], receiver.received[0]) == 1


# PostgreSQL: real workers


@contextmanager
def workers(settings: Settings, logs: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`start(name)` starts a `marketplace worker` process on the test database (loopback), each logging to its
    own file; every process still running is stopped on exit."""
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        yield running
    finally:
        for process in running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_worker(running: dict[str, subprocess.Popen[bytes]], name: str, settings: Settings, logs: Path) -> None:
    environment = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_POOL_SIZE": "2",
        "STORAGE_DIR": str(settings.storage_dir),
        "LOG_JSON": "false",
        "LOG_LEVEL": "INFO",
        "SETTLEMENT_INTERVAL_SECONDS": "1",
        "LICENCE_EXPIRY_INTERVAL_SECONDS": "1",
        "PRUNE_INTERVAL_SECONDS": "60",
        "WORKER_STALLED_SECONDS": "3",
    }
    log: IO[bytes] = (logs / f"{name}.log").open("wb")
    running[name] = subprocess.Popen(
        [sys.executable, "-m", "marketplace.cli", "worker", "--concurrency", "2"],
        cwd=logs,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def running_settlement(logs: Path, names: list[str]) -> str | None:
    """The worker whose log shows a settlement job started and not yet ended."""
    for name in names:
        text = (logs / f"{name}.log").read_text(errors="replace")
        started = {
            line.split("Starting job ")[1].split("(")[0] for line in text.splitlines() if "Starting job " in line
        }
        ended = {line.split("Job ")[1].split("(")[0] for line in text.splitlines() if " ended with status" in line}
        if any(job.startswith("marketplace.settle[") for job in started - ended):
            return name
    return None


async def settled_count(shop: Shop, order_ids: list[uuid.UUID]) -> int:
    statuses = await shop.statuses(order_ids)
    return sum(status in (OrderStatus.SETTLED, OrderStatus.PAID_OUT) for status in statuses.values())


async def due_work(shop: Shop) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """DUE completed orders due for settlement, and DUE licences (one per order) whose term has ended."""
    template = await shop.completed_order()
    orders = [template, *await shop.copies(template, [(10_000 + n, 500) for n in range(DUE - 1)])]
    template_licence = await licence_of(shop, template)
    row = template_licence.model_dump()
    ended = clock.now() - timedelta(seconds=1)
    async with shop.sessions.begin() as session:
        await session.execute(
            insert(Licence), [{**row, "id": uuid.uuid4(), "order_id": order_id} for order_id in orders[1:]]
        )
    await end_licences(shop, ended)
    async with shop.sessions() as session:
        licences = list(await session.scalars(select(col(Licence.id))))
    assert len(licences) == DUE
    return orders, licences


@pytest.mark.postgres
async def test_three_workers_do_500_due_jobs_once_each_even_when_one_is_killed_mid_job(
    shop: Shop, settings: Settings, tmp_path: Path, many_connections: None
) -> None:
    orders, licences = await due_work(shop)
    deadline = time.monotonic() + 90
    with workers(settings, tmp_path) as running:
        for name in ("w1", "w2", "w3"):
            start_worker(running, name, settings, tmp_path)
        # kill -9 the worker running the settlement, in the middle of it: some orders settled, not all
        while (victim := running_settlement(tmp_path, list(running))) is None or not await settled_count(shop, orders):
            assert time.monotonic() < deadline, "no worker started the settlement"
            await asyncio.sleep(0.02)
        running[victim].send_signal(signal.SIGKILL)
        running[victim].wait()
        settled_when_killed = await settled_count(shop, orders)
        start_worker(running, "w4", settings, tmp_path)
        while await settled_count(shop, orders) < DUE or await shop.statuses(orders) != dict.fromkeys(
            orders, OrderStatus.PAID_OUT
        ):
            assert time.monotonic() < deadline, "the settlement did not finish"
            await asyncio.sleep(0.5)
        while await audit_count(shop, "licence.expired") != dict.fromkeys(map(str, licences), 1):
            assert time.monotonic() < deadline, "the licences were not all expired"
            await asyncio.sleep(0.5)
    print(f"killed {victim} with {settled_when_killed} of {DUE} orders settled")  # noqa: T201
    assert settled_when_killed < DUE, "the worker was killed after its settlement had finished"
    # each effect once: one settlement and one fee transfer per order, every licence expired once, one audit
    # entry each; the payouts pay exactly what was settled; the books and the audit chain hold
    settlements, fees = await shop.transfers(TransferKind.SETTLEMENT), await shop.transfers(TransferKind.FEE)
    assert all(len(settlements[order_id]) == 1 and len(fees[order_id]) == 1 for order_id in orders)
    assert await audit_count(shop, "order.settled") == dict.fromkeys(map(str, orders), 1)
    async with shop.sessions() as session:
        statuses = Counter((await session.scalars(select(col(Licence.status)))).all())
        assert statuses == {LicenceStatus.EXPIRED: DUE}
        assert (await session.execute(select(func.count()).select_from(Licence))).scalar_one() == DUE
    payouts = await shop.payouts()
    assert sum(p.amount_minor for p in payouts) == sum(sum(settlements[o]) for o in orders)
    await_books = await shop.check()
    assert await_books.ok, await_books
    assert await shop.audit_ok()
