"""Translation and transliteration rows whose answer length is implausible for their source.

The source text is meta.source_text or meta.texts[<direction source>] when the row carries it; then
len(answer)/len(source) must lie in [1/max, max]. Without it only the preceding user turn is known,
which also holds the instruction template, so only the upper bound is checked (an answer far longer
than its whole prompt is a runaway generation).
"""

from __future__ import annotations

import polars as pl

from atlas_forge import records
from atlas_forge.filters.base import split

TASKS = ("translation", "transliteration")


def _source_text(meta: dict) -> str | None:
    if isinstance(meta.get("source_text"), str):
        return meta["source_text"]
    direction, texts = meta.get("direction"), meta.get("texts")
    if isinstance(direction, str) and "->" in direction and isinstance(texts, dict):
        text = texts.get(direction.split("->", 1)[0].strip())
        return text if isinstance(text, str) else None
    return None


def _prev_user(msgs: list[dict], j: int) -> str:
    return next((msgs[k]["content"] or "" for k in range(j - 1, -1, -1) if msgs[k]["role"] == "user"), "")


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    hi = cfg.max_length_ratio
    bad = {}
    cols = (df[c].to_list() for c in ("task", "messages", "meta"))
    for i, (task, msgs, meta) in enumerate(zip(*cols, strict=True)):
        if task not in TASKS:
            continue
        msgs = msgs or []
        # only a meta naming source_text or texts can carry the source: skip parsing the others
        has_source = meta and ('"source_text"' in meta or '"texts"' in meta)
        known = _source_text(records.load_meta(meta)) if has_source else None
        answers = [(j, m["content"] or "") for j, m in enumerate(msgs) if m["role"] == "assistant"]
        if known is not None and len(answers) == 1:
            pairs, both_bounds = [(known, answers[0][1])], True
        else:
            pairs, both_bounds = [(_prev_user(msgs, j), a) for j, a in answers], False
        for src, answer in pairs:
            ratio = len(answer.strip()) / max(len(src.strip()), 1)
            if ratio > hi or (both_bounds and ratio < 1 / hi):
                bad[i] = f"length_ratio: answer/source outside [1/{hi:g}, {hi:g}] ({ratio:.2f})"
                break
    return split(df, bad)
