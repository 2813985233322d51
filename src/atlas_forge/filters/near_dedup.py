"""Near duplicates: MinHash LSH over character shingles of the normalized row text.

Rows are visited in id order; a row is dropped when its estimated Jaccard similarity to an already
kept row reaches the threshold (LSH proposes candidates, the MinHash estimate confirms), so the first
of each cluster survives and the result does not depend on input order.

The signatures are datasketch's, bit for bit (same sha1_hash32 shingle hash, same seeded permutations
and scheme, taken from a datasketch `MinHash`), and the banding is datasketch `MinHashLSH`'s (its b, r
for the threshold and num_perm), so the result equals a per-row `MinHash`/`MinHashLSH` loop. What
differs is the cost: each distinct shingle is hashed once for the whole table, and the permutations
and min-reduction run vectorized over many rows at a time (numpy), instead of one `MinHash` object,
one permutation table and one hash per shingle per row (bench/data_phases.py measures both).
"""

from __future__ import annotations

import hashlib
from functools import cache, lru_cache

import numpy as np
import polars as pl

from atlas_forge.filters import split
from atlas_forge.filters.exact_dedup import row_texts

# flat shingle entries per vectorized block: bounds the (entries x num_perm) temporary
_BLOCK = 1 << 17


def shingles(text: str, n: int) -> set[str]:
    text = " ".join(text.split())
    if len(text) <= n:
        return {text}
    return {text[i:i + n] for i in range(len(text) - n + 1)}


# datasketch >= 2.0 "affine32" MinHash: sha1_hash32 of the shingle, premixed by the MurmurHash3 32-bit
# finalizer, then h -> a_k * h + b_k mod 2^32 with a_k odd; the parameters come from RandomState(seed).
# Reimplemented (not imported) because importing datasketch pulls scipy in, a second per filter job;
# tests/test_filters.py checks the values against datasketch itself.
_FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(hv: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = (np.uint32(c) for c in _FMIX32)
    hv = hv ^ (hv >> s1)
    hv = hv * m1
    hv = hv ^ (hv >> s2)
    hv = hv * m2
    return hv ^ (hv >> s3)


def _sha1_32(texts) -> np.ndarray:
    """datasketch.hashfunc.sha1_hash32 of each text's UTF-8 bytes."""
    sha1 = hashlib.sha1
    return np.fromiter(
        (int.from_bytes(sha1(t.encode()).digest()[:4], "little") for t in texts), dtype=np.uint32
    )


def _entry_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every shingle occurrence, row offsets into it): rows in order, each row's shingles
    contiguous. Shingles are found on code points with numpy and hashed once per distinct shingle."""
    from numpy.lib.stride_tricks import sliding_window_view

    texts = [" ".join(t.split()) for t in texts]
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    long_rows = lengths > n
    counts = np.where(long_rows, lengths - n + 1, 1)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    entries = np.empty(int(offsets[-1]), dtype=np.uint32)
    is_long = np.repeat(long_rows, counts)
    # a text no longer than n is one shingle: itself
    entries[~is_long] = _sha1_32(t for t, lg in zip(texts, long_rows.tolist(), strict=True) if not lg)
    if long_rows.any():
        long_texts = [t for t, lg in zip(texts, long_rows.tolist(), strict=True) if lg]
        cps = np.frombuffer("".join(long_texts).encode("utf-32-le"), dtype=np.uint32)
        long_lengths = lengths[long_rows]
        long_counts = long_lengths - n + 1
        cp_start = np.zeros(long_lengths.size, dtype=np.int64)
        np.cumsum(long_lengths[:-1], out=cp_start[1:])
        first_entry = np.zeros(long_counts.size, dtype=np.int64)
        np.cumsum(long_counts[:-1], out=first_entry[1:])
        total = int(long_counts.sum())
        starts = np.repeat(cp_start - first_entry, long_counts) + np.arange(total, dtype=np.int64)
        inverse, first = _factorize(sliding_window_view(cps, n), starts)
        distinct = (cps[i:i + n].tobytes().decode("utf-32-le") for i in first.tolist())
        entries[is_long] = _sha1_32(distinct)[inverse]
    return entries, offsets


def _factorize(windows: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct-shingle index of each start, code-point start of each distinct shingle).

    Code points fit 21 bits, so three pack losslessly into one uint64; the packed columns are folded
    into one dense code by repeated np.unique (a plain integer sort, much faster than np.unique on
    n*4-byte void keys or a lexsort)."""
    n = windows.shape[1]
    code = None
    for j in range(0, n, 3):
        col = np.zeros(starts.size, dtype=np.uint64)
        for c in range(j, min(j + 3, n)):
            col = (col << np.uint64(21)) | windows[starts, c].astype(np.uint64)
        _, inv = np.unique(col, return_inverse=True)
        inv = inv.ravel().astype(np.int64)
        if code is None:
            code = inv
        else:
            _, code = np.unique(code * (int(inv.max()) + 1) + inv, return_inverse=True)
            code = code.ravel().astype(np.int64)
    # codes are dense (np.unique inverses); any occurrence of a code stands for its shingle
    first = np.empty(int(code.max()) + 1 if code.size else 0, dtype=np.int64)
    first[code] = starts
    return code, first


def signatures(texts: list[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """(rows, num_perm) MinHash signatures, equal to datasketch MinHash(num_perm, seed).update_batch
    over each text's shingles."""
    a, b = permutations(num_perm, seed)
    entries, offsets = _entry_hashes(texts, ngram)
    hv = _fmix32(entries)
    sig = np.empty((num_perm, len(texts)), dtype=np.uint32)
    start = 0
    with np.errstate(over="ignore"):
        while start < len(texts):
            # rows [start, stop) with about _BLOCK shingles in all (at least one row)
            stop = int(np.searchsorted(offsets, offsets[start] + _BLOCK, side="right")) - 1
            stop = min(max(stop, start + 1), len(texts))
            lo, hi = offsets[start], offsets[stop]
            phv = a[:, None] * hv[None, lo:hi] + b[:, None]
            sig[:, start:stop] = np.minimum.reduceat(phv, offsets[start:stop] - lo, axis=1)
            start = stop
    return np.ascontiguousarray(sig.T)


@cache
def _nodes(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(m)


def _integral(f, lo: float, hi: float, degree: int) -> float:
    # Gauss-Legendre with enough nodes is exact for a polynomial integrand of this degree
    x, w = _nodes(degree // 2 + 2)
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    return float(half * np.sum(w * f(mid + half * x)))


@lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int) -> list[tuple[int, int]]:
    """The band ranges datasketch MinHashLSH(threshold, num_perm) uses (its _optimal_param with
    equal false positive/negative weights), without importing it."""
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _integral(lambda s, b=b, r=r: 1 - (1 - s**r) ** b, 0.0, threshold, b * r)
            fn = _integral(lambda s, b=b, r=r: (1 - s**r) ** b, threshold, 1.0, b * r)
            err = 0.5 * fp + 0.5 * fn
            if err < best:
                best, opt = err, (b, r)
    b, r = opt
    return [(i * r, (i + 1) * r) for i in range(b)]


def near_duplicates(ids: list[str], texts: list[str], nd) -> dict[int, str]:
    """{row index: id of the kept row it nearly duplicates}, visiting rows in id order."""
    if not ids:
        return {}
    sig = signatures(texts, nd.ngram, nd.num_perm, nd.seed)
    bands = lsh_bands(nd.threshold, nd.num_perm)
    band_cols = [np.ascontiguousarray(sig[:, s:e]) for s, e in bands]
    tables: list[dict[bytes, list[int]]] = [{} for _ in bands]
    kept_ids: set[str] = set()
    dup_of: dict[int, str] = {}
    num_perm = nd.num_perm
    for i in sorted(range(len(ids)), key=ids.__getitem__):
        keys = [col[i].tobytes() for col in band_cols]
        cands: set[int] = set()
        for table, key in zip(tables, keys, strict=True):
            got = table.get(key)
            if got:
                cands.update(got)
        if cands:
            row = sig[i]
            matches = sorted(
                ids[k] for k in cands if np.count_nonzero(sig[k] == row) / num_perm >= nd.threshold
            )
            if matches:
                dup_of[i] = matches[0]
                continue
        if ids[i] in kept_ids:  # same id twice: exact_dedup's business; keep the index keys unique
            dup_of[i] = ids[i]
            continue
        kept_ids.add(ids[i])
        for table, key in zip(tables, keys, strict=True):
            table.setdefault(key, []).append(i)
    return dup_of


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    dup_of = near_duplicates(df["id"].to_list(), row_texts(df), cfg.near_dedup)
    bad = {i: f"near_dedup: near duplicate (of {k})" for i, k in dup_of.items()}
    return split(df, bad)
