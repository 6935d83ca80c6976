"""`marketplace worker`: runs the exchange's periodic jobs (marketplace/jobs.py).

On PostgreSQL through procrastinate, a job engine that lives in the same database (its tables come with
`marketplace db upgrade`, migration 0016): every worker defers each periodic job once per tick of its interval
(the engine's periodic defers are unique per task and tick, so any number of workers defer it once), and a job
is fetched by one worker only. Each job has a queueing lock (at most one waits to run) and a lock (at most one
runs at a time), and is retried with exponential backoff when it fails. A worker that dies mid-job (kill -9)
stops sending its heartbeat; after WORKER_STALLED_SECONDS any other worker puts its job back in the queue, and
it runs again: the job's effects are idempotent and its uncommitted transaction was lost with the process.

On SQLite there is no job engine: the worker runs the in-process schedule `marketplace serve` runs there
(only one process runs it at a time)."""

from __future__ import annotations

import asyncio
import logging

from procrastinate import App, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import UniqueViolation
from procrastinate.jobs import Job, Status
from sqlalchemy.engine import make_url

from marketplace.config import Settings, job_cron
from marketplace.jobs import PERIODIC_JOBS, PeriodicJob, run_logged, run_schedule
from marketplace.kit.logs import configure_logging
from marketplace.wiring import Runtime

log = logging.getLogger("marketplace.worker")

# A failed job runs again after 2, 4, 8 and 16 seconds (procrastinate waits 2 ** (attempts + 1)), then waits for
# its next tick.
RETRY = RetryStrategy(max_attempts=5, exponential_wait=2)
# Connections of the engine's own pool besides those of running jobs: its LISTEN, fetching, heartbeat, defers.
ENGINE_CONNECTIONS = 4


def run(settings: Settings, concurrency: int) -> None:
    """Run the jobs until stopped (SIGINT or SIGTERM: the jobs running finish first on PostgreSQL)."""
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(_run(settings, concurrency))


async def _run(settings: Settings, concurrency: int) -> None:
    runtime = Runtime.start(settings)
    try:
        if settings.is_sqlite:
            await run_schedule(runtime)
            return
        app = job_engine(runtime, concurrency)
        async with app.open_async():
            recovery = asyncio.create_task(_requeue_stalled_jobs(app, settings.worker_stalled_seconds))
            try:
                await app.run_worker_async(
                    concurrency=concurrency,
                    delete_jobs="successful",  # a periodic job's row is no use once done
                    update_heartbeat_interval=settings.worker_stalled_seconds / 3,
                    stalled_worker_timeout=settings.worker_stalled_seconds,
                )
            finally:
                recovery.cancel()
    finally:
        await runtime.stop()


def job_engine(runtime: Runtime, concurrency: int) -> App:
    """The engine over the runtime's database, with every periodic job registered."""
    url = make_url(runtime.settings.database_url).set(drivername="postgresql")
    connector = PsycopgConnector(
        conninfo=url.render_as_string(hide_password=False), min_size=1, max_size=concurrency + ENGINE_CONNECTIONS
    )
    app = App(connector=connector)
    for job in PERIODIC_JOBS:
        _register(app, job, runtime)
    return app


def _register(app: App, job: PeriodicJob, runtime: Runtime) -> None:
    async def run_job(timestamp: int) -> None:
        await run_logged(job, runtime)

    task = app.task(name=f"marketplace.{job.name}", queueing_lock=job.name, lock=job.name, retry=RETRY)(run_job)
    app.periodic(cron=job_cron(job.interval(runtime.settings)), periodic_id=job.name)(task)


async def _requeue_stalled_jobs(app: App, stalled_seconds: int) -> None:
    """Every `stalled_seconds`, put back in the queue the jobs of workers silent that long (dead)."""
    while True:
        await asyncio.sleep(stalled_seconds)
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_seconds):
                await _requeue(app, job)
        except Exception:
            # another worker requeued the job first, or the database is away: the next round tries again
            log.exception("requeueing stalled jobs failed")


async def _requeue(app: App, job: Job) -> None:
    """The job runs again; or, when its next tick is already queued (the queueing lock allows one waiting), it
    ends as failed and that one runs (it does the same work, as soon as this one's lock is released)."""
    log.warning("job %s of a stalled worker runs again", job.task_name, extra={"job_id": job.id})
    try:
        await app.job_manager.retry_job(job)
    except UniqueViolation:
        await app.job_manager.finish_job(job, Status.FAILED, delete_job=False)
