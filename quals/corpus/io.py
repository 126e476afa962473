"""Streaming readers for (summary, source) rows: two text files, or one JSONL/CSV file with named columns.

Rows are yielded one at a time (memory stays bounded by the batch, not the corpus). A row that cannot be
read (bad UTF-8, invalid JSON, a missing, null or non-string field, a CSV record the parser rejects) is
yielded with an ``error`` naming its line instead of stopping the run; structural problems (missing file,
missing CSV column, different line counts) raise ``InputError`` before any scoring starts. Extra fields are
ignored (except the ``passthrough`` ones, copied to the output), and a UTF-8 byte-order mark is skipped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


UNREADABLE = "unreadable row: "  # prefix of the output ``error`` of rows the readers could not read
CSV_FIELD_LIMIT = 1 << 28  # characters; Python's default (131,072) rejects a 100k-word document


class InputError(ValueError):
    """The input as a whole cannot be read (the message says how to fix it)."""


@dataclass
class Row:
    index: int  # 0-based position in the input
    summary: str | None
    source: str | None
    error: str | None = None
    extra: dict = field(default_factory=dict)  # passthrough fields (e.g. an "id" column)


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(suffix, "txt")


def read_rows(input_path: str | None = None, summaries_path: str | None = None, sources_path: str | None = None,
              summary_column: str = "summary", source_column: str = "source",
              passthrough: tuple[str, ...] = ("id",)) -> Iterator[Row]:
    """Rows from ``input_path`` (JSONL/CSV with both columns) or from two parallel files."""
    if input_path:
        if summaries_path or sources_path:
            raise InputError("Give either --input, or --summaries with --sources, not both")
        return _table_rows(input_path, summary_column, source_column, passthrough)
    if not (summaries_path and sources_path):
        raise InputError("Give --input FILE (JSONL/CSV with summary and source columns), "
                         "or both --summaries FILE and --sources FILE")
    summaries = _column(summaries_path, summary_column)
    sources = _column(sources_path, source_column)
    counts = count_rows(summaries_path), count_rows(sources_path)
    if counts[0] != counts[1]:
        raise InputError(f"{summaries_path} has {counts[0]} rows but {sources_path} has {counts[1]}; "
                         "summaries and sources must pair up line by line")
    return _zip_rows(summaries, sources)


def count_rows(path: str | Path) -> int:
    """Number of data rows (lines for text/JSONL, records for CSV), read in a streaming pass."""
    fmt = file_format(path)
    _check_file(path)
    if fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            records = sum(1 for _ in _csv_records(csv.reader(handle, delimiter="\t" if fmt == "tsv" else ",")))
            return max(records - 1, 0)  # the header is not a row
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip() or fmt == "txt")


def _zip_rows(summaries: Iterator[tuple], sources: Iterator[tuple]) -> Iterator[Row]:
    for index, ((summary, error_a), (source, error_b)) in enumerate(zip(summaries, sources, strict=True)):
        yield Row(index, summary, source, error_a or error_b)


def _column(path: str, column: str) -> Iterator[tuple[str | None, str | None]]:
    """(value, error) per row of one file: a text line, or ``column`` of a JSONL/CSV row."""
    fmt = file_format(path)
    if fmt == "txt":
        return _text_lines(path)
    return ((row.summary, row.error) for row in _table_rows(path, column, column, ()))


def _text_lines(path: str) -> Iterator[tuple[str | None, str | None]]:
    _check_file(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle):
            try:
                yield raw.decode("utf-8-sig" if number == 0 else "utf-8").rstrip("\r\n"), None
            except UnicodeDecodeError as err:
                yield None, f"line {number + 1} of {path} is not valid UTF-8 ({err.reason} at byte {err.start})"


def _table_rows(path: str, summary_column: str, source_column: str, passthrough: tuple[str, ...]) -> Iterator[Row]:
    _check_file(path)
    fmt = file_format(path)
    if fmt in ("csv", "tsv"):
        return _csv_rows(path, summary_column, source_column, passthrough, "\t" if fmt == "tsv" else ",")
    return _jsonl_rows(path, summary_column, source_column, passthrough)


def _jsonl_rows(path, summary_column, source_column, passthrough) -> Iterator[Row]:
    with open(path, "rb") as handle:
        index = 0
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
                if not isinstance(record, dict):
                    raise TypeError(f"expected a JSON object, got {type(record).__name__}")
            except (UnicodeDecodeError, ValueError, TypeError, RecursionError) as err:
                yield Row(index, None, None, f"line {number} of {path}: {type(err).__name__}: {err}")
            else:
                problem = _field_problem(record, (summary_column, source_column))
                error = f"line {number} of {path}: {problem}" if problem else None
                yield Row(index, record.get(summary_column), record.get(source_column), error,
                          {k: record[k] for k in passthrough if k in record})
            index += 1


def _field_problem(record: dict, columns: tuple[str, ...]) -> str | None:
    """Why ``record`` has no usable text in ``columns`` (missing, null or not a string), or None."""
    missing = [c for c in dict.fromkeys(columns) if c not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    wrong = {c: "null" if record[c] is None else type(record[c]).__name__
             for c in dict.fromkeys(columns) if not isinstance(record[c], str)}
    if wrong:
        return "field(s) " + ", ".join(f"{c} is {kind}" for c, kind in wrong.items()) + ", expected a string"
    return None


def _csv_records(reader) -> Iterator[tuple[object, str | None]]:
    """(record, None) per CSV record, or (None, error) for one the parser rejects; the parser then goes on."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    while True:
        try:
            yield next(reader), None
        except StopIteration:
            return
        except csv.Error as err:
            yield None, str(err)


def _csv_rows(path, summary_column, source_column, passthrough, delimiter) -> Iterator[Row]:
    """Checks the header now (a missing column is an ``InputError`` before any scoring), then streams rows.

    Bytes that are not UTF-8 are kept as lone surrogates (``surrogateescape``), so a row holding them is told apart
    from one holding a genuine U+FFFD character, which is valid text.
    """
    handle = io.TextIOWrapper(open(path, "rb"), encoding="utf-8-sig", errors="surrogateescape",  # noqa: SIM115
                              newline="")
    reader = csv.DictReader(handle, delimiter=delimiter)
    columns = reader.fieldnames
    missing = [c for c in dict.fromkeys((summary_column, source_column)) if c not in (columns or [])]
    if missing:
        handle.close()
        if not columns:
            raise InputError(f"{path} is empty: a CSV file needs a header row naming its columns "
                             f"({summary_column}, {source_column}) and one row per summary")
        raise InputError(f"{path} has no column(s) {', '.join(missing)}; its columns are {', '.join(columns)}. "
                         "Name them with --summary-column / --source-column")
    return _csv_stream(path, handle, reader, summary_column, source_column, passthrough)


def _csv_stream(path, handle, reader, summary_column, source_column, passthrough) -> Iterator[Row]:
    with handle:
        for index, (record, parse_error) in enumerate(_csv_records(reader)):
            where = f"row {index + 1} of {path}"
            if parse_error:
                yield Row(index, None, None, f"{where}: {parse_error}")
                continue
            error = _field_problem(record, (summary_column, source_column))  # a short row has None values
            if error is None and any(_undecodable(record[c]) for c in (summary_column, source_column)):
                error = "not valid UTF-8"
            yield Row(index, record.get(summary_column), record.get(source_column),
                      f"{where}: {error}" if error else None, {k: record[k] for k in passthrough if k in record})


def _undecodable(text: str) -> bool:
    """True when ``text`` holds bytes that were not UTF-8 (``surrogateescape`` lone surrogates)."""
    return any("\udc80" <= char <= "\udcff" for char in text)


def _check_file(path) -> None:
    if not Path(path).is_file():
        raise InputError(f"No such file: {path}")
