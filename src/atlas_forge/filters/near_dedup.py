"""Near duplicates: MinHash LSH (datasketch) over character shingles of the normalized row text.

Rows are visited in id order; a row is dropped when its estimated Jaccard similarity to an already
kept row reaches the threshold (LSH proposes candidates, the MinHash estimate confirms), so the first
of each cluster survives and the result does not depend on input order.
"""

from __future__ import annotations

import polars as pl

from atlas_forge.filters import split
from atlas_forge.filters.exact_dedup import row_text


def shingles(text: str, n: int) -> set[bytes]:
    text = " ".join(text.split())
    if len(text) <= n:
        return {text.encode()}
    return {text[i:i + n].encode() for i in range(len(text) - n + 1)}


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    from datasketch import MinHash, MinHashLSH

    nd = cfg.near_dedup
    lsh = MinHashLSH(threshold=nd.threshold, num_perm=nd.num_perm)
    kept: dict[str, MinHash] = {}
    rows = list(df.iter_rows(named=True))
    bad = {}
    for i in sorted(range(len(rows)), key=lambda i: rows[i]["id"]):
        mh = MinHash(num_perm=nd.num_perm, seed=nd.seed)
        # sorted: update order does not change a MinHash, but keeps the run reproducible to read
        mh.update_batch(sorted(shingles(row_text(rows[i]), nd.ngram)))
        matches = sorted(k for k in lsh.query(mh) if kept[k].jaccard(mh) >= nd.threshold)
        if matches:
            bad[i] = f"near_dedup: near duplicate (of {matches[0]})"
            continue
        key = rows[i]["id"]
        if key in kept:  # same id twice: exact_dedup's business, not ours; keep the LSH keys unique
            bad[i] = f"near_dedup: near duplicate (of {key})"
            continue
        lsh.insert(key, mh)
        kept[key] = mh
    return split(df, bad)
