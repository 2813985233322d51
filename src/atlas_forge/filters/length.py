"""Every message content must have min_chars..max_chars characters (after stripping)."""

from __future__ import annotations

import polars as pl

from atlas_forge.filters import all_contents, split


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    bad = {}
    for i, texts in enumerate(all_contents(df, ctx)):
        lengths = [len(t.strip()) for t in texts]
        if not lengths:
            continue
        if min(lengths) < cfg.min_chars:
            bad[i] = f"length: message shorter than {cfg.min_chars} chars ({min(lengths)})"
        elif max(lengths) > cfg.max_chars:
            bad[i] = f"length: message longer than {cfg.max_chars} chars ({max(lengths)})"
    return split(df, bad)
