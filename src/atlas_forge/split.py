"""split: hold out a deterministic share of a source as its benchmark set.

The side of a row depends only on the salt and the normalized text of its first user message, never
on row order or on the other rows, so reruns, re-exports and appended data keep every existing row on
its side, and two rows with the same normalized text can never straddle train and bench (that would
leak benchmark items into training). Nothing is rejected: train + bench = input.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass

import polars as pl

from atlas_forge import io
from atlas_forge.config import ConfigError
from atlas_forge.phase import PATH, Phase, by_id, entries
from atlas_forge.textnorm import normalize_arabic

log = logging.getLogger(__name__)
PHASE = "split"


@dataclass(frozen=True)
class SplitConfig:
    bench_fraction: float
    salt: str
    min_bench_rows: int = 4

    def validate(self, section: str) -> None:
        if not 0.0 <= self.bench_fraction <= 1.0:
            raise ConfigError(f"{section}.bench_fraction: {self.bench_fraction} is outside [0, 1]")
        if self.min_bench_rows < 0:
            raise ConfigError(f"{section}.min_bench_rows: must be >= 0")


def first_user_text(messages: list[dict] | None) -> str:
    for m in messages or []:
        if m["role"] == "user":
            return m["content"] or ""
    return ""


def bucket(salt: str, text: str) -> float:
    """Position of a normalized text in [0, 1), uniform and stable for a given salt."""
    digest = hashlib.sha256(f"{salt}\x1f{text}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def split_table(df: pl.DataFrame, cfg: SplitConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pure core: (train, bench), each in input order."""
    keys = [normalize_arabic(first_user_text(m)) for m in df["messages"].to_list()]
    positions = {k: bucket(cfg.salt, k) for k in set(keys)}
    if cfg.bench_fraction >= 1.0:
        chosen = set(positions)
    else:
        chosen = {k for k, p in positions.items() if p < cfg.bench_fraction}
    # top up a tiny benchmark set by the lowest positions: those rows are the ones a slightly larger
    # bench_fraction would have taken, so the result is still a function of the text alone
    if (
        cfg.bench_fraction > 0
        and df.height >= 2 * cfg.min_bench_rows
        and sum(1 for k in keys if k in chosen) < cfg.min_bench_rows
    ):
        counts: dict[str, int] = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        n = sum(counts[k] for k in chosen)
        for k in sorted(set(positions) - chosen, key=lambda k: (positions[k], k)):
            if n >= cfg.min_bench_rows:
                break
            chosen.add(k)
            n += counts[k]
    mask = pl.Series("bench", [k in chosen for k in keys], dtype=pl.Boolean)
    train, bench = df.filter(~mask), df.filter(mask)
    if train.height + bench.height != df.height:
        raise RuntimeError(f"split lost rows: {df.height} != {train.height} + {bench.height}")
    return train, bench


def _sources(params) -> list[dict]:
    return entries(params, "ingest", "sources", "extra_sources")


def _view(params, source: str) -> dict:
    # an eval-only source is all benchmark
    if by_id(_sources(params), source)["role"] == "eval":
        return {**params["split"], "bench_fraction": 1.0}
    return params["split"]


CONTRACT = Phase(
    name="split",
    module=__name__,
    help="hold out a deterministic, text-keyed share of a source as its benchmark set",
    config=SplitConfig,
    view=_view,
    jobs=lambda params: [{"source": s["id"]} for s in _sources(params) if s["role"] in ("native", "eval")],
    args=(("--input", {"required": True, **PATH}), ("--train", {"required": True, **PATH}),
          ("--bench", {"required": True, **PATH})),
)


def run_cli(args: argparse.Namespace, job) -> None:
    cfg = job.config
    df = io.read_table(args.input, PHASE)
    train, bench = split_table(df, cfg)
    io.write_table(train, args.train, PHASE)
    io.write_table(bench, args.bench, PHASE)
    log.info("%s: %d rows -> train %d, bench %d", args.input, df.height, train.height, bench.height)
