"""mixture: weighted, seeded assembly of the SFT mixture, its train/test split and the mixture card.

Before anything else, two kinds of rows are rejected (phase "mixture", one reason each, counted in
the card): rows that would train on nothing, because `sft.max_length` (passed by the rule with the base
model's tokenizer) cuts every assistant token (encoding.py renders them as TRL does); and
conversations whose source rows lie on both sides of train/test (only possible when instruct ran
without the mixture's `sides`).

Per source (rows ordered by id, so input order does not matter): a weight w keeps floor(w) full
copies of every row plus a seeded sample of round(frac(w) * rows) rows; then `caps` keeps a seeded
sample of at most cap rows.

Train/test is keyed by the SOURCE ROW, not by the conversation: a row's side is that of the source
rows it was built from (meta.origin_ids and meta.example_ids of instruct rows; its own id for rows
that have none, e.g. translated or already-Darija chat), drawn by sides.is_test(seed, key,
test_fraction). So every direction, few-shot example and multi-turn chat built from one source row
is on one side; sides do not depend on weights, and copies of a row share its side. Copies of an
up-weighted row keep its id: they are the same record, seen more often.

The card counts rows and tokens per source and per task; tokens are whitespace-separated words
of all message contents (a tokenizer-free measure, comparable across models). With
`subset_reference` (SubsetReference) it also compares rows per meta.subset with published counts, and
with a paper's whole table (Atlas-Chat's Table 1): every table row, the subset keys mapped into it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from atlas_forge import io, records
from atlas_forge.config import ConfigError
from atlas_forge.phase import PATH, PATHS, Phase
from atlas_forge.sides import is_test
from atlas_forge.store import sha256_file, sha256_json

log = logging.getLogger(__name__)
PHASE = "mixture"


@dataclass(frozen=True)
class MixtureConfig:
    seed: int
    test_fraction: float
    weights: dict[str, float] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    # a YAML file of published counts (SubsetReference: per-subset counts, and optionally a paper's whole
    # table with a map from subset keys to its rows, e.g. Atlas-Chat's Table 1); the card compares the
    # mixture's rows per meta.subset with it. "": no comparison
    subset_reference: str = ""
    # train on these sources only ([]: all the rule gives); rules/common.smk builds only those
    sources: list[str] = field(default_factory=list)
    # leave out every source of these roles (e.g. [chat]: no translated chats); read by the workflow,
    # which gives the mixture only the other sources (rules/common.smk: train_sources); kept here so
    # that it is part of the mixture's params and its card
    drop_roles: list[str] = field(default_factory=list)

    def validate(self, section: str) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{section}.test_fraction: {self.test_fraction} is outside (0, 1)")
        for src, w in self.weights.items():
            if w < 0:
                raise ConfigError(f"{section}.weights.{src}: must be >= 0")
        for src, c in self.caps.items():
            if c < 0:
                raise ConfigError(f"{section}.caps.{src}: must be >= 0")


_KEYS = pl.Struct({"origin_ids": pl.List(pl.String), "example_ids": pl.List(pl.String)})


def source_keys(df: pl.DataFrame) -> list[list[str]]:
    """Per row, the source rows it was built from: meta.origin_ids + meta.example_ids, else its id."""
    if not df.height:
        return []
    keys = df.select(
        pl.col("id"), pl.col("meta").str.json_decode(_KEYS).alias("k")
    ).unnest("k")
    out = []
    for rid, origins, examples in keys.iter_rows():
        got = [*(origins or []), *(examples or [])]
        out.append(got or [rid])
    return out


def row_sides(df: pl.DataFrame, cfg: MixtureConfig) -> list[str | None]:
    """"train" / "test" per row by its source rows; None when they disagree (a leak either way)."""
    cache: dict[str, bool] = {}
    out: list[str | None] = []
    for keys in source_keys(df):
        got = set()
        for k in keys:
            if k not in cache:
                cache[k] = is_test(cfg.seed, k, cfg.test_fraction)
            got.add(cache[k])
        out.append(None if len(got) > 1 else ("test" if got.pop() else "train"))
    return out


_FORMAT = pl.Struct({"format": pl.String})
BOTH_SIDES = "mixture: source rows on both sides of train/test (rerun instruct with the mixture's sides)"


def drop_side_conflicts(df: pl.DataFrame, cfg: MixtureConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows whose source rows straddle train/test, as rejects: either side would leak."""
    sides = row_sides(df, cfg)
    mask = pl.Series([s is None for s in sides], dtype=pl.Boolean)
    return df.filter(~mask), records.reject(df.filter(mask), BOTH_SIDES, PHASE)


def _tokens_within_bytes(tokenizer) -> bool:
    """Whether a text of n UTF-8 bytes is at most n + 1 tokens with this tokenizer: byte-level BPE
    with no normalizer (every token spans at least one byte; a prefix space adds at most one). True
    for the tiny tokenizer; SentencePiece normalizers rewrite text."""
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
    except (AttributeError, ValueError):
        return False
    pre = spec.get("pre_tokenizer") or {}
    return (spec.get("normalizer") is None and pre.get("type") == "ByteLevel"
            and spec.get("model", {}).get("type") == "BPE")


def drop_untrainable(df: pl.DataFrame, tokenizer, max_length: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows whose assistant tokens `max_length` cuts entirely (TRL would train on nothing of them),
    as rejects with the reason; checked with the tokenizer, rendered as sft renders.

    Tokenizing every row one by one took 25 of the corpora mixture's 58 s. A chat row (template with
    generation markers, every assistant turn non-empty) that max_length does not cut at all has a
    marked assistant token, so only its length matters: a rendered text of fewer than max_length bytes
    under a byte-level tokenizer is not cut (58% of the corpora rows, no tokenizing); the other rows'
    lengths come from one batched call, the same ids as apply_chat_template's (it tokenizes the
    rendered text with add_special_tokens=False). A plain row ([user, assistant] as lm-eval encodes
    it) keeps an assistant token exactly when its context is shorter than max_length: contexts and
    wholes are encoded in one batched call each. Only chat rows longer than max_length (and rows that
    do not fit these shapes) are encoded one by one, as sft encodes them (tests/test_mixture.py holds
    both ways equal)."""
    from atlas_forge.encoding import encode_row, split_whitespace, tok_encode_batch

    by_bytes = _tokens_within_bytes(tokenizer)
    marked = "{% generation %}" in (getattr(tokenizer, "chat_template", None) or "")
    reasons: dict[int, str] = {}
    rows = df["messages"].to_list()
    # each row in its own format (meta.format: chat, or plain), as sft tokenizes it
    formats = [f or "chat" for f in
               df.select(pl.col("meta").str.json_decode(_FORMAT).struct.field("format"))["format"].to_list()]
    full, measure, texts, plain = [], [], [], []
    for i, (msgs, fmt) in enumerate(zip(rows, formats, strict=True)):
        msgs = msgs or []
        if not any(m["role"] == "assistant" for m in msgs):
            reasons[i] = "mixture: no assistant turn to train on"
        elif fmt == "plain" and [m["role"] for m in msgs] == ["user", "assistant"] and msgs[0]["content"]:
            plain.append(i)
        elif marked and fmt == "chat" and all(m["content"] for m in msgs if m["role"] == "assistant"):
            text = tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in msgs],
                                                 tokenize=False)
            if not (by_bytes and len(text.encode("utf-8")) < max_length):
                measure.append(i)
                texts.append(text)
        else:
            full.append(i)
    if texts:
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        full += [i for i, n in zip(measure, lengths, strict=True) if n > max_length]
    if plain:
        pairs = [split_whitespace(rows[i][0]["content"], " " + rows[i][1]["content"]) for i in plain]
        ctx = tok_encode_batch(tokenizer, [c for c, _ in pairs], add_bos=True)
        whole = tok_encode_batch(tokenizer, [c + k for c, k in pairs], add_bos=True)
        for i, c, w in zip(plain, ctx, whole, strict=True):
            if len(w) <= len(c):
                full.append(i)  # encode_pair's own error: a continuation of no tokens
            elif len(c) >= max_length:
                reasons[i] = f"mixture: truncated, no assistant token within sft.max_length {max_length}"
    for i in sorted(full):
        _, mask = encode_row(tokenizer, rows[i], max_length, fmt=formats[i])
        if not any(mask):
            reasons[i] = f"mixture: truncated, no assistant token within sft.max_length {max_length}"
    bad = pl.Series([i in reasons for i in range(df.height)], dtype=pl.Boolean)
    rejected = records.reject(df.filter(bad), "", PHASE).with_columns(
        pl.Series("reason", [reasons[i] for i in sorted(reasons)], dtype=pl.String)
    )
    return df.filter(~bad), rejected


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
    if cfg.sources and tables.height:
        extra = sorted(set(tables["source"].unique().to_list()) - set(cfg.sources))
        if extra:
            raise ValueError(f"mixture: input rows of source {extra[0]!r}, not in mixture.sources")
    unknown = sorted((set(cfg.weights) | set(cfg.caps)) - set(tables["source"].unique().to_list()))
    if unknown:
        log.warning("mixture: weights/caps name sources with no rows: %s", unknown)
    parts, steps = [], {}
    for source in sorted(tables["source"].unique().to_list()):
        part, counts = weight_source(tables.filter(pl.col("source") == source), source, cfg)
        parts.append(part)
        steps[source] = counts
    mixed = pl.concat(parts) if parts else records.empty()
    sides = row_sides(mixed, cfg)
    if None in sides:
        rid = mixed["id"][sides.index(None)]
        raise ValueError(f"mixture: row {rid} has source rows on both sides of train/test "
                         "(drop_side_conflicts rejects such rows first)")
    mask = pl.Series([s == "test" for s in sides], dtype=pl.Boolean)
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
    checked: list[str] | None = None,
    truncation: dict | None = None,
    subsets: dict | None = None,
    table1: dict | None = None,
) -> dict:
    """`checked`: sources this phase itself checked (its own rejects appear with 0 for them);
    `truncation`: what the max_length check used; `subsets`: subset_counts(); `table1`:
    table1_section()."""
    reject_counts: dict = defaultdict(lambda: defaultdict(dict))
    per_source: dict = defaultdict(lambda: {"train_rows": 0, "test_rows": 0, "rejected": {}})
    # every source a reject table was given for appears, with 0 where nothing was rejected
    given = _reject_sources(reject_files or [])
    if checked is not None:
        given[PHASE] |= set(checked)
    for phase, srcs in given.items():
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
    extra: dict = {}
    if truncation is not None:
        extra["truncation"] = {
            **truncation,
            "rejected": {
                src: sum(n for r, n in reasons.items() if r.startswith("mixture: truncated"))
                for src, reasons in sorted(reject_counts.get(PHASE, {}).items())
            },
        }
    if subsets is not None:
        extra["subsets"] = subsets
    if table1 is not None:
        extra["table1"] = table1
    return {
        "sources": sources,
        **extra,
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
        "params_sha256": sha256_json(params),
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
    if "truncation" in card:
        t = card["truncation"]
        lines += [
            "",
            f"## Rows that train on nothing (sft.max_length {t['max_length']}, tokenizer {t['tokenizer']})",
            "",
            f"Every row is rendered as sft renders it; a row whose assistant tokens all lie past "
            f"max_length is rejected ({t['checked']} rows checked).",
            "",
            "| source | rejected |",
            "|---|---:|",
        ]
        lines += [f"| {src} | {n} |" for src, n in t["rejected"].items()]
    if card.get("table1"):
        lines += table1_markdown(card["table1"])
    if card.get("subsets"):
        sub = card["subsets"]
        ref = sub.get("reference") or {}
        lines += ["", "## Subsets (meta.subset)", ""]
        if ref:
            lines += [f"Reference: {ref.get('cite', '')} ({ref.get('path', '')}).", ""]
        lines += ["| subset | train | test | mixture rows | reference | mixture - reference |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, c in sub["counts"].items():
            r = "" if c.get("reference") is None else c["reference"]
            d = "" if c.get("diff") is None else f"{c['diff']:+d}"
            lines.append(f"| {name} | {c['train']} | {c['test']} | {c['rows']} | {r} | {d} |")
    if card.get("sets"):
        from atlas_forge.generated_sets import sets_markdown

        lines += sets_markdown(card["sets"])
    lines += ["", "## Inputs", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| {p} | `{h}` |" for p, h in card["files_sha256"].items()]
    lines += ["", f"params sha256: `{card['params_sha256']}`", ""]
    return "\n".join(lines)


_SUBSET = pl.Struct({"subset": pl.String})


def _subsets(df: pl.DataFrame) -> pl.Series:
    return df.select(pl.col("meta").str.json_decode(_SUBSET).struct.field("subset"))["subset"]


@dataclass(frozen=True)
class Table1Row:
    """One row of a paper's composition table: its name, section, published row count, sources."""

    name: str
    section: str
    rows: int
    sources: str = ""

    def validate(self, section: str) -> None:
        if self.rows < 0:
            raise ConfigError(f"{section}.rows: {self.rows} is negative (a row count)")


@dataclass(frozen=True)
class Table1:
    """A paper's whole composition table (Atlas-Chat's Table 1): rows in the paper's order, total."""

    cite: str
    total: int
    rows: dict[str, Table1Row]

    def validate(self, section: str) -> None:
        if not self.rows:
            raise ConfigError(f"{section}.rows: no rows")
        bad = [k for k in self.rows if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{section}.rows: key {bad[0]!r} is not a string")
        if self.total < 0:
            raise ConfigError(f"{section}.total: {self.total} is negative (a row count)")
        got = sum(r.rows for r in self.rows.values())
        if got != self.total:
            raise ConfigError(f"{section}.total: {self.total}, but {section}.rows sum to {got}")


@dataclass(frozen=True)
class SubsetReference:
    """mixture.subset_reference: published counts the mixture card compares with.

    `subsets`: per subset key (a meta.subset value) its published row count, or null;
    `table1` and `subset_map`: a paper's whole table, and for each subset key the table row(s) its rows
    belong to. A key mapped to several rows ties them into one group, compared on their sum."""

    cite: str = ""
    subsets: dict[str, int | None] = field(default_factory=dict)
    table1: Table1 | None = None
    subset_map: dict[str, str | list[str]] = field(default_factory=dict)
    path: str = ""  # the file it was read from (set by load_reference, not a key of the file)

    def validate(self, section: str) -> None:
        for name, table in (("subsets", self.subsets), ("subset_map", self.subset_map)):
            bad = [k for k in table if not isinstance(k, str)]
            if bad:
                raise ConfigError(f"{section}.{name}: key {bad[0]!r} is not a string (quote it)")
        for key, n in self.subsets.items():
            if n is not None and n < 0:
                raise ConfigError(f"{section}.subsets.{key}: {n} is negative (a row count)")
        if self.subset_map and self.table1 is None:
            raise ConfigError(f"{section}.subset_map: maps subset keys to table rows, but there is no table1")
        for key, rows in self.targets().items():
            if not rows:
                raise ConfigError(f"{section}.subset_map.{key}: maps to no Table 1 row")
            if len(set(rows)) != len(rows):
                raise ConfigError(f"{section}.subset_map.{key}: names a row twice: {rows}")
            for row in rows:
                if row not in self.table1.rows:
                    raise ConfigError(f"{section}.subset_map.{key}: {row!r} is not a row of table1.rows "
                                      f"(rows: {', '.join(self.table1.rows)})")

    def targets(self) -> dict[str, list[str]]:
        """subset key -> the Table 1 row ids it maps to."""
        return {k: [v] if isinstance(v, str) else list(v) for k, v in self.subset_map.items()}


def load_reference(path: str) -> SubsetReference:
    """The reference file, typed and checked: errors name the file and the key."""
    import yaml

    from atlas_forge.config import parse

    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    if "path" in raw:
        raise ConfigError(f"{path}: path: unknown key (the file's own path is set when it is read)")
    top = "\x00"  # the file's top level: key paths in messages start below it ("table1.total: ...")
    try:
        ref = parse(SubsetReference, raw, top)
    except ConfigError as e:
        raise ConfigError(f"{path}: {str(e).replace(top + '.', '')}") from None
    return dataclasses.replace(ref, path=str(path))


def _key_counts(train: pl.DataFrame, test: pl.DataFrame) -> dict[str | None, dict[str, int]]:
    """{meta.subset (None: rows without one): {"train": n, "test": n}}."""
    counts: dict[str | None, dict[str, int]] = {}
    for name, df in (("train", train), ("test", test)):
        if not df.height:
            continue
        for sub, n in _subsets(df).value_counts().iter_rows():
            counts.setdefault(sub, {"train": 0, "test": 0})[name] = n
    return counts


def subset_counts(train: pl.DataFrame, test: pl.DataFrame, reference: SubsetReference | None) -> dict | None:
    """Rows per meta.subset (already-Darija chat keeps its `dataset` there) against the reference's
    per-key counts; None when no row has a subset and there is no reference."""
    counts = {k: v for k, v in _key_counts(train, test).items() if k is not None}
    ref_counts = reference.subsets if reference else {}
    if not counts and reference is None:
        return None
    out = {}
    for sub in sorted(set(counts) | set(ref_counts)):
        c = counts.get(sub, {"train": 0, "test": 0})
        rows = c["train"] + c["test"]
        r = ref_counts.get(sub)
        out[sub] = {**c, "rows": rows, "reference": r, "diff": None if r is None else rows - r}
    meta = {"cite": reference.cite, "path": reference.path} if reference else None
    return {"counts": out, "reference": meta}


def table1_section(train: pl.DataFrame, test: pl.DataFrame, reference: SubsetReference | None) -> dict | None:
    """The mixture against the reference's whole table: every table row (0 when the mixture has none
    of it), the sum of the subset keys mapped to it, per split; rows tied by a key mapped to several of
    them compared as one group (no per-row split is guessed); subset keys mapped to no row, and rows
    without a subset, on their own lines; the total. The lines add up to the mixture's rows."""
    if reference is None or reference.table1 is None:
        return None
    t1 = reference.table1
    counts = _key_counts(train, test)
    targets = reference.targets()

    def tally(keys) -> dict:
        tr = sum(counts.get(k, {}).get("train", 0) for k in keys)
        te = sum(counts.get(k, {}).get("test", 0) for k in keys)
        return {"train": tr, "test": te, "mixture": tr + te}

    def key_rows(keys) -> dict[str, int]:
        return {k: tally([k])["mixture"] for k in sorted(keys)}

    # groups: table rows tied together by a key that maps to several of them (union-find)
    parent = {r: r for r in t1.rows}

    def root(r: str) -> str:
        while parent[r] != r:
            r = parent[r]
        return r

    for rows in targets.values():
        for r in rows[1:]:
            parent[root(r)] = root(rows[0])
    members: dict[str, list[str]] = defaultdict(list)
    for r in t1.rows:  # the table's order
        members[root(r)].append(r)
    group_id = {r: "+".join(members[root(r)]) for r in t1.rows}

    rows_out, accounted = [], 0
    for rid, row in t1.rows.items():
        keys = [k for k, rs in targets.items() if rid in rs]
        entry = {"id": rid, "name": row.name, "section": row.section, "sources": row.sources,
                 "paper": row.rows, "keys": key_rows(keys)}
        if len(members[root(rid)]) > 1:
            entry |= {"group": group_id[rid], "train": None, "test": None, "mixture": None, "diff": None}
        else:
            c = tally(keys)
            accounted += c["mixture"]
            entry |= {"group": None, **c, "diff": c["mixture"] - row.rows}
        rows_out.append(entry)
    groups = []
    for first, rids in members.items():
        if len(rids) < 2:
            continue
        keys = [k for k, rs in targets.items() if root(rs[0]) == first]
        c = tally(keys)
        accounted += c["mixture"]
        paper = sum(t1.rows[r].rows for r in rids)
        groups.append({
            "id": "+".join(rids), "name": " + ".join(t1.rows[r].name for r in rids), "rows": rids,
            "section": ", ".join(dict.fromkeys(t1.rows[r].section for r in rids)),
            "paper": paper, "keys": key_rows(keys),
            "shared_keys": sorted(k for k in keys if len(targets[k]) > 1),
            **c, "diff": c["mixture"] - paper,
        })
    unmapped = []
    for key in sorted(k for k in counts if k is not None and k not in targets):
        c = tally([key])
        accounted += c["mixture"]
        unmapped.append({"key": key, **c})
    no_subset = None
    if None in counts:
        no_subset = tally([None])
        accounted += no_subset["mixture"]
    total = {"paper": t1.total, "train": train.height, "test": test.height,
             "mixture": train.height + test.height, "diff": train.height + test.height - t1.total}
    if accounted != total["mixture"]:
        raise RuntimeError(f"mixture: Table 1 lines count {accounted} rows, the mixture {total['mixture']}")
    return {"cite": t1.cite, "path": reference.path, "rows": rows_out, "groups": groups,
            "unmapped": unmapped, "no_subset": no_subset, "total": total}


def table1_markdown(t: dict) -> list[str]:
    def cell(v) -> str:
        return "" if v is None else str(v)

    def keys(k: dict) -> str:
        return ", ".join(f"{name} {n}" for name, n in k.items()) or "-"

    lines = [
        "",
        "## Table 1 of the paper against this mixture",
        "",
        f"Reference: {t['cite']} ({t['path']}). A row's mixture count sums the rows (train + test) whose "
        "meta.subset maps to it (the reference file's subset_map); rows that share a subset key are "
        "compared as one group; subset keys that map to no row, and rows without a subset, have their "
        "own lines, so the lines add up to the total.",
        "",
        "| Table 1 row | section | paper rows | train | test | mixture rows | mixture - paper "
        "| subset keys (mixture rows) | paper's sources |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    names = {g["id"]: g["name"] for g in t["groups"]}
    for r in t["rows"]:
        src = r["sources"].replace("|", "/")
        if r["group"] is not None:
            lines.append(f"| {r['name']} | {r['section']} | {r['paper']} | | | in group: {names[r['group']]} "
                         f"| | {keys(r['keys'])} | {src} |")
        else:
            lines.append(f"| {r['name']} | {r['section']} | {r['paper']} | {r['train']} | {r['test']} "
                         f"| {r['mixture']} | {r['diff']:+d} | {keys(r['keys'])} | {src} |")
    for g in t["groups"]:
        shared = ", ".join(g["shared_keys"])
        lines.append(f"| group: {g['name']} ({shared} in several rows) | {g['section']} | {g['paper']} "
                     f"| {g['train']} | {g['test']} | {g['mixture']} | {g['diff']:+d} "
                     f"| {keys(g['keys'])} | |")
    for u in t["unmapped"]:
        lines.append(f"| not in Table 1: {u['key']} | | | {u['train']} | {u['test']} | {u['mixture']} | "
                     f"| {u['key']} {u['mixture']} | |")
    if t["no_subset"]:
        n = t["no_subset"]
        lines.append(f"| no meta.subset | | | {n['train']} | {n['test']} | {n['mixture']} | | - | |")
    tot = t["total"]
    lines.append(f"| Total | | {tot['paper']} | {tot['train']} | {tot['test']} | {tot['mixture']} "
                 f"| {tot['diff']:+d} | | |")
    return lines


CONTRACT = Phase(
    name="mixture",
    module=__name__,
    help="weighted, seeded assembly of the SFT mixture, train/test split and mixture card",
    config=MixtureConfig,
    # rows whose assistant tokens sft's max_length cuts entirely are rejected here, with a reason
    reads=("sft.max_length",),
    args=(("--inputs", {"required": True, **PATHS}), ("--rejects", PATHS),
          ("--train", {"required": True, **PATH}), ("--test", {"required": True, **PATH}),
          ("--card-json", {"required": True, **PATH}), ("--card-md", {"required": True, **PATH}),
          ("--tokenizer", {"help": "tokenizer folder: reject rows sft.max_length cuts to nothing", **PATH}),
          ("--mixture-rejects", {"help": "this phase's own rejects (truncation, split conflicts)", **PATH}),
          ("--set-stats", {"help": "the generate phase's per-set counts, for the card", **PATHS})),
)


def run_cli(args: argparse.Namespace, job) -> None:
    cfg = job.config
    max_length = job.reads.get("sft.max_length", 0)
    tables = io.read_tables(args.inputs, PHASE)
    rejects = io.read_tables(args.rejects, PHASE, rejects=True)
    sources = sorted(tables["source"].unique().to_list()) if tables.height else []
    own = []
    truncation = None
    if args.tokenizer:
        if not max_length or max_length <= 0:
            raise ValueError("mixture: --tokenizer needs sft.max_length > 0 in --params")
        from transformers import AutoTokenizer

        # loaded as sft loads it (add_bos_token, lm-eval's rule for plain rows; the chat template
        # emits its own BOS either way), so what is checked here is what sft trains on
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, add_bos_token=True)
        checked = tables.height
        tables, rej = drop_untrainable(tables, tokenizer, max_length)
        own.append(rej)
        truncation = {"max_length": max_length, "tokenizer": str(args.tokenizer), "checked": checked}
    tables, rej = drop_side_conflicts(tables, cfg)
    own.append(rej)
    own_rejects = pl.concat(own)
    train, test, steps = build_mixture(tables, cfg)
    files = {str(p): sha256_file(p) for p in [*args.inputs, *args.rejects]}
    reference = None
    if cfg.subset_reference:
        reference = load_reference(cfg.subset_reference)
        files[cfg.subset_reference] = sha256_file(cfg.subset_reference)
    card = build_card(
        train, test, steps, pl.concat([rejects, own_rejects]), files, args.params.get("mixture", {}),
        reject_files=list(args.rejects), checked=sources, truncation=truncation,
        subsets=subset_counts(train, test, reference),
        table1=table1_section(train, test, reference),
    )
    if getattr(args, "set_stats", None):
        # sets built from raw text (generate phase): rows in, generated, rejected by reason, mixed
        from atlas_forge.generated_sets import sets_section

        card["sets"] = sets_section(card, [io.read_json(p) for p in args.set_stats])
        card["files_sha256"].update({str(p): sha256_file(p) for p in args.set_stats})
    io.write_table(train, args.train, PHASE)
    io.write_table(test, args.test, PHASE)
    if args.mixture_rejects:
        io.write_table(own_rejects, args.mixture_rejects, PHASE, rejects=True)
    io.write_json(card, args.card_json)
    io.write_text(card_markdown(card), args.card_md)
    log.info("mixture: train %d, test %d rows from %d sources; rejected here %d", train.height, test.height,
             len(steps), own_rejects.height)
