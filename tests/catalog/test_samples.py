"""Sample files: content-addressed streaming storage and the streaming CSV / JSON-lines reader."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import stat
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.catalog.samples import (
    CSV,
    JSON_LINES,
    MAX_LINE_CHARS,
    ParsedSample,
    SampleError,
    blob_path,
    media_type_for,
    parse_sample,
    store_content_addressed,
)

MiB = 1024 * 1024


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def raises_code(code: str, call: Callable[[], Any]) -> SampleError:
    with pytest.raises(SampleError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert str(caught.value) == str(caught.value.message)
    return caught.value


# -- media types -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "declared", "expected"),
    [
        ("a.bin", "text/csv", CSV),
        ("a.bin", "application/csv", CSV),
        ("a.bin", "Text/CSV; charset=utf-8", CSV),
        ("a.bin", "application/x-ndjson", JSON_LINES),
        ("a.bin", "application/jsonl", JSON_LINES),
        ("a.bin", "application/json-lines", JSON_LINES),
        ("a.bin", "application/x-jsonlines", JSON_LINES),
        ("路况.CSV", None, CSV),
        ("traffic.csv", "application/vnd.ms-excel", CSV),  # what Windows browsers send for .csv
        ("traffic.csv", "application/octet-stream", CSV),
        ("C:\\exports\\traffic.jsonl", "", JSON_LINES),
        ("traffic.ndjson", "application/json", JSON_LINES),
        ("traffic.jsonl", "text/csv", CSV),  # a declared accepted type wins; parsing then judges the content
    ],
)
def test_media_type_for(filename: str, declared: str | None, expected: str) -> None:
    assert media_type_for(filename, declared) == expected


@pytest.mark.parametrize(
    ("filename", "declared"),
    [("data.xlsx", None), ("data.json", "application/json"), ("data", "application/octet-stream"), ("csv", None)],
)
def test_media_type_for_refuses_other_types(filename: str, declared: str | None) -> None:
    raises_code("unsupported-type", lambda: media_type_for(filename, declared))


def test_parse_refuses_an_unsupported_media_type(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "a\n1\n")
    raises_code("unsupported-type", lambda: parse_sample(path, "application/json"))


# -- CSV -----------------------------------------------------------------------------------------------------------


def test_csv_happy_path(tmp_path: Path) -> None:
    content = (
        "\ufeff路段编号, 平均车速 ,备注,observed_at\r\n"
        'GY-001,42.5,"拥堵, 早高峰",2026-03-01T08:00:00+08:00\r\n'
        "GY-002,,,2026-03-01T08:05:00+08:00\r\n"
        "\r\n"  # a blank line is not a row
        'GY-003,55,"两行\n备注 ""引号""",2026-03-01T08:10:00+08:00\r\n'
    )
    parsed = parse_sample(write(tmp_path, "s.csv", content), "text/csv; charset=utf-8")
    assert parsed == ParsedSample(
        media_type=CSV,
        rows=3,
        columns=("路段编号", "平均车速", "备注", "observed_at"),
        head=(
            ("GY-001", "42.5", "拥堵, 早高峰", "2026-03-01T08:00:00+08:00"),
            ("GY-002", None, None, "2026-03-01T08:05:00+08:00"),
            ("GY-003", "55", '两行\n备注 "引号"', "2026-03-01T08:10:00+08:00"),
        ),
    )


def test_csv_head_is_capped_but_every_row_is_counted(tmp_path: Path) -> None:
    content = "n,square\n" + "".join(f"{i},{i * i}\n" for i in range(1000))
    parsed = parse_sample(write(tmp_path, "s.csv", content), "application/csv", head_rows=3)
    assert parsed.rows == 1000
    assert parsed.head == (("0", "0"), ("1", "1"), ("2", "4"))


def test_csv_without_a_final_newline_and_with_whitespace_cells(tmp_path: Path) -> None:
    parsed = parse_sample(write(tmp_path, "s.csv", "a,b\n ,x"), CSV)
    assert parsed.rows == 1
    assert parsed.head == ((" ", "x"),)  # only an empty cell is missing; whitespace is data


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n", b"a,b,c\r\n", b"a,b\n\n\n"])
def test_csv_without_data_rows_is_empty(tmp_path: Path, content: bytes) -> None:
    raises_code("empty", lambda: parse_sample(write(tmp_path, "s.csv", content), CSV))


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "路段,车速\n贵阳,40\n".encode("gbk"))
    raises_code("not-utf8", lambda: parse_sample(path, CSV))


def test_csv_invalid_utf8_far_into_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", b"a,b\n" + b"1,2\n" * 50_000 + b"3,\xff\n")
    raises_code("not-utf8", lambda: parse_sample(path, CSV))


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('a,b\n1,"unterminated\n', 2),
        ('a,b\n1,2\n"x"y,3\n', 3),  # text after a closing quote
        ("a,,c\n1,2,3\n", 1),  # empty column name
        ("a, a\n1,2\n", 1),  # repeated after strip
    ],
)
def test_bad_csv(tmp_path: Path, content: str, line: int) -> None:
    error = raises_code("bad-csv", lambda: parse_sample(write(tmp_path, "s.csv", content), CSV))
    assert error.line == line


def test_csv_line_longer_than_the_limit_is_refused_not_read_whole(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "a\n" + "x" * (MAX_LINE_CHARS + 10))
    error = raises_code("bad-csv", lambda: parse_sample(path, CSV))
    assert error.line == 2


def test_ragged_rows_name_the_line_where_the_record_starts(tmp_path: Path) -> None:
    content = 'a,b\n1,"two\nlines"\n\n3,4,5\n'
    error = raises_code("ragged-rows", lambda: parse_sample(write(tmp_path, "s.csv", content), CSV))
    assert error.line == 5
    assert "line 5" in str(error.message)


def test_short_row_is_ragged(tmp_path: Path) -> None:
    error = raises_code("ragged-rows", lambda: parse_sample(write(tmp_path, "s.csv", "a,b\n1,2\n3\n"), CSV))
    assert error.line == 3


def test_csv_too_many_columns(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(6))
    path = write(tmp_path, "s.csv", header + "\n" + ",".join("1" * 6) + "\n")
    raises_code("too-many-columns", lambda: parse_sample(path, CSV, max_columns=5))
    assert len(parse_sample(path, CSV, max_columns=6).columns) == 6


# -- JSON lines ----------------------------------------------------------------------------------------------------


def test_json_lines_happy_path(tmp_path: Path) -> None:
    lines = [
        {"路段": "贵阳·观山湖", "speed": 42.5, "ok": True, "note": None},
        {"路段": "花溪", "speed": 7, "tags": ["拥堵", "早高峰"], "geo": {"lat": 26.6, "lon": 106.6}},
        {"路段": "", "ok": False},
    ]
    content = "\ufeff" + "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n   \r\n"
    parsed = parse_sample(write(tmp_path, "s.jsonl", content), "application/jsonl")
    assert parsed == ParsedSample(
        media_type=JSON_LINES,
        rows=3,
        columns=("路段", "speed", "ok", "note", "tags", "geo"),
        head=(
            ("贵阳·观山湖", "42.5", "true", None, None, None),
            ("花溪", "7", None, None, '["拥堵","早高峰"]', '{"lat":26.6,"lon":106.6}'),
            ("", None, "false", None, None, None),
        ),
    )


def test_json_lines_columns_cover_keys_seen_after_the_head(tmp_path: Path) -> None:
    content = '{"a": 1}\n{"a": 2}\n{"a": 3, "late": "x"}\n'
    parsed = parse_sample(write(tmp_path, "s.ndjson", content), JSON_LINES, head_rows=1)
    assert parsed.rows == 3
    assert parsed.columns == ("a", "late")
    assert parsed.head == (("1", None),)


@pytest.mark.parametrize("content", [b"", b"\n  \n\r\n", b"\xef\xbb\xbf"])
def test_json_lines_without_objects_is_empty(tmp_path: Path, content: bytes) -> None:
    raises_code("empty", lambda: parse_sample(write(tmp_path, "s.jsonl", content), JSON_LINES))


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('{"a": 1}\n{"a": \n', 2),
        ('{"a": 1}\n\n[1, 2]\n', 3),  # valid JSON, not an object
        ('"text"\n', 1),
        ('{"a": NaN}\n', 1),
        ('{"a": 1e400}\n', 1),
        ('{"a": ' + "9" * 5000 + "}\n", 1),
        ('{"a": 1} {"b": 2}\n', 1),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", 1),
    ],
)
def test_bad_json_lines(tmp_path: Path, content: str, line: int) -> None:
    error = raises_code("bad-jsonl", lambda: parse_sample(write(tmp_path, "s.jsonl", content), JSON_LINES))
    assert error.line == line


def test_json_lines_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", '{"城市": "贵阳"}\n'.encode("utf-16"))
    raises_code("not-utf8", lambda: parse_sample(path, JSON_LINES))


def test_json_lines_too_many_columns(tmp_path: Path) -> None:
    content = '{"a": 1, "b": 2}\n{"c": 3}\n'
    error = raises_code(
        "too-many-columns", lambda: parse_sample(write(tmp_path, "s.jsonl", content), JSON_LINES, max_columns=2)
    )
    assert error.line == 2


# -- storage -------------------------------------------------------------------------------------------------------


def test_store_is_content_addressed_and_private(tmp_path: Path) -> None:
    directory = tmp_path / "not" / "yet" / "there"
    content = "路段,车速\nGY-001,42\n".encode()
    blob = store_content_addressed(iter([content[:5], b"", content[5:]]), directory, max_bytes=len(content))
    sha = hashlib.sha256(content).hexdigest()
    assert (blob.sha256, blob.size_bytes, blob.path, blob.created) == (
        sha,
        len(content),
        blob_path(directory, sha),
        True,
    )
    assert blob.path == directory / sha[:2] / sha
    assert blob.path.read_bytes() == content
    assert stat.S_IMODE(blob.path.stat().st_mode) == 0o600
    assert files_under(tmp_path) == [blob.path]


def test_same_content_stored_twice_is_one_file(tmp_path: Path) -> None:
    first = store_content_addressed([b"a,b\n", b"1,2\n"], tmp_path, max_bytes=100)
    second = store_content_addressed([b"a,b\n1,2\n"], tmp_path, max_bytes=100)
    assert second.path == first.path
    assert (first.created, second.created) == (True, False)
    assert files_under(tmp_path) == [first.path]


def test_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    assert store_content_addressed([b"x" * 10], tmp_path, max_bytes=10).size_bytes == 10


def test_too_large_aborts_early_and_leaves_nothing(tmp_path: Path) -> None:
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    error = raises_code("too-large", lambda: store_content_addressed(endless(), tmp_path / "blobs", max_bytes=10_500))
    assert "10500" in str(error.message)
    assert pulled == 11  # stopped at the first chunk past the limit
    assert files_under(tmp_path) == []


def test_a_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"a,b\n"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store_content_addressed(broken(), tmp_path, max_bytes=MiB)
    assert files_under(tmp_path) == []


# -- large files: bounded memory ------------------------------------------------------------------------------------

STREAM_BYTES = 50 * MiB
CHUNK_BYTES = 64 * 1024


CSV_HEADER = b"id,city,speed,note\n"
# Long rows keep the row count (and so the run time under tracemalloc) modest: about 260 000 rows.
NOTE = "早高峰拥堵，观山湖区至花溪区方向车速较慢" * 3
CSV_LINE_BYTES = len(f"00000000,贵阳,000,{NOTE}\n".encode())


def generated_csv(total: int) -> Iterator[bytes]:
    """At most `total` bytes of CSV in chunks of about 64 KiB, each built fresh (no chunk is reused)."""
    yield CSV_HEADER
    left = total - len(CSV_HEADER)
    per_chunk = CHUNK_BYTES // CSV_LINE_BYTES
    for number in itertools.count():
        lines = min(per_chunk, left // CSV_LINE_BYTES)
        if lines == 0:
            return
        first = number * per_chunk
        chunk = "".join(f"{n:08d},贵阳,{n % 120:03d},{NOTE}\n" for n in range(first, first + lines)).encode()
        left -= len(chunk)
        yield chunk


def peak_traced_bytes(call: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_fifty_megabytes_are_stored_and_parsed_in_bounded_memory(tmp_path: Path) -> None:
    blob, store_peak = peak_traced_bytes(
        lambda: store_content_addressed(generated_csv(STREAM_BYTES), tmp_path, max_bytes=STREAM_BYTES)
    )
    assert blob.size_bytes > STREAM_BYTES - CHUNK_BYTES
    assert blob.path.stat().st_size == blob.size_bytes
    assert store_peak < 5 * MiB

    parsed, parse_peak = peak_traced_bytes(lambda: parse_sample(blob.path, CSV))
    assert parse_peak < 20 * MiB
    assert parsed.columns == ("id", "city", "speed", "note")
    assert parsed.rows == (blob.size_bytes - len(CSV_HEADER)) // CSV_LINE_BYTES
    assert parsed.head[1] == ("00000001", "贵阳", "001", NOTE)
    assert len(parsed.head) == 200


# -- property: whatever Python's csv module writes, parse_sample reads back --------------------------------------

_text = st.characters(codec="utf-8")  # any character UTF-8 can encode (no lone surrogates)
_names = st.text(_text, min_size=1, max_size=12).filter(lambda s: s == s.strip() and not s.startswith("\ufeff"))


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    columns = draw(st.lists(_names, min_size=1, max_size=6, unique=True))
    cell = st.text(_text, max_size=16)
    rows = draw(st.lists(st.lists(cell, min_size=len(columns), max_size=len(columns)), min_size=1, max_size=25))
    return columns, rows


@settings(max_examples=300, deadline=None)
@given(table=tables(), head_rows=st.integers(min_value=0, max_value=30))
def test_any_table_written_by_the_csv_module_round_trips(
    tmp_path_factory: pytest.TempPathFactory, table: tuple[list[str], list[list[str]]], head_rows: int
) -> None:
    columns, rows = table
    path = tmp_path_factory.getbasetemp() / "round-trip.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows([columns, *rows])
    parsed = parse_sample(path, CSV, head_rows=head_rows)
    assert parsed.rows == len(rows)
    assert parsed.columns == tuple(columns)
    assert parsed.head == tuple(tuple(cell or None for cell in row) for row in rows[:head_rows])
