"""One reader per source kind. A reader yields every record it finds, good or bad, as a `RawRow`
with the file and 1-based line where it starts, so ingest can count read = ingested + rejected and
every reject can be traced to its place in the source.

Readers only split files into records; mapping columns to the canonical record is ingest's job.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("csv", "tsv", "jsonl", "parquet", "text", "hf")

# csv fields can hold whole articles (MArSum); the default 128 KiB limit is too small for some
csv.field_size_limit(1 << 30)


@dataclass(frozen=True)
class RawRow:
    file: str
    line: int
    values: dict[Any, Any] | None  # column name (or position when header is false) -> value
    error: str | None = None  # why the record could not be read; values is then None
    raw: str = ""  # the record's text when it could not be parsed, for the reject table


def expand_paths(source_id: str, pattern: str) -> list[str]:
    """Files a `path` names, in a stable order; a glob may match several."""
    if not pattern:
        raise ValueError(f"source '{source_id}': field 'path' is empty")
    files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise ValueError(f"source '{source_id}': field 'path' {pattern!r} matches no file")
    return files


def _decoded_lines(path: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, decoded cleanly) per physical line, line endings kept.

    Decoding line by line lets one bad byte cost one record instead of the whole file.
    """
    with open(path, "rb") as fh:
        for lineno, data in enumerate(fh, 1):
            if lineno == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            try:
                yield lineno, data.decode("utf-8"), True
            except UnicodeDecodeError:
                yield lineno, data.decode("utf-8", errors="replace"), False


def read_delimited(path: str, sep: str, header: bool = True, quoting: bool = True) -> Iterator[RawRow]:
    """CSV/TSV with quoted newlines; each record reports the line it starts on."""
    bad_lines: set[int] = set()
    physical = {"n": 0}

    def lines() -> Iterator[str]:
        for lineno, text, ok in _decoded_lines(path):
            physical["n"] = lineno
            if not ok:
                bad_lines.add(lineno)
            yield text

    reader = csv.reader(
        lines(), delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE, strict=False
    )
    columns: list[str] | None = None
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end = physical["n"]
            yield RawRow(path, start, None, f"unparseable line: {e}")
            start = end + 1
            continue
        end = physical["n"]
        first, start = start, end + 1
        if not fields or fields == [""] and first == end:
            continue  # blank line: not a record
        if header and columns is None:
            columns = fields
            continue
        raw = sep.join(fields)
        if any(n in bad_lines for n in range(first, end + 1)):
            yield RawRow(path, first, None, "encoding: not valid UTF-8", raw)
            continue
        if columns is None:
            yield RawRow(path, first, dict(enumerate(fields)))
        elif len(fields) != len(columns):
            yield RawRow(
                path, first, None, f"unparseable line: {len(fields)} fields, header has {len(columns)}", raw
            )
        else:
            yield RawRow(path, first, dict(zip(columns, fields, strict=True)))


def delimited_header(path: str, sep: str, quoting: bool = True) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
        return next(reader, [])


def read_jsonl(path: str) -> Iterator[RawRow]:
    for lineno, text, ok in _decoded_lines(path):
        if not text.strip():
            continue
        if not ok:
            yield RawRow(path, lineno, None, "encoding: not valid UTF-8", text.rstrip("\r\n"))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield RawRow(path, lineno, None, f"unparseable line: {e.msg}", text.rstrip("\r\n"))
            continue
        if not isinstance(obj, dict):
            yield RawRow(path, lineno, None, "unparseable line: not a JSON object", text.rstrip("\r\n"))
            continue
        yield RawRow(path, lineno, obj)


def read_text(path: str) -> Iterator[RawRow]:
    for lineno, text, ok in _decoded_lines(path):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        if not ok:
            yield RawRow(path, lineno, None, "encoding: not valid UTF-8", text)
            continue
        yield RawRow(path, lineno, {"text": text})


def read_parquet(path: str) -> Iterator[RawRow]:
    import polars as pl

    for i, row in enumerate(pl.read_parquet(path).iter_rows(named=True), 1):
        yield RawRow(path, i, row)


def read_hf(name: str, revision: str, split: str = "train", config: str | None = None) -> Iterator[RawRow]:
    """A Hugging Face dataset at a pinned revision; only reached when params name one."""
    import datasets  # heavy and networked: imported only for hf sources

    ds = datasets.load_dataset(name, config, split=split, revision=revision)
    where = f"hf://{name}@{revision}/{split}" + (f"/{config}" if config else "")
    for i, row in enumerate(ds, 1):
        yield RawRow(where, i, dict(row))
