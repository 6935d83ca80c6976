"""The DuckDB layer of hosted datasets against a reference computed here in plain Python."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from array import array
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.catalog.samples import CSV, JSON_LINES
from marketplace.delivery import hosting
from marketplace.delivery.hosting import (
    ROW_GROUP_ROWS,
    AllowedColumns,
    Filter,
    HostingError,
    Metric,
    aggregate,
    prepare_table,
    read_rows,
)

COLUMNS = ("district", "kind", "amount", "score")
TEXT = frozenset({"district", "kind"})
ALLOWED = AllowedColumns(
    group_by=frozenset({"district", "kind"}),
    filter=frozenset({"district", "kind", "amount"}),
    measure=frozenset({"amount", "score", "kind"}),
)
Row = tuple[str | None, str | None, int | None, float | None]

rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["520102", "052010", "520111", None]),
        st.sampled_from(["bus", "taxi"]),
        st.integers(-50, 50) | st.none(),
        st.integers(-400, 400).map(lambda n: n / 4) | st.none(),
    ),
    min_size=1,
    max_size=200,
).filter(lambda rows: any(r[2] is not None for r in rows) and any(r[3] is not None for r in rows))
filters_strategy = st.lists(
    st.one_of(
        st.builds(Filter, st.just("kind"), st.just("eq"), st.sampled_from(["bus", "taxi"])),
        st.builds(Filter, st.just("amount"), st.sampled_from(["lt", "le", "gt", "ge", "ne"]), st.integers(-50, 50)),
        st.builds(
            Filter, st.just("district"), st.just("in"), st.lists(st.sampled_from(["520102", "052010"]), min_size=1)
        ),
        st.builds(Filter, st.just("district"), st.sampled_from(["eq", "ne"]), st.none()),
    ),
    max_size=2,
)
metrics_strategy = st.lists(
    st.sampled_from(
        [
            Metric("count"),
            Metric("count", "amount"),
            Metric("sum", "amount"),
            Metric("avg", "amount"),
            Metric("min", "amount"),
            Metric("max", "score"),
            Metric("sum", "score"),
            Metric("min", "kind"),
        ]
    ),
    min_size=1,
    max_size=4,
    unique=True,
)
bounds_strategy = st.dictionaries(
    st.sampled_from(["amount", "score"]),
    st.tuples(st.integers(-60, 60), st.integers(1, 80)).map(lambda b: (b[0] / 2, b[0] / 2 + b[1])),
)
Bounds = dict[str, tuple[float, float]]


def write_csv(path: Path, rows: Sequence[Row]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return path


def matches(row: Row, condition: Filter) -> bool:
    value = row[COLUMNS.index(condition.column)]
    if condition.op == "in":
        return value in condition.value
    if condition.value is None:
        return (value is None) == (condition.op == "eq")
    if value is None:  # SQL: a comparison with null is not true
        return False
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
    }
    return compare[condition.op](value, condition.value)


def reference_value(metric: Metric, rows: list[Row], bounds: Bounds) -> Any:
    if metric.column is None:
        return len(rows)
    values = [r[COLUMNS.index(metric.column)] for r in rows if r[COLUMNS.index(metric.column)] is not None]
    if metric.fn == "count":
        return len(values)
    if not values:
        return None
    if metric.fn in ("sum", "avg") and metric.column in bounds:
        lower, upper = bounds[metric.column]
        values = [min(max(value, lower), upper) for value in values]
    return {"sum": sum, "min": min, "max": max, "avg": lambda v: sum(v) / len(v)}[metric.fn](values)


def reference(
    rows: Sequence[Row], group_by: list[str], metrics: list[Metric], filters: list[Filter], k: int, bounds: Bounds
) -> tuple[list[dict[str, Any]], int]:
    kept = [row for row in rows if all(matches(row, f) for f in filters)]
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in kept:
        groups[tuple(row[COLUMNS.index(c)] for c in group_by)].append(row)
    if not group_by and not kept:
        groups[()] = []
    keys = sorted(groups, key=lambda key: [(value is None, value or "") for value in key])
    result = [
        {**dict(zip(group_by, key, strict=True)), **{m.name: reference_value(m, groups[key], bounds) for m in metrics}}
        for key in keys
        if len(groups[key]) >= k
    ]
    return result, sum(1 for key in keys if len(groups[key]) < k)


def same(got: Any, expected: Any) -> bool:
    if isinstance(expected, float) or isinstance(got, float):
        return got is not None and expected is not None and math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)
    return bool(got == expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=rows_strategy,
    group_by=st.lists(st.sampled_from(["district", "kind"]), max_size=2, unique=True),
    metrics=metrics_strategy,
    filters=filters_strategy,
    k=st.integers(1, 6),
    bounds=bounds_strategy,
    data=st.data(),
)
def test_aggregates_and_rows_equal_the_reference(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[Row],
    group_by: list[str],
    metrics: list[Metric],
    filters: list[Filter],
    k: int,
    bounds: Bounds,
    data: st.DataObject,
) -> None:
    work = tmp_path_factory.mktemp("hosted")
    source = write_csv(work / "data.csv", rows)
    table = prepare_table(source, CSV, "0" * 63 + "1", work / "cache", text_columns=TEXT)
    assert [c.name for c in table.columns] == list(COLUMNS)
    assert table.rows == len(rows)

    result = aggregate(
        table, group_by=group_by, metrics=metrics, filters=filters, allowed=ALLOWED, min_group_size=k, bounds=bounds
    )
    expected, suppressed = reference(rows, group_by, metrics, filters, k, bounds)
    assert result.suppressed_groups == suppressed
    assert len(result.groups) == len(expected)
    for got, want in zip(result.groups, expected, strict=True):
        assert got.keys() == want.keys()
        assert all(same(got[name], want[name]) for name in want), (got, want)

    limit = data.draw(st.integers(1, 50))
    page_filters = [f for f in filters if f.column in COLUMNS]
    collected: list[list[Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = read_rows(table, filters=page_filters, limit=limit, offset=offset)
        collected.extend(page.rows)
        offset = page.next_offset
    assert collected == [list(row) for row in rows if all(matches(row, f) for f in page_filters)]


@pytest.fixture
def district_table(tmp_path: Path) -> Any:
    rows: list[Row] = (
        [("520102", "bus", 1, 1.0)] * 12 + [("520103", "bus", 7, 2.0)] * 9 + [("520111", "bus", 3, 0.5)] * 10
    )
    return prepare_table(write_csv(tmp_path / "d.csv", rows), CSV, "f" * 64, tmp_path / "cache", text_columns=TEXT)


def test_groups_under_k_are_suppressed_and_none_of_their_values_appear(district_table: Any) -> None:
    result = aggregate(
        district_table,
        group_by=["district"],
        metrics=[Metric("count"), Metric("sum", "amount")],
        filters=[],
        allowed=ALLOWED,
        min_group_size=10,
    )
    assert result.groups == [
        {"district": "520102", "count": 12, "sum(amount)": 12},
        {"district": "520111", "count": 10, "sum(amount)": 30},
    ]
    assert result.suppressed_groups == 1
    assert "520103" not in json.dumps(result.groups)
    whole = aggregate(
        district_table, group_by=[], metrics=[Metric("count")], filters=[], allowed=ALLOWED, min_group_size=40
    )
    assert (whole.groups, whole.suppressed_groups) == ([], 1)


def test_an_aggregate_asked_again_is_the_kept_answer(district_table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same query (statement and parameters, each of its type) is answered from the kept exact answer, while
    it fits in what may be kept."""

    def ask(filters: list[Filter], k: int = 1) -> hosting.AggregateResult:
        return aggregate(
            district_table,
            group_by=["district"],
            metrics=[Metric("count")],
            filters=filters,
            allowed=ALLOWED,
            min_group_size=k,
        )

    first = ask([Filter("amount", "ge", 3)])
    assert ask([Filter("amount", "ge", 3)]) is first
    as_float = ask([Filter("amount", "ge", 3.0)])  # another parameter for the engine, the same answer here
    assert as_float is not first
    assert as_float == first
    assert first.groups == [{"district": "520103", "count": 9}, {"district": "520111", "count": 10}]
    monkeypatch.setattr(hosting, "AGGREGATES_BYTES", 1)  # no answer is that small: none is kept
    again = ask([], k=10)
    assert ask([], k=10) is not again


@pytest.mark.parametrize(
    ("group_by", "metrics", "filters", "code"),
    [
        (["amount"], [Metric("count")], [], "column-not-allowed"),  # measurable, not groupable
        ([], [Metric("count")], [Filter("score", "gt", 1)], "column-not-allowed"),
        ([], [Metric("sum", "district")], [], "column-not-allowed"),
        (["no_such_column"], [Metric("count")], [], "column-not-allowed"),
        ([], [Metric("sum", "kind")], [], "bad-metric"),  # text is not summed
        ([], [], [], "bad-metric"),
        ([], [Metric("count")], [Filter("kind", "in", [])], "bad-filter"),
        ([], [Metric("count")], [Filter("amount", "gt", "not a number")], "bad-filter"),
    ],
)
def test_refusals_have_stable_codes(
    district_table: Any, group_by: list[str], metrics: list[Metric], filters: list[Filter], code: str
) -> None:
    with pytest.raises(HostingError) as refused:
        aggregate(
            district_table, group_by=group_by, metrics=metrics, filters=filters, allowed=ALLOWED, min_group_size=1
        )
    assert refused.value.code == code


def test_quotes_in_values_and_column_names_are_data_not_sql(tmp_path: Path) -> None:
    source = tmp_path / "q.csv"
    source.write_text('name,"odd ""col"""\nx,1\n"a\'; DROP TABLE t; --",2\n')
    table = prepare_table(source, CSV, "e" * 64, tmp_path / "cache")
    assert [c.name for c in table.columns] == ["name", 'odd "col"']
    found = read_rows(table, filters=[Filter("name", "eq", "a'; DROP TABLE t; --")], limit=10, offset=0)
    assert found.rows == [["a'; DROP TABLE t; --", 2]]
    allowed = AllowedColumns(frozenset({'odd "col"'}), frozenset(), frozenset())
    grouped = aggregate(
        table, group_by=['odd "col"'], metrics=[Metric("count")], filters=[], allowed=allowed, min_group_size=1
    )
    assert grouped.groups == [{'odd "col"': 1, "count": 1}, {'odd "col"': 2, "count": 1}]


def test_json_lines_are_hosted_and_conversion_happens_once(tmp_path: Path) -> None:
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps({"district": "520102", "amount": n}) + "\n" for n in range(5)))
    first = prepare_table(source, JSON_LINES, "d" * 64, tmp_path / "cache")
    modified = first.path.stat().st_mtime_ns
    second = prepare_table(source, JSON_LINES, "d" * 64, tmp_path / "cache")
    assert second.path == first.path
    assert second.path.stat().st_mtime_ns == modified
    assert read_rows(second, filters=[], limit=2, offset=3).rows == [["520102", 3], ["520102", 4]]


def test_reserved_or_repeated_column_names_are_refused(tmp_path: Path) -> None:
    for header in ("a,A\n1,2\n", "__row,b\n1,2\n"):
        source = tmp_path / "bad.csv"
        source.write_text(header)
        with pytest.raises(HostingError) as refused:
            prepare_table(source, CSV, hashlib.sha256(header.encode()).hexdigest(), tmp_path / "cache")
        assert refused.value.code == "bad-columns"


@pytest.mark.parametrize("held", ["rows copied", "in memory", "file"])
def test_pages_of_a_prepared_file_of_many_row_groups_are_in_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: str
) -> None:
    """Pages of the whole file are slices of the process's copy of the rows or ranges of the row ordinal,
    filtered pages limited scans: all in file order, across row group boundaries, with the row count and schema
    read from the file's metadata; read from the table's copy in the engine's memory, or from the file when the
    copy does not fit."""
    monkeypatch.setattr(hosting, "MEMORY_TABLES_BYTES", 0 if held == "file" else 1 << 40)
    monkeypatch.setattr(hosting, "ROW_COPIES_BYTES", 1 << 40 if held == "rows copied" else 0)
    rows: list[Row] = [("520102" if n % 3 else "052010", "bus", n, None) for n in range(2 * ROW_GROUP_ROWS + 7)]
    table = prepare_table(write_csv(tmp_path / "d.csv", rows), CSV, "c" * 64, tmp_path / "cache", text_columns=TEXT)
    assert (table.in_memory is not None) == (held != "file")
    assert hosting.copied_page(table, [], 5, 0) is None  # made at the first page
    assert (table.rows, [c.name for c in table.columns]) == (len(rows), list(COLUMNS))
    for offset in (0, ROW_GROUP_ROWS - 3, 2 * ROW_GROUP_ROWS - 1, len(rows) - 4):
        page = read_rows(table, filters=[], limit=5, offset=offset)
        assert page.rows == [list(row) for row in rows[offset : offset + 5]]
        assert page.next_offset == (offset + 5 if offset + 5 < len(rows) else None)
    assert (hosting.copied_page(table, [], 5, 0) is not None) == (held == "rows copied")
    assert hosting.copied_page(table, [Filter("district", "eq", "052010")], 5, 0) is None
    matching = [list(row) for row in rows if row[0] == "052010"]
    for offset in (0, len(matching) // 2 - 2, len(matching) - 3):
        page = read_rows(table, filters=[Filter("district", "eq", "052010")], limit=5, offset=offset)
        assert page.rows == matching[offset : offset + 5]
        assert page.next_offset == (offset + 5 if offset + 5 < len(matching) else None)
    # the matching rows' positions are kept after the first page: the next pages read no engine
    copied = hosting.copied_page(table, [Filter("district", "eq", "052010")], 5, 0)
    assert (copied is not None) == (held == "rows copied")
    assert copied is None or copied.rows == matching[:5]


@pytest.mark.parametrize("kept", [True, False])
def test_filtered_pages_of_a_copy_of_rows_are_slices_of_the_matching_positions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    """A filter's first page is read by the engine; at its second, the positions of the rows it matches are
    found, and kept while they fit: its next pages are slices of them. Pages are the same whichever way they were
    read. A value the column cannot take, or a list in an `in` list, is refused the same way, on the caller's thread
    too."""
    monkeypatch.setattr(hosting, "MATCHES_BYTES", 1 << 20 if kept else 0)
    rows: list[Row] = [(f"52010{n % 7}", "bus" if n % 2 else "taxi", n, None) for n in range(3_000)]
    table = prepare_table(write_csv(tmp_path / "d.csv", rows), CSV, "f" * 64, tmp_path / "cache", text_columns=TEXT)
    read_rows(table, filters=[], limit=1, offset=0)  # the copy of the rows, made at the first page
    conditions = [
        [Filter("district", "eq", f"52010{d}"), Filter("kind", "eq", kind)]
        for d in range(7)
        for kind in ("bus", "taxi")
    ] + [[Filter("amount", "ge", 2_990)], [Filter("amount", "ge", 2_990.0)], [Filter("kind", "in", ["bus"])]]
    for condition in conditions:
        expected = [list(row) for row in rows if all(matches(row, f) for f in condition)]
        for read in range(3):
            offset = (len(expected) - 5, 1, 0)[read]
            page = read_rows(table, filters=condition, limit=7, offset=offset)
            assert page.rows == expected[offset : offset + 7]
            assert page.next_offset == (offset + 7 if offset + 7 < len(expected) else None)
            copied = hosting.copied_page(table, condition, 7, offset)
            assert (copied is not None) == (kept and read > 0)
            assert copied is None or copied == page
    with pytest.raises(HostingError) as refused:
        read_rows(table, filters=[Filter("amount", "eq", "many")], limit=1, offset=0)
    assert refused.value.code == "bad-filter"
    for refused_filter in (Filter("nowhere", "eq", 1), Filter("district", "in", [["520101"]])):
        with pytest.raises(HostingError) as refused:
            hosting.copied_page(table, [refused_filter], 1, 0)
        assert refused.value.code in {"column-not-allowed", "bad-filter"}
    with pytest.raises(HostingError) as refused:
        read_rows(table, filters=[Filter("district", "in", [{"a": 1}])], limit=1, offset=0)
    assert refused.value.code == "bad-filter"


def test_kept_values_are_bounded_in_weight_least_recently_used_first_out() -> None:
    limit = 3 * sys.getsizeof(array("q", range(100)))
    kept: hosting._Kept[str, array[int]] = hosting._Kept(lambda: limit, lambda _, value: sys.getsizeof(value))
    positions = [array("q", range(n * 100, n * 100 + 100)) for n in range(4)]
    for n in range(3):
        kept.put(f"c{n}", positions[n])
    assert kept.get("c0") is positions[0]  # used again: the second is now the least recently used
    kept.put("c3", positions[3])
    assert [kept.get(f"c{n}") is not None for n in range(4)] == [True, False, True, True]
    limit = sys.getsizeof(positions[0]) - 1
    kept.put("too large", positions[0])
    assert kept.get("too large") is None


@pytest.mark.parametrize("copied", [True, False])
def test_a_page_gives_values_in_their_json_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copied: bool) -> None:
    """Text, integers and booleans leave as the engine gives them; other values are converted: a date as ISO
    8601, NaN (which JSON lacks) as null; the same from the process's copy of the rows and from the engine."""
    monkeypatch.setattr(hosting, "ROW_COPIES_BYTES", 1 << 40 if copied else 0)
    source = tmp_path / "d.csv"
    source.write_text("name,n,ok,day,ratio\na,1,true,2026-01-02,1.5\nb,2,false,2026-01-03,nan\n")
    table = prepare_table(source, CSV, "d" * 64, tmp_path / "cache", text_columns=frozenset({"name"}))
    types = [column.type for column in table.columns]
    assert types == ["VARCHAR", "BIGINT", "BOOLEAN", "DATE", "DOUBLE"]
    page = read_rows(table, filters=[], limit=10, offset=0)
    assert page.rows == [["a", 1, True, "2026-01-02", 1.5], ["b", 2, False, "2026-01-03", None]]
    natives = prepare_table(source, CSV, "e" * 64, tmp_path / "cache", text_columns=frozenset({"name", "day", "ratio"}))
    assert read_rows(natives, filters=[], limit=1, offset=1).rows == [["b", 2, False, "2026-01-03", "nan"]]
