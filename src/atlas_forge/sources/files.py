"""What the file kinds share: the files a `path` names, the check of a header against the columns a
source maps, and the loop over files that refuses a source with no records at all."""

from __future__ import annotations

import glob
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from atlas_forge.sources.base import RawRow, SourceFileError
from atlas_forge.sources.registry import Reader


def expand_paths(source_id: str, pattern: str) -> list[str]:
    """Files a `path` names, in a stable order; a glob may match several."""
    if not pattern:
        raise ValueError(f"source '{source_id}': field 'path' is empty")
    files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise ValueError(f"source '{source_id}': field 'path' {pattern!r} matches no file")
    return files


def per_file(read_file: Callable[[Any, str], Iterator[RawRow]]) -> Reader:
    """A reader for a file kind: read_file(cfg, path) for each file `path` names, in order."""

    def read(cfg: Any) -> Iterator[RawRow]:
        files = expand_paths(cfg.id, cfg.path)
        n = 0
        for path in files:
            for row in read_file(cfg, path):
                n += 1
                yield row
        if n == 0:
            # An empty export is a broken export: fail here rather than hand later phases nothing.
            raise SourceFileError(
                f"source '{cfg.id}': no records in {', '.join(files)} (empty, blank or header-only files)"
            )

    read.__name__ = read.__qualname__ = f"per_file({read_file.__name__})"
    return read


def _visible(name: str) -> str:
    """A header name without the characters a reader cannot see (BOM, zero-width, controls, spaces)."""
    return "".join(c for c in name if unicodedata.category(c) not in ("Cf", "Cc", "Zs", "Zl", "Zp"))


def check_header(cfg: Any, path: str, header: list[str]) -> None:
    """Every column the source maps (or filters on) must be in the header exactly once; say why when
    it is not."""
    wanted = [c for c in [*cfg.columns.values(), *(cfg.filter or {})] if isinstance(c, str)]
    for col in wanted:
        at = [i + 1 for i, h in enumerate(header) if h == col]
        if len(at) > 1:
            raise ValueError(
                f"source '{cfg.id}': field 'columns' names column {col!r}, which appears {len(at)} times "
                f"in the header of {path} (columns {', '.join(map(str, at))}); rename one of them"
            )
        if at:
            continue
        # repr() shows what the header really holds: a stray BOM or zero-width space in a name
        # would otherwise print as the very column the message says is missing.
        shown = ", ".join(repr(h) for h in header)
        near = [(i + 1, h) for i, h in enumerate(header) if _visible(h) == _visible(col) and h != col]
        if near:
            i, h = near[0]
            odd = ", ".join(f"U+{ord(c):04X}" for c in h if c not in col) or "spacing"
            raise ValueError(
                f"source '{cfg.id}': field 'columns' names column {col!r}; the header of {path} "
                f"has {h!r} (line 1, column {i}), which differs by invisible characters ({odd}). "
                f"Header: {shown}"
            )
        raise ValueError(
            f"source '{cfg.id}': field 'columns' names column {col!r}, not in the header of {path} "
            f"({shown})"
        )
