"""Benchmark decontamination (our rule; the paper does not specify one).

A row is dropped when any of its message contents shares a word n-gram (decontaminate.ngram, default 8)
with a benchmark item text: every message content of the bench rows, plus their meta.texts values
(all languages of a translation item) and meta.choices (mcq). A text shorter than n words, on either
side, is matched whole, as a run of consecutive words anywhere in the other side's text, when it has at
least min_words words (shorter ones are labels and one-word choices, shared by design).
Words are taken from normalize_arabic text, casefolded. Besides, a message whose whole
normalized, casefolded content equals a bench text (user turn, meta text or choice) is dropped
whatever its length (a one-word answer that is itself a benchmark item must not be trained on).
"""

from __future__ import annotations

import re

import polars as pl

from atlas_forge import records
from atlas_forge.filters import all_contents, split

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    from atlas_forge.textnorm import normalize_arabic

    return _WORD.findall(normalize_arabic(text).casefold())


def _norm_casefold(text: str) -> str:
    from atlas_forge.textnorm import normalize_arabic

    return normalize_arabic(text).casefold()


def _meta_texts(meta_s: str | None) -> list[str]:
    """A bench item's texts kept in meta: parallel translations and answer choices."""
    meta = records.load_meta(meta_s)
    out: list[str] = []
    texts = meta.get("texts")
    if isinstance(texts, dict):
        out.extend(v for v in texts.values() if isinstance(v, str))
    choices = meta.get("choices")
    if isinstance(choices, dict):
        choices = list(choices.values())
    if isinstance(choices, list):
        out.extend(c for c in choices if isinstance(c, str))
    return out


def exact_texts(bench: pl.DataFrame, min_words: int) -> list[str]:
    """Bench texts matched whole at any length: user turns, meta texts and choices; assistant turns
    only from min_words words up (shorter ones are labels, shared by design)."""
    out = []
    for msgs, meta_s in zip(bench["messages"].to_list(), bench["meta"].to_list(), strict=True):
        for m in msgs or []:
            text = m["content"] or ""
            if m["role"] == "user" or len(words(text)) >= min_words:
                out.append(text)
        out.extend(_meta_texts(meta_s))
    return out


def bench_texts(bench: pl.DataFrame) -> list[str]:
    out = []
    for msgs, meta_s in zip(bench["messages"].to_list(), bench["meta"].to_list(), strict=True):
        out.extend(m["content"] or "" for m in msgs or [])
        out.extend(_meta_texts(meta_s))
    return out


def _grams(w: list[str], k: int):
    # zip over k shifted views: every k-gram as a tuple, built in C
    return zip(*(w[i:] for i in range(k)))  # noqa: B905 (shorter views end it)


def bench_index(bench: pl.DataFrame, n: int, min_words: int) -> tuple[dict[int, set], dict[int, set]]:
    """({k: every k-gram of the bench texts} for k in min_words..n, {k: whole bench texts of k < n words})."""
    grams: dict[int, set[tuple[str, ...]]] = {k: set() for k in range(min_words, n + 1)}
    short: dict[int, set[tuple[str, ...]]] = {}
    for text in dict.fromkeys(bench_texts(bench)):  # distinct texts: repeats add nothing
        w = words(text)
        for k in grams:
            grams[k].update(_grams(w, k))
        if min_words <= len(w) < n:
            short.setdefault(len(w), set()).add(tuple(w))
    return grams, short


def contaminated(text: str, index: tuple[dict, dict], n: int, min_words: int) -> tuple[str, ...] | None:
    """The first shared n-gram (or whole short bench text) of `text`, in the order: n-grams by position,
    then short bench texts by length and position; None when clean.

    Every match is at least min_words long, so it starts with a bench min_words-gram: only those
    positions are checked (a set lookup per word rejects almost every row at once).
    """
    return _contaminated_words(words(text), index, n, min_words)


def _contaminated_words(w: list[str], index: tuple[dict, dict], n: int, min_words: int):
    grams, short = index
    if len(w) < min_words:
        return None
    if len(w) < n and tuple(w) in grams[len(w)]:
        return tuple(w)
    anchors = grams[min_words]
    starts = [i for i, g in enumerate(_grams(w, min_words)) if g in anchors]
    if not starts:
        return None
    candidates = [(n, grams[n])] + [(k, s) for k, s in sorted(short.items()) if k <= len(w)]
    for k, s in candidates:
        for i in starts:
            if i + k <= len(w):
                g = tuple(w[i:i + k])
                if g in s:
                    return g
    return None


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    n, min_words = cfg.decontaminate.ngram, min(cfg.decontaminate.min_words, cfg.decontaminate.ngram)
    key = ("bench_index", n, min_words)
    if key not in ctx.cache:
        ctx.cache[key] = bench_index(ctx.bench, n, min_words)
    index = ctx.cache[key]
    if "bench_exact" not in ctx.cache:

        ctx.cache["bench_exact"] = {_norm_casefold(t) for t in exact_texts(ctx.bench, min_words)} - {""}
    exact = ctx.cache["bench_exact"]
    bad = {}
    for i, texts in enumerate(all_contents(df)):
        for text in texts:
            norm = _norm_casefold(text)  # once per text: both checks read it
            if exact and norm in exact:
                bad[i] = f"decontaminate: equals a benchmark item ({text[:80]})"
                break
            hit = _contaminated_words(_WORD.findall(norm), index, n, min_words)
            if hit:
                bad[i] = f"decontaminate: shares text with a benchmark item ({' '.join(hit)[:80]})"
                break
    return split(df, bad)
