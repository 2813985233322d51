"""csv and tsv: delimited text, quoted fields spanning lines, each record reporting the line it
starts on. Decoded through sources.codecs (`encoding:`)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from atlas_forge.sources.base import RawRow, SourceFileError
from atlas_forge.sources.codecs import TextFile, rejects_if_undecodable
from atlas_forge.sources.files import check_header, per_file
from atlas_forge.sources.registry import register

# csv fields can hold whole articles (MArSum); the default 128 KiB limit is too small for some
csv.field_size_limit(1 << 30)


def _csv_records(tf: TextFile, sep: str, quoting: bool) -> Iterator[tuple[int, int, list[str] | None, str]]:
    """(first line, last line, fields or None, error) per csv record; error is '' for a good one.
    A record spanning a line that did not decode carries that line's error."""
    bad: dict[int, str] = {}
    physical = {"n": 0}

    def lines() -> Iterator[str]:
        for line in tf.lines():
            physical["n"] = line.number
            if line.error:
                bad[line.number] = line.error
            yield line.text

    reader = csv.reader(
        lines(), delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE, strict=False
    )
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end = physical["n"]
            yield start, end, None, f"unparseable line: {e}"
            start = end + 1
            continue
        end = physical["n"]
        first, start = start, end + 1
        if not fields or fields == [""] and first == end:
            continue  # blank line: not a record
        errors = [bad[n] for n in range(first, end + 1) if n in bad]
        yield first, end, fields, errors[0] if errors else ""


def _header_error(tf: TextFile, line: int, error: str) -> SourceFileError:
    error = error.removeprefix("encoding: ")
    if "cp1256" not in error and not tf.declared:
        error += "; if the file is not UTF-8, set the source's `encoding:` (e.g. cp1256, utf-16)"
    return SourceFileError(f"{tf.path}: line {line}: unreadable header: {error}")


def delimited_header(path: str, sep: str, quoting: bool = True, encoding: str | None = None) -> list[str]:
    """The header's column names, or SourceFileError naming file, line and byte when it is
    missing or unreadable (an unreadable header would otherwise surface as a column that 'is not
    in the header' while looking identical to the one asked for)."""
    tf = TextFile(path, encoding)
    for first, _end, fields, error in _csv_records(tf, sep, quoting):
        if error or fields is None:
            raise _header_error(tf, first, error)
        return fields
    what = "empty file (0 bytes)" if tf.size <= tf.bom else "no header line (only blank lines)"
    raise SourceFileError(f"{path}: line 1: {what}; expected a header line")


def read_delimited(
    path: str, sep: str, header: bool = True, quoting: bool = True, encoding: str | None = None
) -> Iterator[RawRow]:
    """CSV/TSV with quoted newlines; each record reports the line it starts on."""
    tf = TextFile(path, encoding)
    yield from rejects_if_undecodable(tf, _read_delimited(tf, sep, header, quoting))


def _read_delimited(tf: TextFile, sep: str, header: bool, quoting: bool) -> Iterator[RawRow]:
    path = tf.path
    columns: list[str] | None = None
    for first, end, fields, error in _csv_records(tf, sep, quoting):
        if fields is None:
            yield RawRow(path, first, None, error)
            continue
        if header and columns is None:
            if error:
                raise _header_error(tf, first, error)
            columns = fields
            continue
        raw = sep.join(fields)
        if error:
            yield RawRow(path, first, None, error, raw)
        elif columns is None:
            yield RawRow(path, first, dict(enumerate(fields)))
        elif len(fields) != len(columns):
            reason = f"unparseable line: {len(fields)} fields, header has {len(columns)}"
            if end > first and quoting:
                # A stray or unclosed quote makes csv read on to the next quote (or the end of the
                # file): say which lines went into this one record so none looks silently lost.
                reason += f"; a quote opened on line {first} runs to line {end}, merging lines {first}-{end}"
            yield RawRow(path, first, None, reason, raw)
        else:
            yield RawRow(path, first, dict(zip(columns, fields, strict=True)))


def _read_file(cfg: Any, path: str) -> Iterator[RawRow]:
    sep = cfg.sep or ("," if cfg.kind == "csv" else "\t")
    quoting = cfg.quoting if cfg.quoting is not None else cfg.kind == "csv"
    if cfg.header:
        check_header(cfg, path, delimited_header(path, sep, quoting, cfg.encoding))
    yield from read_delimited(path, sep, cfg.header, quoting, cfg.encoding)


register("csv", text=True)(per_file(_read_file))
register("tsv", text=True)(per_file(_read_file))
