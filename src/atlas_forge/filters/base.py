"""What every filter step stands on: the filter config, the shared per-row context, and the split of
a table into kept rows and rejects with a reason. The steps import this module, never the package's
__init__ (which imports the steps: that would be an import cycle).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from atlas_forge import records

PHASE = "filter"
STEPS = ("empty", "length", "arabic_ratio", "length_ratio", "langid", "exact_dedup", "near_dedup",
         "decontaminate")


@dataclass(frozen=True)
class NearDedupConfig:
    threshold: float = 0.85
    num_perm: int = 64
    ngram: int = 5  # character shingles: most rows are a sentence or two, too short for word 5-grams
    seed: int = 1


@dataclass(frozen=True)
class DecontaminateConfig:
    ngram: int = 8
    # ours: shorter texts are matched whole, but only from this many words up, or one-word sentiment
    # labels and mcq choices would flag every row that uses the same word
    min_words: int = 3


@dataclass(frozen=True)
class LangidConfig:
    min_prob: float = 0.5


@dataclass(frozen=True)
class FilterConfig:
    steps: list[str]
    min_chars: int = 2
    max_chars: int = 4000
    min_arabic_ratio: float = 0.5
    # assistant turns with fewer letters are labels or letters ("A", "ok"): too short for a ratio
    arabic_ratio_min_letters: int = 4
    max_length_ratio: float = 4.0
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    langid: LangidConfig = field(default_factory=LangidConfig)

    def validate(self, section: str) -> None:
        from atlas_forge.config import ConfigError

        for name in self.steps:
            if name not in STEPS:
                raise ConfigError(f"{section}.steps: unknown step '{name}' (known: {', '.join(STEPS)})")
        if not 0 < self.min_chars <= self.max_chars:
            raise ConfigError(f"{section}.min_chars/max_chars: need 0 < min_chars <= max_chars")
        if self.max_length_ratio < 1:
            raise ConfigError(f"{section}.max_length_ratio: must be >= 1")
        if not 0 < self.near_dedup.threshold <= 1:
            raise ConfigError(f"{section}.near_dedup.threshold: must be in (0, 1]")
        if not 1 <= self.decontaminate.ngram <= 64 or self.decontaminate.min_words < 1:
            raise ConfigError(f"{section}.decontaminate: ngram must be in 1..64 and min_words >= 1")


@dataclass
class Context:
    bench: pl.DataFrame = dataclasses.field(default_factory=records.empty)
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)

    def per_row(self, name: str, df: pl.DataFrame, compute):
        """compute(df), a list with one entry per row, reused while df holds the same rows (keyed on
        the ids): on a large source each such pass over the messages costs seconds."""
        ids = df["id"].to_list()
        got = self.cache.get(name)
        if got is not None and got[0] == ids:
            return got[1]
        values = compute(df)
        self.cache[name] = (ids, values)
        return values

    def keep_rows(self, name: str, ids: list[str], values: list, bad: dict[int, str]) -> None:
        """Leave `values` (aligned with `ids`) for the rows a step keeps, for the next step."""
        self.cache[name] = ([x for i, x in enumerate(ids) if i not in bad],
                            [v for i, v in enumerate(values) if i not in bad])


def split(df: pl.DataFrame, bad: dict[int, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Kept rows and rejects, given {row index: reason} for the rows to drop."""
    mask = pl.Series([i in bad for i in range(df.height)], dtype=pl.Boolean)
    rejected = df.filter(mask)
    reasons = pl.Series("reason", [bad[i] for i in sorted(bad)], dtype=pl.String)
    rejected = records.reject(rejected, "", PHASE).with_columns(reasons)
    return df.filter(~mask), rejected


def all_contents(df: pl.DataFrame, ctx: Context | None = None) -> list[list[str]]:
    """Every row's message contents (nulls as ""), without building row dicts; with ctx, reused
    while the rows are the same (most steps drop few rows)."""
    if ctx is not None:
        return ctx.per_row("contents", df, all_contents)
    if not df.height:
        return []
    got = df.select(
        pl.col("messages").list.eval(pl.element().struct.field("content").fill_null("")).alias("c")
    )["c"].to_list()
    return [c or [] for c in got]


def contents(row: dict, role: str | None = None) -> list[str]:
    return [m["content"] or "" for m in row["messages"] or [] if role is None or m["role"] == role]
