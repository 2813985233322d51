"""Metrics: accuracy (lm-eval definitions), sacrebleu BLEU/chrF/TER, ROUGE that keeps Arabic.

Scales: accuracies are fractions in [0, 1] (as lm-eval reports them); BLEU, chrF, TER and ROUGE
are on 0-100 (as sacrebleu and the Atlas-Chat paper report them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+", re.UNICODE)
# Arabic diacritics (harakat) and tatweel: removed before ROUGE so vocalised text still matches
_ARABIC_MARKS = re.compile(r"[\u064B-\u065F\u0670\u0640]")


def argmax(values: Sequence[float]) -> int:
    """First index of the maximum (numpy.argmax semantics, as lm-eval)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def choice_preds(logliks: Sequence[float], choices: Sequence[str]) -> tuple[int, int]:
    """(pred, pred_norm) as lm-eval: acc_norm divides each loglik by len(choice) in characters
    (the choice text, without the target delimiter)."""
    pred = argmax(logliks)
    pred_norm = argmax([ll / float(len(c)) for ll, c in zip(logliks, choices, strict=True)])
    return pred, pred_norm


def mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else 0.0


class ArabicAwareTokenizer:
    """Tokenizer for rouge_score: lowercase, strip Arabic diacritics, keep every Unicode word.

    rouge_score's default tokenizer keeps only [a-z0-9], so Arabic text scores 0.0 silently.
    """

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(_ARABIC_MARKS.sub("", text.lower()))


def rouge(
    predictions: Sequence[str], references: Sequence[str], tokenizer: str = "harness"
) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F-measure, mean over items, on 0-100.

    tokenizer "harness": rouge_score's default tokenizer and no stemmer, as the harness's
    `evaluate.load("rouge")`; it keeps only [a-z0-9], so Arabic-script text scores 0.0 (that is what the
    harness computes). "arabic": ArabicAwareTokenizer (ours), which keeps every Unicode word.
    The harness aggregates with an unseeded bootstrap (BootstrapAggregator, the median of resampled
    means); we report the plain mean, the quantity that bootstrap estimates, so scores are reproducible.
    """
    from rouge_score import rouge_scorer

    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    tok = ArabicAwareTokenizer() if tokenizer == "arabic" else None
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=False, tokenizer=tok)
    totals = dict.fromkeys(types, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)
        for k in totals:
            totals[k] += scores[k].fmeasure
    n = max(1, len(predictions))
    return {k: 100.0 * v / n for k, v in totals.items()}


def translation_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU (13a), chrF (char 6-grams, beta 2) and TER from sacrebleu."""
    import sacrebleu

    refs = [list(references)]
    preds = list(predictions)
    return {
        "bleu": float(sacrebleu.corpus_bleu(preds, refs, tokenize="13a").score),
        "chrf": float(sacrebleu.corpus_chrf(preds, refs).score),
        "ter": float(sacrebleu.corpus_ter(preds, refs).score),
    }


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)
