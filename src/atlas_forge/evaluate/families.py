"""Task families. Each takes the task config, model, tokenizer and bench rows (canonical records)
and returns (scores, per-item samples, settings).

- mcq_letters: the paper's harness format (DarijaMMLU) as plain text, no chat template; the
  choices are the letters " A", " B", ...; metric acc. Few-shot: the first `num_fewshot` items of the
  bench set in id order form the dev set; they are shown as solved examples and not scored.
- mcq_endings: the question is the context and each choice the continuation (DarijaHellaSwag
  style); metrics acc and acc_norm (loglik / len(choice) in characters, as lm-eval).
- sentiment: lettered choices over the item's declared labels, named in Darija; metric acc, and
  acc/<source> per source when the task has several (acc overall = mean weighted by size).
- generation: greedy decoding through the chat template, batched with left padding, stopping at
  <end_of_turn>/eos. Translation/transliteration: BLEU, chrF, TER per direction and overall;
  summarization: ROUGE-1/2/L (Arabic-aware tokenizer) and chrF.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from atlas_forge import records
from atlas_forge.evaluate import metrics
from atlas_forge.evaluate.loglik import LoglikScorer, Request

log = logging.getLogger(__name__)

FAMILIES = ("mcq_letters", "mcq_endings", "sentiment", "generation")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

MCQ_HEADER = "هادا سؤال متعدد الخيارات (مع الجواب ديالو) على {subject}"
MCQ_HEADER_NO_SUBJECT = "هادا سؤال متعدد الخيارات (مع الجواب ديالو)"
ANSWER = "الجواب:"
DEFAULT_LABELS = ["positive", "negative", "neutral"]
SENTIMENT_HEADER = "شنو هو الإحساس ديال هاد النص؟"
SENTIMENT_LABELS = {"positive": "إيجابي", "negative": "سلبي", "neutral": "محايد", "mixed": "مختلط"}

# instruction per (source language, target language); {text} is the source text
TRANSLATE_PROMPTS = {
    ("ary_Arab", "eng_Latn"): "ترجم ليا هاد الجملة للنجليزية:\n{text}",
    ("ary_Latn", "eng_Latn"): "ترجم ليا هاد الجملة للنجليزية:\n{text}",
    ("eng_Latn", "ary_Arab"): "ترجم ليا هاد الجملة للدارجة:\n{text}",
    ("ary_Latn", "ary_Arab"): "كتب ليا هاد الجملة بالحروف العربية:\n{text}",
    ("ary_Arab", "ary_Latn"): "كتب ليا هاد الجملة بالحروف اللاتينية:\n{text}",
}
DEFAULT_DIRECTIONS = [
    ("ary_Arab", "eng_Latn"),
    ("eng_Latn", "ary_Arab"),
    ("ary_Latn", "ary_Arab"),
    ("ary_Arab", "ary_Latn"),
]
SUMMARY_PROMPT = "عطيني عنوان قصير لهاد المقال:\n{text}"


@dataclass
class TaskConfig:
    name: str
    family: Literal["mcq_letters", "mcq_endings", "sentiment", "generation"]
    sources: list[str] = field(default_factory=list)
    num_fewshot: int = 0
    max_items: int | None = None
    max_new_tokens: int = 64
    directions: list[str] | None = None  # e.g. ["ary_Arab-eng_Latn"]; default: all present pairs
    add_bos: bool = True

    def validate(self, section: str) -> None:
        if self.num_fewshot < 0:
            raise ValueError(f"{section}.num_fewshot: must be >= 0")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"{section}.max_items: must be >= 1")
        for d in self.directions or []:
            if len(d.split("-")) != 2:
                raise ValueError(f"{section}.directions: {d!r} is not 'src-tgt'")


def sorted_rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows in id order (ties by source): deterministic whatever order the files came in."""
    rows = df.sort(["id", "source"]).to_dicts()
    for r in rows:
        r["meta"] = records.load_meta(r["meta"])
    return rows


def split_dev(rows: list[dict], cfg: TaskConfig) -> tuple[list[dict], list[dict]]:
    k = cfg.num_fewshot
    if k and len(rows) <= k:
        raise ValueError(f"task {cfg.name}: {len(rows)} bench items, not enough for {k} few-shot examples")
    dev, test = rows[:k], rows[k:]
    if cfg.max_items is not None:
        test = test[: cfg.max_items]
    return dev, test


def user_text(row: dict) -> str:
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


# --- log-likelihood families ----------------------------------------------------------------
def lettered(question: str, options: list[str]) -> str:
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} choices: at most {len(LETTERS)} supported")
    lines = [question] + [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)]
    return "\n".join(lines) + "\n" + ANSWER


def mcq_prompt(row: dict, dev: list[dict]) -> str:
    subject = (row["meta"].get("subject") or "").strip()
    header = MCQ_HEADER.format(subject=subject) if subject else MCQ_HEADER_NO_SUBJECT
    shots = [lettered(user_text(d), d["meta"]["choices"]) + " " + LETTERS[d["meta"]["answer"]] for d in dev]
    return "\n\n".join([header, *shots, lettered(user_text(row), row["meta"]["choices"])])


def sentiment_prompt(row: dict, labels: list[str], dev: list[dict]) -> str:
    names = [SENTIMENT_LABELS.get(lab, lab) for lab in labels]
    shots = []
    for d in dev:
        d_labels = d["meta"].get("labels") or labels
        d_names = [SENTIMENT_LABELS.get(lab, lab) for lab in d_labels]
        shots.append(lettered(user_text(d), d_names) + " " + LETTERS[d_labels.index(d["meta"]["label"])])
    return "\n\n".join([SENTIMENT_HEADER, *shots, lettered(user_text(row), names)])


def _score_letters(scorer: LoglikScorer, prompts: list[str], n_choices: list[int], desc: str):
    groups = [
        [Request(p, " " + LETTERS[j]) for j in range(n)] for p, n in zip(prompts, n_choices, strict=True)
    ]
    return scorer.score_groups(groups, progress=True, desc=desc)


def _acc_by_source(test: list[dict], correct: list[bool]) -> dict[str, float]:
    scores = {"acc": metrics.mean([float(c) for c in correct])}
    sources = sorted({r["source"] for r in test})
    if len(sources) > 1:
        for s in sources:
            scores[f"acc/{s}"] = metrics.mean(
                [float(c) for r, c in zip(test, correct, strict=True) if r["source"] == s]
            )
    return scores


def run_mcq_letters(cfg: TaskConfig, scorer: LoglikScorer, rows: list[dict]):
    dev, test = split_dev(rows, cfg)
    prompts = [mcq_prompt(r, dev) for r in test]
    results = _score_letters(scorer, prompts, [len(r["meta"]["choices"]) for r in test], cfg.name)
    samples, correct = [], []
    for r, p, res in zip(test, prompts, results, strict=True):
        lls = [ll for ll, _ in res]
        pred, gold = metrics.argmax(lls), int(r["meta"]["answer"])
        correct.append(pred == gold)
        samples.append(
            {
                "id": r["id"],
                "source": r["source"],
                "prompt": p,
                "choices": [f" {LETTERS[j]}" for j in range(len(lls))],
                "logliks": lls,
                "gold": gold,
                "pred": pred,
                "correct": pred == gold,
            }
        )
    return _acc_by_source(test, correct), samples, {"num_fewshot": cfg.num_fewshot, "n_dev": len(dev)}


def run_sentiment(cfg: TaskConfig, scorer: LoglikScorer, rows: list[dict]):
    dev, test = split_dev(rows, cfg)
    label_sets = [r["meta"].get("labels") or DEFAULT_LABELS for r in test]
    prompts = [sentiment_prompt(r, labs, dev) for r, labs in zip(test, label_sets, strict=True)]
    results = _score_letters(scorer, prompts, [len(labs) for labs in label_sets], cfg.name)
    samples, correct = [], []
    for r, labs, p, res in zip(test, label_sets, prompts, results, strict=True):
        lls = [ll for ll, _ in res]
        pred, gold = metrics.argmax(lls), labs.index(r["meta"]["label"])
        correct.append(pred == gold)
        samples.append(
            {
                "id": r["id"],
                "source": r["source"],
                "prompt": p,
                "choices": labs,
                "logliks": lls,
                "gold": gold,
                "pred": pred,
                "correct": pred == gold,
            }
        )
    return _acc_by_source(test, correct), samples, {"num_fewshot": cfg.num_fewshot, "n_dev": len(dev)}


def run_mcq_endings(cfg: TaskConfig, scorer: LoglikScorer, rows: list[dict]):
    if cfg.num_fewshot:
        raise ValueError(f"task {cfg.name}: mcq_endings is zero-shot only")
    _, test = split_dev(rows, cfg)
    groups = [[Request(user_text(r), " " + c) for c in r["meta"]["choices"]] for r in test]
    results = scorer.score_groups(groups, progress=True, desc=cfg.name)
    samples, acc, acc_norm = [], [], []
    for r, res in zip(test, results, strict=True):
        lls = [ll for ll, _ in res]
        choices = r["meta"]["choices"]
        pred, pred_norm = metrics.choice_preds(lls, choices)
        gold = int(r["meta"]["answer"])
        acc.append(float(pred == gold))
        acc_norm.append(float(pred_norm == gold))
        samples.append(
            {
                "id": r["id"],
                "source": r["source"],
                "prompt": user_text(r),
                "choices": choices,
                "logliks": lls,
                "gold": gold,
                "pred": pred,
                "pred_norm": pred_norm,
                "correct": pred == gold,
            }
        )
    return {"acc": metrics.mean(acc), "acc_norm": metrics.mean(acc_norm)}, samples, {"num_fewshot": 0}


# --- generation -----------------------------------------------------------------------------
def generation_items(cfg: TaskConfig, rows: list[dict]) -> list[dict]:
    """One item per (row, direction) for translation, one per row for summarization."""
    wanted = [tuple(d.split("-")) for d in cfg.directions] if cfg.directions else DEFAULT_DIRECTIONS
    items = []
    for r in rows:
        texts = r["meta"].get("texts")
        if texts:
            for src, tgt in wanted:
                if texts.get(src) and texts.get(tgt):
                    template = TRANSLATE_PROMPTS.get((src, tgt))
                    if template is None:
                        raise ValueError(f"task {cfg.name}: no prompt for direction {src}-{tgt}")
                    kind = "transliteration" if src.split("_")[0] == tgt.split("_")[0] else "translation"
                    items.append(
                        {
                            "row": r,
                            "kind": kind,
                            "direction": f"{src}-{tgt}",
                            "instruction": template.format(text=texts[src]),
                            "reference": texts[tgt],
                        }
                    )
        else:
            users = [m["content"] for m in r["messages"] if m["role"] == "user"]
            answers = [m["content"] for m in r["messages"] if m["role"] == "assistant"]
            if not users or not answers:
                raise ValueError(
                    f"task {cfg.name}: row {r['id']} has neither meta.texts nor a reference answer"
                )
            items.append(
                {
                    "row": r,
                    "kind": "summarization",
                    "direction": None,
                    "instruction": SUMMARY_PROMPT.format(text=users[0]),
                    "reference": answers[-1],
                }
            )
    return items


def stop_token_ids(tokenizer, model) -> list[int]:
    ids = []
    eos = model.generation_config.eos_token_id if model.generation_config is not None else None
    for v in ([eos] if isinstance(eos, int) else list(eos or [])) + [tokenizer.eos_token_id]:
        if v is not None and v not in ids:
            ids.append(v)
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    if isinstance(eot, int) and eot != tokenizer.unk_token_id and eot not in ids:
        ids.append(eot)
    return ids


def encode_chat(tokenizer, instruction: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
    )
    bos = tokenizer.bos_token
    # exactly one BOS: the template may emit it already
    return tokenizer.encode(text, add_special_tokens=not (bos and text.startswith(bos)))


def generate(
    model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int, desc: str = "generate"
) -> list[str]:
    """Greedy decoding, longest prompts first, left padded with a correct attention mask."""
    import torch
    from tqdm import tqdm

    stops = stop_token_ids(tokenizer, model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
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
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=pad,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        for k, i in enumerate(idx):
            new = out[k, width:].tolist()
            cut = next((j for j, t in enumerate(new) if t in stops), len(new))
            outputs[i] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
        bar.update(len(idx))
    bar.close()
    return outputs


def run_generation(cfg: TaskConfig, model, tokenizer, rows: list[dict], batch_size: int):
    if cfg.num_fewshot:
        raise ValueError(f"task {cfg.name}: generation tasks are zero-shot")
    _, test = split_dev(rows, cfg)
    items = generation_items(cfg, test)
    if not items:
        raise ValueError(f"task {cfg.name}: no generation items (check directions and meta.texts)")
    prompts = [encode_chat(tokenizer, it["instruction"]) for it in items]
    gens = generate(model, tokenizer, prompts, cfg.max_new_tokens, batch_size, desc=cfg.name)
    kinds = sorted({it["kind"] for it in items})
    scores: dict[str, float] = {}
    mixed = len({"summarization"} & set(kinds)) and len(kinds) > 1
    tr = [(it, g) for it, g in zip(items, gens, strict=True) if it["kind"] != "summarization"]
    if tr:
        scores.update(metrics.translation_scores([g for _, g in tr], [it["reference"] for it, _ in tr]))
        for d in sorted({it["direction"] for it, _ in tr}):
            sel = [(it, g) for it, g in tr if it["direction"] == d]
            for k, v in metrics.translation_scores(
                [g for _, g in sel], [it["reference"] for it, _ in sel]
            ).items():
                scores[f"{k}/{d}"] = v
    sm = [(it, g) for it, g in zip(items, gens, strict=True) if it["kind"] == "summarization"]
    if sm:
        preds, refs = [g for _, g in sm], [it["reference"] for it, _ in sm]
        prefix = "summarization/" if mixed else ""
        for k, v in {**metrics.rouge(preds, refs), "chrf": metrics.chrf(preds, refs)}.items():
            scores[prefix + k] = v
    samples = []
    for it, p, g in zip(items, prompts, gens, strict=True):
        samples.append(
            {
                "id": it["row"]["id"],
                "source": it["row"]["source"],
                "kind": it["kind"],
                "direction": it["direction"],
                "prompt": tokenizer.decode(p),
                "generation": g,
                "gold": it["reference"],
                "pred": g,
                "correct": g.strip() == it["reference"].strip(),
            }
        )
    settings = {
        "num_fewshot": 0,
        "max_new_tokens": cfg.max_new_tokens,
        "decoding": "greedy",
        "directions": sorted({it["direction"] for it in items if it["direction"]}),
        "n_rows": len(test),
    }
    return scores, samples, settings


def main_metric(family: str, scores: dict[str, float]) -> str:
    if family == "mcq_endings":
        return "acc_norm"
    if family in ("mcq_letters", "sentiment"):
        return "acc"
    for key in ("bleu", "rougeL", "summarization/rougeL", "chrf"):
        if key in scores:
            return key
    return sorted(scores)[0]


def run_family(cfg: TaskConfig, model, tokenizer, df: pl.DataFrame, batch_size: int):
    rows = sorted_rows(df)
    if not rows:
        raise ValueError(f"task {cfg.name}: no bench rows")
    if cfg.family == "generation":
        return run_generation(cfg, model, tokenizer, rows, batch_size)
    scorer = LoglikScorer(model, tokenizer, batch_size=batch_size, add_bos=cfg.add_bos)
    fn = {"mcq_letters": run_mcq_letters, "sentiment": run_sentiment, "mcq_endings": run_mcq_endings}[
        cfg.family
    ]
    scores, samples, settings = fn(cfg, scorer, rows)
    settings["add_bos"] = cfg.add_bos
    return scores, samples, settings
