"""BERTScore as lm-eval's DarijaBench tasks compute it, on the 0-100 scale.

The reference is lm-eval 0.4.13 `tasks/darija_bench/darija_summarization/utils.py` (`darijabert`)
and the translation twin: `evaluate.load("bertscore").compute(predictions, references,
model_type=<model>, num_layers=12)`, then the plain mean of the per-item F1. Hugging Face
`evaluate`'s bertscore metric is a thin wrapper over the `bert-score` package (BERTScorer with
idf off, no baseline rescaling, the slow tokenizer, references wrapped as one-element lists,
batch size 64), so we call `bert-score` directly with the same arguments: `evaluate.load` would
fetch the metric script from the Hub at run time, which fails offline.

The harness reports the mean F1 in [0, 1]; we return 100 x that mean, so BERTScore sits on the
same 0-100 scale as BLEU, chrF and ROUGE in results and in Table 2 of the paper (e.g. 44.71).

Which model: the task config names it (`bertscore: {model: SI2M-Lab/DarijaBERT, num_layers: 12}`
for summarization, as the harness); there is no default model, so BERTScore is off when the
config gives none.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# evaluate's bertscore metric defaults, which the harness does not override
HARNESS_BATCH_SIZE = 64


@dataclass
class BertScoreConfig:
    """Task config key `bertscore`; absent or null means no BERTScore for the task."""

    model: str  # Hub id (e.g. SI2M-Lab/DarijaBERT) or a local model directory
    num_layers: int | None = None  # layers kept (harness: 12); None: all layers of the model
    revision: str | None = None  # Hub revision to pin; ignored for a local directory
    batch_size: int = HARNESS_BATCH_SIZE

    def validate(self, section: str) -> None:
        if not self.model:
            raise ValueError(f"{section}.model: empty; name the BERTScore model or drop the key")
        if self.num_layers is not None and self.num_layers < 1:
            raise ValueError(f"{section}.num_layers: must be >= 1")
        if self.batch_size < 1:
            raise ValueError(f"{section}.batch_size: must be >= 1")


def _resolve(model: str, revision: str | None) -> str:
    """A local directory as is; a Hub id with a revision as its pinned local snapshot.

    BERTScorer passes `model_type` straight to from_pretrained and has no revision argument, so a
    pinned revision is fetched (or found in the cache) first and handed over as a path.
    """
    if Path(model).is_dir() or revision is None:
        return model
    from huggingface_hub import snapshot_download

    return snapshot_download(model, revision=revision)


def _num_layers(model_path: str) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(model_path).num_hidden_layers)


@functools.lru_cache(maxsize=2)
def _scorer(model_path: str, num_layers: int, device: str | None):
    # cached: base and fine-tuned models of one run are scored with the same BERT model
    from bert_score import BERTScorer

    return BERTScorer(
        model_type=model_path,
        num_layers=num_layers,
        idf=False,
        rescale_with_baseline=False,
        use_fast_tokenizer=False,  # evaluate's default, so the harness's tokenization
        device=device,  # None: cuda when available, else cpu (as the harness)
    )


def bertscore(
    predictions: list[str],
    references: list[str],
    model: str,
    num_layers: int | None = None,
    batch_size: int = HARNESS_BATCH_SIZE,
    *,
    revision: str | None = None,
    device: str | None = None,
) -> float:
    """Mean BERTScore F1 of (prediction, reference) pairs, x100 (0-100 scale)."""
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"bertscore: {len(predictions)} predictions vs {len(references)} references")
    if not predictions:
        raise ValueError("bertscore: no predictions")
    path = _resolve(model, revision)
    layers = num_layers if num_layers is not None else _num_layers(path)
    scorer = _scorer(path, layers, device)
    # one-element reference lists, as evaluate's metric passes them (max over one reference)
    _, _, f1 = scorer.score(predictions, [[r] for r in references], batch_size=batch_size)
    # mean taken in Python floats over the float32 values, exactly as the harness's Average()
    values = f1.tolist()
    return 100.0 * (sum(values) / len(values))


def from_config(cfg: BertScoreConfig | None, predictions, references) -> dict[str, float]:
    """{"bertscore": value} when the task names a model, else {} (BERTScore off)."""
    if cfg is None:
        return {}
    value = bertscore(
        predictions, references, cfg.model, cfg.num_layers, cfg.batch_size, revision=cfg.revision
    )
    log.info("bertscore (%s, %s layers): %.2f", cfg.model, cfg.num_layers or "all", value)
    return {"bertscore": value}
