"""Drop rows with no messages or any message whose content is empty or only whitespace."""

from __future__ import annotations

import polars as pl

from atlas_forge.filters.base import all_contents, split


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    bad = {}
    for i, texts in enumerate(all_contents(df, ctx)):
        if not texts:
            bad[i] = "empty: no messages"
        elif any(not t.strip() for t in texts):
            bad[i] = "empty: empty message"
    return split(df, bad)
