"""The `marketplace` command: serve, migrate, administer, verify."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marketplace.config import Settings
    from marketplace.kit.progress import Progress

CLI_ACTOR = "cli"
MIN_PASSWORD_LENGTH = 12


def db_upgrade(settings: Settings, revision: str = "head") -> None:
    from alembic import command

    from marketplace.db import alembic_config

    if settings.is_sqlite:
        _sqlite_file(settings.database_url).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), revision)


def db_downgrade(settings: Settings, revision: str) -> None:
    from alembic import command

    from marketplace.db import alembic_config

    command.downgrade(alembic_config(settings.database_url), revision)


def _sqlite_file(url: str) -> Path:
    return Path(url.split(":///", 1)[1]) if ":///" in url else Path("marketplace.db")


async def _with_services(settings: Settings, work: Callable[[Any], Awaitable[Any]], **changes: Any) -> Any:
    """`work(services)` in one transaction of a runtime made for this command (`changes` replace parts of it)."""
    import dataclasses

    from marketplace.wiring import Runtime

    runtime = dataclasses.replace(Runtime.start(settings), **changes)
    try:
        async with runtime.transaction() as services:
            return await work(services)
    finally:
        await runtime.stop()


@contextmanager
def progress_bars() -> Iterator[Progress]:
    """Progress bars for a long command, drawn on standard error when it is a terminal (so standard output
    stays what a script reads); nothing otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Bars(*columns, console=console, transient=True, disable=not console.is_terminal) as bars:
        tasks: dict[str, Any] = {}

        def report(step: str, done: int, total: int | None = None) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=total)
            bars.update(tasks[step], completed=done, total=total)

        yield report


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces, Loops, RuntimeModes

    from marketplace.kit.logs import server_logging

    Granian(
        "marketplace.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        # uvloop: about 0.3 ms less of the server's CPU per order placed than asyncio's own loop; a worker's
        # network I/O on one thread (granian's default for ASGI is a multi-threaded runtime) another 0.25 ms
        # less and about a tenth more orders/s (bench/orders.py)
        loop=Loops.uvloop,
        runtime_mode=RuntimeModes.st,
        address=args.host,
        port=args.port,
        workers=args.workers,
        log_access=False,
        log_dictconfig=server_logging(settings.log_level, settings.log_json),
    ).serve()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace import worker

    worker.run(settings, args.concurrency)
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    if args.db_command == "upgrade":
        db_upgrade(settings, args.revision)
    elif args.db_command == "downgrade":
        db_downgrade(settings, args.revision)
    elif args.db_command == "history":
        return _db_history(args.json)
    else:
        return _db_current(settings, args.json, check=args.db_command == "check")
    return 0


def _db_history(as_json: bool) -> int:
    """The migrations, oldest first."""
    from alembic.script import ScriptDirectory

    from marketplace.db import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    history = [
        {"revision": script.revision, "down_revision": script.down_revision, "message": script.doc}
        for script in reversed(list(scripts.walk_revisions()))
    ]
    if as_json:
        print(json.dumps(history, indent=2, ensure_ascii=False))
    else:
        for entry in history:
            print(f"{entry['down_revision'] or '<base>'} -> {entry['revision']}  {entry['message']}")
    return 0


def _db_current(settings: Settings, as_json: bool, *, check: bool) -> int:
    """The database's revision beside the code's head; with `check`, exit 1 unless they are the same."""
    from marketplace.db import create_engine, migrations_current, migrations_head

    async def current() -> str | None:
        engine = create_engine(settings.model_copy(update={"database_pool_size": 0}))
        try:
            async with engine.connect() as connection:
                return await migrations_current(connection)
        finally:
            await engine.dispose()

    revision, head = asyncio.run(current()), migrations_head()
    at_head = revision == head
    if as_json:
        print(json.dumps({"current": revision, "head": head, "at_head": at_head}))
    elif check and not at_head:
        print(
            f"error: the database is at {revision or 'no revision (never migrated)'}, the code at {head}",
            file=sys.stderr,
        )
    else:
        print(f"current {revision or '(never migrated)'}  head {head}{'' if at_head else '  (behind)'}")
    return 1 if check and not at_head else 0


def cmd_admin_create(settings: Settings, args: argparse.Namespace) -> int:
    if len(args.password) < MIN_PASSWORD_LENGTH:
        print(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", file=sys.stderr)
        return 2

    async def work(services: Any) -> Any:
        return await services.accounts.create_admin(
            email=args.email.strip().lower(), password=args.password, name=args.name, actor=CLI_ACTOR
        )

    user = asyncio.run(_with_services(settings, work))
    if args.json:
        print(json.dumps({"id": str(user.id), "email": user.email, "name": user.name}))
    else:
        print(f"administrator {user.email} ({user.id}) is ready")
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    report = asyncio.run(_verify_audit_log(settings))
    print(json.dumps(report.__dict__, indent=2))
    return 0 if report.ok else 1


async def _verify_audit_log(settings: Settings) -> Any:
    """`audit verify`'s work with only what it needs, an engine and the notary's public keys: the whole runtime's
    start-up (the application's modules, the rulebook, the gateway, the other keys) would double its time over a
    log of a million entries."""
    from marketplace.audit.repository import AuditRepository
    from marketplace.audit.transparency import verify_log
    from marketplace.db import create_engine, create_sessionmaker
    from marketplace.kit.jws import Notary

    notary = Notary.load(settings.notary_key, settings.retired_notary_keys)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return await verify_log(AuditRepository(session), notary)
    finally:
        await engine.dispose()


def cmd_audit_sequence(settings: Settings, args: argparse.Namespace) -> int:
    """The sequencer's job, once now: the pending entries become leaves, under new signed tree heads."""
    from marketplace.jobs import sequence_audit

    print(json.dumps(_run_job(settings, sequence_audit)))
    return 0


def cmd_notary_rotate(settings: Settings, args: argparse.Namespace) -> int:
    """A new current notary key; the old one retired, its public key kept and published for ever."""
    from marketplace.kit.jws import rotate_notary

    try:
        retired, current = rotate_notary(settings.notary_key, settings.retired_notary_keys)
    except FileNotFoundError as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    said = {"retired_kid": retired, "current_kid": current}
    print(json.dumps(said) if args.json else f"notary key {retired} retired, {current} current: restart every process")
    return 0


def cmd_verify_certificate(args: argparse.Namespace) -> int:
    """Check a trade certificate offline with the exchange's JWKS alone; one line says what holds (exit 0) or what
    does not (exit 1). Anyone runs it, on any machine: it reads none of the exchange's settings and loads neither
    the database layer nor the web framework."""
    from marketplace.certificates.inputs import Unreadable, check_files
    from marketplace.certificates.verification import Checked

    try:
        checked = check_files(Path(args.file), args.jwks, Path(args.tree_head) if args.tree_head else None)
    except Unreadable as unreadable:
        checked = Checked(failure=str(unreadable))
    said = {"ok": checked.ok, "holds": checked.holds, "failure": checked.failure}
    print(json.dumps(said) if args.json else checked.line())
    return 0 if checked.ok else 1


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.demo import seed_demo
    from marketplace.payments.local import LocalGateway

    with progress_bars() as progress:

        async def demo(services: Any) -> str:
            return await seed_demo(services, only_if_empty=args.if_empty, progress=progress)

        # the demo trades on the local gateway, whatever gateway is configured
        summary = asyncio.run(_with_services(settings, demo, gateway=LocalGateway()))
    print(summary)
    return 0


def _rulebook(path: str | None, settings: Settings) -> Any:
    from marketplace.compliance.rulebook import load_rulebook

    return load_rulebook(Path(path) if path else settings.rulebook_path)


def cmd_rules_list(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.compliance.schemas import RulebookRead

    described = RulebookRead.of(_rulebook(args.rulebook, settings), settings.default_language)
    if args.json:
        print(described.model_dump_json(indent=2))
        return 0
    for rule in described.items:
        stages = ",".join(stage.value for stage in rule.stages)
        print(f"{rule.id:<8} {rule.version:<8} {rule.severity.value:<7} {stages:<40} {rule.title}")
    if described.disabled:
        print(f"disabled: {', '.join(described.disabled)}")
    print(f"fingerprint: {described.fingerprint}")
    return 0


def cmd_rules_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import datetime

    from marketplace.compliance.contract import Stage
    from marketplace.compliance.engine import evaluate
    from marketplace.compliance.snapshots import Snapshot
    from marketplace.kit import clock

    snapshot = Snapshot.model_validate_json(Path(args.snapshot).read_bytes())
    now = clock.as_utc(datetime.fromisoformat(args.at)) if args.at else clock.now()
    verdict = evaluate(_rulebook(args.rulebook, settings), Stage(args.stage), snapshot, now)
    print(json.dumps(verdict.as_json(), indent=2, ensure_ascii=False))
    return 0


def cmd_rules_snapshot(settings: Settings, args: argparse.Namespace) -> int:
    import uuid

    async def snapshot(services: Any) -> str | None:
        stored = await services.compliance.verdict(uuid.UUID(args.verdict_id))
        return None if stored is None else (await services.compliance.snapshot(stored)).model_dump_json(indent=2)

    document = asyncio.run(_with_services(settings, snapshot))
    if document is None:
        print(f"no verdict {args.verdict_id}", file=sys.stderr)
        return 1
    print(document)
    return 0


def cmd_rules_impact(settings: Settings, args: argparse.Namespace) -> int:
    candidate = _rulebook(args.rulebook, settings)
    with progress_bars() as progress:
        report = asyncio.run(
            _with_services(settings, lambda services: services.rules_impact.report(candidate, progress))
        )
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def cmd_settle(settings: Settings, args: argparse.Namespace) -> int:
    from marketplace.ledger.schemas import SettlementRead

    with progress_bars() as progress:
        report = asyncio.run(_with_services(settings, lambda services: services.settlement.run(CLI_ACTOR, progress)))
    print(SettlementRead.model_validate(report).model_dump_json(indent=2))
    return 0


def cmd_ledger_check(settings: Settings, args: argparse.Namespace) -> int:
    """Check the books as `GET /api/v1/admin/ledger/check` does; exit 1 unless they are right."""
    from marketplace.ledger.schemas import LedgerCheckRead

    check = asyncio.run(_with_services(settings, lambda services: services.books.check()))
    print(LedgerCheckRead.model_validate(check).model_dump_json(indent=2))
    return 0 if check.ok else 1


def cmd_billing_statements(settings: Settings, args: argparse.Namespace) -> int:
    """Issue the statements of the months that have ended (one licence's with --licence), as the job does."""
    import uuid

    from marketplace.api.billing import statement_read

    licence_id = uuid.UUID(args.licence) if args.licence else None
    issued = asyncio.run(
        _with_services(settings, lambda services: services.recurring_billing.issue_statements(CLI_ACTOR, licence_id))
    )
    reads = [statement_read(statement) for statement in issued]
    if args.json:
        print(json.dumps([read.model_dump(mode="json") for read in reads], indent=2))
        return 0
    for read in reads:
        print(
            f"{read.id} licence {read.licence_id} {read.period}: {read.calls} calls, {read.billable_calls} billable, "
            f"{read.amount_minor} {read.currency} minor units, {read.status.value}"
        )
    print(f"{len(reads)} statements issued")
    return 0


def _run_job(settings: Settings, job: Callable[[Any], Awaitable[dict[str, int]]]) -> dict[str, int]:
    """A periodic job (marketplace/jobs.py) run once, in a runtime of its own."""
    from marketplace.wiring import Runtime

    async def run() -> dict[str, int]:
        runtime = Runtime.start(settings)
        try:
            return await job(runtime)
        finally:
            await runtime.stop()

    return asyncio.run(run())


def cmd_billing_job(settings: Settings, args: argparse.Namespace) -> int:
    """Run one recurring billing job now (`collect`: collect_usage, `renew`: renew_subscriptions); print what it did."""
    from marketplace.jobs import collect_usage, renew_subscriptions

    done = _run_job(settings, collect_usage if args.billing_command == "collect" else renew_subscriptions)
    print(json.dumps(done, indent=2) if args.json else " ".join(f"{name}={count}" for name, count in done.items()))
    return 0


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    shown = settings.masked_variables()
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    for name, value in shown.items():
        print(f"{name}={_as_variable(value)}")
    return 0


def cmd_messages_update(settings: Settings, args: argparse.Namespace) -> int:
    import importlib
    import pkgutil

    import marketplace.api
    from marketplace.web.messages import update_catalogs

    # every controller, and through them every error class: their problem titles are messages
    for module in pkgutil.iter_modules(marketplace.api.__path__, "marketplace.api."):
        importlib.import_module(module.name)

    for path in update_catalogs():
        print(f"wrote {path}")
    return 0


def _as_variable(value: Any) -> str:
    """A JSON value written as the variable would be set: unset empty, lists comma-separated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketplace", description="Data exchange marketplace")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on (default: %(default)s)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser(
        "worker", help="run the periodic jobs: settlement, sweeps, licence expiry, pruning (any number at once)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="jobs run at once, PostgreSQL only (default: %(default)s)"
    )
    worker.set_defaults(handler=cmd_worker)

    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("revision", nargs="?", default="head", help="the revision to reach (default: %(default)s)")
    downgrade = db_commands.add_parser("downgrade", help="revert migrations")
    downgrade.add_argument("revision", help="the revision to return to, or -N for N steps back")
    for name, help_text in (
        ("current", "the database's migration and the code's head"),
        ("check", "exit 1 unless the database is migrated to the code's head (for deploy scripts)"),
        ("history", "every migration, oldest first"),
    ):
        db_commands.add_parser(name, help=help_text).add_argument("--json", action="store_true", help="as JSON")
    db.set_defaults(handler=cmd_db)

    admin = commands.add_parser("admin", help="platform administrators")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser("create", help="create or promote an administrator")
    create.add_argument("--email", required=True, help="the administrator's login")
    create.add_argument("--password", required=True, help=f"at least {MIN_PASSWORD_LENGTH} characters")
    create.add_argument("--name", default="Administrator", help="the name shown in the audit trail")
    create.add_argument("--json", action="store_true", help="as JSON: the administrator's id, email and name")
    create.set_defaults(handler=cmd_admin_create)

    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser("verify", help="recompute the transparency log's tree, check every signed head")
    verify.set_defaults(handler=cmd_audit_verify)
    sequence = audit_commands.add_parser("sequence", help="add the pending entries to the tree, sign new heads")
    sequence.set_defaults(handler=cmd_audit_sequence)

    notary = commands.add_parser("notary", help="the notary's keys, which sign tree heads and trade certificates")
    notary_commands = notary.add_subparsers(dest="notary_command", required=True)
    rotate = notary_commands.add_parser(
        "rotate", help="make a new notary key current; the old one stays published, never signs again"
    )
    rotate.add_argument("--json", action="store_true", help="as JSON: the retired and the current key's ids")
    rotate.set_defaults(handler=cmd_notary_rotate)

    check = commands.add_parser("verify-certificate", help="check a trade certificate offline with the public keys")
    check.add_argument("file", help="the certificate: its compact JWS, or the JSON the API answers")
    check.add_argument("--jwks", required=True, help="the exchange's JWKS: a file, or its http(s) URL")
    check.add_argument("--tree-head", help="a signed tree head got elsewhere: the proof must lead to it")
    check.add_argument("--json", action="store_true", help="as JSON: ok, what holds, the failure")

    rules = commands.add_parser("rules", help="the rulebook")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    rules_list = rules_commands.add_parser("list", help="the enabled rules and the fingerprint")
    rules_list.add_argument("--json", action="store_true", help="as JSON")
    rules_list.add_argument("--rulebook", help="a rulebook file other than the configured one")
    rules_list.set_defaults(handler=cmd_rules_list)
    rules_evaluate = rules_commands.add_parser("evaluate", help="dry-run a stage on a snapshot file; writes nothing")
    stages = ["admission", "listing", "trade", "delivery", "settlement"]
    rules_evaluate.add_argument("--stage", required=True, choices=stages, help="the stage whose rules judge")
    rules_evaluate.add_argument("--snapshot", required=True, help="a JSON snapshot (`rules snapshot` prints one)")
    rules_evaluate.add_argument("--rulebook", help="a rulebook file other than the configured one")
    rules_evaluate.add_argument("--at", help="evaluation time (ISO 8601; default now), for exact replays")
    rules_evaluate.set_defaults(handler=cmd_rules_evaluate)
    rules_snapshot = rules_commands.add_parser(
        "snapshot", help="the snapshot a stored verdict judged, put together from its parts (for `rules evaluate`)"
    )
    rules_snapshot.add_argument("verdict_id", help="the verdict's id")
    rules_snapshot.set_defaults(handler=cmd_rules_snapshot)
    rules_impact = rules_commands.add_parser("impact", help="what a candidate rulebook would change")
    rules_impact.add_argument("--rulebook", required=True, help="the candidate rulebook file")
    rules_impact.set_defaults(handler=cmd_rules_impact)

    demo = commands.add_parser("demo", help="seed demonstration data")
    demo.add_argument("--if-empty", action="store_true", help="do nothing if the database has users")
    demo.set_defaults(handler=cmd_demo)
    settle = commands.add_parser(
        "settle", help="settle completed orders and pay providers out (safe to run again, or at once)"
    )
    settle.set_defaults(handler=cmd_settle)
    ledger = commands.add_parser("ledger", help="the double-entry ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    ledger_commands.add_parser("check", help="check the books (exit 1 unless right)").set_defaults(
        handler=cmd_ledger_check
    )
    billing = commands.add_parser("billing", help="recurring billing: usage statements, their collection, renewals")
    billing_commands = billing.add_subparsers(dest="billing_command", required=True)
    statements = billing_commands.add_parser("statements", help="issue the statements of the months that have ended")
    statements.add_argument("--licence", type=_uuid_text, help="only this licence's")
    statements.add_argument("--json", action="store_true", help="as JSON")
    statements.set_defaults(handler=cmd_billing_statements)
    for name, help_text in (
        ("collect", "collect the statements due, suspend licences unpaid past the grace"),
        ("renew", "renew the subscriptions due, suspend or expire those unpaid"),
    ):
        job = billing_commands.add_parser(name, help=help_text)
        job.add_argument("--json", action="store_true", help="as JSON")
        job.set_defaults(handler=cmd_billing_job)
    messages = commands.add_parser("messages", help="the message catalogs (Chinese findings and problems)")
    messages_commands = messages.add_subparsers(dest="messages_command", required=True)
    messages_update = messages_commands.add_parser(
        "update", help="write the catalogs' template from the rules and errors, merge it into each catalog"
    )
    messages_update.set_defaults(handler=cmd_messages_update)
    config = commands.add_parser("config", help="the effective settings, secrets masked")
    config.add_argument("--json", action="store_true", help="as JSON")
    config.set_defaults(handler=cmd_config)
    return parser


def _uuid_text(value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an id: {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "verify-certificate":
        return cmd_verify_certificate(args)
    # each command imports what it uses when it runs: `audit verify` loads no web framework, for one
    from marketplace.compliance.errors import RulebookError, RuleLoadError
    from marketplace.config import Settings, SettingsError

    try:
        # before any command runs (`serve` starts its workers only after this), so a bad value stops everything
        settings = Settings.from_env()
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    try:
        result: int = args.handler(settings, args)
    except (RuleLoadError, RulebookError) as exc:
        print(f"marketplace: the rulebook cannot be loaded: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
