"""The reader registry: one reader per source `kind`.

A reader takes the source's config (an `ingest.SourceConfig`: its `id`, `kind` and the keys of that
kind) and yields every record it finds, good or bad, as a `RawRow`. Reader modules declare their kinds
with `@register(kind)`; `read_source(cfg)` picks the reader by `cfg.kind`. The registered kinds are the
`kind` enum of rules/schemas/params.schema.yaml and of `ingest.SourceConfig` (a test checks both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from atlas_forge.sources.base import RawRow

# cfg -> rows; cfg is an ingest.SourceConfig (not imported here: ingest imports this package)
Reader = Callable[[Any], Iterator[RawRow]]

READERS: dict[str, Reader] = {}
# kinds read as text through sources.codecs, so they take an `encoding:`
DECODED: list[str] = []


class UnknownKindError(ValueError):
    """A source whose `kind` no reader is registered for."""


def register(kind: str, *, text: bool = False) -> Callable[[Reader], Reader]:
    """Class `reader` as the one for `kind`; text=True: the kind is decoded text and takes `encoding:`."""

    def add(reader: Reader) -> Reader:
        if kind in READERS:
            raise ValueError(f"source kind {kind!r} has two readers: {READERS[kind]} and {reader}")
        READERS[kind] = reader
        if text:
            DECODED.append(kind)
        return reader

    return add


def reader_for(cfg: Any) -> Reader:
    """The reader of cfg's kind, or UnknownKindError naming the source and the known kinds."""
    try:
        return READERS[cfg.kind]
    except KeyError:
        raise UnknownKindError(
            f"source '{cfg.id}': field 'kind' {cfg.kind!r} is not a known source kind "
            f"(known: {', '.join(READERS)})"
        ) from None


def read_source(cfg: Any) -> Iterator[RawRow]:
    """Every record of the source cfg describes, read by its kind's reader. The kind is looked up at
    once (an unknown one raises here); the files are opened as the rows are consumed."""
    return reader_for(cfg)(cfg)
