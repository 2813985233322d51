"""Benchmark decontamination (our rule; the paper does not specify one).

A row is dropped when any of its message contents shares a word n-gram (decontaminate.ngram, default 8)
with a benchmark item text: every message content of the bench rows, plus their meta.texts values
(all languages of a translation item) and meta.choices (mcq). A text shorter than n words, on either
side, is matched whole, as a run of consecutive words anywhere in the other side's text, when it has at
least min_words words (shorter ones are labels and one-word choices, shared by design).
Words are taken from normalize_arabic text, casefolded.
"""

from __future__ import annotations

import re

import polars as pl

from atlas_forge import records
from atlas_forge.filters import contents, split

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    from atlas_forge.textnorm import normalize_arabic

    return _WORD.findall(normalize_arabic(text).casefold())


def bench_texts(bench: pl.DataFrame) -> list[str]:
    out = []
    for row in bench.iter_rows(named=True):
        out.extend(contents(row))
        meta = records.load_meta(row["meta"])
        texts = meta.get("texts")
        if isinstance(texts, dict):
            out.extend(v for v in texts.values() if isinstance(v, str))
        choices = meta.get("choices")
        if isinstance(choices, list):
            out.extend(c for c in choices if isinstance(c, str))
        elif isinstance(choices, dict):
            out.extend(c for c in choices.values() if isinstance(c, str))
    return out


def _grams(w: list[str], k: int):
    return (tuple(w[i:i + k]) for i in range(len(w) - k + 1))


def bench_index(bench: pl.DataFrame, n: int, min_words: int) -> tuple[dict[int, set], dict[int, set]]:
    """({k: every k-gram of the bench texts} for k in min_words..n, {k: whole bench texts of k < n words})."""
    grams: dict[int, set[tuple[str, ...]]] = {k: set() for k in range(min_words, n + 1)}
    short: dict[int, set[tuple[str, ...]]] = {}
    for text in bench_texts(bench):
        w = words(text)
        for k in grams:
            grams[k].update(_grams(w, k))
        if min_words <= len(w) < n:
            short.setdefault(len(w), set()).add(tuple(w))
    return grams, short


def contaminated(text: str, index: tuple[dict, dict], n: int, min_words: int) -> tuple[str, ...] | None:
    grams, short = index
    w = words(text)
    if len(w) < min_words:
        return None
    if len(w) < n and tuple(w) in grams[len(w)]:
        return tuple(w)
    candidates = [(n, grams[n])] + [(k, s) for k, s in sorted(short.items()) if k <= len(w)]
    return next((g for k, s in candidates for g in _grams(w, k) if g in s), None)


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    n, min_words = cfg.decontaminate.ngram, min(cfg.decontaminate.min_words, cfg.decontaminate.ngram)
    key = ("bench_index", n, min_words)
    if key not in ctx.cache:
        ctx.cache[key] = bench_index(ctx.bench, n, min_words)
    index = ctx.cache[key]
    bad = {}
    for i, row in enumerate(df.iter_rows(named=True)):
        for text in contents(row):
            hit = contaminated(text, index, n, min_words)
            if hit:
                bad[i] = f"decontaminate: shares text with a benchmark item ({' '.join(hit)[:80]})"
                break
    return split(df, bad)
