"""mixture: weighted, seeded assembly of the SFT mixture, its train/test split and the mixture card.

Per source (rows ordered by id, so input order does not matter): a weight w keeps floor(w) full
copies of every row plus a seeded sample of round(frac(w) * rows) rows; then `caps` keeps a seeded
sample of at most cap rows. A row goes to test iff the hash of (seed, id) falls below
test_fraction, so its side does not depend on weights, and all copies of a row share that side.
Copies of an up-weighted row keep its id: they are the same record, seen more often.

The card counts rows and tokens per source and per task; tokens are whitespace-separated words
of all message contents (a tokenizer-free measure, comparable across models).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from atlas_forge import io, records
from atlas_forge.config import ConfigError, parse

log = logging.getLogger(__name__)
PHASE = "mixture"


@dataclass(frozen=True)
class MixtureConfig:
    seed: int
    test_fraction: float
    weights: dict[str, float] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)

    def validate(self, section: str) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{section}.test_fraction: {self.test_fraction} is outside (0, 1)")
        for src, w in self.weights.items():
            if w < 0:
                raise ConfigError(f"{section}.weights.{src}: must be >= 0")
        for src, c in self.caps.items():
            if c < 0:
                raise ConfigError(f"{section}.caps.{src}: must be >= 0")


def _is_test(seed: int, row_id: str, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}\x1ftest\x1f{row_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < fraction


def weight_source(df: pl.DataFrame, source: str, cfg: MixtureConfig) -> tuple[pl.DataFrame, dict]:
    """One source's rows after weight and cap, with the counts at each step."""
    df = df.sort("id", maintain_order=True)
    w = cfg.weights.get(source, 1.0)
    full, frac = math.floor(w), w - math.floor(w)
    rng = random.Random(f"{cfg.seed}\x1fweight\x1f{source}")
    extra = sorted(rng.sample(range(df.height), round(frac * df.height)))
    idx = [i for _ in range(full) for i in range(df.height)] + extra
    weighted = len(idx)
    cap = cfg.caps.get(source)
    if cap is not None and len(idx) > cap:
        rng = random.Random(f"{cfg.seed}\x1fcap\x1f{source}")
        idx = [idx[i] for i in sorted(rng.sample(range(len(idx)), cap))]
    out = df[idx] if idx else df.clear()
    return out, {
        "rows_in": df.height,
        "weight": w,
        "rows_weighted": weighted,
        "cap": cap,
        "rows_out": len(idx),
    }


def build_mixture(tables: pl.DataFrame, cfg: MixtureConfig) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Pure core: (train, test, per-source weighting counts)."""
    unknown = sorted((set(cfg.weights) | set(cfg.caps)) - set(tables["source"].unique().to_list()))
    if unknown:
        log.warning("mixture: weights/caps name sources with no rows: %s", unknown)
    parts, steps = [], {}
    for source in sorted(tables["source"].unique().to_list()):
        part, counts = weight_source(tables.filter(pl.col("source") == source), source, cfg)
        parts.append(part)
        steps[source] = counts
    mixed = pl.concat(parts) if parts else records.empty()
    mask = pl.Series(
        [_is_test(cfg.seed, i, cfg.test_fraction) for i in mixed["id"].to_list()], dtype=pl.Boolean
    )
    train, test = mixed.filter(~mask), mixed.filter(mask)
    if train.height + test.height != mixed.height:
        raise RuntimeError("mixture: train + test != mixed rows")
    return _shuffle(train, cfg.seed, "train"), _shuffle(test, cfg.seed, "test"), steps


def _shuffle(df: pl.DataFrame, seed: int, name: str) -> pl.DataFrame:
    order = list(range(df.height))
    random.Random(f"{seed}\x1fshuffle\x1f{name}").shuffle(order)
    return df[order] if order else df


def _tokens(df: pl.DataFrame) -> pl.Series:
    words = pl.element().struct.field("content").fill_null("").str.count_matches(r"\S+")
    return df.select(pl.col("messages").list.eval(words).list.sum().cast(pl.Int64).alias("tokens"))["tokens"]


def _breakdown(df: pl.DataFrame, by: str) -> dict[str, dict[str, int]]:
    if not df.height:
        return {}
    t = df.select(by).with_columns(_tokens(df).alias("tokens"))
    agg = t.group_by(by).agg(pl.len().alias("rows"), pl.col("tokens").sum()).sort(by)
    return {k: {"rows": r, "tokens": n} for k, r, n in agg.iter_rows()}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def params_sha256(params: dict) -> str:
    # same canonical form the Snakemake rules pass (sort_keys, ensure_ascii off)
    return hashlib.sha256(json.dumps(params, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def reason_key(reasons: pl.Expr) -> pl.Expr:
    """A reason without its row detail: "near_dedup: near duplicate (of 1a2b)" -> "near_dedup: near
    duplicate", "duplicate key: f.csv:12" -> "duplicate key", "filtered: 1 != MA" kept whole."""
    return (
        reasons.fill_null("")
        .str.replace(r"\s*\(.*\)$", "")
        .str.replace(r"^(duplicate key|unparseable line|bad answer): .*$", "$1")
    )


def _reject_sources(paths: list[str]) -> dict[str, set[str]]:
    """{phase: sources} named by reject paths data/reports/rejects/<phase>/<source>.parquet."""
    out: dict[str, set[str]] = defaultdict(set)
    for p in paths:
        p = Path(p)
        out[p.parent.name].add(p.stem)
    return out


def build_card(
    train: pl.DataFrame,
    test: pl.DataFrame,
    steps: dict,
    rejects: pl.DataFrame,
    files: dict,
    params: dict,
    reject_files: list[str] | None = None,
) -> dict:
    reject_counts: dict = defaultdict(lambda: defaultdict(dict))
    per_source: dict = defaultdict(lambda: {"train_rows": 0, "test_rows": 0, "rejected": {}})
    # every source a reject table was given for appears, with 0 where nothing was rejected
    for phase, srcs in _reject_sources(reject_files or []).items():
        for src in srcs:
            per_source[src]["rejected"].setdefault(phase, 0)
            reject_counts[phase].setdefault(src, {})
    if rejects.height:
        agg = (
            rejects.with_columns(reason_key(pl.col("reason")).alias("reason"))
            .group_by("phase", "source", "reason")
            .len()
            .sort("phase", "source", "reason")
        )
        for phase, source, reason, n in agg.iter_rows():
            reject_counts[phase][source][reason] = n
            per_source[source]["rejected"][phase] = per_source[source]["rejected"].get(phase, 0) + n
    for name, df in (("train", train), ("test", test)):
        if df.height:
            for source, n in df.group_by("source").len().iter_rows():
                per_source[source][f"{name}_rows"] = n
    for src, s in steps.items():
        per_source[src]["weighting"] = s
    sources = {
        src: {**v, "rejected": dict(sorted(v["rejected"].items()))} for src, v in sorted(per_source.items())
    }
    return {
        "sources": sources,
        "token_count": "whitespace-separated words of all message contents",
        "splits": {
            name: {
                "rows": df.height,
                "tokens": int(_tokens(df).sum()) if df.height else 0,
                "by_source": _breakdown(df, "source"),
                "by_task": _breakdown(df, "task"),
            }
            for name, df in (("train", train), ("test", test))
        },
        "weighting": steps,
        "rejects": {
            p: {s: dict(r) for s, r in sorted(v.items())} for p, v in sorted(reject_counts.items())
        },
        "rejects_total": rejects.height,
        "files_sha256": files,
        "params": params,
        "params_sha256": params_sha256(params),
    }


def card_markdown(card: dict) -> str:
    lines = ["# Mixture card", "", f"Tokens: {card['token_count']}.", ""]
    for name, split in card["splits"].items():
        lines += [f"## {name}: {split['rows']} rows, {split['tokens']} tokens", ""]
        for by in ("by_source", "by_task"):
            lines += [f"| {by[3:]} | rows | tokens |", "|---|---:|---:|"]
            lines += [f"| {k} | {v['rows']} | {v['tokens']} |" for k, v in split[by].items()]
            lines.append("")
    lines += [
        "## Weighting",
        "",
        "| source | rows in | weight | after weight | cap | rows out |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for src, s in card["weighting"].items():
        cap = "" if s["cap"] is None else s["cap"]
        lines.append(
            f"| {src} | {s['rows_in']} | {s['weight']} | {s['rows_weighted']} | {cap} | {s['rows_out']} |"
        )
    lines += [
        "",
        f"## Rejects ({card['rejects_total']} rows)",
        "",
        "| phase | source | reason | rows |",
        "|---|---|---|---:|",
    ]
    for phase, by_source in sorted(card["rejects"].items()):
        for src, reasons in sorted(by_source.items()):
            if not reasons:
                lines.append(f"| {phase} | {src} | (none) | 0 |")
            lines += [
                f"| {phase} | {src} | {reason.replace('|', '/')} | {n} |" for reason, n in reasons.items()
            ]
    lines += [
        "",
        "## Sources",
        "",
        "| source | train rows | test rows | rejected per phase |",
        "|---|---:|---:|---|",
    ]
    for src, s in card.get("sources", {}).items():
        rej = ", ".join(f"{p} {n}" for p, n in s["rejected"].items()) or "-"
        lines.append(f"| {src} | {s['train_rows']} | {s['test_rows']} | {rej} |")
    lines += ["", "## Inputs", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| {p} | `{h}` |" for p, h in card["files_sha256"].items()]
    lines += ["", f"params sha256: `{card['params_sha256']}`", ""]
    return "\n".join(lines)


def run_cli(args: argparse.Namespace) -> None:
    cfg = parse(MixtureConfig, args.params, "mixture")
    tables = io.read_tables(args.inputs, PHASE)
    rejects = io.read_tables(args.rejects, PHASE, rejects=True)
    train, test, steps = build_mixture(tables, cfg)
    files = {str(p): sha256_file(p) for p in [*args.inputs, *args.rejects]}
    card = build_card(train, test, steps, rejects, files, args.params, reject_files=list(args.rejects))
    io.write_table(train, args.train, PHASE)
    io.write_table(test, args.test, PHASE)
    io.write_json(card, args.card_json)
    io.write_text(card_markdown(card), args.card_md)
    log.info("mixture: train %d, test %d rows from %d sources", train.height, test.height, len(steps))
