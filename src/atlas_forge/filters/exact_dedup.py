"""Exact duplicates after normalize_arabic over all message contents; the smallest id is kept, so the
choice does not depend on input order."""

from __future__ import annotations

import polars as pl

from atlas_forge.filters.base import all_contents, contents, split


def row_text(row: dict) -> str:
    from atlas_forge.textnorm import normalize_arabic

    # \x1f keeps ["a b", "c"] and ["a", "b c"] apart
    return "\x1f".join(normalize_arabic(t) for t in contents(row))


def row_texts(df: pl.DataFrame, ctx=None) -> list[str]:
    """row_text of every row, without materializing row dicts."""
    from atlas_forge.textnorm import normalize_arabic

    return ["\x1f".join(normalize_arabic(t) for t in c) for c in all_contents(df, ctx)]


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = df["id"].to_list()
    texts = row_texts(df, ctx)
    first: dict[str, str] = {}
    bad = {}
    for i in sorted(range(len(ids)), key=ids.__getitem__):
        key = texts[i]
        if key in first:
            bad[i] = f"exact_dedup: duplicate (of {first[key]})"
        else:
            first[key] = ids[i]
    kept, rejected = split(df, bad)
    # near_dedup and decontaminate read the same normalized texts: hand them over
    keep_row_texts(ctx, ids, texts, bad)
    return kept, rejected


def cached_row_texts(df: pl.DataFrame, ctx) -> list[str]:
    """row_texts(df), from what exact_dedup (or a later step) left when df is exactly its output."""
    if ctx is None:
        return row_texts(df)
    return ctx.per_row("row_texts", df, lambda d: row_texts(d, ctx))


def keep_row_texts(ctx, ids: list[str], texts: list[str], bad: dict[int, str]) -> None:
    """Leave the row texts of the rows a step keeps for the next step (near_dedup, decontaminate)."""
    if ctx is not None:
        ctx.keep_rows("row_texts", ids, texts, bad)
