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

Documents keep dataset order (source order in the task, then file and line), so "first_n" few-shot
examples and lm-eval's seeded random sampler see the same sequence as the harness.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from atlas_forge import benchmarks, records
from atlas_forge.evaluate import metrics, resume
from atlas_forge.evaluate.bertscore import BertScoreConfig, from_config
from atlas_forge.evaluate.loglik import LoglikScorer, Request, tok_encode

log = logging.getLogger(__name__)

FAMILY_NAMES = (*benchmarks.FAMILIES, "judge")


@dataclass
class TaskConfig:
    name: str
    family: str
    sources: list[str] = field(default_factory=list)
    fewshot_sources: list[str] = field(default_factory=list)  # e.g. DarijaMMLU's dev split
    num_fewshot: int = 0
    column: str | None = None  # Table 2 column of the report
    max_items: int | None = None  # the first N documents (lm-eval --limit)
    max_new_tokens: int | None = None  # None: the harness's value for the family
    directions: list[str] | None = None  # DarijaBench codes (dr_en, ar_dr, ...); None: all
    n_choices: dict[str, int] = field(default_factory=dict)  # sentiment letters per source (default 3)
    add_bos: bool = True  # lm-eval's add_bos_token=True, as used for Gemma
    chat_template: bool | None = None  # None: the family's default (lm-eval --apply_chat_template)
    fewshot_seed: int = 1234  # lm-eval's fewshot_random_seed default
    rouge_tokenizer: Literal["harness", "arabic"] = "harness"
    bertscore: BertScoreConfig | None = None
    judge: Any = None  # judge.JudgeConfig for family judge

    def validate(self, section: str) -> None:
        if self.family not in FAMILY_NAMES:
            raise ValueError(f"{section}.family: {self.family!r} is not one of {', '.join(FAMILY_NAMES)}")
        if self.num_fewshot < 0:
            raise ValueError(f"{section}.num_fewshot: must be >= 0")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"{section}.max_items: must be >= 1")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"{section}.max_new_tokens: must be >= 1")
        if not self.sources:
            raise ValueError(f"{section}.sources: name at least one source")
        if self.family == "judge":
            from atlas_forge.evaluate.judge import JudgeConfig

            if self.judge is None:
                raise ValueError(f"{section}.judge: the judge family needs a judge")
            if isinstance(self.judge, dict):
                from atlas_forge import config

                self.judge = config.parse(JudgeConfig, self.judge, f"{section}.judge")
            return
        fam = benchmarks.FAMILIES[self.family]
        if self.num_fewshot and fam.sampler is None:
            raise ValueError(f"{section}.num_fewshot: the harness's {self.family} is zero-shot only")
        if self.num_fewshot and fam.fewshot_pool == "fewshot" and not self.fewshot_sources:
            raise ValueError(
                f"{section}.fewshot_sources: {self.num_fewshot}-shot {self.family} draws its examples from "
                "separate sources (the harness: DarijaMMLU's dev split, DarijaHellaSwag's train split)"
            )
        if self.num_fewshot and self.use_chat_template:
            raise ValueError(f"{section}: few-shot prompts through the chat template are not supported")
        for src, n in self.n_choices.items():
            if n not in (2, 3):
                raise ValueError(f"{section}.n_choices.{src}: the harness has 2 or 3 sentiment letters")

    @property
    def spec(self) -> benchmarks.Family:
        return benchmarks.FAMILIES[self.family]

    @property
    def use_chat_template(self) -> bool:
        if self.family == "judge":
            return True
        return self.spec.chat_template if self.chat_template is None else bool(self.chat_template)

    @property
    def new_tokens(self) -> int:
        return self.max_new_tokens or (256 if self.family == "judge" else self.spec.max_new_tokens)


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
def run_multiple_choice(cfg: TaskConfig, scorer: LoglikScorer, docs: list[Doc], pool: list[Doc]):
    fam = cfg.spec
    prompts = contexts(cfg, docs, pool)
    choice_lists = [choices_of(cfg, d) for d in docs]
    groups = [[Request(p, " " + c) for c in cs] for p, cs in zip(prompts, choice_lists, strict=True)]
    results = scorer.score_groups(groups, progress=True, desc=cfg.name)
    samples, acc, acc_norm = [], [], []
    for d, p, cs, res in zip(docs, prompts, choice_lists, results, strict=True):
        lls = [ll for ll, _ in res]
        target = fam.target(d.doc)
        gold = target if isinstance(target, int) else cs.index(target)
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
    return scores, samples, {}


# --- generation -------------------------------------------------------------------------------
def encode_chat(tokenizer, instruction: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
    )
    return encode_prompt(tokenizer, text)


def encode_prompt(tokenizer, text: str) -> list[int]:
    """lm-eval's rule: no special tokens when the text already starts with BOS, else the tokenizer's
    own (loaded with add_bos_token as the harness loads it)."""
    return tok_encode(tokenizer, text, add_bos=True)


def stop_token_ids(tokenizer, model) -> list[int]:
    ids = []
    for tok in ("<end_of_turn>", tokenizer.eos_token):
        if tok is not None:
            tid = tokenizer.convert_tokens_to_ids(tok)
            if tid is not None and tid != tokenizer.unk_token_id and tid not in ids:
                ids.append(tid)
    cfg_eos = getattr(model.generation_config, "eos_token_id", None)
    for tid in cfg_eos if isinstance(cfg_eos, list) else [cfg_eos]:
        if tid is not None and tid not in ids:
            ids.append(tid)
    return ids


def model_max_length(model, tokenizer) -> int:
    """lm-eval's resolve_max_length: the config's positions, then the tokenizer's, then 2048."""
    for cfg in (getattr(model.config, "text_config", None), model.config):
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            v = getattr(cfg, attr, None) if cfg is not None else None
            if v:
                return int(v)
    m = getattr(tokenizer, "model_max_length", None)
    return int(m) if m and m < 10**9 else 2048


def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    desc: str = "generate",
    until: tuple[str, ...] = (),
) -> list[str]:
    """Greedy decoding, longest prompts first, left padded with a correct attention mask.

    As the harness: the context keeps its last (model length - max_new_tokens) tokens, generation
    stops at the model's end tokens, the text is cut at the first stop string, then stripped.
    """
    import torch
    from tqdm import tqdm

    stops = stop_token_ids(tokenizer, model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    keep = max(1, model_max_length(model, tokenizer) - max_new_tokens)
    prompts = [p[-keep:] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    bar = tqdm(total=len(prompts), desc=desc, unit="item", mininterval=1.0)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for k, i in enumerate(idx):
            p = prompts[i]
            ids[k, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[k, width - len(p) :] = 1

        def one_batch(idx=idx, ids=ids, mask=mask, width=width):
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stops,
                    pad_token_id=pad,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
            texts = []
            for k in range(len(idx)):
                new = out[k, width:].tolist()
                cut = next((j for j, t in enumerate(new) if t in stops), len(new))
                text = tokenizer.decode(new[:cut], skip_special_tokens=True)
                for term in until:
                    text = text.split(term)[0]
                texts.append(text.strip())
            return texts

        # an interrupted evaluation's finished batches are reused as they are (evaluate/resume.py)
        batch = {"prompts": [prompts[i] for i in idx], "max_new_tokens": max_new_tokens, "stops": stops,
                 "pad": pad, "until": list(until)}
        for i, text in zip(idx, resume.cached("generate", model, batch, one_batch), strict=True):
            outputs[i] = text
        bar.update(len(idx))
    bar.close()
    return outputs


def _generation_scores(cfg: TaskConfig, preds: list[str], refs: list[str]) -> dict[str, float]:
    fam = cfg.spec
    scores: dict[str, float] = {}
    if "bleu" in fam.metrics:
        scores.update(metrics.translation_scores(preds, refs))
    if "rouge1" in fam.metrics:
        scores.update(metrics.rouge(preds, refs, tokenizer=cfg.rouge_tokenizer))
        scores["chrf"] = metrics.chrf(preds, refs)
    scores.update(from_config(cfg.bertscore, preds, refs))
    return scores


def run_generation(cfg: TaskConfig, model, tokenizer, docs: list[Doc], batch_size: int):
    fam = cfg.spec
    texts = [fam.text(d.doc) for d in docs]
    if cfg.use_chat_template:
        prompts = [encode_chat(tokenizer, t) for t in texts]
    else:
        prompts = [encode_prompt(tokenizer, t) for t in texts]
    gens = generate(model, tokenizer, prompts, cfg.new_tokens, batch_size, desc=cfg.name, until=fam.until)
    refs = [str(fam.target(d.doc)) for d in docs]
    scores = _generation_scores(cfg, gens, refs)
    # per source and per direction, as the harness's per-split / per-direction tasks
    for key in ("source", "direction"):
        labels = [(d.source if key == "source" else d.doc.get("direction")) or "" for d in docs]
        values = sorted(set(labels))
        if len(values) > 1 or (key == "direction" and values != [""]):
            plain = TaskConfig(**{**cfg.__dict__, "bertscore": None})  # BERTScore: overall only (cost)
            for v in values:
                sel = [i for i, lab in enumerate(labels) if lab == v]
                sub = _generation_scores(plain, [gens[i] for i in sel], [refs[i] for i in sel])
                scores.update({f"{m}/{v}": s for m, s in sub.items()})
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
    if cfg.family == "judge":
        return "win_rate"
    fam = cfg.spec
    if fam.output == "multiple_choice":
        return "acc_norm" if cfg.family == "darijahellaswag" else "acc"
    return "rougeL" if "rougeL" in scores else "chrf"


def run_task(
    cfg: TaskConfig,
    model,
    tokenizer,
    df: pl.DataFrame,
    fewshot_df: pl.DataFrame | None,
    batch_size: int,
    model_dir=None,
):
    """(scores, samples, settings) for one task on one model."""
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
    if cfg.family == "judge":
        from atlas_forge.evaluate.judge import run_judge

        scores, samples, extra = run_judge(cfg, model, tokenizer, rows, batch_size, model_dir=model_dir)
        return scores, samples, {**settings, **extra}
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
        scores, samples, extra = run_generation(cfg, model, tokenizer, docs, batch_size)
    return scores, samples, {**settings, **extra, "n_docs": len(docs)}
