"""Decoding of the text kinds (csv, tsv, jsonl, text): the codec a file is read with and the lines it
yields.

The codec is the source's `encoding` (any Python text codec; utf-8 when unset), except that a
byte-order mark picks it by itself (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE) and is never part of the first
field. A line that does not decode, or that holds a NUL byte, comes back with an error naming the
line, column and byte offset (its record becomes a reject); a file that cannot be text at all
(UTF-16 without a BOM read as UTF-8, binary data, a zip archive) raises `SourceFileError`, which names
the file, line and byte and says what to set.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from atlas_forge.sources.base import RawRow, SourceFileError

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


def rejects_if_undecodable(tf: TextFile, rows: Iterator[RawRow]) -> Iterator[RawRow]:
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
