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
from collections import Counter
from functools import cache, lru_cache

import numpy as np
import polars as pl

from atlas_forge.filters.base import split
from atlas_forge.filters.exact_dedup import cached_row_texts, keep_row_texts

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


def _sha1_32_packed(buf: bytes, bounds: np.ndarray) -> np.ndarray:
    """sha1_hash32 of buf[bounds[i]:bounds[i + 1]] for each i: one encoded buffer, no str per shingle."""
    sha1, mv = hashlib.sha1, memoryview(buf)
    b = bounds.tolist()
    digests = b"".join([sha1(mv[lo:hi]).digest()[:4] for lo, hi in zip(b[:-1], b[1:])])  # noqa: B905
    return np.frombuffer(digests, dtype="<u4").astype(np.uint32)


class _Alphabet:
    """Dense codes 1..A for the code points of the table, so a shingle of n code points packs into one
    uint64 key (n * bits <= 64): distinct shingles are then found by a plain integer sort."""

    def __init__(self, texts: list[str], n: int):
        present = np.zeros(0x110000, dtype=bool)
        for lo, hi in _chunks([len(t) for t in texts]):
            present[np.frombuffer("".join(texts[lo:hi]).encode("utf-32-le"), dtype=np.uint32)] = True
        cps = np.flatnonzero(present).astype(np.uint32)
        self.bits = max(int(len(cps)).bit_length(), 1)
        self.packable = self.bits * n <= 64
        self.lut = np.zeros(0x110000, dtype=np.uint64)
        self.lut[cps] = np.arange(1, cps.size + 1, dtype=np.uint64)
        self.inv = np.concatenate([np.zeros(1, dtype=np.uint32), cps])
        self.n = n

    def keys(self, long_texts: list[str]) -> np.ndarray:
        """The packed key of every shingle occurrence of texts longer than n, rows in order."""
        n, bits = self.n, np.uint64(self.bits)
        if not long_texts:
            return np.empty(0, dtype=np.uint64)
        codes = self.lut[np.frombuffer("".join(long_texts).encode("utf-32-le"), dtype=np.uint32)]
        lengths = np.fromiter(map(len, long_texts), dtype=np.int64, count=len(long_texts))
        counts = lengths - n + 1
        cp_start = np.zeros(lengths.size, dtype=np.int64)
        np.cumsum(lengths[:-1], out=cp_start[1:])
        first = np.zeros(counts.size, dtype=np.int64)
        np.cumsum(counts[:-1], out=first[1:])
        starts = np.repeat(cp_start - first, counts) + np.arange(int(counts.sum()), dtype=np.int64)
        # pack every window of the concatenation with contiguous slices, then keep the in-row ones
        m = codes.size - n + 1
        key = codes[:m].copy()
        for j in range(1, n):
            key <<= bits
            key |= codes[j:j + m]
        return key[starts]

    def hashes(self, keys: np.ndarray) -> np.ndarray:
        """sha1_hash32 of the UTF-8 bytes of the shingle each key stands for."""
        n, mask = self.n, np.uint64((1 << self.bits) - 1)
        cols = np.empty((keys.size, n), dtype=np.uint32)
        for j in range(n):
            cols[:, j] = self.inv[((keys >> np.uint64(self.bits * (n - 1 - j))) & mask).astype(np.int64)]
        utf8_len = 1 + (cols >= 0x80).astype(np.int64) + (cols >= 0x800) + (cols >= 0x10000)
        bounds = np.zeros(keys.size + 1, dtype=np.int64)
        np.cumsum(utf8_len.sum(axis=1), out=bounds[1:])
        buf = cols.tobytes().decode("utf-32-le").encode()
        return _sha1_32_packed(buf, bounds)


# rows per chunk: every per-shingle array lives for one chunk only
_CHUNK_CHARS = 1 << 21


def _chunks(lengths: list[int]):
    start, total = 0, 0
    for i, ln in enumerate(lengths):
        total += ln + 1
        if total >= _CHUNK_CHARS:
            yield start, i + 1
            start, total = i + 1, 0
    if start < len(lengths):
        yield start, len(lengths)


def _signature_rows(hv: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray,
                    out: np.ndarray) -> None:
    """out[r] = min over the row's premixed shingle hashes of a * h + b (mod 2^32), per permutation."""
    rows = offsets.size - 1
    start = 0
    with np.errstate(over="ignore"):
        while start < rows:
            # rows [start, stop) with about _BLOCK shingles in all (at least one row)
            stop = int(np.searchsorted(offsets, offsets[start] + _BLOCK, side="right")) - 1
            stop = min(max(stop, start + 1), rows)
            lo, hi = offsets[start], offsets[stop]
            phv = np.multiply.outer(a, hv[lo:hi])  # (num_perm, shingles): reduceat along rows is fast
            phv += b[:, None]
            out[start:stop] = np.minimum.reduceat(phv, offsets[start:stop] - lo, axis=1).T
            start = stop


def signatures(texts: list[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """(rows, num_perm) MinHash signatures, equal to datasketch MinHash(num_perm, seed).update_batch
    over each text's shingles.

    Two passes over row chunks (about _CHUNK_CHARS code points each), so memory is bounded by a chunk
    plus the table's distinct shingles: (1) pack each shingle occurrence into a uint64 key and collect
    the distinct keys; hash each distinct shingle once (sha1_hash32, premixed); (2) repack, look the
    keys up by binary search, and min-reduce the seeded permutations row by row."""
    a, b = permutations(num_perm, seed)
    n = ngram
    texts = [" ".join(t.split()) for t in texts]
    lengths = [len(t) for t in texts]
    alpha = _Alphabet(texts, n)
    sig = np.empty((len(texts), num_perm), dtype=np.uint32)
    if not alpha.packable:  # a huge alphabet or long shingles: hash shingle strings per chunk
        for lo, hi in _chunks(lengths):
            _signature_chunk_strings(texts[lo:hi], n, a, b, sig[lo:hi])
        return sig
    chunks = list(_chunks(lengths))
    distinct = [_distinct(alpha.keys([t for t in texts[lo:hi] if len(t) > n])) for lo, hi in chunks]
    keys = _distinct(np.concatenate(distinct)) if distinct else np.empty(0, dtype=np.uint64)
    key_hv = _fmix32(alpha.hashes(keys))
    for (lo, hi), chunk_keys in zip(chunks, distinct, strict=True):
        chunk = texts[lo:hi]
        long_rows = np.fromiter((len(t) > n for t in chunk), dtype=bool, count=len(chunk))
        chunk_lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))
        counts = np.where(long_rows, chunk_lengths - n + 1, 1)
        offsets = np.zeros(len(chunk) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        hv = np.empty(int(offsets[-1]), dtype=np.uint32)
        is_long = np.repeat(long_rows, counts)
        # a text no longer than n is one shingle: itself
        hv[~is_long] = _fmix32(_sha1_32(t for t in chunk if len(t) <= n))
        if long_rows.any():
            # look up in the chunk's own distinct keys (small, cache-friendly), then map those
            chunk_hv = key_hv[np.searchsorted(keys, chunk_keys)]
            hv[is_long] = chunk_hv[np.searchsorted(chunk_keys, alpha.keys([t for t in chunk if len(t) > n]))]
        _signature_rows(hv, offsets, a, b, sig[lo:hi])
    return sig


def _distinct(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct keys (a plain sort: np.unique's hash path is slower on uint64 here)."""
    keys = np.sort(keys)
    if keys.size:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return keys


def _signature_chunk_strings(chunk: list[str], n: int, a, b, out: np.ndarray) -> None:
    rows = [list(shingles(t, n)) for t in chunk]
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    hv = _fmix32(_sha1_32(s for r in rows for s in r))
    _signature_rows(hv, offsets, a, b, out)


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
    # one bytes key per (band, row), made in bulk: a void view of each band's contiguous columns
    band_keys = [
        np.ascontiguousarray(sig[:, s:e]).view(np.dtype((np.void, 4 * (e - s)))).ravel().tolist()
        for s, e in bands
    ]
    tables: list[dict[bytes, list[int]]] = [{} for _ in bands]
    kept_ids: set[str] = set()
    dup_of: dict[int, str] = {}
    # the least number of equal hash values whose share reaches the threshold (same float test)
    min_equal = next(c for c in range(nd.num_perm + 1) if c / nd.num_perm >= nd.threshold)
    bucket_sizes = [Counter(keys) for keys in band_keys]
    row_keys = list(zip(*band_keys))  # noqa: B905 (one entry per row in every band)
    del band_keys
    for i in sorted(range(len(ids)), key=ids.__getitem__):
        keys = row_keys[i]
        if all(c[k] == 1 for c, k in zip(bucket_sizes, keys, strict=True)):
            # no row shares a bucket with it: it can neither match nor be matched
            if ids[i] in kept_ids:
                dup_of[i] = ids[i]
            else:
                kept_ids.add(ids[i])
            continue
        cands: set[int] = set()
        for table, key in zip(tables, keys, strict=True):
            got = table.get(key)
            if got:
                cands.update(got)
        if cands:
            cl = list(cands)
            equal = np.count_nonzero(sig[cl] == sig[i], axis=1).tolist()
            matches = [ids[k] for k, e in zip(cl, equal, strict=True) if e >= min_equal]
            if matches:
                dup_of[i] = min(matches)
                continue
        if ids[i] in kept_ids:  # same id twice: exact_dedup's business; keep the index keys unique
            dup_of[i] = ids[i]
            continue
        kept_ids.add(ids[i])
        for table, key in zip(tables, keys, strict=True):
            table.setdefault(key, []).append(i)
    return dup_of


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids, texts = df["id"].to_list(), cached_row_texts(df, ctx)
    dup_of = near_duplicates(ids, texts, cfg.near_dedup)
    bad = {i: f"near_dedup: near duplicate (of {k})" for i, k in dup_of.items()}
    keep_row_texts(ctx, ids, texts, bad)
    return split(df, bad)
