"""ROUGE per item, shared by evaluate (the task's mean) and report (paired tests over items).

Two tokenizers: "harness" is rouge_score's default tokenizer and no stemmer, as the harness's
`evaluate.load("rouge")`; it keeps only [a-z0-9], so Arabic-script text scores 0.0 (that is what the
harness computes). "arabic" is ArabicAwareTokenizer (ours), which keeps every Unicode word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_WORD = re.compile(r"\w+", re.UNICODE)
# Arabic diacritics (harakat) and tatweel: removed before ROUGE so vocalised text still matches
_ARABIC_MARKS = re.compile(r"[\u064B-\u065F\u0670\u0640]")


class ArabicAwareTokenizer:
    """Tokenizer for rouge_score: lowercase, strip Arabic diacritics, keep every Unicode word.

    rouge_score's default tokenizer keeps only [a-z0-9], so Arabic text scores 0.0 silently.
    """

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(_ARABIC_MARKS.sub("", text.lower()))


def rouge_items(
    predictions: Sequence[str], references: Sequence[str], tokenizer: str = "harness"
) -> dict[str, list[float]]:
    """ROUGE-1/2/L/Lsum F-measure of each (prediction, reference) pair, in [0, 1], item order."""
    from rouge_score import rouge_scorer

    if tokenizer not in ("harness", "arabic"):
        raise ValueError(f"unknown ROUGE tokenizer {tokenizer!r} (harness, arabic)")
    tok = ArabicAwareTokenizer() if tokenizer == "arabic" else None
    scorer = rouge_scorer.RougeScorer(list(TYPES), use_stemmer=False, tokenizer=tok)
    out: dict[str, list[float]] = {k: [] for k in TYPES}
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)
        for k in TYPES:
            out[k].append(scores[k].fmeasure)
    return out
