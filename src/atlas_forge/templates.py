"""Darija instruction templates, per task and direction, each with a stable id.

Ids are written to `meta.template`, so a template's wording can be traced and a reworded template
gets a new id (never reuse an id for different wording). Placeholders: {text}, {choices},
{src} / {tgt} (language name), {to_tgt} ("to <language>"), {in_tgt} ("in <language>").
"""

from __future__ import annotations

# Darija names of the languages, with the prefixed forms Arabic spelling needs (ل + ال -> لل)
LANG_NAMES: dict[str, dict[str, str]] = {
    "ary_Arab": {"name": "الدارجة", "to": "للدارجة", "in": "بالدارجة"},
    "ary_Latn": {
        "name": "الدارجة بالحروف اللاتينية",
        "to": "للدارجة بالحروف اللاتينية",
        "in": "بالدارجة بالحروف اللاتينية",
    },
    "eng_Latn": {"name": "النجليزية", "to": "للنجليزية", "in": "بالنجليزية"},
    "fra_Latn": {"name": "الفرنساوية", "to": "للفرنساوية", "in": "بالفرنساوية"},
    "arb_Arab": {"name": "العربية الفصحى", "to": "للعربية الفصحى", "in": "بالعربية الفصحى"},
}

TRANSLATION: dict[str, str] = {
    "tr_ar_1": "ترجم ليا هاد الجملة {to_tgt}:\n{text}",
    "tr_ar_2": "شنو معنى هاد الجملة {in_tgt}؟\n{text}",
    "tr_ar_3": "عافاك ترجم هاد الكلام من {src} {to_tgt}:\n{text}",
    "tr_ar_4": "كيفاش نقولو هادشي {in_tgt}؟\n{text}",
    "tr_ar_5": "{text}\n\nترجم ليا هادشي {to_tgt}.",
}

# transliteration prompts depend on the target script, so they are keyed by direction
TRANSLITERATION: dict[str, dict[str, str]] = {
    "ary_Latn->ary_Arab": {
        "tl_arab_1": "كتب هاد الجملة بالحروف العربية:\n{text}",
        "tl_arab_2": "حول ليا هاد الكلام من الحروف اللاتينية للحروف العربية:\n{text}",
        "tl_arab_3": "عاود كتب هادشي بالحروف العربية:\n{text}",
        "tl_arab_4": "هاد الجملة مكتوبة بالحروف اللاتينية، كتبها ليا بالعربية:\n{text}",
    },
    "ary_Arab->ary_Latn": {
        "tl_latn_1": "قلب هاد الكلام للدارجة بالحروف اللاتينية:\n{text}",
        "tl_latn_2": "كتب هاد الجملة بالحروف اللاتينية:\n{text}",
        "tl_latn_3": "حول ليا هاد الكلام للحروف اللاتينية بحال لي كنكتبو فالميساجات:\n{text}",
        "tl_latn_4": "عاود كتب هادشي بالحروف اللاتينية:\n{text}",
    },
}

SENTIMENT: dict[str, str] = {
    "sent_1": "شنو هو الإحساس ديال هاد التعليق؟\n{text}\n\nختار جواب واحد:\n{choices}",
    "sent_2": "قرا هاد التعليق وقول ليا شنو الشعور لي فيه:\n{text}\n\n{choices}",
    "sent_3": "التعليق: {text}\n\nشنو هو الإحساس لي كيعبر عليه هاد التعليق؟\n{choices}",
    "sent_4": "صنف ليا هاد الجملة على حساب الإحساس ديالها:\n{text}\n\nالاختيارات:\n{choices}",
}

SUMMARIZATION: dict[str, str] = {
    "sum_1": "عطيني عنوان قصير لهاد المقال:\n{text}",
    "sum_2": "قرا هاد المقال وكتب ليه عنوان:\n{text}",
    "sum_3": "{text}\n\nشنو يكون عنوان مناسب لهاد المقال؟",
    "sum_4": "لخص ليا هاد المقال فعنوان واحد:\n{text}",
}

# Darija names of canonical sentiment labels; a label not listed here is shown as written
SENTIMENT_LABELS: dict[str, str] = {
    "positive": "إيجابي",
    "negative": "سلبي",
    "neutral": "محايد",
    "mixed": "مخلط",
    # OMCD (offensive-comment detection), asked like sentiment with its own wording (OFFENSIVE)
    "offensive": "فيه سب ولا إساءة",
    "not_offensive": "ما فيهش سب ولا إساءة",
}

# labels that make a sentiment-task row an offensive-language question
OFFENSIVE_LABELS = frozenset({"offensive", "not_offensive"})

OFFENSIVE: dict[str, str] = {
    "off_1": "واش هاد التعليق فيه سب ولا كلام خايب؟\n{text}\n\nختار جواب واحد:\n{choices}",
    "off_2": "قرا هاد التعليق وقول ليا واش فيه إساءة:\n{text}\n\n{choices}",
    "off_3": "التعليق: {text}\n\nواش هاد التعليق مسيء؟\n{choices}",
    "off_4": "صنف ليا هاد التعليق: واش فيه سب ولا لا؟\n{text}\n\nالاختيارات:\n{choices}",
}

# few-shot: the examples sit in the first user turn, before the real question
FEW_SHOT_INTRO = "ها شي أمثلة:"
FEW_SHOT_ANSWER = "الجواب: {answer}"
FEW_SHOT_OUTRO = "دابا جاوب على هادي:"


def label_name(label: str) -> str:
    return SENTIMENT_LABELS.get(label, label)


def sentiment_choices(labels: list[str], letters: list[str]) -> list[str]:
    """Lettered choices in the declared label order: ["A. إيجابي", "B. سلبي", ...].

    The assistant answer of a sentiment instruction is the full choice line ("A. إيجابي"), so
    evaluation can score either the letter (first character) or the label name.
    """
    if len(labels) > len(letters):
        raise ValueError(
            f"{len(labels)} sentiment labels but only {len(letters)} letters (sentiment_letters)"
        )
    return [f"{letter}. {label_name(label)}" for letter, label in zip(letters, labels, strict=False)]


def templates_for(task: str, direction: str | None = None, labels=None) -> dict[str, str]:
    if task == "translation":
        return TRANSLATION
    if task == "transliteration":
        return TRANSLITERATION[direction or ""]
    if task == "sentiment":
        return OFFENSIVE if labels and set(labels) & OFFENSIVE_LABELS else SENTIMENT
    if task == "summarization":
        return SUMMARIZATION
    raise ValueError(f"no instruction templates for task {task!r}")


def render(template: str, text: str, direction: str | None = None, choices: list[str] | None = None) -> str:
    fields = {"text": text, "choices": "\n".join(choices or [])}
    if direction:
        src, tgt = direction.split("->")
        fields |= {
            "src": LANG_NAMES[src]["name"],
            "tgt": LANG_NAMES[tgt]["name"],
            "to_tgt": LANG_NAMES[tgt]["to"],
            "in_tgt": LANG_NAMES[tgt]["in"],
        }
    return template.format(**fields)
