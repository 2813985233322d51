"""Every message content must have min_chars..max_chars characters (after stripping).

A plain-format row (meta.format "plain": a benchmark's lettered answer, instruct.benchmark_format) has
a one-letter answer by construction; its answer is exempt from min_chars, its prompt is not.
"""

from __future__ import annotations

import polars as pl

from atlas_forge.filters.base import all_contents, split


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    bad = {}
    plain = df["meta"].fill_null("").str.contains(r'"format":\s*"plain"').to_list()
    for i, texts in enumerate(all_contents(df, ctx)):
        lengths = [len(t.strip()) for t in texts]
        if plain[i] and len(texts) == 2:
            shortest = lengths[0]  # the prompt; the answer is a letter
            if shortest < cfg.min_chars:
                bad[i] = f"length: message shorter than {cfg.min_chars} chars ({shortest})"
            elif max(lengths) > cfg.max_chars:
                bad[i] = f"length: message longer than {cfg.max_chars} chars ({max(lengths)})"
            continue
        if not lengths:
            continue
        if min(lengths) < cfg.min_chars:
            bad[i] = f"length: message shorter than {cfg.min_chars} chars ({min(lengths)})"
        elif max(lengths) > cfg.max_chars:
            bad[i] = f"length: message longer than {cfg.max_chars} chars ({max(lengths)})"
    return split(df, bad)
