"""parquet: one record per table row, `line` its 1-based row number."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from atlas_forge.sources.base import RawRow, SourceFileError
from atlas_forge.sources.files import per_file
from atlas_forge.sources.registry import register


def read_parquet(path: str) -> Iterator[RawRow]:
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several types for a damaged file; all mean "unreadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise SourceFileError(f"{path}: not a readable Parquet file ({type(e).__name__}: {first})") from e
    for i, row in enumerate(df.iter_rows(named=True), 1):
        yield RawRow(path, i, row)


@register("parquet")
@per_file
def _read_parquet_file(cfg: Any, path: str) -> Iterator[RawRow]:
    yield from read_parquet(path)
