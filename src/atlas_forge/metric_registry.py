"""The metric registry: for every metric a task reports, its label as the paper prints it, its
direction, how it is stored and shown, and which metric is a task's main one. Evaluate writes the
main metric into each result from here; the report reads labels, directions and scales from here.

Scales: accuracies and win rates are stored as fractions in [0, 1] (as lm-eval reports them) and shown
in percent, as the paper prints them; BLEU, chrF, TER, ROUGE and BERTScore are stored on 0-100
already (as sacrebleu and the paper report them). TER is the one lower-is-better metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool = True
    stored: Literal["fraction", "points"] = "points"  # fraction: in [0, 1], shown x100

    @property
    def scale(self) -> float:
        """What a stored value is multiplied by when shown."""
        return 100.0 if self.stored == "fraction" else 1.0


# ROUGE as the harness names it, and the suffix of the harness tokenizer's figures reported beside
# ours: a task that scores ROUGE with `rouge_tokenizer: arabic` also reports rouge1_harness, ...
ROUGE = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
HARNESS_SUFFIX = "_harness"

# in the order the report lists a column's metrics when the paper gives none
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("acc", "acc", stored="fraction"),
        Metric("acc_norm", "acc_norm", stored="fraction"),
        Metric("chrf", "chrF"),
        Metric("bleu", "BLEU"),
        Metric("ter", "TER", higher_is_better=False),
        *(Metric(m, label) for m, label in ROUGE.items()),
        # the harness tokenizer's ROUGE beside ours, when a task scores with `rouge_tokenizer: arabic`
        # (evaluate: families._generation_scores): the quantity the paper's ROUGE figures are
        *(Metric(m + HARNESS_SUFFIX, f"{label} (harness tokenizer)") for m, label in ROUGE.items()),
        Metric("bertscore", "BERTScore"),
        Metric("win_rate", "win rate", stored="fraction"),
        # trivial baselines of a multiple-choice task (evaluate: families.multiple_choice_baselines):
        # they depend on the items only, not on the model
        Metric("majority", "majority class", stored="fraction"),
        Metric("chance", "uniform chance", stored="fraction"),
    )
}

# a generation task's trivial baseline: each metric of the source text copied unchanged as the output
# (copy_source_chrf, copy_source_bleu/dr_en, ...: evaluate: families.copy_source_baselines)
COPY_SOURCE = "copy_source_"
BASELINES = ("majority", "chance")


def copy_source(name: str) -> str:
    """The key of the copy-the-source baseline of a metric (chrf -> copy_source_chrf)."""
    return COPY_SOURCE + name


def is_baseline(name: str) -> bool:
    """A trivial baseline's key (majority, chance/mac, copy_source_chrf/dr_en), not a model's score."""
    base = name.split("/")[0]
    return base in BASELINES or base.startswith(COPY_SOURCE)


def metric(name: str) -> Metric:
    """A reported metric's entry; a per-subset or per-direction name (acc/mac, chrf/dr_en) is its
    base metric's, an unregistered one (counts, stderr) is shown as stored, higher is better."""
    base = name.split("/")[0]
    found = METRICS.get(base)
    if found is None and base.startswith(COPY_SOURCE) and base[len(COPY_SOURCE):] in METRICS:
        of = METRICS[base[len(COPY_SOURCE):]]  # the copied metric's direction and scale
        return Metric(base, f"copy source {of.label}", of.higher_is_better, of.stored)
    return found if found else Metric(name, name)


def harness_rouge(name: str) -> str:
    """The key of the harness tokenizer's figure for a ROUGE metric (rouge1 -> rouge1_harness)."""
    if name not in ROUGE:
        raise KeyError(f"{name!r} is not a ROUGE metric ({', '.join(ROUGE)})")
    return f"{name}{HARNESS_SUFFIX}"


def main_metric(family: str, output: str, scores) -> str:
    """The one figure a task is ranked and plotted by: the paper's headline for its family."""
    if family == "judge":
        return "win_rate"
    if output == "multiple_choice":
        # HellaSwag's endings differ in length: lm-eval's length-normalised accuracy is its headline
        return "acc_norm" if family == "darijahellaswag" else "acc"
    return "rougeL" if "rougeL" in scores else "chrf"
