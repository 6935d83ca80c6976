"""Hosted datasets queried with DuckDB: the rows of API delivery, the aggregates of privacy computing.

Pure and synchronous (no database of ours, no web framework): the service runs these in a worker
thread. A dataset (CSV with a header row, or JSON lines) is prepared once: converted to Parquet, named by
its sha256 and the declared text columns, in row groups of `ROW_GROUP_ROWS` with their statistics and a
hidden `__row` ordinal that keeps the file's order, so a page of the whole file reads one row group and
sorts nothing; its row count and schema are then read from the Parquet metadata, never by scanning, and
kept per process (`PREPARED_TABLES`, least recently used first out). Queries run on one in-memory DuckDB
per process (memory limited; Parquet metadata cached), through a connection of their worker thread, and read
a small table from its copy in that database's memory (`MEMORY_TABLES_BYTES` in all), a larger one from its
file. A page of such a small table unfiltered is a slice of the process's own copy of its rows, as JSON values
(`ROW_COPIES_BYTES` in all): no engine, whose least query costs more CPU than the page. A filtered page of it is
a slice of the positions of the matching rows, which the engine finds once per filter asked more than once
(`MATCHES_BYTES` in all). An aggregate's exact answer is kept too, for the same query asked again.

Nothing a buyer sends is ever part of SQL text: values are bound parameters, and column names are
checked against the table's own columns (and, for aggregates, the product's allowed lists) before
they are quoted into a statement. The engine's own messages never leave this module: they name server paths
and can quote a row's value, so its errors become `HostingError`s in our words."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import os
import sys
import threading
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import duckdb

from marketplace.catalog.samples import CSV, JSON_LINES
from marketplace.kit.i18n import Message

ROW = "__row"
MAX_COLUMN_NAME = 128
MAX_GROUP_BY = 5
MAX_METRICS = 10
MAX_FILTERS = 20
MAX_IN_VALUES = 100
MAX_GROUPS = 10_000
MAX_PAGE = 1000
ROW_GROUP_ROWS = 10_000  # a page of the whole file reads one row group of this many rows
PREPARED_FORMAT = "g10k"  # in the Parquet file's name: a change of preparation prepares every dataset anew
PREPARED_TABLES = 256  # hosted tables whose schema and row count a process keeps
# Uncompressed bytes of prepared files a process copies into its engine's memory, the first that fit (never
# dropped: a prepared file never changes). A page of a copy costs about half the CPU of one read from the file.
MEMORY_TABLES_BYTES = 32 * 1024**2
# Bytes of Python objects in the copies of rows that a process keeps of tables it has copied into its engine's
# memory, the first that fit (never dropped either). A page sliced from a copy costs tens of microseconds of
# CPU; the engine's least query about 0.2 ms, and a page of a copy in its memory about 0.5 ms.
ROW_COPIES_BYTES = 64 * 1024**2
# Bytes of the row positions matching a filter that a process keeps, for tables with a copy of their rows (8 bytes
# a matching row), the least recently used first out: an application paging through a filtered set reads each page
# as a slice of them, where the engine would scan the table up to the page each time.
MATCHES_BYTES = 32 * 1024**2
# Bytes of the filters seen once, whose matching rows are found at the second page asked of them: finding all the
# matching rows costs more than a first page (a filter matching most of 100,000 rows ten times more), which is all
# a one-off filter needs.
SEEN_FILTERS_BYTES = 4 * 1024**2
# Bytes of the exact aggregates a process keeps, by statement and parameters (a prepared file never changes), the
# least recently used first out: the same query asked again scans nothing. Noise, where the caller adds it, is
# drawn afresh for every answer all the same.
AGGREGATES_BYTES = 32 * 1024**2
# Types whose values DuckDB gives as JSON's own (text, integers, booleans): a page of them is not converted.
JSON_NATIVE_TYPES = frozenset(
    {"VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "U")

HostingErrorCode = Literal[
    "bad-columns",
    "column-not-allowed",
    "bad-filter",
    "bad-metric",
    "metric-not-private",
    "too-many-groups",
    "too-expensive",
    "unreadable",
]
FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in"]
MetricFn = Literal["count", "sum", "avg", "min", "max"]
_COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class HostingError(ValueError):
    """A refused query or an unreadable dataset, in our words: never the engine's message, which names server
    paths and can quote a row's value."""

    def __init__(self, code: HostingErrorCode, message: Message) -> None:
        super().__init__(str(message))
        self.code: HostingErrorCode = code
        self.message = message


class EngineFailure(RuntimeError):
    """The engine failed on a query it should have answered (a missing or damaged Parquet file, say): a fault
    of ours, named by the engine's exception class only, for the same reason."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    numeric: bool


# A table's rows in file order, column by column, as JSON values.
RowsCopy = tuple[tuple[Any, ...], ...]
# A filter on a copy of rows in the engine's memory: the copy's name, the condition's SQL and its parameters.
TypedValues = tuple[tuple[type, Any], ...]
MatchesKey = tuple[str, str, TypedValues]


@dataclass(frozen=True)
class HostedTable:
    path: Path
    columns: tuple[ColumnInfo, ...]
    rows: int
    # the name of its copy in the memory of the engine's database of that memory limit, if it has one
    in_memory: tuple[str, int] | None = None

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Filter:
    column: str
    op: FilterOp
    value: Any


@dataclass(frozen=True)
class Metric:
    fn: MetricFn
    column: str | None = None

    @property
    def name(self) -> str:
        return self.fn if self.column is None else f"{self.fn}({self.column})"


@dataclass(frozen=True)
class AllowedColumns:
    group_by: frozenset[str]
    filter: frozenset[str]
    measure: frozenset[str]


@dataclass(frozen=True)
class RowsPage:
    columns: tuple[str, ...]
    rows: list[list[Any]]
    next_offset: int | None


@dataclass(frozen=True)
class AggregateResult:
    columns: tuple[str, ...]
    groups: list[dict[str, Any]]
    suppressed_groups: int
    min_group_size: int


def _connect(memory_limit_mb: int, threads: int = 1) -> duckdb.DuckDBPyConnection:
    """One thread per query: the calls of a busy server run side by side in worker threads, and a query split
    over threads costs more CPU in all (a page of rows a third more) for a shorter wait only when idle."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": f"{memory_limit_mb}MB",
        "threads": threads,
        "preserve_insertion_order": True,  # a filtered page is in file order without sorting (the default)
    }
    return duckdb.connect(":memory:", config=config)


class _Engine:
    """The process's in-memory DuckDB, one per memory limit, and a connection to it per worker thread (a DuckDB
    connection is not to be shared between threads; a thread's is reused by every query it runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._databases: dict[int, duckdb.DuckDBPyConnection] = {}
        self._local = threading.local()
        self._kept: set[str] = set()  # names of the copies in memory (by file and memory limit)
        self._kept_bytes = 0
        self._copies: dict[str, RowsCopy | None] = {}  # by the name of the copy in memory
        self._copies_bytes = 0

    def cursor(self, memory_limit_mb: int) -> duckdb.DuckDBPyConnection:
        mine: dict[int, duckdb.DuckDBPyConnection] = self._local.__dict__.setdefault("cursors", {})
        if memory_limit_mb not in mine:
            with self._lock:
                mine[memory_limit_mb] = self._database(memory_limit_mb).cursor()
        return mine[memory_limit_mb]

    def _database(self, memory_limit_mb: int) -> duckdb.DuckDBPyConnection:
        database = self._databases.get(memory_limit_mb)
        if database is None:
            database = self._databases[memory_limit_mb] = _connect(memory_limit_mb)
            # Parquet footers are read once, not by every query (set once loaded, for every connection).
            database.execute("SET GLOBAL parquet_metadata_cache = true")
        return database

    def in_memory(self, memory_limit_mb: int, target: Path, size: int) -> str | None:
        """The name of the prepared file's copy in the memory of the database of `memory_limit_mb`, copied now
        if its `size` (uncompressed bytes) fits in what is left of `MEMORY_TABLES_BYTES`; else None."""
        name = "kept_" + hashlib.sha256(str(target).encode()).hexdigest()[:32]
        with self._lock:
            if name in self._kept:
                return name
            if self._kept_bytes + size > MEMORY_TABLES_BYTES:
                return None
            # in file order (insertion order is kept): a page of the copy is in file order as of the file
            self._database(memory_limit_mb).execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_parquet({_literal(target)})"  # noqa: S608
            )
            self._kept.add(name)
            self._kept_bytes += size
        return name

    def copied(self, name: str) -> RowsCopy | None:
        """The process's copy of the rows of the table copied in memory as `name`, if `copy_of` made one."""
        return self._copies.get(name)

    def copy_of(self, name: str, memory_limit_mb: int, columns: Sequence[ColumnInfo]) -> RowsCopy | None:
        """The process's copy of the rows of the table copied in memory as `name`, column by column in file order
        as JSON values: made at its first page if it fits in what is left of `ROW_COPIES_BYTES` (not for a
        table only aggregated), else None for good."""
        with self._lock:
            if name in self._copies:
                return self._copies[name]
            selected = ", ".join(_quote(c.name) for c in columns)
            query = f"SELECT {selected} FROM {name} ORDER BY {ROW}"  # noqa: S608
            copy, size = _columns_of(self._database(memory_limit_mb).execute(query).fetchall(), columns)
            fits = self._copies_bytes + size <= ROW_COPIES_BYTES
            self._copies[name] = copy if fits else None
            self._copies_bytes += size if fits else 0
            return self._copies[name]


class _Kept(Generic[K, V]):
    """Values a process keeps, shared by its threads, bounded in weight (of each key and its value): at most
    `limit()` in all (read at each `put`, from a setting), the least recently used going first; an entry heavier
    than that is not kept."""

    def __init__(self, limit: Callable[[], int], weight: Callable[[K, V], int] = lambda key, value: 1) -> None:
        self._limit = limit
        self._weight = weight
        self._lock = threading.Lock()
        self._values: OrderedDict[K, V] = OrderedDict()
        self._total = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        weight, limit = self._weight(key, value), self._limit()
        with self._lock:
            if key in self._values or weight > limit:
                return
            self._values[key] = value
            self._total += weight
            while self._total > limit:
                self._total -= self._weight(*self._values.popitem(last=False))


def _size_of(value: Any) -> int:
    """Bytes of a kept key or value, roughly: a container with its items, recursively (types are shared)."""
    if isinstance(value, type):
        return 0
    size = sys.getsizeof(value)
    if isinstance(value, tuple | list):
        size += sum(_size_of(item) for item in value)
    elif isinstance(value, dict):
        size += sum(_size_of(name) + _size_of(item) for name, item in value.items())
    return size


_engine = _Engine()
# hosted tables already prepared, by Parquet path: a call on a known dataset touches neither the disk nor the
# engine to learn its schema
_prepared: _Kept[Path, HostedTable] = _Kept(lambda: PREPARED_TABLES)
# the positions of the rows matching a filter, by `MatchesKey` (see `_matching`), and the filters asked once
_matches: _Kept[MatchesKey, array[int]] = _Kept(
    lambda: MATCHES_BYTES, lambda key, positions: _size_of(key) + sys.getsizeof(positions)
)
_seen_filters: _Kept[MatchesKey, bool] = _Kept(lambda: SEEN_FILTERS_BYTES, lambda key, _: _size_of(key))
# exact aggregates, by statement and typed parameters; never changed once kept
_aggregates: _Kept[tuple[str, TypedValues], AggregateResult] = _Kept(
    lambda: AGGREGATES_BYTES, lambda key, result: _size_of(key) + _size_of(result.groups)
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    """A path of ours (storage directory and a hex digest) as an SQL string: COPY takes no parameters."""
    return "'" + str(path).replace("'", "''") + "'"


def _is_numeric(type_name: str) -> bool:
    return type_name.upper().startswith(NUMERIC_TYPES) and not type_name.upper().startswith("UUID")


def _source_scan(media_type: str, text_columns: frozenset[str]) -> str:
    if media_type == CSV:
        if not text_columns:
            return "read_csv(?, header = true)"
        return "read_csv(?, header = true, types = ?)"
    if media_type == JSON_LINES:
        return "read_json(?, format = 'newline_delimited')"
    raise HostingError(
        "unreadable",
        Message(
            "query.unsupported-media-type",
            "a hosted dataset is CSV or JSON lines, not {media_type}",
            media_type=media_type,
        ),
    )


def _check_names(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        folded = name.casefold()
        if not name or name.startswith("__") or len(name) > MAX_COLUMN_NAME or folded in seen:
            raise HostingError(
                "bad-columns",
                Message(
                    "query.column-name-unusable",
                    "column name {column!r} is empty, reserved or repeated",
                    column=name[:MAX_COLUMN_NAME],
                ),
            )
        seen.add(folded)


def _prepared_path(sha256: str, cache_dir: Path, text_columns: Sequence[str]) -> Path:
    variant = hashlib.sha256("\n".join(text_columns).encode()).hexdigest()[:12]
    return cache_dir / sha256[:2] / f"{sha256}-{variant}-{PREPARED_FORMAT}.parquet"


def prepared_table(sha256: str, cache_dir: Path, *, text_columns: frozenset[str] = frozenset()) -> HostedTable | None:
    """The table `prepare_table` gave this process already, if it did: no disk, no engine, no worker thread."""
    return _prepared.get(_prepared_path(sha256, cache_dir, sorted(text_columns)))


def prepare_table(
    source: Path,
    media_type: str,
    sha256: str,
    cache_dir: Path,
    *,
    text_columns: frozenset[str] = frozenset(),
    memory_limit_mb: int = 256,
) -> HostedTable:
    """The dataset as a queryable Parquet file, prepared on first use and then reused.

    The conversion runs on one thread: `row_number() OVER ()` then numbers rows in file order (streamed,
    not materialised), which paging relies on. Columns declared as text are read as text, so that codes
    such as "052010" keep their leading zeros; the others take the types DuckDB detects."""
    types = sorted(text_columns)
    target = _prepared_path(sha256, cache_dir, types)
    known = _prepared.get(target)
    if known is not None:
        return known
    scan = _source_scan(media_type, text_columns)
    parameters: list[Any] = [str(source)] + ([dict.fromkeys(types, "VARCHAR")] if media_type == CSV and types else [])
    try:
        if not target.exists():
            with _connect(memory_limit_mb, threads=1) as con:
                _convert(con, scan, parameters, source, media_type, target)
        table, size = _described(target, _engine.cursor(memory_limit_mb))
        kept = _engine.in_memory(memory_limit_mb, target, size)
        if kept is not None:
            table = replace(table, in_memory=(kept, memory_limit_mb))
    except duckdb.Error as exc:
        raise HostingError(
            "unreadable", Message("query.unreadable", "the hosted dataset cannot be read as its media type")
        ) from exc
    _prepared.put(table.path, table)
    return table


def _described(target: Path, con: duckdb.DuckDBPyConnection) -> tuple[HostedTable, int]:
    """The prepared file's columns and row count, and its uncompressed size, from its Parquet metadata (its
    footer), without a scan."""
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(target)]).fetchall()
    (rows,) = con.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)", [str(target)]).fetchone() or (0,)
    (size,) = con.execute("SELECT sum(total_uncompressed_size) FROM parquet_metadata(?)", [str(target)]).fetchone() or (
        0,
    )
    columns = tuple(
        ColumnInfo(str(name), str(kind), _is_numeric(str(kind))) for name, kind, *_ in described if name != ROW
    )
    return HostedTable(target, columns, int(rows or 0)), int(size or 0)


def _from(table: HostedTable, memory_limit_mb: int) -> tuple[str, list[Any]]:
    """What a query reads the table from, and its parameters: its copy in memory, if the database of
    `memory_limit_mb` has one; else its Parquet file."""
    if table.in_memory is not None and table.in_memory[1] == memory_limit_mb:
        return table.in_memory[0], []
    return "read_parquet(?)", [str(table.path)]


def _convert(
    con: duckdb.DuckDBPyConnection, scan: str, parameters: list[Any], source: Path, media_type: str, target: Path
) -> None:
    """Write the dataset as Parquet at `target`, numbered by `__row`, through a temporary file."""
    described = con.execute(f"DESCRIBE SELECT * FROM {scan}", parameters).fetchall()  # noqa: S608
    names = [str(row[0]) for row in described]
    # DuckDB renames a repeated header ("a,A" reads as a, A_1): judge the file's own header.
    _check_names(_csv_header(source) if media_type == CSV else names)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
    try:
        con.execute(
            f"COPY (SELECT row_number() OVER () - 1 AS {ROW}, * FROM {scan}) "  # noqa: S608
            f"TO {_literal(temp)} (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})",
            parameters,
        )
        os.replace(temp, target)  # atomic: a concurrent conversion of the same file is harmless
    finally:
        temp.unlink(missing_ok=True)


def _csv_header(source: Path) -> list[str]:
    with source.open(newline="", encoding="utf-8", errors="replace") as handle:
        return next(csv.reader(handle), [])


def _known(table: HostedTable, name: str, allowed: frozenset[str] | None) -> ColumnInfo:
    """The column, if the table has it and (for aggregates) the product allows it. An unknown column and
    a forbidden one get the same answer, so the refusal reveals nothing of the rest of the schema."""
    column = table.column(name)
    if column is None or (allowed is not None and name not in allowed):
        raise HostingError(
            "column-not-allowed",
            Message(
                "query.column-not-allowed", "column {column!r} is not available here", column=name[:MAX_COLUMN_NAME]
            ),
        )
    return column


def _where(table: HostedTable, filters: Sequence[Filter], allowed: frozenset[str] | None) -> tuple[str, list[Any]]:
    if len(filters) > MAX_FILTERS:
        raise HostingError(
            "bad-filter", Message("query.too-many-filters", "at most {limit} filters", limit=MAX_FILTERS)
        )
    clauses, parameters = [], []
    for condition in filters:
        column = _quote(_known(table, condition.column, allowed).name)
        value = condition.value
        if condition.op == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
                raise HostingError(
                    "bad-filter",
                    Message(
                        "query.in-list-size",
                        "`in` takes a list of 1 to {limit} values",
                        limit=MAX_IN_VALUES,
                    ),
                )
            if any(isinstance(item, list | dict) for item in value):
                raise HostingError(
                    "bad-filter",
                    Message("query.in-single-values", "`in` takes a list of single values, not of lists or objects"),
                )
            clauses.append(f"{column} IN ({', '.join('?' for _ in value)})")
            parameters.extend(value)
        elif isinstance(value, list | dict):
            raise HostingError("bad-filter", Message("query.one-value", "`{op}` takes one value", op=condition.op))
        elif value is None and condition.op in ("eq", "ne"):
            clauses.append(f"{column} IS {'NOT ' if condition.op == 'ne' else ''}NULL")
        elif value is None:
            raise HostingError(
                "bad-filter", Message("query.null-comparison", "`{op}` cannot compare with null", op=condition.op)
            )
        else:
            clauses.append(f"{column} {_COMPARISONS[condition.op]} ?")
            parameters.append(value)
    return (" AND ".join(clauses) or "TRUE"), parameters


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    return value


def _columns_of(rows: list[tuple[Any, ...]], columns: Sequence[ColumnInfo]) -> tuple[RowsCopy, int]:
    """The rows column by column as JSON values, and their size in bytes: equal texts are one object (a code
    column repeats a few values), and the objects are counted once each."""
    copy, size, counted = [], 0, set()
    for index, column in enumerate(columns):
        native = column.type in JSON_NATIVE_TYPES
        same: dict[Any, Any] = {}
        values = tuple(
            same.setdefault(value, value) if isinstance(value, str) else value
            for value in (row[index] if native else _json_value(row[index]) for row in rows)
        )
        size += sys.getsizeof(values)
        for value in values:
            if id(value) not in counted:
                counted.add(id(value))
                size += sys.getsizeof(value)
        copy.append(values)
    return tuple(copy), size


def _run(sql: str, parameters: list[Any], memory_limit_mb: int, mismatch: HostingError) -> list[tuple[Any, ...]]:
    """The statement's rows; `mismatch` is the refusal when a bound value does not fit its column."""
    con = _engine.cursor(memory_limit_mb)
    try:
        return con.execute(sql, parameters).fetchall()
    except (duckdb.DataError, duckdb.BinderException, duckdb.InvalidInputException) as exc:
        raise mismatch from exc
    except duckdb.OutOfMemoryException as exc:
        raise HostingError(
            "too-expensive",
            Message(
                "query.too-expensive",
                "the query needs more memory than one call may use; filter, or group by fewer columns",
            ),
        ) from exc
    except duckdb.Error as exc:
        raise EngineFailure(f"the query engine failed: {type(exc).__name__}") from None


def _mismatch(table: HostedTable, filters: Sequence[Filter]) -> HostingError:
    """The refusal of a filter value the engine cannot compare with its column. It names the types of the
    filtered columns only, which the caller named and `_where` found available."""
    filtered = dict.fromkeys(column for f in filters if (column := table.column(f.column)) is not None)
    types = ", ".join(f"{column.name!r} is {column.type}" for column in filtered)
    return HostingError(
        "bad-filter",
        Message("query.filter-value-type", "a filter's value does not fit its column's type ({types})", types=types),
    )


def copied_page(table: HostedTable, filters: Sequence[Filter], limit: int, offset: int) -> RowsPage | None:
    """The page, if the process's copy of the table's rows answers it without the engine: a page of the whole file,
    or of a filter whose matching rows' positions are kept; else None (`read_rows` answers it). Cheap enough for
    the caller's own thread. A bad page or filter is refused as `read_rows` refuses it."""
    _check_page(limit, offset)
    return _page_of_copy(table, filters, limit, offset, engine=False)


def _matches_key(table: HostedTable, filters: Sequence[Filter]) -> MatchesKey:
    assert table.in_memory is not None
    where, parameters = _where(table, filters, None)
    return table.in_memory[0], where, _typed(parameters)


def _typed(values: Sequence[Any]) -> TypedValues:
    """Bound values as a key: each with its type, since 1, 1.0 and True are equal keys in Python, not in SQL."""
    return tuple((type(value), value) for value in values)


def _matching(table: HostedTable, filters: Sequence[Filter]) -> array[int] | None:
    """The positions, in file order, of the rows of the table's copy in memory that match `filters`: found by
    the engine at the second page asked of the filter, then kept while they fit (`MATCHES_BYTES`); None at the
    first."""
    assert table.in_memory is not None
    key = _matches_key(table, filters)
    positions = _matches.get(key)
    if positions is None:
        if _seen_filters.get(key) is None:
            _seen_filters.put(key, True)
            return None
        name, memory_limit_mb = table.in_memory
        _, where, typed = key
        sql = f"SELECT list({ROW} ORDER BY {ROW}) FROM {name} WHERE {where}"  # noqa: S608
        ((found,),) = _run(sql, [value for _, value in typed], memory_limit_mb, _mismatch(table, filters))
        positions = array("q", found or ())
        _matches.put(key, positions)
    return positions


def _page_of_copy(
    table: HostedTable, filters: Sequence[Filter], limit: int, offset: int, *, engine: bool
) -> RowsPage | None:
    """The page, sliced from the process's copy of the table's rows, if it has one and, for a filtered page, the
    positions of the matching rows are known; else None. With `engine`, the copy is made now if it fits and the
    positions are found if it is time (see `_matching`); without, only what is kept is read."""
    if table.in_memory is None:
        return None
    copy = _engine.copy_of(*table.in_memory, table.columns) if engine else _engine.copied(table.in_memory[0])
    if copy is None:
        return None
    positions = None
    if filters:
        positions = _matching(table, filters) if engine else _matches.get(_matches_key(table, filters))
        if positions is None:
            return None
    return _slice(table, copy, positions, limit, offset)


def _slice(table: HostedTable, copy: RowsCopy, positions: array[int] | None, limit: int, offset: int) -> RowsPage:
    """A page of the copy of the rows: of the whole file, or of the rows at `positions`."""
    end = offset + limit + 1  # one more row tells whether a next page exists
    if positions is None:
        found = list(zip(*(values[offset:end] for values in copy), strict=True))
        page = [list(row) for row in found[:limit]]
        more = len(found) > limit
    else:
        chosen = positions[offset:end]
        page = [[values[position] for values in copy] for position in chosen[:limit]]
        more = len(chosen) > limit
    return RowsPage(tuple(c.name for c in table.columns), page, offset + limit if more else None)


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise HostingError(
            "bad-filter",
            Message("query.bad-page", "limit is 1 to {limit} and offset is not negative", limit=MAX_PAGE),
        )


def read_rows(
    table: HostedTable, *, filters: Sequence[Filter], limit: int, offset: int, memory_limit_mb: int = 256
) -> RowsPage:
    """One page of rows in file order; `next_offset` is None on the last page. A page of the whole file is a
    slice of the process's copy of the rows, if it has one, else a range of `__row`, which the row groups'
    statistics narrow to the one or two groups holding it; a filtered page is a slice of the positions of the
    matching rows in that copy, from the filter's second page on, else the matching rows read until the page is
    full. Each is in file order without sorting: a single-file scan, filtered, keeps the file's order in DuckDB
    (`preserve_insertion_order`)."""
    _check_page(limit, offset)
    copied = _page_of_copy(table, filters, limit, offset, engine=True)
    if copied is not None:
        return copied
    where, parameters = _where(table, filters, None)
    names = [c.name for c in table.columns]
    selected = ", ".join(_quote(n) for n in names)
    source, bound = _from(table, memory_limit_mb)
    if filters:
        sql = f"SELECT {selected} FROM {source} WHERE {where} LIMIT ? OFFSET ?"  # noqa: S608
        bound += [*parameters, limit + 1, offset]
    else:
        sql = f"SELECT {selected} FROM {source} WHERE {ROW} >= ? AND {ROW} < ?"  # noqa: S608
        bound += [offset, offset + limit + 1]
    rows = _run(sql, bound, memory_limit_mb, _mismatch(table, filters))
    if all(c.type in JSON_NATIVE_TYPES for c in table.columns):
        page = [list(row) for row in rows[:limit]]
    else:
        page = [[_json_value(v) for v in row] for row in rows[:limit]]
    return RowsPage(tuple(names), page, offset + limit if len(rows) > limit else None)


def _metric_sql(
    table: HostedTable, metric: Metric, allowed: frozenset[str], bounds: Mapping[str, tuple[float, float]]
) -> tuple[str, list[Any]]:
    """The metric's SQL and its parameters; a sum or average of a column with bounds clamps its values first."""
    if metric.fn == "count" and metric.column is None:
        return "count(*)", []
    if metric.column is None:
        raise HostingError("bad-metric", Message("query.metric-needs-column", "{fn} needs a column", fn=metric.fn))
    column = _known(table, metric.column, allowed)
    if metric.fn in ("sum", "avg") and not column.numeric:
        raise HostingError(
            "bad-metric",
            Message(
                "query.metric-needs-number",
                "{fn} needs a numeric column; {name!r} is {type}",
                fn=metric.fn,
                name=column.name,
                type=column.type,
            ),
        )
    if metric.fn in ("sum", "avg") and column.name in bounds:
        # greatest() and least() skip nulls: a null stays null, not the lower bound.
        quoted = _quote(column.name)
        clamped = f"CASE WHEN {quoted} IS NULL THEN NULL ELSE least(greatest({quoted}, ?), ?) END"
        return f"{metric.fn}({clamped})", list(bounds[column.name])
    return f"{metric.fn}({_quote(column.name)})", []


def aggregate(
    table: HostedTable,
    *,
    group_by: Sequence[str],
    metrics: Sequence[Metric],
    filters: Sequence[Filter],
    allowed: AllowedColumns,
    min_group_size: int,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    memory_limit_mb: int = 256,
) -> AggregateResult:
    """count, sum, avg, min and max per group of the allowed columns, over the filtered rows; a group
    of fewer than `min_group_size` rows (k) is left out entirely, and only how many were left out is
    told. Without grouping the whole filtered table is one group, suppressed below k rows too. Sums and
    averages of a column in `bounds` (lower, upper) add its values clamped into them: privacy computing
    calibrates its noise to that range. Exact either way: noise, if any, is added by the caller. The same
    query asked again is answered from the process's kept answers (`AGGREGATES_BYTES`)."""
    if min_group_size < 1:
        raise ValueError("min_group_size is at least 1")
    if not 1 <= len(metrics) <= MAX_METRICS:
        raise HostingError(
            "bad-metric", Message("query.metric-count", "ask for 1 to {limit} metrics", limit=MAX_METRICS)
        )
    if len(group_by) > MAX_GROUP_BY or len(set(group_by)) != len(group_by):
        raise HostingError(
            "bad-metric",
            Message("query.group-by-count", "group by at most {limit} distinct columns", limit=MAX_GROUP_BY),
        )
    keys = [_quote(_known(table, name, allowed.group_by).name) for name in group_by]
    compiled = [_metric_sql(table, metric, allowed.measure, bounds or {}) for metric in metrics]
    expressions = [sql for sql, _ in compiled]
    clamps = [value for _, values in compiled for value in values]
    where, parameters = _where(table, filters, allowed.filter)
    selected = ", ".join([*keys, "count(*) AS __size", *(f"{e} AS __m{i}" for i, e in enumerate(expressions))])
    grouping = f"GROUP BY {', '.join(keys)}" if keys else ""
    order = ", ".join(f"kept.{key} ASC NULLS LAST" for key in keys) or "kept.__size"
    source, source_parameters = _from(table, memory_limit_mb)
    # One statement: the groups kept, in order and one past the limit, each with how many were not (a
    # single row of nulls and that count when none is kept).
    sql = (
        f"WITH grouped AS (SELECT {selected} FROM {source} WHERE {where} {grouping}), "  # noqa: S608
        f"hidden AS (SELECT count(*) AS n FROM grouped WHERE __size < ?), "
        f"kept AS (SELECT * FROM grouped WHERE __size >= ?) "
        f"SELECT hidden.n, kept.* FROM hidden LEFT JOIN kept ON TRUE ORDER BY {order} LIMIT {MAX_GROUPS + 1}"
    )
    bound = [*clamps, *source_parameters, *parameters, min_group_size, min_group_size]
    key = (sql, _typed(bound))
    kept = _aggregates.get(key)
    if kept is not None:
        return kept
    rows = _run(sql, bound, memory_limit_mb, _mismatch(table, filters))
    size_at = 1 + len(keys)
    suppressed = int(rows[0][0]) if rows else 0
    shown = [row for row in rows if row[size_at] is not None]
    if len(shown) > MAX_GROUPS:
        raise HostingError(
            "too-many-groups",
            Message(
                "query.too-many-groups",
                "more than {limit} groups; group by fewer columns or filter",
                limit=MAX_GROUPS,
            ),
        )
    names = [*group_by, *(metric.name for metric in metrics)]
    groups = [
        {name: _json_value(value) for name, value in zip(names, [*row[1:size_at], *row[size_at + 1 :]], strict=True)}
        for row in shown
    ]
    result = AggregateResult(tuple(names), groups, suppressed, min_group_size)
    _aggregates.put(key, result)
    return result


def text_columns_of(fields: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """The columns a product declares as text (`fields[].type` "string", the default)."""
    return frozenset(str(f["name"]) for f in fields if isinstance(f, Mapping) and f.get("type", "string") == "string")
