"""judge family (Atlas-Chat Table 2's two "LLM judge" columns): pairwise win rate of the evaluated model.

What is judged (task key `judged`):
- chat (DarijaAlpacaEval): items are chat rows; the first user turn is the instruction, an assistant
  turn (when the set has one) the reference answer. The model answers through its chat template.
- summarization (the summarization column's "LLM Judge", §9 and App. C.5): DarijaBench-style
  summarization documents; the model summarizes with the harness's prompt ("... في ٣٠ كلمة": the
  paper's 30-word instruction) and its summary is judged against the reference title.

Against what (task key `opponent`): the row's `reference`, or a `baseline` model's answers (the
paper: Jais-13B-Chat's for DarijaAlpacaEval), made once per task by the answers phase
(evaluate/answers.py) and read from results/answers/<task>.jsonl.

Decoding (task key `decoding`): greedy by default; the paper samples both judged columns ("the
default sampling-based decoding", §9): `decoding: {sample: true}`, seeded.

The judge prompt (judge key `prompt`): `atlas-chat-fig6` and `atlas-chat-fig7` are the paper's
(App. C.3 Fig. 6, cultural appropriateness, fluency, relevance; App. C.5 Fig. 7, wordness,
conciseness, relevance, no MSA); `ours` is an AlpacaEval-style forced choice of our own wording.
Every pair is judged twice, the positions swapped (as the paper does):

- consistent verdicts count: a win when both name the model's answer, a loss when both name the
  opponent's (a forced choice has no ties);
- a verdict that follows the position instead of the answer is discarded (`n_flipped`);
- a pair with any verdict that is not a letter is discarded (`n_unparseable`).

win_rate = wins / n_judged (fraction in [0, 1]); None (null in results, "–" in the report) when no
pair could be judged: 0.0 would claim that the model lost every pair.

Judges (judge key `backend`):
- openai: any OpenAI-compatible chat endpoint through chat_client (ChatClient, fan_out); the answer must be
  the letter (case, a surrounding "(...)", "[...]", "**...**", a final "." and, for the paper's
  prompts, their own "Better Answer:" / "Better Summary:" label tolerated), anything else is
  unparseable; a request that fails after its retries counts as unparseable too (`n_errors`).
- local:  a local causal LM directory (`judge.model`); the verdict is the higher log-likelihood of
  the two letters after the same prompt as plain text, scored by loglik.LoglikScorer (never unparseable).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from atlas_forge import benchmarks
from atlas_forge.evaluate import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgePrompt:
    template: str
    fields: tuple[str, str, str]  # the template's names for: the context, answer A, answer B
    letters: tuple[str, str]  # what the judge answers for the first and the second answer
    verdict: re.Pattern
    cite: str


# ours (the project's first judge, kept for the default build): AlpacaEval-style, letters a/b
OURS = JudgePrompt(
    template=(
        "You are an impartial judge of assistant answers written in Moroccan Arabic (Darija). "
        "Which of the two answers (a) or (b) better follows the instruction below? Consider helpfulness, "
        "correctness, relevance and level of detail, and whether the answer is in natural Moroccan Darija. "
        "The order of the answers and their length must not influence you.\n\n"
        "# Instruction\n{instruction}\n\n"
        "# Answer (a)\n{a}\n\n"
        "# Answer (b)\n{b}\n\n"
        "Which answer is better, (a) or (b)? Answer with a single letter, a or b, and nothing else.\n"
        "Answer:"
    ),
    fields=("instruction", "a", "b"),
    letters=("a", "b"),
    verdict=re.compile(r"\(?\s*([ab])\s*\)?\.?", re.IGNORECASE),
    cite="ours",
)

# The paper's prompts, word for word as the v2 PDF prints them (arXiv 2409.17912v2, App. C.3 Fig. 6 and
# App. C.5 Fig. 7; read from the PDF's text, see data/paper/atlas_chat_table2.yaml). The line breaks
# follow the figures' layout as far as the PDF's text shows it; its typos are kept ("culturaly" is not in
# these two, "the criterion above" and "Dialect" are). One change: the PDF's text ends Fig. 7's MSA rule
# with "MSA.s", a stray letter that we drop.
_PAPER_VERDICT = r"(?:\**\s*better\s+(?:answer|summary)\s*\**\s*:\s*)?[\[(*\s]*([ab])[\])*\s]*\.?"
FIG6 = JudgePrompt(
    template=(
        "You are an expert evaluator tasked with judging the cultural appropriateness and relevance of two "
        "answers written in Moroccan Darija for a given instruction. Your judgment should focus solely on "
        "how well the answers reflect Moroccan cultural norms, values, and context.\n\n"
        "### Criteria:\n"
        "1. Cultural Appropriateness and Relevance: The answer should align well with Moroccan culture, "
        "norms, and societal context. Avoid any references, language, or ideas that are not relevant or "
        "appropriate for Morocco.\n"
        "2. Fluency: The answer has to be in clear and precise language in Moroccan Darija.\n"
        "3. Relevance: The answer should answer the instruction without any divergence from the "
        "instruction's goal.\n\n"
        "### Instructions: For each instruction, you will receive two answers, A and B. Evaluate them "
        "based on the criterion above and decide which one better reflects Moroccan culture. Provide only "
        "the letter A or B as the answer.\n\n"
        "### Output format: Better Answer: [A or B]\n\n"
        "### Evaluate:\n"
        "**Instruction**: [Start of the instruction] {instruction} [Text of the instruction]\n\n"
        "**Answer A**:\n[Start of Answer A]\n{answer_a}\n[Text of Answer A]\n\n"
        "**Answer B**: [Start of Answer B] {answer_b}\n[Text of Answer B] "
        'Your Response (Only "A" or "B" with no additional text):'
    ),
    fields=("instruction", "answer_a", "answer_b"),
    letters=("A", "B"),
    verdict=re.compile(_PAPER_VERDICT, re.IGNORECASE),
    cite="Atlas-Chat (arXiv 2409.17912v2) App. C.3, Fig. 6",
)
FIG7 = JudgePrompt(
    template=(
        "You are an expert evaluator tasked with judging the quality of two summaries written in Moroccan "
        "Darija for a given passage, also in Moroccan Darija. You are strict regarding any language or "
        "dialect that is not Moroccan Darija, such as Modern Standard Arabic (MSA) and English.\n\n"
        "### Criteria: Choose the better summary based on these criteria:\n"
        "1. **Wordness**: Clear and precise language in Moroccan Darija that conveys the passage's "
        "original meaning and doesn't use any other language or Dialect.\n"
        "2. **Conciseness**: Straight to the point, capturing essential information without unnecessary "
        "details.\n"
        "3. **Relevance**: Directly related to the passage without adding new information.\n\n"
        "### Instructions: For each passage, you will receive two summaries, **A** and **B**. Evaluate "
        "them based on the criteria above and decide which one is better. Provide only the letter **A** or "
        "**B** as the answer.\n\n"
        "It is strictly forbidden that a summary is written in Modern Standard Arabic (MSA). A summary "
        "should not be chosen if it is written in MSA.\n\n"
        "###Output format: Better Summary: [A or B]\n\n"
        "### Evaluate:\n"
        "**Passage**: [Start of the passage] {passage} [Text of the passage]\n\n"
        "**Summary A**: [Start of Summary A]\n{summary_a}\n[Text of Summary A]\n\n"
        "**Summary B**: [Start of Summary B] {summary_b}\n[Text of Summary B] "
        "Your Response (Only A or B with no additional text):"
    ),
    fields=("passage", "summary_a", "summary_b"),
    letters=("A", "B"),
    verdict=re.compile(_PAPER_VERDICT, re.IGNORECASE),
    cite="Atlas-Chat (arXiv 2409.17912v2) App. C.5, Fig. 7",
)
PROMPTS = {"ours": OURS, "atlas-chat-fig6": FIG6, "atlas-chat-fig7": FIG7}
JUDGE_PROMPT = OURS.template  # the default prompt (its API before the paper's prompts came)
CHOICES = ("a", "b")  # verdicts, whatever letters the prompt uses: the first answer, the second
VERDICT_KEYS = ("letter", "raw", "error", "logliks")  # what samples.jsonl keeps of each verdict


def orders(opponent: str) -> tuple[str, str]:
    """The two orders each pair is judged in: which side holds the model's answer."""
    return ("model_first", f"{opponent}_first")


ORDERS = orders("reference")


@dataclass
class JudgeConfig:
    backend: Literal["openai", "local"]
    model: str = ""  # openai: the served model name; local: a causal LM directory (e.g. models/base)
    base_url: str = "http://localhost:8000/v1"
    prompt: Literal["ours", "atlas-chat-fig6", "atlas-chat-fig7"] = "ours"
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

    @property
    def spec(self) -> JudgePrompt:
        return PROMPTS[self.prompt]


def judge_prompt(instruction: str, a: str, b: str, prompt: JudgePrompt = OURS) -> str:
    context, fa, fb = prompt.fields
    return prompt.template.format(**{context: instruction.strip(), fa: a.strip(), fb: b.strip()})


def parse_verdict(text: str | None, prompt: JudgePrompt = OURS) -> str | None:
    """'a' (the first answer) or 'b' when the answer is exactly the prompt's letter (optionally '(a)',
    'A', 'a.'; for the paper's prompts also '[A]', '**B**', 'Better Answer: A'), else None."""
    if text is None:
        return None
    m = prompt.verdict.fullmatch(text.strip())
    return m.group(1).lower() if m else None


SUMMARY_PROMPT_HEAD = "لخص هاد المقطع"


def passage_of(text: str) -> str:
    """The article of a DarijaBench summarization prompt ("لخص هاد المقطع:\n<article>"): Fig. 7's
    {passage}. A prompt of another shape is the passage as it is."""
    head, sep, rest = text.partition(":\n")
    return rest.strip() if sep and head.strip().startswith(SUMMARY_PROMPT_HEAD) else text


def judge_items(rows: list[dict], cfg) -> list[dict]:
    """The task's items in scoring order: key (the row id), prompt (what the model is asked), context
    (the judge's instruction or passage), reference (None when the set has none)."""
    items = []
    if cfg.judged == "summarization":
        fam = benchmarks.FAMILIES["darija_summarization"]
        for r in rows:
            for k, doc in enumerate(benchmarks.docs_of_row(r, fam.name)):
                items.append({"row": r, "key": r["id"] if k == 0 else f"{r['id']}#{k}",
                              "prompt": fam.text(doc), "context": passage_of(doc["messages"][0]["content"]),
                              "reference": str(fam.target(doc))})
    else:
        for r in rows:
            msgs = r["messages"]
            if not msgs or msgs[0]["role"] != "user" or not msgs[0]["content"].strip():
                raise ValueError(f"task {cfg.name}: row {r['id']} of {r['source']} does not start with a "
                                 "user instruction")
            ref = next((m["content"] for m in msgs[1:] if m["role"] == "assistant"), None)
            if ref is None and cfg.opponent == "reference":
                raise ValueError(
                    f"task {cfg.name}: row {r['id']} of {r['source']} has no reference answer (an "
                    "instruction-only set, as DarijaAlpacaEval's release): judge it against a baseline "
                    "model's answers (opponent: baseline)"
                )
            items.append({"row": r, "key": r["id"], "prompt": msgs[0]["content"],
                          "context": msgs[0]["content"], "reference": ref})
    if cfg.max_items is not None:
        items = items[: cfg.max_items]
    return items


def read_answers(path: str | Path, items: list[dict]) -> dict[str, str]:
    """The baseline's answers (answers phase) by item key; every item needs one, for the same prompt."""
    found = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                found[row["key"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{line_no}: not an answers row (key, prompt, answer)") from None
    out = {}
    for it in items:
        row = found.get(it["key"])
        if row is None:
            raise ValueError(f"{path}: no baseline answer for item {it['key']} (rebuild the answers)")
        if row["prompt"] != it["prompt"]:
            raise ValueError(f"{path}: item {it['key']}: the answer is for another prompt "
                             "(rebuild the answers)")
        out[it["key"]] = row["answer"]
    return out


def pair_prompts(context: str, generation: str, opponent: str, prompt: JudgePrompt = OURS) -> list[str]:
    """The two prompts of one pair, in orders() order: the model's answer first, then second."""
    return [
        judge_prompt(context, generation, opponent, prompt),
        judge_prompt(context, opponent, generation, prompt),
    ]


def winner(order: str, letter: str | None, opponent: str = "reference") -> str | None:
    if letter is None:
        return None
    model_letter = "a" if order == "model_first" else "b"
    return "model" if letter == model_letter else opponent


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
            else {"raw": raw, "error": None, "letter": parse_verdict(raw, self.jc.spec)}
            for _, raw, e in fan_out(self.client, prompts, self.jc.concurrency, ordered=True)
        ]
        if out and all(v["error"] for v in out):
            raise RuntimeError(f"judge endpoint {self.client.url}: every request failed ({out[0]['error']})")
        return out


class LocalJudge:
    kind = "local"

    def __init__(self, jc: JudgeConfig, batch_size: int, model=None, tokenizer=None):
        from atlas_forge.evaluate.loglik import LoglikScorer

        self.jc = jc
        if model is None:
            from atlas_forge.evaluate.lm import load_model

            if not Path(jc.model).is_dir():
                raise FileNotFoundError(f"judge.model {jc.model!r}: not a local model directory")
            model, tokenizer = load_model(jc.model, add_bos=jc.add_bos)
        self.scorer = LoglikScorer(model, tokenizer, batch_size=batch_size, add_bos=jc.add_bos)

    def verdicts(self, prompts: list[str]) -> list[dict[str, Any]]:
        from atlas_forge.evaluate.loglik import Request

        groups = [[Request(p, " " + c) for c in self.jc.spec.letters] for p in prompts]
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
def score_pairs(items: list[dict], verdicts: list[dict], opponent: str = "reference"
                ) -> tuple[dict[str, float | None], list[dict]]:
    """Scores and per-item samples from the 2 * len(items) verdicts (orders() order per item); each item
    holds the model's `generation` and the `opponent_text` it was judged against."""
    wins = judged = flipped = unparseable = errors = 0
    samples = []
    pair_orders = orders(opponent)
    for k, it in enumerate(items):
        pair = verdicts[2 * k : 2 * k + 2]
        sides = [winner(o, v["letter"], opponent) for o, v in zip(pair_orders, pair, strict=True)]
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
        sample = {
            "id": it.get("key", row["id"]),
            "source": row["source"],
            "prompt": it["prompt"],
            "reference": it.get("reference"),
        }
        if opponent != "reference":
            sample[opponent] = it["opponent_text"]
        samples.append(
            {
                **sample,
                "generation": it["generation"],
                "verdicts": [
                    {"order": o, **{key: v[key] for key in VERDICT_KEYS if key in v}, "winner": s}
                    for o, v, s in zip(pair_orders, pair, sides, strict=True)
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


def run_judge(cfg, model, tokenizer, rows: list[dict], batch_size: int, model_dir=None, answers=None,
              backend=None):
    """The judge family of families.run_task: `cfg` is its TaskConfig, `rows` the bench rows in order,
    `answers` the baseline's answers file (answers phase) when the opponent is a baseline; `backend`:
    what generates the model's answers, called as lm.generate (default lm.generate). A local judge's
    verdicts are log-likelihoods on the HF model whatever the backend."""
    from atlas_forge.evaluate.lm import encode_chat, generate

    if not rows:
        raise ValueError(f"task {cfg.name}: no bench rows")
    items = judge_items(rows, cfg)
    if cfg.opponent == "baseline":
        if not answers:
            raise ValueError(f"task {cfg.name}: opponent baseline, but no --answers file (answers phase)")
        baseline = read_answers(answers, items)
        for it in items:
            it["opponent_text"] = baseline[it["key"]]
    else:
        for it in items:
            it["opponent_text"] = it["reference"]
    prompts = [encode_chat(tokenizer, it["prompt"]) for it in items]
    until = tuple(benchmarks.DARIJABENCH_UNTIL) if cfg.judged == "summarization" else ()
    gens = (backend or generate)(model, tokenizer, prompts, cfg.new_tokens, batch_size, desc=cfg.name,
                                 until=until, sampling=cfg.decoding.sampling())
    for it, g in zip(items, gens, strict=True):
        it["generation"] = g
    judge = make_judge(cfg.judge, batch_size, model_dir, model, tokenizer)
    spec = cfg.judge.spec
    pairs = [pair_prompts(it["context"], it["generation"], it["opponent_text"], spec) for it in items]
    verdicts = judge.verdicts([p for pair in pairs for p in pair])
    scores, samples = score_pairs(items, verdicts, cfg.opponent)
    settings = {
        "num_fewshot": 0,
        "max_new_tokens": cfg.new_tokens,
        "decoding": cfg.decoding.describe(),
        "judged": cfg.judged,
        "opponent": cfg.opponent,
        "judge_backend": cfg.judge.backend,
        "judge_model": cfg.judge.model,
        "judge_prompt": cfg.judge.prompt,
        "judge_prompt_cite": spec.cite,
        "judge_orders": list(orders(cfg.opponent)),
        "n_rows": len(items),
    }
    if answers:
        from atlas_forge.store import sha256_file

        settings["baseline_model"] = cfg.baseline.model
        settings["baseline_answers_sha256"] = sha256_file(answers)
    if cfg.judge.backend == "local":
        from atlas_forge.store import model_sha256

        settings["judge_model_sha256"] = model_sha256(cfg.judge.model)
        settings["add_bos"] = cfg.judge.add_bos
    else:
        settings["judge_base_url"] = cfg.judge.base_url
        settings["judge_temperature"] = cfg.judge.temperature
    return scores, samples, settings
