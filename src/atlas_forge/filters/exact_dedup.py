"""Exact duplicates after normalize_arabic over all message contents; the smallest id is kept, so the
choice does not depend on input order."""

from __future__ import annotations

import polars as pl

from atlas_forge.filters import contents, split


def row_text(row: dict) -> str:
    from atlas_forge.textnorm import normalize_arabic

    # \x1f keeps ["a b", "c"] and ["a", "b c"] apart
    return "\x1f".join(normalize_arabic(t) for t in contents(row))


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = list(df.iter_rows(named=True))
    first: dict[str, str] = {}
    bad = {}
    for i in sorted(range(len(rows)), key=lambda i: rows[i]["id"]):
        key = row_text(rows[i])
        if key in first:
            bad[i] = f"exact_dedup: duplicate (of {first[key]})"
        else:
            first[key] = rows[i]["id"]
    return split(df, bad)
