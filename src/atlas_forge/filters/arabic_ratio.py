"""Share of Arabic-script letters among all letters in the assistant turns of Arabic-script targets.

Applies only where the answer should be in Arabic script: the target of meta.direction when present
(a translation into English or Latin-script Darija is legitimately non-Arabic), else the row's lang.
"""

from __future__ import annotations

import polars as pl

from atlas_forge.filters.base import split
from atlas_forge.language import arabic_ratio, target_lang, target_of  # noqa: F401 (the step's API)


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    bad = {}
    cols = (df[c].to_list() for c in ("messages", "meta", "lang"))
    for i, (msgs, meta, lang) in enumerate(zip(*cols, strict=True)):
        if not target_of(meta, lang).endswith("_Arab"):
            continue
        for text in (m["content"] or "" for m in msgs or [] if m["role"] == "assistant"):
            ratio, n_letters = arabic_ratio(text)
            if n_letters >= cfg.arabic_ratio_min_letters and ratio < cfg.min_arabic_ratio:
                bad[i] = f"arabic_ratio: below {cfg.min_arabic_ratio} ({ratio:.2f})"
                break
    return split(df, bad)
