"""One reader per source kind. A reader yields every record it finds, good or bad, as a `RawRow`
with the file and 1-based line where it starts, so ingest can count read = ingested + rejected and
every reject can be traced to its place in the source.

Readers only split files into records; mapping columns to the canonical record is ingest's job.

Text kinds (csv, tsv, jsonl, text) are decoded with the source's `encoding` (any Python text codec;
utf-8 when unset). A byte-order mark picks the encoding by itself (UTF-8, UTF-16 LE/BE, UTF-32
LE/BE) and is never part of the first field. A line that does not decode, or that holds a NUL
byte, becomes a reject whose reason names the line, column and byte offset; a file that cannot be
text at all (UTF-16 without a BOM read as UTF-8, binary data, a zip archive) or whose header is
unreadable raises `SourceFileError`, which names the file, line and byte and says what to set.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KINDS = ("csv", "tsv", "jsonl", "parquet", "text", "xlsx", "hf")
TEXT_KINDS = ("csv", "tsv", "jsonl", "text")

# csv fields can hold whole articles (MArSum); the default 128 KiB limit is too small for some
csv.field_size_limit(1 << 30)


class SourceFileError(ValueError):
    """A file that cannot be read as configured. The message names the file and, where there is
    one, the line and byte, and says which source key would fix it. A ValueError, so the CLI prints
    it as one line."""


@dataclass(frozen=True)
class RawRow:
    file: str
    line: int
    values: dict[Any, Any] | None  # column name (or position when header is false) -> value
    error: str | None = None  # why the record could not be read; values is then None
    raw: str = ""  # the record's text when it could not be parsed, for the reject table
    config: str | None = None  # hf: the dataset configuration the row came from (e.g. a subject)


def expand_paths(source_id: str, pattern: str) -> list[str]:
    """Files a `path` names, in a stable order; a glob may match several."""
    if not pattern:
        raise ValueError(f"source '{source_id}': field 'path' is empty")
    files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise ValueError(f"source '{source_id}': field 'path' {pattern!r} matches no file")
    return files


# ---------------------------------------------------------------------------------------------
# Decoding


# Longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Magic numbers of files that get handed to a text reader by mistake, and what to do instead.
_MAGIC = (
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook? use kind: xlsx)"),
    (b"\xd0\xcf\x11\xe0", "a legacy Office file (.xls): save it as .xlsx (kind: xlsx) or CSV"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first"),
    (b"PAR1", "a Parquet file: use kind: parquet"),
    (b"%PDF", "a PDF document"),
)
_SNIFF = 1 << 16  # bytes looked at to tell text from binary and UTF-16 without a BOM
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # C0 controls except \t \n \v \f \r
_LONE_CR = re.compile(r"(?<=\r)(?=[^\n])")  # after a '\r' followed by anything but '\n'
_ARABIC = re.compile(r"[\u0600-\u06ff]")


def check_encoding(name: str) -> str:
    """Python's canonical name for a text codec, or ValueError (bytes-to-bytes codecs such as
    base64 pass `codecs.lookup` but cannot decode a file to text)."""
    info = codecs.lookup(name)  # LookupError for an unknown name
    "\n".encode(info.name)  # LookupError: '... is not a text encoding'
    return info.name


def _family(codec: str) -> str:
    """utf-8 / utf-16 / utf-32 for the Unicode codecs (any byte order, with or without -sig)."""
    name = codecs.lookup(codec).name
    for fam in ("utf-8", "utf-16", "utf-32"):
        if name.startswith(fam):
            return fam
    return name


@dataclass(frozen=True)
class Line:
    number: int  # 1-based physical line
    text: str  # decoded, line ending kept
    error: str | None  # why the line is unreadable (bad bytes, NUL); text is then best-effort


class TextFile:
    """A text source file: picks the codec (BOM > `encoding` > utf-8), refuses files that are not
    text in that codec with a named error, and yields decoded lines one by one, so a bad byte costs
    one record instead of the whole file."""

    def __init__(self, path: str, encoding: str | None = None):
        self.path = path
        self.declared = encoding
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF)
        self.size = Path(path).stat().st_size
        self.codec, self.bom = self._pick_codec(head)
        self.newline = "\n".encode(self.codec)
        # utf-16/32 code units are 2/4 bytes: a newline only counts at a unit boundary
        self.unit = {"utf-16": 2, "utf-32": 4}.get(_family(self.codec), 1)
        self._check_text(head)

    def _pick_codec(self, head: bytes) -> tuple[str, int]:
        for bom, codec in _BOMS:
            if head.startswith(bom):
                if self.declared and _family(self.declared) != _family(codec):
                    raise SourceFileError(
                        f"{self.path}: line 1, byte 0: starts with a {codec.upper()} byte-order mark, "
                        f"but the source sets encoding: {self.declared}; remove `encoding:` "
                        f"(the mark is enough) or set it to {_family(codec)}"
                    )
                return codec, len(bom)
        if not self.declared:
            return "utf-8", 0
        codec = codecs.lookup(self.declared).name
        if codec in ("utf-16", "utf-32"):
            # No BOM to tell the byte order: ASCII characters (digits, commas, newlines) put their
            # zero byte second in little-endian, first in big-endian.
            unit = 2 if codec == "utf-16" else 4
            firsts, lasts = head[0::unit].count(0), head[unit - 1 :: unit].count(0)
            return codec + ("-be" if firsts > lasts else "-le"), 0
        if codec == "utf-8-sig":
            return "utf-8", 0
        return codec, 0

    def _where(self, data: bytes, offset: int) -> str:
        """'line L, byte B' for an offset into the start of the file (offsets count the BOM)."""
        line = data[: max(offset - self.bom, 0)].count(self.newline) + 1
        return f"line {line}, byte {offset}"

    def _check_text(self, head: bytes) -> None:
        body = head[self.bom :]
        for magic, what in _MAGIC:
            if body.startswith(magic):
                raise SourceFileError(f"{self.path}: line 1, byte {self.bom}: not a text file, it is {what}")
        if self.unit == 1 and b"\x00" in body:
            # UTF-16 text read with a one-byte codec: each ASCII character (space, comma, newline,
            # digit) leaves a NUL beside it, always on the same side of the 2-byte unit.
            even, odd = body[0::2].count(0), body[1::2].count(0)
            nuls = even + odd
            if nuls >= 4 and max(even, odd) >= 0.9 * nuls and nuls >= len(body) // 50:
                guess = "utf-16-le" if odd > even else "utf-16-be"
                nul = body.index(b"\x00")
                raise SourceFileError(
                    f"{self.path}: {self._where(body, nul + self.bom)}: NUL byte; the file looks like "
                    f"{guess.upper()} without a byte-order mark (every other byte is NUL), not "
                    f"{self.codec}: set `encoding: {guess}` on the source"
                )
        text = body[: len(body) - len(body) % self.unit].decode(self.codec, errors="replace")
        controls = len(_CONTROL.findall(text))
        if text and controls > max(8, len(text) // 20):
            first = _CONTROL.search(text)
            assert first is not None
            if self.unit == 1 and self.newline == b"\n":  # ASCII-compatible: the byte itself
                offset = re.search(rb"[\x00-\x08\x0e-\x1f\x7f]", body).start()  # type: ignore[union-attr]
            else:
                offset = len(text[: first.start()].encode(self.codec, errors="replace"))
            raise SourceFileError(
                f"{self.path}: {self._where(body, offset + self.bom)}: byte 0x{ord(first.group()):02x}; "
                f"not {self.codec} text: {controls} of the first {len(text)} characters are control "
                "characters (binary data, or a wrong `encoding:`)"
            )

    def _chunks(self) -> Iterator[tuple[int, bytes]]:
        """(byte offset, bytes) per physical line, ending included, BOM skipped."""
        with open(self.path, "rb") as fh:
            fh.seek(self.bom)
            offset = self.bom
            if self.unit == 1 and self.newline == b"\n":
                for data in fh:  # the C line splitter: the fast path for utf-8, cp1256, latin-1, ...
                    yield offset, data
                    offset += len(data)
                return
            buf = b""
            while True:
                block = fh.read(1 << 20)
                buf += block
                pos = 0  # start of the current line in buf; always on a code-unit boundary
                while True:
                    i = buf.find(self.newline, pos)
                    while i != -1 and (i - pos) % self.unit:  # a match straddling two code units
                        i = buf.find(self.newline, i + 1)
                    if i == -1:
                        break
                    end = i + len(self.newline)
                    yield offset, buf[pos:end]
                    offset += end - pos
                    pos = end
                buf = buf[pos:]  # the unfinished last line waits for the next block
                if not block:
                    if buf:
                        yield offset, buf
                    return

    def _bad_bytes(self, data: bytes, offset: int, lineno: int, err: UnicodeDecodeError) -> str:
        col = len(data[: err.start].decode(self.codec, errors="replace")) + 1
        bad = data[err.start : err.end]
        msg = (
            f"encoding: byte 0x{bad[:4].hex()} at line {lineno}, column {col}, byte offset "
            f"{offset + err.start} is not valid {self.codec}"
        )
        if not self.declared:
            try:
                as_cp1256 = data.decode("cp1256")
            except UnicodeDecodeError:
                as_cp1256 = ""
            foreign = [c for c in as_cp1256 if ord(c) > 127]
            arabic = len(_ARABIC.findall(as_cp1256))
            if arabic >= 3 and arabic >= 0.6 * len(foreign):  # mostly Arabic letters, not noise
                return msg + " (it reads as Arabic in cp1256: set `encoding: cp1256` on the source)"
            return msg + " (set the source's `encoding:` if the file is not UTF-8)"
        return msg

    def lines(self) -> Iterator[Line]:
        lineno = 0
        for offset, data in self._chunks():
            lineno += 1
            try:
                text = data.decode(self.codec)
            except UnicodeDecodeError as e:
                error = self._bad_bytes(data, offset, lineno, e)
                yield Line(lineno, data.decode(self.codec, errors="replace"), error)
                continue
            if "\r" in text[:-2]:
                # A lone '\r' (old Mac ending, or mixed endings) ends a line too, as in universal
                # newlines mode; csv reads a quoted '\r' the same way whether or not it splits here.
                parts = _LONE_CR.split(text)
            else:
                parts = [text]
            for k, part in enumerate(parts):
                if k:
                    offset += len(parts[k - 1].encode(self.codec))
                    lineno += 1
                nul = part.find("\x00")
                if nul != -1:
                    byte = offset + len(part[:nul].encode(self.codec))
                    err = f"NUL byte at line {lineno}, column {nul + 1}, byte offset {byte}"
                    yield Line(lineno, part.replace("\x00", "\ufffd"), err)
                else:
                    yield Line(lineno, part, None)


def _rejects_if_undecodable(tf: TextFile, rows: Iterator[RawRow]) -> Iterator[RawRow]:
    """Pass rows through, but refuse a file in which not one record decoded: that is a wrong
    encoding (cp1256 read as UTF-8), not a few bad rows, and hundreds of identical rejects would
    hide it."""
    n = bad = 0
    first = ""
    for row in rows:
        n += 1
        if row.error and row.error.startswith("encoding:"):
            bad += 1
            first = first or row.error
        yield row
    if n and bad == n:
        raise SourceFileError(
            f"{tf.path}: none of its {n} records decodes as {tf.codec}; the first: "
            f"{first.removeprefix('encoding: ')}"
        )


# ---------------------------------------------------------------------------------------------
# Readers


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
    yield from _rejects_if_undecodable(tf, _read_delimited(tf, sep, header, quoting))


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


def read_jsonl(path: str, encoding: str | None = None) -> Iterator[RawRow]:
    tf = TextFile(path, encoding)
    yield from _rejects_if_undecodable(tf, _read_jsonl(tf))


def _read_jsonl(tf: TextFile) -> Iterator[RawRow]:
    path = tf.path
    for line in tf.lines():
        text = line.text.rstrip("\r\n")
        if not text.strip():
            continue
        if line.error:
            yield RawRow(path, line.number, None, line.error, text)
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield RawRow(path, line.number, None, f"unparseable line: {e.msg} at column {e.colno}", text)
            continue
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            yield RawRow(path, line.number, None, f"unparseable line: not a JSON object (a {kind})", text)
            continue
        yield RawRow(path, line.number, obj)


def read_text(path: str, encoding: str | None = None) -> Iterator[RawRow]:
    tf = TextFile(path, encoding)
    yield from _rejects_if_undecodable(tf, _read_text(tf))


def _read_text(tf: TextFile) -> Iterator[RawRow]:
    for line in tf.lines():
        text = line.text.rstrip("\r\n")
        if not text.strip():
            continue
        if line.error:
            yield RawRow(tf.path, line.number, None, line.error, text)
            continue
        yield RawRow(tf.path, line.number, {"text": text})


def read_parquet(path: str) -> Iterator[RawRow]:
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several types for a damaged file; all mean "unreadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise SourceFileError(f"{path}: not a readable Parquet file ({type(e).__name__}: {first})") from e
    for i, row in enumerate(df.iter_rows(named=True), 1):
        yield RawRow(path, i, row)


@contextlib.contextmanager
def _workbook(path: str) -> Iterator[Any]:
    """An openpyxl workbook (read-only, cached cell values), or SourceFileError naming the file."""
    import openpyxl  # only xlsx sources pay for the import

    with open(path, "rb") as fh:
        if fh.read(8).startswith(b"\xd0\xcf\x11\xe0"):
            raise SourceFileError(
                f"{path}: byte 0: a legacy Excel file (.xls, BIFF), which kind xlsx does not read: "
                "save it as .xlsx or export it as CSV"
            )
        fh.seek(0)
        try:
            # A file object skips openpyxl's check of the file name's extension; the content decides.
            wb = openpyxl.load_workbook(fh, read_only=True, data_only=True)
        except Exception as e:  # zipfile, XML and KeyError failures all mean "not a workbook"
            raise SourceFileError(f"{path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from e
        try:
            yield wb
        finally:
            wb.close()


def _worksheet(path: str, wb: Any, sheet: str | int | None) -> Any:
    names = wb.sheetnames
    if sheet is None:
        return wb.worksheets[0]
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise SourceFileError(f"{path}: no sheet at index {sheet} (sheets: {', '.join(names)})")
        return wb.worksheets[sheet]
    if sheet not in names:
        raise SourceFileError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(names)})")
    return wb[sheet]


def _sheet_rows(path: str, ws: Any) -> Iterator[tuple[int, list[Any], list[Any]]]:
    """(row number, cells, values without trailing empties) per non-blank row of a sheet."""
    # Read-only mode trusts the <dimension> a writer stored, and some writers store a wrong one,
    # which would cut rows off silently: read what the sheet actually holds instead.
    ws.reset_dimensions()
    rows = ws.iter_rows(min_row=1)
    number = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except Exception as e:  # the sheet's XML is parsed lazily: a damaged part fails here
            raise SourceFileError(
                f"{path} sheet {ws.title!r}: after row {number}: unreadable sheet data "
                f"({type(e).__name__}: {e})"
            ) from e
        number += 1
        # Read-only rows pad the missing ones; a real cell knows its own row, which is authoritative.
        number = next((c.row for c in cells if getattr(c, "row", None)), number)
        values = [c.value for c in cells]
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        if values:  # a blank row is not a record, like a blank line
            yield number, list(cells), values


def _header_names(values: list[Any]) -> list[str]:
    return ["" if v is None else str(v).strip() for v in values]


def read_xlsx(path: str, sheet: str | int | None = None, header: bool = True) -> Iterator[RawRow]:
    """An Excel workbook through openpyxl, one record per non-blank sheet row; `line` is the row.

    The header is the first non-blank row. A row with cells beyond the header's columns, or
    holding an Excel error value (#N/A, #DIV/0!, ...), is rejected with the cell named.
    """
    with _workbook(path) as wb:
        ws = _worksheet(path, wb, sheet)
        columns: list[str] | None = None
        for number, cells, values in _sheet_rows(path, ws):
            if header and columns is None:
                columns = _header_names(values)
                continue
            raw = "\t".join("" if v is None else str(v) for v in values)
            errors = [c for c in cells if getattr(c, "data_type", "") == "e"]
            if errors:
                where = f"cell {errors[0].coordinate}"
                yield RawRow(path, number, None, f"excel error value {errors[0].value} in {where}", raw)
            elif columns is None:
                yield RawRow(path, number, dict(enumerate(values)))
            elif len(values) > len(columns):
                reason = f"unparseable line: {len(values)} cells, header has {len(columns)}"
                yield RawRow(path, number, None, reason, raw)
            else:
                # Excel drops trailing empty cells: a short row is complete, its missing cells empty.
                values += [None] * (len(columns) - len(values))
                yield RawRow(path, number, dict(zip(columns, values, strict=True)))


def xlsx_header(path: str, sheet: str | int | None = None) -> list[str]:
    """The header's column names (first non-blank row) of the sheet an xlsx source reads."""
    with _workbook(path) as wb:
        ws = _worksheet(path, wb, sheet)
        for _number, _cells, values in _sheet_rows(path, ws):
            return _header_names(values)
        raise SourceFileError(f"{path} sheet {ws.title!r}: row 1: empty sheet; expected a header row")


def read_hf(name: str, revision: str, split: str = "train", config: str | None = None) -> Iterator[RawRow]:
    """A Hugging Face dataset at a pinned revision; only reached when params name one.

    `config: "*"` reads every configuration the dataset declares (DarijaMMLU: one per subject), in
    the dataset's order, so an overlay needs no hand-written list. `name` may be a local dataset folder
    (a README.md with a `configs:` block and its data files), resolved by the same call as a Hub id.
    """
    import datasets  # heavy and networked: imported only for hf sources

    try:
        revision = resolve_revision(name, revision)
        configs = (
            datasets.get_dataset_config_names(name, revision=revision) if config == "*" else [config]
        )
        for cfg in configs:
            ds = datasets.load_dataset(name, cfg, split=split, revision=revision)
            where = f"hf://{name}@{revision}/{split}" + (f"/{cfg}" if cfg else "")
            for i, row in enumerate(ds, 1):
                yield RawRow(where, i, dict(row), config=cfg)
    except (ConnectionError, OSError, ValueError) as e:
        if _hub_offline() and not Path(name).exists():
            raise RuntimeError(
                f"Hugging Face dataset {name!r} (revision {revision}, split {split}"
                f"{', config ' + str(config) if config else ''}) cannot be fetched: the Hub is offline "
                "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set, or no network). Run on an online machine once, "
                "or point `name` at a local copy."
            ) from e
        raise


COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def resolve_revision(name: str, revision: str, api=None) -> str:
    """The commit a moving ref (a branch such as `main`, or a tag) of a Hub dataset points at now.

    Rows then record an exact commit (`hf://name@<sha>/...`), so a score traces back to the data it
    was computed on even where the overlay could not pin one (DarijaHellaSwag), and the log says which
    commit to pin. A full commit SHA, or a local dataset folder, is returned as it is.
    """
    if COMMIT_SHA.fullmatch(revision) or Path(name).exists():
        return revision
    from huggingface_hub import HfApi

    sha = (api or HfApi()).dataset_info(name, revision=revision).sha
    if not sha or not COMMIT_SHA.fullmatch(sha):
        raise ValueError(f"Hugging Face dataset {name!r}: revision {revision!r} gave no commit: {sha!r}")
    log.warning("Hugging Face dataset %s: revision %r is not a commit; reading commit %s (pin it: "
                "revision: %s)", name, revision, sha, sha)
    return sha


def _hub_offline() -> bool:
    import os

    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in
               ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
