"""judge family (DarijaAlpacaEval style, Atlas-Chat Table 2): pairwise win rate against references.

Items are chat records [user instruction, assistant reference] (English AlpacaEval-style chats
translated into Darija). The evaluated model answers each instruction greedily through its chat
template; a judge then compares the model's answer with the reference, with an AlpacaEval-style
forced-choice prompt ("(a) or (b)"). Every pair is judged twice, the positions swapped:

- consistent verdicts count: a win when both name the model's answer, a loss when both name the
  reference (a forced choice has no ties);
- a verdict that follows the position instead of the answer is discarded (`n_flipped`);
- a pair with any verdict that is not exactly one letter is discarded (`n_unparseable`).

win_rate = wins / n_judged (fraction in [0, 1]); None (null in results, "–" in the report) when no
pair could be judged: 0.0 would claim that the model lost every pair.

Judges (task key `judge`):
- openai: any OpenAI-compatible chat endpoint through chat_client (ChatClient, fan_out); the answer must be
  the single letter a or b (case and a surrounding "(...)" / final "." tolerated), anything else
  is unparseable; a request that fails after its retries counts as unparseable too (`n_errors`).
- local:  a local causal LM directory (`judge.model`); the verdict is the higher log-likelihood of
  " a" vs " b" after the same prompt as plain text, scored by loglik.LoglikScorer (never unparseable).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from atlas_forge.evaluate import metrics

log = logging.getLogger(__name__)

JUDGE_PROMPT = (
    "You are an impartial judge of assistant answers written in Moroccan Arabic (Darija). "
    "Which of the two answers (a) or (b) better follows the instruction below? Consider helpfulness, "
    "correctness, relevance and level of detail, and whether the answer is in natural Moroccan Darija. "
    "The order of the answers and their length must not influence you.\n\n"
    "# Instruction\n{instruction}\n\n"
    "# Answer (a)\n{a}\n\n"
    "# Answer (b)\n{b}\n\n"
    "Which answer is better, (a) or (b)? Answer with a single letter, a or b, and nothing else.\n"
    "Answer:"
)
CHOICES = ("a", "b")
_VERDICT = re.compile(r"\(?\s*([ab])\s*\)?\.?", re.IGNORECASE)
# the two orders each pair is judged in: which side holds the model's answer
ORDERS = ("model_first", "reference_first")
VERDICT_KEYS = ("letter", "raw", "error", "logliks")  # what samples.jsonl keeps of each verdict


@dataclass
class JudgeConfig:
    backend: Literal["openai", "local"]
    model: str = ""  # openai: the served model name; local: a causal LM directory (e.g. models/base)
    base_url: str = "http://localhost:8000/v1"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    add_bos: bool = True  # local: as the loglik families

    def validate(self, section: str) -> None:
        if not self.model:
            raise ValueError(f"{section}.model: empty; name the judge model (served name or local directory)")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError(f"{section}: need concurrency >= 1, max_retries >= 0, timeout_s > 0")


@dataclass
class JudgeTaskConfig:
    name: str
    family: Literal["judge"]
    judge: JudgeConfig
    sources: list[str] = field(default_factory=list)
    max_items: int | None = None
    max_new_tokens: int = 256

    def validate(self, section: str) -> None:
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"{section}.max_items: must be >= 1")
        if self.max_new_tokens < 1:
            raise ValueError(f"{section}.max_new_tokens: must be >= 1")


def judge_prompt(instruction: str, a: str, b: str) -> str:
    return JUDGE_PROMPT.format(instruction=instruction.strip(), a=a.strip(), b=b.strip())


def parse_verdict(text: str | None) -> str | None:
    """'a' or 'b' when the answer is exactly that letter (optionally '(a)', 'A', 'a.'), else None."""
    if text is None:
        return None
    m = _VERDICT.fullmatch(text.strip())
    return m.group(1).lower() if m else None


def judge_items(rows: list[dict], cfg: JudgeTaskConfig) -> list[dict]:
    items = []
    for r in rows:
        msgs = r["messages"]
        if len(msgs) < 2 or msgs[0]["role"] != "user" or msgs[1]["role"] != "assistant":
            raise ValueError(f"task {cfg.name}: row {r['id']} is not [user instruction, assistant reference]")
        items.append({"row": r, "instruction": msgs[0]["content"], "reference": msgs[1]["content"]})
    if cfg.max_items is not None:
        items = items[: cfg.max_items]
    return items


def pair_prompts(instruction: str, generation: str, reference: str) -> list[str]:
    """The two prompts of one pair, in ORDERS order."""
    return [
        judge_prompt(instruction, generation, reference),
        judge_prompt(instruction, reference, generation),
    ]


def winner(order: str, letter: str | None) -> str | None:
    if letter is None:
        return None
    model_letter = "a" if order == "model_first" else "b"
    return "model" if letter == model_letter else "reference"


# --- judges ---------------------------------------------------------------------------------
class OpenAIJudge:
    kind = "openai"

    def __init__(self, jc: JudgeConfig):
        from atlas_forge.chat_client import make_client

        self.jc = jc
        self.client = make_client(jc, "judge")
        log.info("openai judge: %s model %s, concurrency %d, API key from $%s: %s", self.client.url, jc.model,
                 jc.concurrency, jc.api_key_env, "set" if self.client.has_key else "not set")

    def verdicts(self, prompts: list[str]) -> list[dict[str, Any]]:
        from atlas_forge.chat_client import fan_out

        # in prompt order; a request that fails (ChatError, MalformedResponse) is an error verdict
        out = [
            {"raw": None, "error": str(e), "letter": None} if e is not None
            else {"raw": raw, "error": None, "letter": parse_verdict(raw)}
            for _, raw, e in fan_out(self.client, prompts, self.jc.concurrency, ordered=True)
        ]
        if out and all(v["error"] for v in out):
            raise RuntimeError(f"judge endpoint {self.client.url}: every request failed ({out[0]['error']})")
        return out


class LocalJudge:
    kind = "local"

    def __init__(self, jc: JudgeConfig, batch_size: int, model=None, tokenizer=None):
        from atlas_forge.evaluate.loglik import LoglikScorer

        if model is None:
            from atlas_forge.evaluate.lm import load_model

            if not Path(jc.model).is_dir():
                raise FileNotFoundError(f"judge.model {jc.model!r}: not a local model directory")
            model, tokenizer = load_model(jc.model, add_bos=jc.add_bos)
        self.scorer = LoglikScorer(model, tokenizer, batch_size=batch_size, add_bos=jc.add_bos)

    def verdicts(self, prompts: list[str]) -> list[dict[str, Any]]:
        from atlas_forge.evaluate.loglik import Request

        groups = [[Request(p, " " + c) for c in CHOICES] for p in prompts]
        results = self.scorer.score_groups(groups, progress=True, desc="judge")
        out = []
        for res in results:
            lls = [ll for ll, _ in res]
            out.append({"raw": None, "error": None, "letter": CHOICES[metrics.argmax(lls)], "logliks": lls})
        return out


def make_judge(jc: JudgeConfig, batch_size: int, model_dir=None, model=None, tokenizer=None):
    if jc.backend == "openai":
        return OpenAIJudge(jc)
    same = model_dir is not None and Path(jc.model).resolve() == Path(model_dir).resolve()
    if same:  # judging with the evaluated model itself: reuse what is loaded
        return LocalJudge(jc, batch_size, model, tokenizer)
    return LocalJudge(jc, batch_size)


# --- the family -------------------------------------------------------------------------------
def score_pairs(items: list[dict], verdicts: list[dict]) -> tuple[dict[str, float | None], list[dict]]:
    """Scores and per-item samples from the 2 * len(items) verdicts (ORDERS order per item)."""
    wins = judged = flipped = unparseable = errors = 0
    samples = []
    for k, it in enumerate(items):
        pair = verdicts[2 * k : 2 * k + 2]
        sides = [winner(o, v["letter"]) for o, v in zip(ORDERS, pair, strict=True)]
        errors += sum(1 for v in pair if v.get("error"))
        if None in sides:
            outcome = "unparseable"
            unparseable += 1
        elif sides[0] != sides[1]:
            outcome = "flipped"
            flipped += 1
        else:
            judged += 1
            outcome = "win" if sides[0] == "model" else "loss"
            wins += outcome == "win"
        row = it["row"]
        samples.append(
            {
                "id": row["id"],
                "source": row["source"],
                "prompt": it["instruction"],
                "reference": it["reference"],
                "generation": it["generation"],
                "verdicts": [
                    {"order": o, **{key: v[key] for key in VERDICT_KEYS if key in v}, "winner": s}
                    for o, v, s in zip(ORDERS, pair, sides, strict=True)
                ],
                "outcome": outcome,
                "pred": outcome,
                "correct": outcome == "win",
            }
        )
    if not judged:
        log.warning("judge: no pair had two consistent verdicts; win_rate is null (nothing judged)")
    scores = {
        "win_rate": wins / judged if judged else None,
        "n_judged": judged,
        "n_flipped": flipped,
        "n_unparseable": unparseable,
        "n_errors": errors,
    }
    return scores, samples


def run_judge(cfg, model, tokenizer, rows: list[dict], batch_size: int, model_dir=None):
    """The judge family of families.run_task: `cfg` is its TaskConfig, `rows` the bench rows in order."""
    from atlas_forge.evaluate.lm import encode_chat, generate

    if not rows:
        raise ValueError(f"task {cfg.name}: no bench rows")
    items = judge_items(rows, cfg)
    prompts = [encode_chat(tokenizer, it["instruction"]) for it in items]
    gens = generate(model, tokenizer, prompts, cfg.new_tokens, batch_size, desc=cfg.name)
    for it, g in zip(items, gens, strict=True):
        it["generation"] = g
    judge = make_judge(cfg.judge, batch_size, model_dir, model, tokenizer)
    pairs = [pair_prompts(it["instruction"], it["generation"], it["reference"]) for it in items]
    verdicts = judge.verdicts([p for pair in pairs for p in pair])
    scores, samples = score_pairs(items, verdicts)
    settings = {
        "num_fewshot": 0,
        "max_new_tokens": cfg.new_tokens,
        "decoding": "greedy",
        "judge_backend": cfg.judge.backend,
        "judge_model": cfg.judge.model,
        "judge_orders": list(ORDERS),
        "n_rows": len(items),
    }
    if cfg.judge.backend == "local":
        from atlas_forge.store import model_sha256

        settings["judge_model_sha256"] = model_sha256(cfg.judge.model)
        settings["add_bos"] = cfg.judge.add_bos
    else:
        settings["judge_base_url"] = cfg.judge.base_url
        settings["judge_temperature"] = cfg.judge.temperature
    return scores, samples, settings
