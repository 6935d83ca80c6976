"""The exchange's periodic jobs, what the clock decides: one list every runner reads. On PostgreSQL
`marketplace worker` runs them through the job engine (marketplace/worker.py); on SQLite `marketplace serve`
runs them in-process (`in_process_schedule`), and so does `marketplace worker` there.

Every job is idempotent and transactional: it works in transactions of `runtime.transaction()`, each made of
guarded changes with ids derived from what they change, so a job run twice, or by two workers at once, has
one effect, and a job killed mid-way leaves its open transaction uncommitted for the next run to do.

To add a job: write an `async def job(runtime) -> dict[str, int]` below (what it did, by count), add a
setting for its interval (marketplace/config.py, with the README's row) and a `PeriodicJob` to `PERIODIC_JOBS`."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from marketplace.audit.service import SYSTEM_ACTOR
from marketplace.config import Settings
from marketplace.events.webhooks import Claim
from marketplace.kit import clock, outbound
from marketplace.web.idempotency import IdempotencyRepository
from marketplace.wiring import Runtime

log = logging.getLogger("marketplace.jobs")

# Licences expired per transaction; the job goes on until none is due.
EXPIRY_BATCH = 200
# Webhook deliveries claimed (and sent at once) per round; a run goes on while rounds find some, up to a limit,
# and the next run takes up the rest.
WEBHOOK_BATCH = 20
WEBHOOK_ROUNDS = 50
# A rate window is read during its own minute only; the one before is kept for clocks a little behind.
RATE_WINDOWS_KEPT = timedelta(minutes=2)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    run: Callable[[Runtime], Awaitable[dict[str, int]]]
    # the setting that says how often it runs, in seconds
    interval: Callable[[Settings], int]


async def settle(runtime: Runtime) -> dict[str, int]:
    """`marketplace settle`: the payment-window and acceptance-window sweeps, the settlement batch, the payouts
    (it commits as it goes; see marketplace/flows/settlement.py for why a second or concurrent run is safe)."""
    async with runtime.transaction() as services:
        report = await services.settlement.run(SYSTEM_ACTOR)
    return {
        "cancelled_orders": report.cancelled_orders,
        "auto_confirmed_orders": report.auto_confirmed_orders,
        "settled_orders": report.settled_orders,
        "settled_charges": report.settled_charges,
        "payouts": len(report.payouts),
    }


async def expire_licences(runtime: Runtime) -> dict[str, int]:
    """Expire every live licence whose term has ended, each with its audit entry, in batches."""
    expired = 0
    while True:
        async with runtime.transaction() as services:
            batch = await services.licences.expire_due(EXPIRY_BATCH, SYSTEM_ACTOR)
        expired += batch
        if batch < EXPIRY_BATCH:
            return {"expired_licences": expired}


async def prune(runtime: Runtime) -> dict[str, int]:
    """Delete the call counts of past minutes, idempotency records older than their retention (never one
    younger than IDEMPOTENCY_LOCK_SECONDS, which may still be running) and the console's ended sessions."""
    settings, now = runtime.settings, clock.now()
    kept = max(settings.idempotency_retention_seconds, settings.idempotency_lock_seconds)
    async with runtime.transaction() as services:
        windows = await services.licences.prune_rate_windows(now - RATE_WINDOWS_KEPT)
        records = await IdempotencyRepository(services.session).prune(now - timedelta(seconds=kept))
        sessions = await services.console_sessions.prune()
    return {"rate_windows": windows, "idempotency_records": records, "console_sessions": sessions}


async def sequence_audit(runtime: Runtime) -> dict[str, int]:
    """`marketplace audit sequence`: the entries appended since the last run join the transparency log's tree,
    a batch per transaction, each under a new signed tree head (see TransparencyLog.sequence)."""
    batch, integrated = runtime.settings.audit_sequencer_batch, 0
    while True:
        async with runtime.transaction() as services:
            joined = await services.transparency.sequence(batch)
        integrated += joined
        if joined < batch:
            return {"integrated_entries": integrated}


async def deliver_webhooks(runtime: Runtime) -> dict[str, int]:
    """Queue a delivery per new event each endpoint wants, then send what is due: each round claims (and signs)
    a batch in one transaction, sends it with no transaction open, and records each attempt in a transaction
    of its own. An endpoint has one delivery in flight at a time, its earliest open one, so events reach it in
    the order they were recorded; two runs at once never claim the same delivery (see WebhookService). The
    fan-out numbers the events committed since the last run first (`EventService.sequence`)."""
    async with runtime.transaction() as services:
        numbered = await services.events.sequence()
        queued = await services.webhooks.fan_out()
    sent = failed = 0
    for _ in range(WEBHOOK_ROUNDS):
        async with runtime.transaction() as services:
            claims = await services.webhooks.claim_due(WEBHOOK_BATCH)
        if not claims:
            break
        outcomes = await asyncio.gather(*(_send(runtime, claim) for claim in claims))
        for claim, outcome in zip(claims, outcomes, strict=True):
            async with runtime.transaction() as services:
                await services.webhooks.finish(claim, outcome.result, outcome.attempted_at)
            sent, failed = (sent + 1, failed) if outcome.result.succeeded else (sent, failed + 1)
    return {"events_numbered": numbered, "webhooks_queued": queued, "webhooks_sent": sent, "webhooks_failed": failed}


@dataclass(frozen=True)
class _Sent:
    result: outbound.Outcome
    attempted_at: datetime


async def _send(runtime: Runtime, claim: Claim) -> _Sent:
    """One attempt: the URL checked and resolved again (an address that turned private is refused, not sent
    to), then the signed request."""
    settings, attempted_at = runtime.settings, clock.now()
    try:
        target = await outbound.resolve(claim.url, settings.webhook_allowed_networks)
    except outbound.UnsafeTarget as refused:
        return _Sent(outbound.Outcome(None, 0, f"refused: {refused}", b""), attempted_at)
    result = await outbound.post(target, claim.body, claim.headers, timeout_seconds=settings.webhook_timeout_seconds)
    return _Sent(result, attempted_at)


async def usage_statements(runtime: Runtime) -> dict[str, int]:
    """Issue the usage statement of every metered licence's month that has ended (marketplace/flows/billing.py)."""
    async with runtime.transaction() as services:
        issued = await services.recurring_billing.issue_statements(SYSTEM_ACTOR)
    return {"issued_statements": len(issued)}


async def collect_usage(runtime: Runtime) -> dict[str, int]:
    """Collect the usage statements due through the gateway (declined ones again on the retry schedule), and suspend
    the licences whose statement is unpaid past the grace."""
    async with runtime.transaction() as services:
        done = await services.recurring_billing.collect_usage(SYSTEM_ACTOR)
    return {"paid": done.paid, "failed": done.failed, "waiting": done.waiting, "suspended_licences": done.suspended}


async def renew_subscriptions(runtime: Runtime) -> dict[str, int]:
    """Renew the subscriptions whose period has ended (charged through the gateway), suspend those unpaid past the
    grace and expire those unpaid past the suspension."""
    async with runtime.transaction() as services:
        done = await services.recurring_billing.renew_subscriptions(SYSTEM_ACTOR)
    return {
        "renewed": done.paid,
        "failed": done.failed,
        "waiting": done.waiting,
        "suspended_licences": done.suspended,
        "expired_licences": done.expired,
    }


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob("settle", settle, lambda settings: settings.settlement_interval_seconds),
    PeriodicJob("usage_statements", usage_statements, lambda settings: settings.usage_statement_interval_seconds),
    PeriodicJob("collect_usage", collect_usage, lambda settings: settings.usage_collection_interval_seconds),
    PeriodicJob("renew_subscriptions", renew_subscriptions, lambda settings: settings.renewal_interval_seconds),
    PeriodicJob("expire_licences", expire_licences, lambda settings: settings.licence_expiry_interval_seconds),
    PeriodicJob("prune", prune, lambda settings: settings.prune_interval_seconds),
    PeriodicJob("sequence_audit", sequence_audit, lambda settings: settings.audit_sequencer_interval_seconds),
    PeriodicJob("deliver_webhooks", deliver_webhooks, lambda settings: settings.webhook_interval_seconds),
)


async def run_logged(job: PeriodicJob, runtime: Runtime) -> dict[str, int]:
    """Run `job` once, logging what it did; its errors are raised to the runner (which retries)."""
    done = await job.run(runtime)
    if any(done.values()):
        log.info("job %s: %s", job.name, done, extra={"job": job.name, **done})
    return done


# The in-process schedule (SQLite)


async def run_schedule(runtime: Runtime, jobs: tuple[PeriodicJob, ...] = PERIODIC_JOBS) -> None:
    """Run each job at once, then every its interval, until cancelled. A job that fails is logged and runs again
    at its next time. Only one process per storage directory runs the schedule (a file lock; SQLite serialises
    writers anyway): the others wait to take over if it stops."""
    shortest = min(job.interval(runtime.settings) for job in jobs)
    loop = asyncio.get_running_loop()
    due = dict.fromkeys((job.name for job in jobs), loop.time())
    with _sole_runner(runtime.settings.storage_dir / "jobs.lock") as held:
        while True:
            if held():
                for job in jobs:
                    if loop.time() >= due[job.name]:
                        await _run_once(job, runtime)
                        due[job.name] = loop.time() + job.interval(runtime.settings)
            wait = min(due.values()) - loop.time() if held() else shortest
            await asyncio.sleep(max(0.0, wait))


async def _run_once(job: PeriodicJob, runtime: Runtime) -> None:
    try:
        await run_logged(job, runtime)
    except Exception:
        log.exception("job %s failed; it runs again at its next time", job.name)


@contextmanager
def _sole_runner(path: Path) -> Iterator[Callable[[], bool]]:
    """A function that tries to take the exclusive lock on `path` (without waiting) and says whether this
    process holds it; the lock goes with the file, closed on exit or when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        holding = False

        def held() -> bool:
            nonlocal holding
            holding = holding or _try_lock(handle)
            return holding

        yield held


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@asynccontextmanager
async def in_process_schedule(runtime: Runtime) -> AsyncIterator[None]:
    """The schedule as a task of this process while the block runs, when this process is to run it: on SQLite,
    with IN_PROCESS_JOBS on (on PostgreSQL `marketplace worker` runs the jobs)."""
    settings = runtime.settings
    if not (settings.is_sqlite and settings.in_process_jobs):
        yield
        return
    task = asyncio.create_task(run_schedule(runtime), name="marketplace-jobs")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
