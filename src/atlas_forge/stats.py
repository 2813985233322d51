"""Standard errors, intervals and paired tests for comparing two models on the same items.

What the report uses (scipy and sacrebleu where they have the test; tests/test_stats.py checks these
against them):

- A mean of per-item values (accuracy, a sentence-level ROUGE, a judge's win rate over judged pairs):
  stderr as lm-eval's `mean_stderr` (sample standard deviation, ddof 1, over sqrt(n)); the interval is
  the normal one, mean ± z * stderr.
- A corpus metric (BLEU, chrF, TER): sacrebleu's sufficient statistics per item, resampled; stderr is
  the standard deviation of the resampled scores (lm-eval's `bootstrap_stderr`), the interval the
  bootstrap percentile one.
- Paired: accuracy by the exact McNemar test (scipy.stats.binomtest on the discordant pairs); every
  metric also by the paired bootstrap over items (both models resampled with the same item indices;
  the difference's percentile interval; two-sided p from the centred bootstrap distribution,
  p = (#{|d* - mean(d*)| >= |d|} + 1) / (B + 1), as sacrebleu's paired bootstrap counts, but signed:
  two identical systems get p = 1, where sacrebleu 2.x's `PairedTest` reports 1 / (B + 1)).
- Holm's step-down adjustment over a family of p-values.

Seeded: every bootstrap draws its indices from numpy's default_rng(seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CORPUS = ("bleu", "chrf", "ter")  # corpus metrics recomputed from sacrebleu's per-item statistics


@dataclass(frozen=True)
class Estimate:
    """One model's score on one metric: score, standard error, an interval at `level`."""

    score: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    method: str  # "mean_stderr" (closed form) or "bootstrap"


@dataclass(frozen=True)
class Comparison:
    """other - reference on one metric, paired over n items."""

    diff: float
    ci_low: float
    ci_high: float
    p: float
    test: str
    n: int
    discordant: tuple[int, int] | None = None  # McNemar: (reference right only, other right only)


# --- closed forms -----------------------------------------------------------------------------
def mean_stderr(xs: Sequence[float]) -> float | None:
    """lm-eval's mean_stderr: sample_stddev(xs) / sqrt(n), sample_stddev with ddof 1; None for n < 2."""
    x = np.asarray(xs, dtype=float)
    if x.size < 2:
        return None
    return float(x.std(ddof=1) / math.sqrt(x.size))


def z_value(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def mean_estimate(xs: Sequence[float], level: float = 0.95) -> Estimate:
    x = np.asarray(xs, dtype=float)
    if x.size == 0:
        raise ValueError("mean_estimate: no items")
    score = float(x.mean())
    se = mean_stderr(x)
    if se is None:
        return Estimate(score, None, None, None, int(x.size), "mean_stderr")
    z = z_value(level)
    return Estimate(score, se, score - z * se, score + z * se, int(x.size), "mean_stderr")


def mcnemar(reference: Sequence[bool], other: Sequence[bool]) -> tuple[int, int, float]:
    """Exact McNemar test: (b, c, p), b items only the reference gets right, c only the other; p the
    two-sided binomial test of b in b + c at 1/2 (scipy.stats.binomtest); p = 1 with no discordant pair."""
    from scipy.stats import binomtest

    a, o = np.asarray(reference, dtype=bool), np.asarray(other, dtype=bool)
    if a.shape != o.shape:
        raise ValueError(f"mcnemar: {a.size} reference items, {o.size} other items")
    b, c = int(np.sum(a & ~o)), int(np.sum(~a & o))
    if b + c == 0:
        return b, c, 1.0
    return b, c, float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given), capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


# --- the bootstrap ------------------------------------------------------------------------------
def indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) item indices drawn with replacement: one row per bootstrap resample."""
    if n < 1 or resamples < 1:
        raise ValueError(f"bootstrap: n = {n}, resamples = {resamples}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_p(observed: float, resampled: np.ndarray) -> float:
    """Two-sided p of `observed` (a difference) against its resampled values centred on 0."""
    centred = np.abs(resampled - resampled.mean())
    return float((np.sum(centred >= abs(observed) - 1e-12) + 1) / (resampled.size + 1))


def paired_bootstrap_mean(
    reference: Sequence[float], other: Sequence[float], resamples: int, seed: int, level: float = 0.95
) -> Comparison:
    """mean(other) - mean(reference) over paired items: percentile interval and p by the bootstrap."""
    a, o = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    if a.shape != o.shape:
        raise ValueError(f"paired bootstrap: {a.size} reference items, {o.size} other items")
    idx = indices(a.size, resamples, seed)
    d = o - a
    boot = d[idx].mean(axis=1)
    lo, hi = percentile_interval(boot, level)
    observed = float(d.mean())
    return Comparison(observed, lo, hi, bootstrap_p(observed, boot), "paired bootstrap", int(a.size))


# --- corpus metrics (sacrebleu) -----------------------------------------------------------------
def _sacrebleu_metric(name: str):
    from sacrebleu.metrics import BLEU, CHRF, TER

    if name == "bleu":
        return BLEU(tokenize="13a")  # as evaluate's corpus_bleu(tokenize="13a")
    if name == "chrf":
        return CHRF()  # char 6-grams, beta 2: corpus_chrf's defaults
    if name == "ter":
        return TER()
    raise ValueError(f"not a corpus metric: {name!r} (have {', '.join(CORPUS)})")


class CorpusMetric:
    """A sacrebleu corpus metric over per-item sufficient statistics (the way sacrebleu's own
    significance module resamples): a resample's score is the metric of its summed statistics."""

    def __init__(self, name: str, hypotheses: Sequence[str], references: Sequence[str]):
        if len(hypotheses) != len(references):
            raise ValueError(f"{name}: {len(hypotheses)} hypotheses, {len(references)} references")
        self.name = name
        self.metric = _sacrebleu_metric(name)
        self.stats = np.asarray(
            self.metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=float
        )

    def score_of(self, summed: np.ndarray) -> float:
        return float(self.metric._compute_score_from_stats(summed.tolist()).score)

    def score(self) -> float:
        return self.score_of(self.stats.sum(axis=0))

    def resampled(self, idx: np.ndarray) -> np.ndarray:
        return np.array([self.score_of(self.stats[row].sum(axis=0)) for row in idx])


def corpus_estimate(
    metric: CorpusMetric, idx: np.ndarray, level: float = 0.95
) -> tuple[Estimate, np.ndarray]:
    """The score, lm-eval's bootstrap stderr (sample std of resampled scores) and the percentile interval;
    also the resampled scores (to pair with another model's on the same indices)."""
    boot = metric.resampled(idx)
    lo, hi = percentile_interval(boot, level)
    se = float(boot.std(ddof=1)) if boot.size > 1 else None
    return Estimate(metric.score(), se, lo, hi, int(metric.stats.shape[0]), "bootstrap"), boot


def paired_corpus(
    reference: CorpusMetric, other: CorpusMetric, idx: np.ndarray, level: float = 0.95,
    boot_reference: np.ndarray | None = None, boot_other: np.ndarray | None = None,
) -> Comparison:
    """Paired bootstrap of a corpus metric: both systems' scores recomputed on the same resamples."""
    if reference.stats.shape[0] != other.stats.shape[0]:
        raise ValueError(f"{reference.name}: {reference.stats.shape[0]} vs {other.stats.shape[0]} items")
    br = reference.resampled(idx) if boot_reference is None else boot_reference
    bo = other.resampled(idx) if boot_other is None else boot_other
    d = bo - br
    lo, hi = percentile_interval(d, level)
    observed = other.score() - reference.score()
    return Comparison(observed, lo, hi, bootstrap_p(observed, d), "paired bootstrap (sacrebleu statistics)",
                      int(reference.stats.shape[0]))


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1; None for one value) across seeds."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_sd: no values")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else None
