"""Engine, sessions and the unit of work: commit on success, roll back on error."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgspec
from sqlalchemy import ClauseElement, CursorResult, Dialect, Executable, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from marketplace.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SessionMaker = async_sessionmaker[AsyncSession]


def alembic_config(database_url: str | None = None) -> Any:
    """The migrations' configuration (alembic.ini), for `database_url` if given."""
    from alembic.config import Config

    # Alembic's default stream is the sys.stdout of when alembic.config was first imported: pass the current one
    config = Config(str(PROJECT_ROOT / "alembic.ini"), stdout=sys.stdout)
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


@cache
def migrations_head() -> str:
    """The newest migration's revision: what a database at head records."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


async def migrations_current(connection: AsyncConnection) -> str | None:
    """The revision the database records, None if it was never migrated (the caller's connection is
    left in a failed transaction then: give it one of its own)."""
    try:
        return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
    except DBAPIError:  # no alembic_version table
        return None


def create_engine(settings: Settings) -> AsyncEngine:
    # JSON documents (verdicts' findings and snapshots, stored responses) are encoded and decoded with
    # msgspec (Litestar's own JSON library): a third of the time of the json module for a 20 kB verdict, and
    # a document encoded already (`msgspec.Raw`) is written as it is.
    json_codec: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": msgspec.json.decode}
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, connect_args={"timeout": 30}, **json_codec)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No JIT compilation: the statements here are short, and a plan whose estimate crosses jit_above_cost (the
    # console's per-account subqueries over 64,000 accounts) spent 640 ms compiling to run 60 ms.
    options: dict[str, Any] = {**json_codec, "connect_args": {"server_settings": {"jit": "off"}}}
    if settings.database_pool_size == 0:  # no pooling: for callers that run several event loops
        return create_async_engine(settings.database_url, poolclass=NullPool, **options)
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=False,
        **options,
    )


_JSON_ENCODER = msgspec.json.Encoder()


def _json_text(value: Any) -> str:
    return _JSON_ENCODER.encode(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map of the file (up to 1 GiB of it) instead of a read() call per page missing
    # from the connection's page cache: 15 % less CPU per catalog search at 100,000 products. The mapped
    # pages are the OS's file cache, shared by every connection: a bound on the mapping, not memory taken.
    cursor.execute("PRAGMA mmap_size=1073741824")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(sessions: SessionMaker) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends normally, rolled back when it raises."""
    async with sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


def upsert_insert(session: AsyncSession) -> Any:
    """`insert` of the session's database dialect, the one with ON CONFLICT (PostgreSQL and SQLite)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core table. `insert(table_of(Model))` executed with the row as parameters is built
    and cached once; `insert(Model).values(**row)` is rebuilt and re-keyed on every call, which costs
    about a millisecond of CPU for a row of twenty columns."""
    table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models
    assert isinstance(table, Table)
    return table


@dataclass(frozen=True)
class TableRow:
    """A row of a table the writer of a statement does not know, written by the same statement: a request's
    idempotent answer, stored with the order it placed (one statement, one round trip)."""

    table: Table
    values: dict[str, Any]


async def runs_statements_alone(session: AsyncSession) -> bool:
    """Whether each of the session's statements runs in a transaction of its own (AUTOCOMMIT): one that fails
    leaves nothing to roll back, and the next runs as if it had not been sent."""
    connection = (await session.connection()).sync_connection
    assert connection is not None  # the session's, just procured
    return bool(connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT")


def refused_null(error: Exception, table: str, column: str) -> bool:
    """Whether `error` is PostgreSQL refusing a NULL in `table`.`column`, as the driver raises it (a
    `DriverStatement`'s errors are the driver's, not wrapped by SQLAlchemy)."""
    cause = error.__cause__
    return (
        getattr(error, "sqlstate", None) == "23502"
        and getattr(cause, "table_name", None) == table
        and getattr(cause, "column_name", None) == column
    )


@dataclass(frozen=True)
class DriverResult:
    rows: Sequence[Sequence[Any]]
    rowcount: int


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters in the order of their numbers
    processors: tuple[Callable[[Any], Any] | None, ...]
    bound: Mapping[str, Any]  # the values written in the statement itself
    results: tuple[Callable[[Any], Any] | None, ...]  # per returned column


# the rows a statement's command tag counts, as the dialect's cursor reads it
_ROWCOUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


class DriverStatement:
    """A Core statement sent on the driver's connection, on PostgreSQL: compiled once per set of parameter names,
    its parameters put in place and converted as SQLAlchemy would, and sent as the dialect's cursor sends it,
    from the request's own coroutine: without the execution machinery around each statement (its context,
    parameter construction, result metadata) and the hop into a greenlet and back, which cost about 200 us of
    CPU a statement on a path that sends a few a request (placing an order). The transaction it opens, its
    prepared statements and its errors are the dialect's adapter's, as for SQLAlchemy's own statements.
    Elsewhere (SQLite) the session executes the statement as usual."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[frozenset[str], _Compiled] = {}

    def compiled(self, dialect: Dialect, names: frozenset[str]) -> _Compiled:
        found = self._compiled.get(names)
        if found is None:
            compiled: Any = cast(ClauseElement, self.statement).compile(dialect=dialect, column_keys=sorted(names))
            positions = tuple(compiled.positiontup)
            processors = compiled._bind_processors  # the conversions SQLAlchemy applies itself
            bound = {
                name: compiled.binds[name].effective_value for name in positions if not compiled.binds[name].required
            }
            results = tuple(column.type._cached_result_processor(dialect, None) for column in compiled._result_columns)
            found = _Compiled(compiled.string, positions, tuple(map(processors.get, positions)), bound, results)
            self._compiled[names] = found
        return found

    async def execute(self, session: AsyncSession, parameters: dict[str, Any]) -> DriverResult:
        if session.get_bind().dialect.name != "postgresql":
            result: Any = await session.execute(self.statement, parameters)
            if not isinstance(result, CursorResult):  # a query's rows, through the ORM session
                found = result.all()
                return DriverResult(found, len(found))
            return DriverResult(result.all() if result.returns_rows else [], result.rowcount)
        connection = (await session.connection()).sync_connection
        assert connection is not None  # the session's, just procured
        dialect: Any = connection.dialect
        compiled = self.compiled(dialect, frozenset(parameters))
        values = tuple(
            value if processor is None else processor(value)
            for value, processor in zip(
                (parameters[name] if name in parameters else compiled.bound[name] for name in compiled.names),
                compiled.processors,
                strict=True,
            )
        )
        # announced like SQLAlchemy's own statements, to the engine's cursor listeners (a tracer's spans; the
        # orders bench counts and replays them), with a context of their own to keep what they need
        announced = SimpleNamespace()
        for listener in connection.dispatch.before_cursor_execute:
            listener(connection, None, compiled.sql, values, announced, False)
        # what the dialect's cursor does for a statement (`_prepare_and_execute`), awaited here
        adapted: Any = connection.connection.dbapi_connection
        try:
            async with adapted._execute_mutex:
                if adapted._transaction is None:
                    await adapted._start_transaction()  # none in AUTOCOMMIT
                try:
                    prepared, _ = await adapted._prepare(compiled.sql, dialect._invalidate_schema_cache_asof)
                    rows: Sequence[Sequence[Any]] = await prepared.fetch(*values)
                    status = prepared.get_statusmsg() or ""
                except Exception as error:  # noqa: BLE001 - raised again as the dialect's error
                    adapted._handle_exception(error)
        finally:
            for listener in connection.dispatch.after_cursor_execute:
                listener(connection, None, compiled.sql, values, announced, False)
        counted = _ROWCOUNT.match(status)
        rowcount = int(counted.group(1)) if counted else -1
        if rows and any(compiled.results):
            processors = compiled.results
            rows = [
                tuple(value if p is None else p(value) for value, p in zip(row, processors, strict=True))
                for row in rows
            ]
        return DriverResult(rows, rowcount)
