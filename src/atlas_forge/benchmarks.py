"""The paper's benchmarks as lm-evaluation-harness 0.4.13 defines them, without lm-eval or torch.

One `Family` per Table 2 benchmark: how a document (a row in the Hub dataset's schema) becomes a
prompt, its choices and its target; where few-shot examples come from and how they are drawn; what
is generated and how it is scored. Each function mirrors the stock task it names
(`lm_eval/tasks/<dir>/…`); tests/test_benchmark_parity.py proves the prompts equal lm-eval's task
objects and the scores equal lm-eval's on the pipeline's own model.

Both the evaluate phase (scoring) and the instruct phase (training rows in the scored format,
issue 11) build prompts here, so what is trained and what is scored cannot drift apart.

Native rows (our own held-out corpora) are turned into documents of the same schema by
`doc_of_row`, so one code path scores the Hub sets and ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# --- DarijaMMLU: lm_eval/tasks/darijammlu/utils.py ------------------------------------------------
MMLU_PROMPT = "هادا سؤال متعدد الخيارات (مع الجواب ديالو) على {}\n\n{}\n{}\nالجواب:"
MMLU_ALPHA = ["A.", "B.", "C.", "D.", "E."]


def mmlu_text(doc: dict) -> str:
    subject = doc["subject_darija"]
    context = doc.get("context") or ""
    question = doc["question"] if context == "" else f"{context}\n\n{doc['question']}"
    options = [f"{MMLU_ALPHA[i]} {opt}" for i, opt in enumerate(doc["choices"])]
    return MMLU_PROMPT.format(subject, question, "\n".join(options))


def mmlu_choices(doc: dict) -> list[str]:
    return [MMLU_ALPHA[i][0] for i in range(len(doc["choices"]))]


# --- DarijaHellaSwag: lm_eval/tasks/darijahellaswag/{darijahellaswag.yaml,utils.py} ---------------
def hellaswag_text(doc: dict) -> str:
    return doc["activity_label"] + ": " + doc["ctx"]


# --- Belebele ary_Arab: lm_eval/tasks/belebele/_default_template_yaml --------------------------------
def belebele_text(doc: dict) -> str:
    return (
        f"P: {doc['flores_passage']}\nQ: {doc['question'].strip()}\nA: {doc['mc_answer1']}\n"
        f"B: {doc['mc_answer2']}\nC: {doc['mc_answer3']}\nD: {doc['mc_answer4']}\nAnswer:"
    )


# --- DarijaBench sentiment: lm_eval/tasks/darija_bench/darija_sentiment/utils.py ------------------
SENTIMENT_ALPHA = ["A", "B", "C"]
SENTIMENT_WORDS = {"ايجابي": 1, "سلبي": 0, "ماكينش إحساس": 2}
SENTIMENT_INSTRUCTION = "\nThe answer should be strictly one letter of the following: A, B, C."


def sentiment_text(doc: dict) -> str:
    return (
        doc["messages"][0]["content"]
        .replace("-سلبي", "A. سلبي")
        .replace("-ايجابي", "B. ايجابي")
        .replace("-ماكينش إحساس", "C. ماكينش إحساس" + SENTIMENT_INSTRUCTION)
    )


def sentiment_target(doc: dict) -> str:
    return SENTIMENT_ALPHA[SENTIMENT_WORDS[doc["messages"][1]["content"]]]


# --- DarijaBench generation: darija_{translation,transliteration,summarization}/utils.py ----------
def messages_text(doc: dict) -> str:
    return doc["messages"][0]["content"]


def messages_target(doc: dict) -> str:
    return doc["messages"][1]["content"]


def summarization_text(doc: dict) -> str:
    return doc["messages"][0]["content"].replace("لخص هاد المقطع", "لخص هاد المقطع في ٣٠ كلمة")


# the harness's stop strings for every DarijaBench generation task (generation_kwargs.until)
DARIJABENCH_UNTIL = ["<end_of_turn>", "<eos>", "</s>", "<|end_of_text|>", "<|eot_id|>", "<|endoftext|>"]


@dataclass(frozen=True)
class Family:
    """One benchmark as the harness defines it."""

    name: str
    output: Literal["multiple_choice", "generate_until"]
    text: Callable[[dict], str]
    target: Callable[[dict], Any]  # index into choices, a choice string, or the reference text
    choices: Callable[[dict], list[str]] | None = None
    # few-shot: "first_n" (canonical order) or "random" (lm-eval's default sampler, seeded);
    # pool "fewshot" = the task's fewshot_sources, "eval" = the scored docs minus the doc itself
    sampler: Literal["first_n", "random"] | None = None
    fewshot_pool: Literal["fewshot", "eval"] = "fewshot"
    metrics: tuple[str, ...] = ("acc",)
    until: tuple[str, ...] = ()
    max_new_tokens: int = 256  # lm-eval's max_gen_toks when the task sets none
    chat_template: bool = False  # our default mode for the task (the harness's --apply_chat_template)


def _int_target(key: str) -> Callable[[dict], int]:
    return lambda doc: int(doc[key])


def _darijabench_generation(name: str) -> Family:
    """A DarijaBench translation-style task: prompt and reference from `messages`, BLEU/chrF/TER."""
    return Family(
        name, "generate_until", messages_text, messages_target, metrics=("bleu", "chrf", "ter"),
        until=tuple(DARIJABENCH_UNTIL), chat_template=True,
    )


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("darijammlu", "multiple_choice", mmlu_text, _int_target("answer"), mmlu_choices, "first_n"),
        Family(
            "darijahellaswag",
            "multiple_choice",
            hellaswag_text,
            _int_target("label"),
            lambda doc: list(doc["endings"]),
            "random",
            metrics=("acc", "acc_norm"),
        ),
        Family(
            "belebele",
            "multiple_choice",
            belebele_text,
            lambda doc: ["1", "2", "3", "4"].index(str(doc["correct_answer_num"])),
            lambda doc: ["A", "B", "C", "D"],
            "first_n",
            "eval",
            metrics=("acc", "acc_norm"),
        ),
        # choices per source (2 or 3 letters) come from the task config, as the harness's per-split YAMLs
        Family("darija_sentiment", "multiple_choice", sentiment_text, sentiment_target),
        _darijabench_generation("darija_translation"),
        _darijabench_generation("darija_transliteration"),
        Family(
            "darija_summarization",
            "generate_until",
            summarization_text,
            messages_target,
            metrics=("rouge1", "rouge2", "rougeL", "rougeLsum", "chrf"),
            until=tuple(DARIJABENCH_UNTIL),
            max_new_tokens=128,
            chat_template=True,
        ),
    )
}


# --- native rows -> documents in the Hub schema ---------------------------------------------------
# DarijaBench codes for directions (darija_translation/utils.py) and our language codes
DIRECTION_CODES = {"ary_Arab": "dr", "eng_Latn": "en", "fra_Latn": "fr", "arb_Arab": "msa"}
TRANSLATION_PROMPTS = {  # darija_translation/utils.py prompt_templates, verbatim
    "fr_dr": "ترجم من الفرنساوية للدارجة:\n{0}",
    "dr_fr": "ترجم من الدارجة للفرنساوية:\n{0}",
    "en_dr": "ترجم من الإنجليزية للدارجة:\n{0}",
    "dr_en": "ترجم من الدارجة للإنجليزية:\n{0}",
    "msa_dr": "ترجم من الفصحى للدارجة:\n{0}",
    "dr_msa": "ترجم من الدارجة للفصحى:\n{0}",
}
# DarijaBench transliteration: "ar" is Arabizi (Darija in Latin script), "dr" Darija in Arabic script
# (the harness scores dr_ar with DarijaBERT-arabizi, ar_dr with DarijaBERT). The harness does not ship
# these prompts: the wording below is ours, in the shape of the translation prompts.
TRANSLITERATION_PROMPTS = {
    "ar_dr": "حول من العربيزي للحروف العربية:\n{0}",
    "dr_ar": "حول من الحروف العربية للعربيزي:\n{0}",
}
TRANSLITERATION_LANGS = {"ar_dr": ("ary_Latn", "ary_Arab"), "dr_ar": ("ary_Arab", "ary_Latn")}
# sentiment: the DarijaBench shape ("-سلبي" lines that the harness turns into lettered choices); the
# question wording is ours. Canonical labels -> the harness's answer words.
SENTIMENT_QUESTION = "شنو هو الإحساس ديال هاد الجملة؟\n{0}\nالاختيارات:\n{1}"
SENTIMENT_LABEL_WORDS = {"negative": "سلبي", "positive": "ايجابي", "neutral": "ماكينش إحساس"}
SUMMARIZATION_PROMPT = "لخص هاد المقطع:\n{0}"  # ours; the harness adds "في ٣٠ كلمة" itself


def translation_direction(src: str, tgt: str) -> str | None:
    """DarijaBench direction code for a language pair, or None when the harness has none."""
    code = f"{DIRECTION_CODES.get(src, '?')}_{DIRECTION_CODES.get(tgt, '?')}"
    if code in TRANSLATION_PROMPTS:
        return code
    for code, pair in TRANSLITERATION_LANGS.items():
        if pair == (src, tgt):
            return code
    return None


def sentiment_doc(text: str, label: str, labels: list[str]) -> dict:
    """A DarijaBench sentiment document for a text with canonical labels (negative/positive/neutral)."""
    unknown = [lab for lab in labels if lab not in SENTIMENT_LABEL_WORDS]
    if unknown:
        raise ValueError(
            f"sentiment label {unknown[0]!r} has no DarijaBench answer word "
            f"(known: {', '.join(SENTIMENT_LABEL_WORDS)})"
        )
    # the harness's letter order: A = negative, B = positive, C = neutral
    ordered = [lab for lab in SENTIMENT_LABEL_WORDS if lab in labels]
    options = "\n".join(f"-{SENTIMENT_LABEL_WORDS[lab]}" for lab in ordered)
    return {
        "messages": [
            {"role": "user", "content": SENTIMENT_QUESTION.format(text, options)},
            {"role": "assistant", "content": SENTIMENT_LABEL_WORDS[label]},
        ],
        "direction": None,
    }


def generation_doc(prompt: str, reference: str, direction: str | None) -> dict:
    return {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reference}],
        "direction": direction,
    }


def source_text(doc: dict) -> str:
    """The text a generation document asks to translate, transliterate or summarize: its user turn less
    the instruction (ours and the harness's prompts put the instruction on the first line, the text
    after it). What the copy-the-source baseline outputs."""
    user = doc["messages"][0]["content"]
    for template in (*TRANSLATION_PROMPTS.values(), *TRANSLITERATION_PROMPTS.values(), SUMMARIZATION_PROMPT):
        head = template.split("{0}")[0]
        if user.startswith(head):
            return user[len(head):]
    _, sep, rest = user.partition("\n")  # a Hub document of another wording: the first line is the ask
    return rest if sep else user


def docs_of_row(row: dict, family: str, directions: list[str] | None = None) -> list[dict]:
    """The documents one canonical bench row gives for a family (a translation row gives one per
    direction). Rows ingested with `task: benchmark` carry their Hub document in meta.doc."""
    meta = row["meta"] if isinstance(row["meta"], dict) else json.loads(row["meta"] or "{}")
    if "doc" in meta:
        doc = meta["doc"]
        if directions and doc.get("direction") not in directions:
            return []
        return [doc]
    user = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
    answer = next((m["content"] for m in row["messages"] if m["role"] == "assistant"), None)
    if family == "darijammlu":
        subject = meta.get("subject") or ""
        return [
            {
                "question": user,
                "context": meta.get("context", ""),
                "choices": list(meta["choices"]),
                "answer": int(meta["answer"]),
                "subject": subject,
                "subject_darija": subject,
            }
        ]
    if family == "darija_sentiment":
        return [sentiment_doc(user, meta["label"], list(meta["labels"]))]
    if family == "darija_summarization":
        if answer is None:
            raise ValueError(f"row {row['id']}: a summarization row needs the reference as assistant turn")
        return [generation_doc(SUMMARIZATION_PROMPT.format(user), answer, None)]
    if family in ("darija_translation", "darija_transliteration"):
        texts = meta.get("texts") or {}
        prompts = TRANSLATION_PROMPTS if family == "darija_translation" else TRANSLITERATION_PROMPTS
        out = []
        for code in prompts:
            if directions and code not in directions:
                continue
            src, tgt = _langs_of(code)
            if texts.get(src) and texts.get(tgt):
                out.append(generation_doc(prompts[code].format(texts[src]), texts[tgt], code))
        return out
    raise ValueError(
        f"row {row['id']} (task {row.get('task')}): no documents for benchmark family {family!r}"
    )


def _langs_of(code: str) -> tuple[str, str]:
    if code in TRANSLITERATION_LANGS:
        return TRANSLITERATION_LANGS[code]
    by_code = {v: k for k, v in DIRECTION_CODES.items()}
    a, b = code.split("_")
    return by_code[a], by_code[b]
