"""One reader per source kind. A reader yields every record it finds, good or bad, as a `RawRow`
with the file and 1-based line where it starts, so ingest can count read = ingested + rejected and
every reject can be traced to its place in the source.

Readers only split files into records; mapping columns to the canonical record is ingest's job.

    registry.py   READERS (kind -> reader), register(kind), read_source(cfg)
    base.py       RawRow, SourceFileError
    codecs.py     decoding of the text kinds: BOM / `encoding:` sniffing, line-level errors
    files.py      what the file kinds share: path globs, the header check, "no records" refusal
    delimited.py  csv, tsv          lines.py    jsonl, text
    parquet.py    parquet           xlsx.py     xlsx
    hf.py         hf (Hub id at a pinned revision, or a local folder in the Hub layout)

Text kinds (csv, tsv, jsonl, text) are decoded with the source's `encoding` (see codecs.py); a file
that cannot be read as configured raises `SourceFileError`, which names the file, line and byte and
says what to set.
"""

from __future__ import annotations

# the reader modules register their kinds when imported, in this order
from atlas_forge.sources import delimited, hf, lines, parquet, xlsx  # noqa: F401
from atlas_forge.sources.base import RawRow, SourceFileError
from atlas_forge.sources.codecs import Line, TextFile, check_encoding
from atlas_forge.sources.delimited import delimited_header, read_delimited
from atlas_forge.sources.files import check_header, expand_paths
from atlas_forge.sources.hf import COMMIT_SHA, is_local_folder, read_hf, resolve_revision
from atlas_forge.sources.lines import read_jsonl, read_text
from atlas_forge.sources.parquet import read_parquet
from atlas_forge.sources.registry import (
    DECODED,
    READERS,
    Reader,
    UnknownKindError,
    read_source,
    reader_for,
    register,
)
from atlas_forge.sources.xlsx import read_xlsx, xlsx_header

KINDS: tuple[str, ...] = tuple(READERS)  # every kind a source may declare
TEXT_KINDS: tuple[str, ...] = tuple(DECODED)  # the kinds that are decoded text and take `encoding:`

__all__ = [
    "COMMIT_SHA",
    "KINDS",
    "READERS",
    "TEXT_KINDS",
    "Line",
    "RawRow",
    "Reader",
    "SourceFileError",
    "TextFile",
    "UnknownKindError",
    "check_encoding",
    "check_header",
    "delimited_header",
    "expand_paths",
    "is_local_folder",
    "read_delimited",
    "read_hf",
    "read_jsonl",
    "read_parquet",
    "read_source",
    "read_text",
    "read_xlsx",
    "reader_for",
    "register",
    "resolve_revision",
    "xlsx_header",
]
