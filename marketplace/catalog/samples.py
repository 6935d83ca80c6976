"""Sample and dataset files: content-addressed streaming storage, and a streaming CSV / JSON-lines reader.

Pure and synchronous (no database, no web framework): the service runs these in a worker thread and
maps `SampleError.code` to a problem response (suggested: too-large 413, unsupported-type 415, others 422).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, NoReturn

from marketplace.kit.i18n import Message

CSV = "text/csv"
JSON_LINES = "application/x-ndjson"

SampleErrorCode = Literal[
    "too-large",
    "empty",
    "not-utf8",
    "bad-csv",
    "bad-jsonl",
    "ragged-rows",
    "too-many-columns",
    "unsupported-type",
]

# Longest physical line read, ending included: bounds memory on a file without newlines (csv caps a field at 128 KiB).
MAX_LINE_CHARS = 1 << 20

_MEDIA_TYPES = {
    "text/csv": CSV,
    "application/csv": CSV,
    "application/x-ndjson": JSON_LINES,
    "application/jsonl": JSON_LINES,
    "application/json-lines": JSON_LINES,
    "application/x-jsonlines": JSON_LINES,
}
_SUFFIXES = {".csv": CSV, ".jsonl": JSON_LINES, ".ndjson": JSON_LINES}


class SampleError(ValueError):
    """A file that cannot be accepted; `code` is stable, `line` (1-based) names the offending line if known."""

    def __init__(self, code: SampleErrorCode, message: Message, *, line: int | None = None) -> None:
        super().__init__(str(message))
        self.code: SampleErrorCode = code
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size_bytes: int
    path: Path
    # False when identical content was already stored: a caller undoing a failed upload must not delete it.
    created: bool = True


@dataclass(frozen=True, slots=True)
class ParsedSample:
    media_type: str
    rows: int
    columns: tuple[str, ...]
    head: tuple[tuple[str | None, ...], ...]


def blob_path(directory: Path, sha256: str) -> Path:
    """Where the content with this digest lives (two-character fan-out keeps directories small)."""
    return directory / sha256[:2] / sha256


def store_content_addressed(chunks: Iterable[bytes], directory: Path, max_bytes: int) -> StoredBlob:
    """Stream `chunks` to `directory/<sha[:2]>/<sha>`; nothing is left behind if the stream fails or is too large."""
    if max_bytes < 0:
        raise ValueError("max_bytes must not be negative")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0o600 and in the target directory, so the final rename stays on one filesystem.
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise SampleError(
                        "too-large",
                        Message(
                            "file.too-large",
                            "the file is larger than the limit of {max_bytes} bytes",
                            max_bytes=max_bytes,
                        ),
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        final = blob_path(directory, sha)
        final.parent.mkdir(mode=0o700, exist_ok=True)
        if final.exists():
            # Same digest, same content: keep the stored copy.
            temp.unlink()
            return StoredBlob(sha, size, final, created=False)
        # Atomic: readers see either no file or the whole file. A concurrent twin replacing it is harmless.
        temp.replace(final)
        _fsync_directory(final.parent)
        return StoredBlob(sha, size, final, created=True)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; not every platform lets a directory be opened, so this is best effort."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def normalise_media_type(value: str | None) -> str | None:
    """The canonical type for an accepted media type (parameters and case ignored), else None."""
    if not value:
        return None
    return _MEDIA_TYPES.get(value.split(";", 1)[0].strip().lower())


def media_type_for(filename: str, declared: str | None) -> str:
    """An accepted declared type wins; otherwise the suffix decides (browsers send odd types for .csv)."""
    canonical = normalise_media_type(declared)
    if canonical:
        return canonical
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    raise SampleError(
        "unsupported-type",
        Message("file.unsupported-suffix", "only CSV (.csv) and JSON lines (.jsonl, .ndjson) files are accepted"),
    )


def parse_sample(path: Path, media_type: str, *, head_rows: int = 200, max_columns: int = 200) -> ParsedSample:
    """Count the rows, name the columns and keep the first `head_rows` rows, reading one line at a time."""
    canonical = normalise_media_type(media_type)
    if canonical is None:
        raise SampleError(
            "unsupported-type",
            Message("file.unsupported-media-type", "media type {media_type!r} is not accepted", media_type=media_type),
        )
    # utf-8-sig drops one leading BOM; newline="" hands csv the line endings it needs for quoted newlines.
    with path.open(encoding="utf-8-sig", errors="strict", newline="") as source:
        try:
            if canonical == CSV:
                rows, columns, head = _parse_csv(source, head_rows, max_columns)
            else:
                rows, columns, head = _parse_json_lines(source, head_rows, max_columns)
        except UnicodeDecodeError as exc:
            raise SampleError("not-utf8", Message("file.not-utf-8", "the file is not valid UTF-8 text")) from exc
    return ParsedSample(canonical, rows, columns, head)


def _lines(source: IO[str], bad_code: SampleErrorCode) -> Iterator[str]:
    """Physical lines, refusing one longer than MAX_LINE_CHARS instead of reading it whole."""
    number = 0
    while line := source.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise SampleError(
                bad_code,
                Message(
                    "file.line-too-long",
                    "line {number} is longer than {limit} characters",
                    number=number,
                    limit=MAX_LINE_CHARS,
                ),
                line=number,
            )
        yield line


def _parse_csv(
    source: IO[str], head_rows: int, max_columns: int
) -> tuple[int, tuple[str, ...], tuple[tuple[str | None, ...], ...]]:
    reader = csv.reader(_lines(source, "bad-csv"), strict=True)
    columns: tuple[str, ...] | None = None
    head: list[tuple[str | None, ...]] = []
    rows = 0
    while True:
        start = reader.line_num + 1  # a quoted cell may span lines: report where the record starts
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise SampleError(
                "bad-csv", Message("file.bad-csv", "line {start}: {reason}", start=start, reason=str(exc)), line=start
            ) from exc
        if not record:  # a blank line, not a row (csv.writer quotes a lone empty cell)
            continue
        if columns is None:
            columns = _csv_header(record, max_columns)
            continue
        if len(record) != len(columns):
            raise SampleError(
                "ragged-rows",
                Message(
                    "file.ragged-row",
                    "line {start} has {cells} cells, the header has {columns}",
                    start=start,
                    cells=len(record),
                    columns=len(columns),
                ),
                line=start,
            )
        rows += 1
        if len(head) < head_rows:
            head.append(tuple(cell if cell != "" else None for cell in record))
    if columns is None or rows == 0:
        raise SampleError("empty", Message("file.no-rows", "the file has no data rows"))
    return rows, columns, tuple(head)


def _csv_header(record: list[str], max_columns: int) -> tuple[str, ...]:
    if len(record) > max_columns:
        raise SampleError(
            "too-many-columns",
            Message(
                "file.too-many-columns",
                "{columns} columns, at most {max_columns} are allowed",
                columns=len(record),
                max_columns=max_columns,
            ),
            line=1,
        )
    names = tuple(name.strip() for name in record)
    if not all(names):
        raise SampleError(
            "bad-csv", Message("file.empty-column-name", "the header row has an empty column name"), line=1
        )
    if len(set(names)) != len(names):
        raise SampleError(
            "bad-csv", Message("file.repeated-column-name", "the header row repeats a column name"), line=1
        )
    return names


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 would read as inf and print as the non-JSON "Infinity"
        raise ValueError(f"number {text} is out of range")
    return value


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _json_cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _parse_json_lines(
    source: IO[str], head_rows: int, max_columns: int
) -> tuple[int, tuple[str, ...], tuple[tuple[str | None, ...], ...]]:
    # A dict keeps first-seen order and bounded size (max_columns): the union of keys over the whole file.
    columns: dict[str, None] = {}
    head: list[dict[str, str | None]] = []
    rows = 0
    for number, line in enumerate(_lines(source, "bad-jsonl"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_float=_finite_float, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so is an over-long int
            raise SampleError(
                "bad-jsonl",
                Message("file.line-not-json", "line {number} is not valid JSON", number=number),
                line=number,
            ) from exc
        if not isinstance(value, dict):
            raise SampleError(
                "bad-jsonl",
                Message("file.line-not-object", "line {number} is not a JSON object", number=number),
                line=number,
            )
        for key in value:
            if key not in columns:
                if len(columns) == max_columns:
                    # Refuse rather than truncate: a dropped column would escape the identifier scan (S4).
                    raise SampleError(
                        "too-many-columns",
                        Message(
                            "file.too-many-keys",
                            "more than {max_columns} distinct keys (line {number})",
                            max_columns=max_columns,
                            number=number,
                        ),
                        line=number,
                    )
                columns[key] = None
        rows += 1
        if len(head) < head_rows:
            try:
                head.append({key: _json_cell(cell) for key, cell in value.items()})
            except RecursionError as exc:  # encoding nests a frame deeper than decoding did
                raise SampleError(
                    "bad-jsonl",
                    Message("file.line-too-deep", "line {number} is nested too deeply", number=number),
                    line=number,
                ) from exc
    if rows == 0:
        raise SampleError("empty", Message("file.no-objects", "the file has no JSON objects"))
    names = tuple(columns)
    return rows, names, tuple(tuple(row.get(name) for name in names) for row in head)
