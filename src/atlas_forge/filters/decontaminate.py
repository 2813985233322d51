"""Benchmark decontamination (our rule; the paper does not specify one).

A row is dropped when any of its message contents shares a word n-gram (decontaminate.ngram, default 8)
with a benchmark item text: every message content of the bench rows, plus their meta.texts values
(all languages of a translation item) and meta.choices (mcq). A text shorter than n words, on either
side, is matched whole, as a run of consecutive words anywhere in the other side's text, when it has at
least min_words words (shorter ones are labels and one-word choices, shared by design).
Words are taken from normalize_arabic text, casefolded. Besides, a message whose whole
normalized, casefolded content equals a bench text (user turn, meta text or choice) is dropped
whatever its length (a one-word answer that is itself a benchmark item must not be trained on).

Speed: the benchmark index is built once per pipeline (`atlas-forge filter-index`, a .npz that
every per-source filter job loads in milliseconds) instead of once per job, and matching is
vectorized: words become ids in the bench vocabulary (a word no bench text has can match nothing),
every k-gram of ids a 64-bit hash, and membership a sorted-array search. Distinct grams collide with
probability about 2^-64 per pair, so on real data the matches equal those of the plain set-based
version below (`contaminated`), which tests/test_filters.py checks on random text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from atlas_forge import records
from atlas_forge.filters.base import FilterConfig, all_contents, split
from atlas_forge.phase import PATH, PATHS, Phase

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


# --- reference: plain Python sets, one process at a time (tests compare the index below with it) ---

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


# --- the index the filter jobs share ------------------------------------------------------------

FORMAT = 1
# one odd 64-bit multiplier per position in a gram: hash(ids) = sum(ids[j] * MULT[j]) mod 2^64
MAX_NGRAM = 64
MULT = np.random.default_rng(20240926).integers(1, 2**63, size=MAX_NGRAM, dtype=np.uint64) * 2 + 1


@dataclass(frozen=True)
class BenchIndex:
    n: int
    min_words: int
    vocab: dict[str, int]  # bench word -> id >= 1; 0 stands for every other word
    grams: dict[int, np.ndarray]  # k -> sorted distinct hashes of every bench k-gram, min_words <= k <= n
    short: dict[int, np.ndarray]  # k -> sorted hashes of whole bench texts of k words, min_words <= k < n
    exact: frozenset[str]  # normalized, casefolded texts matched whole at any length


def _flatten(word_lists: list[list[str]], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(ids of every word, one text after another; start of each text in that array)."""
    lengths = np.fromiter(map(len, word_lists), dtype=np.int64, count=len(word_lists))
    starts = np.zeros(len(word_lists), dtype=np.int64)
    if len(word_lists):
        np.cumsum(lengths[:-1], out=starts[1:])
    get = vocab.get
    ids = np.fromiter((get(w, 0) for ws in word_lists for w in ws), dtype=np.uint64, count=int(lengths.sum()))
    return ids, starts


def _window_hashes(ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash of the k ids starting at each position p <= len - k, whether all k words are known)."""
    m = ids.size - k + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=bool)
    h = np.zeros(m, dtype=np.uint64)
    unknown = np.zeros(m, dtype=np.int64)
    zero = ids == 0
    for j in range(k):
        h += ids[j:j + m] * MULT[j]  # wraps mod 2^64, as intended
        unknown += zero[j:j + m]
    return h, unknown == 0


def _in_sorted(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    if not table.size or not values.size:
        return np.zeros(values.size, dtype=bool)
    pos = np.minimum(np.searchsorted(table, values), table.size - 1)
    return table[pos] == values


def _valid_positions(lengths: np.ndarray, starts: np.ndarray, k: int, total: int) -> np.ndarray:
    """Mask over window positions 0..total-k: the window lies inside one text."""
    m = total - k + 1
    if m <= 0:
        return np.empty(0, dtype=bool)
    end = np.repeat(starts + lengths, lengths)[:m]  # end of the text each position starts in
    return np.arange(m) + k <= end


def build_index(bench: pl.DataFrame, n: int, min_words: int) -> BenchIndex:
    min_words = min(min_words, n)
    texts = list(dict.fromkeys(bench_texts(bench)))
    word_lists = [words(t) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted({w for ws in word_lists for w in ws}), start=1)}
    ids, starts = _flatten(word_lists, vocab)
    lengths = np.fromiter(map(len, word_lists), dtype=np.int64, count=len(word_lists))
    grams, short = {}, {}
    for k in range(min_words, n + 1):
        h, _ = _window_hashes(ids, k)
        grams[k] = np.unique(h[_valid_positions(lengths, starts, k, ids.size)])
        if k < n:
            whole = starts[lengths == k]
            short[k] = np.unique(h[whole]) if whole.size else np.empty(0, dtype=np.uint64)
    exact = frozenset({_norm_casefold(t) for t in exact_texts(bench, min_words)} - {""})
    return BenchIndex(n, min_words, vocab, grams, short, exact)


def _lines(items) -> np.ndarray:
    # words and normalized texts hold no newline (normalize_arabic collapses whitespace)
    return np.frombuffer("\n".join(items).encode(), dtype=np.uint8)


def save_index(index: BenchIndex, path: str) -> None:
    from atlas_forge import io

    arrays = {f"grams_{k}": v for k, v in index.grams.items()}
    arrays |= {f"short_{k}": v for k, v in index.short.items()}
    meta = {"format": FORMAT, "n": index.n, "min_words": index.min_words}
    with io.atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                 vocab=_lines(sorted(index.vocab, key=index.vocab.__getitem__)),
                 exact=_lines(sorted(index.exact)), **arrays)


def load_index(path: str) -> BenchIndex:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: decontamination index format {meta.get('format')}, expected {FORMAT}; "
                             "rebuild it (snakemake removes it when the code changes)")
        vocab_s, exact_s = z["vocab"].tobytes().decode(), z["exact"].tobytes().decode()
        grams = {int(k[6:]): z[k] for k in z.files if k.startswith("grams_")}
        short = {int(k[6:]): z[k] for k in z.files if k.startswith("short_")}
    vocab = {w: i for i, w in enumerate(vocab_s.split("\n"), start=1)} if vocab_s else {}
    exact = frozenset(exact_s.split("\n")) if exact_s else frozenset()
    return BenchIndex(meta["n"], meta["min_words"], vocab, grams, short, exact)


def first_matches(word_lists: list[list[str]], index: BenchIndex) -> list[tuple[str, ...] | None]:
    """For each word list, what `contaminated` returns for it: the first shared gram, or None."""
    n, mw = index.n, index.min_words
    ids, starts = _flatten(word_lists, index.vocab)
    lengths = np.fromiter(map(len, word_lists), dtype=np.int64, count=len(word_lists))
    text_of = np.repeat(np.arange(len(word_lists)), lengths)
    # candidates as (text, rank, position, k); the smallest (rank, position) per text wins, as in
    # _contaminated_words: the whole text (rank 0), then n-grams (1), then short bench texts by length
    found: list[tuple[np.ndarray, int, np.ndarray, int]] = []
    for k in range(mw, n + 1):
        if not ids.size:
            break
        h, known = _window_hashes(ids, k)
        if k < n:  # a whole text of k words inside a bench text
            whole = starts[(lengths == k)]
            hit = whole[known[whole] & _in_sorted(h[whole], index.grams.get(k, np.empty(0, np.uint64)))]
            if hit.size:
                found.append((text_of[hit], 0, np.zeros(hit.size, dtype=np.int64), k))
        table = index.grams.get(n) if k == n else index.short.get(k)
        if table is None or not table.size:
            continue
        ok = known & _valid_positions(lengths, starts, k, ids.size)
        pos = np.flatnonzero(ok)
        pos = pos[_in_sorted(h[pos], table)]
        if pos.size:
            found.append((text_of[pos], 1 if k == n else 2 + k, pos - starts[text_of[pos]], k))
    out: list[tuple[str, ...] | None] = [None] * len(word_lists)
    if not found:
        return out
    t = np.concatenate([f[0] for f in found])
    rank = np.concatenate([np.full(f[0].size, f[1]) for f in found])
    pos = np.concatenate([f[2] for f in found])
    klen = np.concatenate([np.full(f[0].size, f[3]) for f in found])
    order = np.lexsort((pos, rank, t))
    t, pos, klen = t[order], pos[order], klen[order]
    first = np.concatenate(([True], t[1:] != t[:-1]))
    for ti, p, k in zip(t[first].tolist(), pos[first].tolist(), klen[first].tolist(), strict=True):
        out[ti] = tuple(word_lists[ti][p:p + k])
    return out


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    n, min_words = cfg.decontaminate.ngram, min(cfg.decontaminate.min_words, cfg.decontaminate.ngram)
    index = ctx.cache.get("decontamination_index")
    if index is None:
        index = ctx.cache["decontamination_index"] = build_index(ctx.bench, n, min_words)
    elif (index.n, index.min_words) != (n, min_words):
        raise ValueError(f"decontamination index built for ngram={index.n}, min_words={index.min_words}; "
                         f"params ask for ngram={n}, min_words={min_words}")
    from atlas_forge.filters.exact_dedup import cached_row_texts

    # each row's normalized message contents, "\x1f"-joined (normalized text has no \x1f: str.split()
    # counts it as whitespace), as exact_dedup left them: normalize_arabic runs once per filter job
    row_of, norms = [], []
    for i, joined in enumerate(cached_row_texts(df, ctx)):
        parts = joined.casefold().split("\x1f")
        row_of.extend([i] * len(parts))
        norms.extend(parts)
    word_lists = [_WORD.findall(x) if len(x) else [] for x in norms]
    hits = first_matches(word_lists, index)
    bad, originals = {}, None
    for j, (i, norm, hit) in enumerate(zip(row_of, norms, hits, strict=True)):
        if i in bad or not (hit or norm in index.exact):
            continue  # a row's first offending message gives the reason
        if originals is None:
            originals = [t for c in all_contents(df, ctx) for t in (c or [""])]
        text = originals[j]
        if norm in index.exact:
            bad[i] = f"decontaminate: equals a benchmark item ({text[:80]})"
        else:
            bad[i] = f"decontaminate: shares text with a benchmark item ({' '.join(hit)[:80]})"
    _exact_lines(df, ctx, row_of, index, bad)
    return split(df, bad)


def _exact_lines(df: pl.DataFrame, ctx, row_of: list[int], index: BenchIndex, bad: dict[int, str]) -> None:
    """A line of a message whose words equal a benchmark text's words, alone or after a "label: "
    prefix (punctuation aside: "راإع." is the benchmark item "رااع").

    Instruct puts an item's text on a line of its own inside a template ("...:\n{text}"; few-shot
    answers after "الجواب: "), so a benchmark text shorter than min_words (a DODa word or two, shared
    by another source whose split keys on another script) is no whole message there; without this,
    such rows reached training (measured on the corpora: 144 item texts of doda_ongoing's,
    doda_sentences' and nllb_seed's benchmark sets in the instructions of the others)."""
    if not index.exact:
        return
    from atlas_forge.textnorm import normalize_arabic

    exact = {" ".join(_WORD.findall(t)) for t in index.exact} - {""}
    originals = [t for c in all_contents(df, ctx) for t in (c or [""])]
    for i, text in zip(row_of, originals, strict=True):
        if i in bad:
            continue
        for line in text.split("\n"):
            norm = normalize_arabic(line).casefold()
            _, sep, after = norm.partition(": ")
            keys = [" ".join(_WORD.findall(norm))] + ([" ".join(_WORD.findall(after))] if sep else [])
            if any(k and k in exact for k in keys):
                bad[i] = f"decontaminate: a line equals a benchmark item ({line.strip()[:80]})"
                break


CONTRACT = Phase(
    name="filter-index",
    module=__name__,
    help="index the benchmark sets once for every filter job's decontamination step",
    config=FilterConfig,
    section="filter",
    # only what the index depends on: a changed length bound must not rebuild it
    keys=("decontaminate",),
    view=lambda params: {"steps": ["decontaminate"],
                         "decontaminate": params["filter"].get("decontaminate", {})},
    stage="filter",
    args=(("--bench", {"help": "benchmark sets (canonical tables)", **PATHS}),
          ("--out", {"required": True, "help": "the index (.npz)", **PATH})),
)


def run_cli(args, job) -> None:
    """`atlas-forge filter-index`: build the benchmark index every filter job loads."""
    import logging

    from atlas_forge import io

    cfg = job.config
    n, min_words = cfg.decontaminate.ngram, min(cfg.decontaminate.min_words, cfg.decontaminate.ngram)
    index = build_index(io.read_tables(args.bench, "filter"), n, min_words)
    save_index(index, args.out)
    logging.getLogger(__name__).info(
        "decontamination index: %d bench words, %s grams by length, %d exact texts -> %s", len(index.vocab),
        {k: int(v.size) for k, v in index.grams.items()}, len(index.exact), Path(args.out))
