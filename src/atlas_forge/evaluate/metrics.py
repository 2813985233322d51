"""Metrics: accuracy (lm-eval definitions), sacrebleu BLEU/chrF/TER, ROUGE that keeps Arabic.

Scales: accuracies are fractions in [0, 1] (as lm-eval reports them); BLEU, chrF, TER and ROUGE
are on 0-100 (as sacrebleu and the Atlas-Chat paper report them).
"""

from __future__ import annotations

from collections.abc import Sequence

from atlas_forge.rouge import ArabicAwareTokenizer, rouge_items

__all__ = ["ArabicAwareTokenizer", "argmax", "choice_preds", "chrf", "mean", "rouge", "translation_scores"]


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
    items = rouge_items(predictions, references, tokenizer)
    n = max(1, len(predictions))
    totals = {k: 0.0 for k in items}
    for k, values in items.items():
        for v in values:
            totals[k] += v
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
