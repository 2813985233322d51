"""atlas_forge.stats against the libraries that have the test: scipy (binomtest, bootstrap), sacrebleu
(corpus scores, its paired bootstrap) and lm-eval (mean_stderr)."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from scipy import stats as sps

from atlas_forge import stats

REFS = ["the cat sat on the mat", "a dog ran in the park today", "it is raining hard again",
        "we like green tea a lot", "my brother works in the city", "open the window please"] * 4
WORSE = ["the cat sat on a mat", "dog ran park", "it rains", "we like tea", "brother city", "window"] * 4


def test_mean_stderr_is_lm_evals():
    from lm_eval.api.metrics import mean_stderr

    x = np.random.default_rng(1).random(37).tolist()
    assert stats.mean_stderr(x) == pytest.approx(mean_stderr(x), rel=1e-12)
    assert stats.mean_stderr([1.0]) is None
    est = stats.mean_estimate([1, 0, 1, 1], level=0.95)
    # mean 0.75; squared deviations 3 * 0.0625 + 0.5625 = 0.75; sample variance 0.25; sd 0.5; / sqrt(4)
    assert est.stderr == pytest.approx(0.25)
    assert est.ci_high - est.score == pytest.approx(1.959964 * 0.25, rel=1e-6)


def test_mcnemar_hand_made_case():
    # reference right only on 1 item, other right only on 6: binomtest(1, 7) two-sided = 2 * 8/128
    ref = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    oth = [1, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    b, c, p = stats.mcnemar(ref, oth)
    assert (b, c) == (1, 6)
    assert p == pytest.approx(16 / 128)
    assert p == pytest.approx(sps.binomtest(1, 7, 0.5).pvalue)
    assert stats.mcnemar([1, 0, 1], [1, 0, 1]) == (0, 0, 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_mcnemar_random_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    ref = rng.random(200) < 0.5
    oth = np.where(rng.random(200) < 0.3, ~ref, ref)
    b, c, p = stats.mcnemar(ref, oth)
    assert b == int(np.sum(ref & ~oth)) and c == int(np.sum(~ref & oth))
    assert p == pytest.approx(sps.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue, rel=1e-12)


def test_holm_by_hand():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("seed", range(3))
def test_paired_bootstrap_interval_agrees_with_scipy(seed):
    rng = np.random.default_rng(100 + seed)
    a = rng.normal(0.5, 0.2, 300)
    o = a + rng.normal(0.05, 0.1, 300)  # paired: correlated with a
    ours = stats.paired_bootstrap_mean(a, o, resamples=4000, seed=seed)
    theirs = sps.bootstrap((a, o), lambda x, y, axis=-1: np.mean(y - x, axis=axis), paired=True,
                           n_resamples=4000, method="percentile", confidence_level=0.95,
                           random_state=np.random.default_rng(seed + 7)).confidence_interval
    width = theirs.high - theirs.low
    assert ours.diff == pytest.approx(float(np.mean(o - a)))
    # Monte-Carlo tolerance: the endpoints of two 4000-resample percentile intervals agree to ~5% of width
    assert abs(ours.ci_low - theirs.low) < 0.08 * width
    assert abs(ours.ci_high - theirs.high) < 0.08 * width
    assert ours.p < 0.01  # a clear shift: significant


def test_paired_bootstrap_no_difference():
    a = np.random.default_rng(3).random(50)
    same = stats.paired_bootstrap_mean(a, a, resamples=500, seed=0)
    assert same.diff == 0 and same.p == 1.0 and same.ci_low == same.ci_high == 0
    noise = stats.paired_bootstrap_mean(a, a[::-1], resamples=2000, seed=0)
    assert noise.ci_low < noise.diff < noise.ci_high


@pytest.mark.parametrize("name, fn", [("bleu", sacrebleu.corpus_bleu), ("chrf", sacrebleu.corpus_chrf),
                                      ("ter", sacrebleu.corpus_ter)])
def test_corpus_score_is_sacrebleus(name, fn):
    assert stats.CorpusMetric(name, WORSE, REFS).score() == pytest.approx(fn(WORSE, [REFS]).score, rel=1e-9)


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_paired_corpus_copying_the_references_is_significant(name):
    idx = stats.indices(len(REFS), 1000, 0)
    worse, copy = stats.CorpusMetric(name, WORSE, REFS), stats.CorpusMetric(name, REFS, REFS)
    cmp = stats.paired_corpus(worse, copy, idx)
    assert cmp.diff > 0 and cmp.ci_low > 0
    assert cmp.p < 0.01
    # sacrebleu's own paired bootstrap agrees that the difference is significant
    from sacrebleu.significance import PairedTest

    metric = stats._sacrebleu_metric(name)
    _, res = PairedTest([("worse", WORSE), ("copy", REFS)], {name: metric}, [REFS], test_type="bs",
                        n_samples=1000)()
    (key,) = [k for k in res if k != "System"]
    assert res[key][1].p_value < 0.01
    assert res[key][1].score - res[key][0].score == pytest.approx(cmp.diff, rel=1e-9)


@pytest.mark.parametrize("name", ["bleu", "chrf", "ter"])
def test_paired_corpus_equal_systems_not_significant(name):
    idx = stats.indices(len(REFS), 500, 0)
    a, b = stats.CorpusMetric(name, WORSE, REFS), stats.CorpusMetric(name, list(WORSE), REFS)
    cmp = stats.paired_corpus(a, b, idx)
    assert cmp.diff == 0 and cmp.p == 1.0


def test_corpus_estimate_stderr_and_interval():
    idx = stats.indices(len(REFS), 800, 0)
    est, boot = stats.corpus_estimate(stats.CorpusMetric("chrf", WORSE, REFS), idx)
    assert est.stderr == pytest.approx(float(np.std(boot, ddof=1)))
    assert est.ci_low < est.score < est.ci_high
    assert est.method == "bootstrap" and est.n == len(REFS)


def test_mean_sd_against_numpy():
    x = [0.31, 0.35, 0.29]
    m, sd = stats.mean_sd(x)
    assert m == pytest.approx(np.mean(x)) and sd == pytest.approx(np.std(x, ddof=1))
    assert stats.mean_sd([0.4]) == (0.4, None)
