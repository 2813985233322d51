"""One `Task` shape for every benchmark: documents, prompt, choices or target, few-shot source, metrics.

A task names a benchmark family (atlas_forge.benchmarks.FAMILIES, each the twin of an lm-eval 0.4.13
stock task, or `judge`), the sources whose bench rows are its documents, and optionally the sources
its few-shot examples come from. Scoring follows the harness:

- multiple_choice: context = few-shot examples ("<text> <answer>\\n\\n" each) + doc_to_text; each
  choice is scored as the continuation " <choice>" (loglik.LoglikScorer, lm-eval's token split and
  BOS rule); acc, and acc_norm (loglik / len(choice) in characters) where the harness reports it.
- generate_until: greedy decoding, left-truncated context (model length - max_new_tokens), cut at
  the harness's stop strings, then its STRIP_ANSWER filter; sacrebleu BLEU/chrF/TER, ROUGE, BERTScore.
- judge: pairwise win rate against references (judge.py).

Beside a task's scores, its trivial baselines, which depend on the items only (the report sets a
model's score against them): majority class and uniform chance for multiple choice
(multiple_choice_baselines), the source text copied as the output for generation (copy_source_baselines).

Documents keep dataset order (source order in the task, then file and line), so "first_n" few-shot
examples and lm-eval's seeded random sampler see the same sequence as the harness.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import polars as pl

from atlas_forge import benchmarks, metric_registry, records
from atlas_forge.evaluate import metrics
from atlas_forge.evaluate.bertscore import from_config
from atlas_forge.evaluate.lm import (  # noqa: F401 (generation's API, used by tests)
    encode_chat,
    encode_prompt,
    generate,
    model_max_length,
    stop_token_ids,
)
from atlas_forge.evaluate.loglik import LoglikScorer, Request
from atlas_forge.evaluate.task_config import FAMILY_NAMES, TaskConfig  # noqa: F401 (its API)

log = logging.getLogger(__name__)

@dataclass
class Doc:
    doc: dict
    row_id: str
    source: str
    group: str  # few-shot pool key: the Hub config (DarijaMMLU subject), else ""


# --- documents --------------------------------------------------------------------------------
def sorted_rows(df: pl.DataFrame, sources: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows in dataset order: the task's source order, then file and line, then table order (the
    split phase keeps its input's order), whatever order the tables were passed in."""
    rows = df.to_dicts()
    for r in rows:
        r["meta"] = records.load_meta(r["meta"])
    rank = {s: i for i, s in enumerate(sources or [])}

    def key(pos_row):
        pos, r = pos_row
        m = r["meta"]
        return (
            rank.get(r["source"], len(rank)),
            r["source"],
            str(m.get("file", "")),
            int(m.get("line", 0)),
            pos,
        )

    return [r for _, r in sorted(enumerate(rows), key=key)]


def task_docs(cfg: TaskConfig, rows: list[dict]) -> list[Doc]:
    out = []
    for r in rows:
        group = str(r["meta"].get("config") or "")
        for d in benchmarks.docs_of_row(r, cfg.family, cfg.directions):
            out.append(Doc(d, r["id"], r["source"], group))
    return out


def answer_text(fam: benchmarks.Family, doc: dict, choices: list[str] | None) -> str:
    target = fam.target(doc)
    return choices[target] if (choices is not None and isinstance(target, int)) else str(target)


def choices_of(cfg: TaskConfig, d: Doc) -> list[str]:
    if cfg.family == "darija_sentiment":
        # the harness fixes 2 or 3 letters per split (doc_to_choice_2/3); unset, a prompt offering the
        # neutral answer has 3 (true of every document of ours and of DarijaBench's 3-way splits)
        default = 3 if "-ماكينش إحساس" in d.doc["messages"][0]["content"] else 2
        return benchmarks.SENTIMENT_ALPHA[: cfg.n_choices.get(d.source, default)]
    return cfg.spec.choices(d.doc)


def contexts(cfg: TaskConfig, docs: list[Doc], pool: list[Doc]) -> list[str]:
    """The prompt of each document, with its few-shot examples drawn as the harness draws them."""
    fam, k = cfg.spec, cfg.num_fewshot
    if not k:
        return [fam.text(d.doc) for d in docs]
    rng = random.Random(cfg.fewshot_seed)
    by_group: dict[str, list[Doc]] = {}
    for p in pool if fam.fewshot_pool == "fewshot" else docs:
        by_group.setdefault(p.group, []).append(p)
    out = []
    for d in docs:
        candidates = by_group.get(d.group) or by_group.get("") or []
        if fam.sampler == "first_n":
            avail = [p for p in candidates if p.doc != d.doc] if fam.fewshot_pool == "eval" else candidates
            shots = avail[:k]
        else:
            # lm-eval's ContextSampler: sample n+1, drop the doc itself, keep n (the eval doc is passed
            # whenever fewshot and test split are equal, both unset for DarijaHellaSwag)
            shots = [p for p in rng.sample(candidates, min(k + 1, len(candidates))) if p.doc != d.doc][:k]
        if len(shots) < k:
            raise ValueError(
                f"task {cfg.name}: {len(shots)} few-shot examples for group {d.group!r}, {k} asked"
            )
        labelled = "".join(
            f"{fam.text(s.doc)} {answer_text(fam, s.doc, choices_of(cfg, s))}\n\n" for s in shots
        )
        out.append(labelled + fam.text(d.doc))
    return out


# --- multiple choice --------------------------------------------------------------------------
def gold_of(fam: benchmarks.Family, doc: dict, choices: list[str]) -> int:
    target = fam.target(doc)
    return target if isinstance(target, int) else choices.index(target)


def multiple_choice_baselines(cfg: TaskConfig, docs: list[Doc]) -> dict[str, float]:
    """The trivial baselines of a multiple-choice task, from its items alone (no model): what a reviewer
    compares an accuracy with first.

    - `majority`: the accuracy of answering each set's most frequent gold label. The label counts are
      those of the scored items themselves, so this is an oracle: the best any constant guesser could
      score on these items, an upper bound for one that learnt the label shares elsewhere. Per set
      (`majority/<source>`, `majority/<group>` beside `acc/<...>`) it is that set's top label share;
      overall, the size-weighted mean over sources (each source answered by its own majority label,
      as a model that knows each prompt format's label distribution would; at least the top share of
      one constant label over the whole task).
    - `chance`: the expected accuracy of a uniform random guess, the mean over items of 1/len(choices).
    """
    fam = cfg.spec
    items = []
    for d in docs:
        cs = choices_of(cfg, d)
        items.append((d.source, d.group, gold_of(fam, d.doc, cs), len(cs)))

    def top(sel) -> int:  # how many items of `sel` have its most frequent gold label
        counts: dict[int, int] = {}
        for _, _, gold, _ in sel:
            counts[gold] = counts.get(gold, 0) + 1
        return max(counts.values(), default=0)

    def majority(sel) -> float:  # a count over a count, as acc: equal accuracies compare equal
        return top(sel) / len(sel) if sel else 0.0

    def chance(sel) -> float:
        return metrics.mean([1.0 / n for *_, n in sel])

    by_source: dict[str, list] = {}
    for it in items:
        by_source.setdefault(it[0], []).append(it)
    out = {
        "majority": sum(top(sel) for sel in by_source.values()) / max(1, len(items)),
        "chance": chance(items),
    }
    # the same subsets as acc/<source> and acc/<group> (run_multiple_choice)
    for pos in (0, 1):
        values = sorted({it[pos] for it in items})
        if len(values) > 1:
            for v in values:
                sel = [it for it in items if it[pos] == v]
                out[f"majority/{v}"], out[f"chance/{v}"] = majority(sel), chance(sel)
    return out


def run_multiple_choice(cfg: TaskConfig, scorer: LoglikScorer, docs: list[Doc], pool: list[Doc]):
    fam = cfg.spec
    prompts = contexts(cfg, docs, pool)
    choice_lists = [choices_of(cfg, d) for d in docs]
    groups = [[Request(p, " " + c) for c in cs] for p, cs in zip(prompts, choice_lists, strict=True)]
    results = scorer.score_groups(groups, progress=True, desc=cfg.name)
    samples, acc, acc_norm = [], [], []
    for d, p, cs, res in zip(docs, prompts, choice_lists, results, strict=True):
        lls = [ll for ll, _ in res]
        gold = gold_of(fam, d.doc, cs)
        pred, pred_norm = metrics.choice_preds(lls, cs)
        acc.append(float(pred == gold))
        acc_norm.append(float(pred_norm == gold))
        samples.append(
            {
                "id": d.row_id,
                "source": d.source,
                "group": d.group,
                "prompt": p,
                "choices": cs,
                "logliks": lls,
                "is_greedy": [g for _, g in res],
                "gold": gold,
                "pred": pred,
                "pred_norm": pred_norm,
                "correct": pred == gold,
            }
        )
    scores = {"acc": metrics.mean(acc)}
    if "acc_norm" in fam.metrics:
        scores["acc_norm"] = metrics.mean(acc_norm)
    # per source and per Hub config (subject); the overall mean is the size-weighted group mean
    for key in ("source", "group"):
        values = sorted({s[key] for s in samples})
        if len(values) > 1:
            for v in values:
                sel = [s["correct"] for s in samples if s[key] == v]
                scores[f"acc/{v}"] = metrics.mean([float(c) for c in sel])
    scores.update(multiple_choice_baselines(cfg, docs))
    return scores, samples, {}


def _generation_scores(cfg: TaskConfig, preds: list[str], refs: list[str]) -> dict[str, float]:
    fam = cfg.spec
    scores: dict[str, float] = {}
    if "bleu" in fam.metrics:
        scores.update(metrics.translation_scores(preds, refs))
    if "rouge1" in fam.metrics:
        scores.update(metrics.rouge(preds, refs, tokenizer=cfg.rouge_tokenizer))
        if cfg.rouge_tokenizer != "harness":
            # the harness tokenizer's figures too (rouge1_harness, ...): what the paper's ROUGE measures
            harness = metrics.rouge(preds, refs, tokenizer="harness")
            scores.update({metric_registry.harness_rouge(m): v for m, v in harness.items()})
        scores["chrf"] = metrics.chrf(preds, refs)
    scores.update(from_config(cfg.bertscore, preds, refs))
    return scores


def metric_keys(cfg: TaskConfig) -> list[str]:
    """The headline metrics a task's result reports (per-subset `metric/<subset>` keys aside): the
    family's, the harness tokenizer's ROUGE beside ours, BERTScore when the task names its model."""
    if cfg.family == "judge":
        return [metric_registry.main_metric("judge", "", {})]
    fam = cfg.spec
    if fam.output == "multiple_choice":
        return ["acc", *(["acc_norm"] if "acc_norm" in fam.metrics else [])]
    keys = list(fam.metrics)
    if "rouge1" in fam.metrics and cfg.rouge_tokenizer != "harness":
        keys += [metric_registry.harness_rouge(m) for m in metric_registry.ROUGE]
    return keys + (["bertscore"] if cfg.bertscore is not None else [])


def _by_subset(docs: list[Doc]) -> list[tuple[str, list[int]]]:
    """The subsets a generation task also reports (per source and per direction, as the harness's
    per-split / per-direction tasks): (name, item indices) each."""
    out = []
    for key in ("source", "direction"):
        labels = [(d.source if key == "source" else d.doc.get("direction")) or "" for d in docs]
        values = sorted(set(labels))
        if len(values) > 1 or (key == "direction" and values != [""]):
            out += [(v, [i for i, lab in enumerate(labels) if lab == v]) for v in values]
    return out


def copy_source_baselines(cfg: TaskConfig, docs: list[Doc], refs: list[str]) -> dict[str, float]:
    """A generation task's trivial baseline, from its items alone (no model): every metric of the
    output that copies the source text unchanged (benchmarks.source_text: the text to translate,
    transliterate or summarize), overall and per subset: copy_source_<metric>[/<subset>]. BERTScore
    is left out (a model call per item)."""
    plain = TaskConfig(**{**cfg.__dict__, "bertscore": None})
    copies = [benchmarks.source_text(d.doc) for d in docs]

    def named(scores, suffix=""):
        return {metric_registry.copy_source(m) + suffix: v for m, v in scores.items()}

    out = named(_generation_scores(plain, copies, refs))
    for v, sel in _by_subset(docs):
        sub = _generation_scores(plain, [copies[i] for i in sel], [refs[i] for i in sel])
        out.update(named(sub, f"/{v}"))
    return out


def run_generation(cfg: TaskConfig, model, tokenizer, docs: list[Doc], batch_size: int, backend=None):
    """`backend`: the generation backend, called as lm.generate (default lm.generate; evaluate.backend:
    vllm passes vllm_backend.VLLMGenerator)."""
    fam = cfg.spec
    texts = [fam.text(d.doc) for d in docs]
    if cfg.use_chat_template:
        prompts = [encode_chat(tokenizer, t) for t in texts]
    else:
        prompts = [encode_prompt(tokenizer, t) for t in texts]
    gens = (backend or generate)(model, tokenizer, prompts, cfg.new_tokens, batch_size, desc=cfg.name,
                                 until=fam.until)
    refs = [str(fam.target(d.doc)) for d in docs]
    scores = _generation_scores(cfg, gens, refs)
    # per source and per direction, as the harness's per-split / per-direction tasks
    plain = TaskConfig(**{**cfg.__dict__, "bertscore": None})  # BERTScore: overall only (cost)
    for v, sel in _by_subset(docs):
        sub = _generation_scores(plain, [gens[i] for i in sel], [refs[i] for i in sel])
        scores.update({f"{m}/{v}": s for m, s in sub.items()})
    scores.update(copy_source_baselines(cfg, docs, refs))
    samples = [
        {
            "id": d.row_id,
            "source": d.source,
            "direction": d.doc.get("direction"),
            "prompt": t,
            "generation": g,
            "gold": r,
            "pred": g,
            "correct": g.strip() == r.strip(),
        }
        for d, t, g, r in zip(docs, texts, gens, refs, strict=True)
    ]
    return scores, samples, {"max_new_tokens": cfg.new_tokens, "decoding": "greedy"}


# --- the task ---------------------------------------------------------------------------------
def main_metric(cfg: TaskConfig, scores: dict[str, Any]) -> str:
    output = "" if cfg.family == "judge" else cfg.spec.output
    return metric_registry.main_metric(cfg.family, output, scores)


def task_rows(cfg: TaskConfig, df: pl.DataFrame) -> tuple[list[dict], dict[str, Any]]:
    """A task's bench rows in scoring order, and the settings every task's result records."""
    rows = sorted_rows(df.filter(pl.col("source").is_in(cfg.sources)), cfg.sources)
    if not rows:
        raise ValueError(f"task {cfg.name}: no bench rows in sources {cfg.sources}")
    settings: dict[str, Any] = {
        "num_fewshot": cfg.num_fewshot,
        "apply_chat_template": cfg.use_chat_template,
        "add_bos": cfg.add_bos,
        "max_items": cfg.max_items,
        "harness_task": cfg.family,
    }
    if cfg.family != "judge" and "rouge1" in cfg.spec.metrics:
        # which tokenizer the ROUGE figures use (the report names it beside them)
        settings["rouge_tokenizer"] = cfg.rouge_tokenizer
    return rows, settings


def run_task(
    cfg: TaskConfig,
    model,
    tokenizer,
    df: pl.DataFrame,
    fewshot_df: pl.DataFrame | None,
    batch_size: int,
    model_dir=None,
    backend=None,
):
    """(scores, samples, settings) for one task on one model; `backend`: the generation backend, called
    as lm.generate (default lm.generate); log-likelihood tasks always score on `model`."""
    rows, settings = task_rows(cfg, df)
    if cfg.family == "judge":
        # a task of its own module (judge.py), registered in evaluate/tasks.py: not run from here
        raise ValueError(f"task {cfg.name}: judge tasks run through atlas_forge.evaluate.tasks.run")
    docs = task_docs(cfg, rows)
    if cfg.max_items is not None:
        docs = docs[: cfg.max_items]
    if not docs:
        raise ValueError(f"task {cfg.name}: no documents (check directions and sources)")
    if cfg.spec.output == "multiple_choice":
        pool_rows = sorted_rows(fewshot_df, cfg.fewshot_sources) if fewshot_df is not None else []
        pool = task_docs(TaskConfig(**{**cfg.__dict__, "directions": None}), pool_rows) if pool_rows else []
        scorer = LoglikScorer(model, tokenizer, batch_size=batch_size, add_bos=cfg.add_bos)
        if cfg.use_chat_template:
            raise ValueError(
                f"task {cfg.name}: multiple-choice scoring runs on plain-text prompts (harness default)"
            )
        scores, samples, extra = run_multiple_choice(cfg, scorer, docs, pool)
    else:
        scores, samples, extra = run_generation(cfg, model, tokenizer, docs, batch_size, backend)
    missing = [m for m in metric_keys(cfg) if m not in scores]
    if missing:  # what the report and the Table 2 column map (tests/test_table2_columns.py) rely on
        raise RuntimeError(f"task {cfg.name}: scores lack {missing} (metric_keys and the scoring disagree)")
    return scores, samples, {**settings, **extra, "n_docs": len(docs)}
