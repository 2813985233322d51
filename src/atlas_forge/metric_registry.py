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


# in the order the report lists a column's metrics when the paper gives none
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("acc", "acc", stored="fraction"),
        Metric("acc_norm", "acc_norm", stored="fraction"),
        Metric("chrf", "chrF"),
        Metric("bleu", "BLEU"),
        Metric("ter", "TER", higher_is_better=False),
        Metric("rouge1", "ROUGE-1"),
        Metric("rouge2", "ROUGE-2"),
        Metric("rougeL", "ROUGE-L"),
        Metric("rougeLsum", "ROUGE-Lsum"),
        Metric("bertscore", "BERTScore"),
        Metric("win_rate", "win rate", stored="fraction"),
    )
}


def metric(name: str) -> Metric:
    """A reported metric's entry; a per-subset or per-direction name (acc/mac, chrf/dr_en) is its
    base metric's, an unregistered one (counts, stderr) is shown as stored, higher is better."""
    base = name.split("/")[0]
    found = METRICS.get(base)
    return found if found else Metric(name, name)


def main_metric(family: str, output: str, scores) -> str:
    """The one figure a task is ranked and plotted by: the paper's headline for its family."""
    if family == "judge":
        return "win_rate"
    if output == "multiple_choice":
        # HellaSwag's endings differ in length: lm-eval's length-normalised accuracy is its headline
        return "acc_norm" if family == "darijahellaswag" else "acc"
    return "rougeL" if "rougeL" in scores else "chrf"
