"""Generation prompts (what the LLM is asked) and the Darija user turns the rows are built with.

Paper (arXiv 2409.17912): MW-QA (§5.1, templates in App. A.5) asks an LLM for four kinds of
questions on a Moroccan Wikipedia page: open QA, MMLU-like multiple choice, extractive QA and
Belebele-like multiple-choice reading comprehension. MSM-MG (§5.2, App. A.6) asks for a continuation,
a reply, a summary, a rephrasing, an explanation or a safe response to a Darija tweet or comment.

The texts below are ours, written in the spirit of App. A.5/A.6 (the appendix's exact wording is not
reproduced here): each asks for one JSON object, so the answer can be checked for structure before a
row is made. A prompt is looked up by (type, version); params name the version per type
(`generate.prompt_versions`), and the version is part of the cache key. Changing a prompt's text means
adding a new version here and naming it in params, so only that type's documents are asked again.
"""

from __future__ import annotations

# the JSON fields each type's answer must have (all non-empty strings, `choices` a list of strings)
FIELDS: dict[str, tuple[str, ...]] = {
    "open_qa": ("question", "answer"),
    "mcq": ("question", "choices", "answer"),
    "extractive": ("question", "answer"),
    "mc_extractive": ("question", "choices", "answer"),
    "continuation": ("answer",),
    "reply": ("answer",),
    "summarization": ("answer",),
    "rephrasing": ("answer",),
    "explanation": ("answer",),
    "safe_response": ("answer",),
}
DOCUMENT_TYPES = ("open_qa", "mcq", "extractive", "mc_extractive")  # MW-QA, §5.1
POST_TYPES = ("continuation", "reply", "summarization", "rephrasing", "explanation", "safe_response")  # §5.2

_COMMON = (
    "Write everything in Moroccan Arabic (Darija) in Arabic script, as a Moroccan would naturally say "
    "it; never Modern Standard Arabic, never Latin script. Answer with one JSON object and nothing else."
)

PROMPTS: dict[tuple[str, str], str] = {
    ("open_qa", "a5-v1"): (
        "Here is a Moroccan Wikipedia passage.\n\n[[Passage]]\n{document}\n\n"
        "Write one question that a curious reader could ask and that the passage answers, phrased so it "
        "makes sense without the passage, and its complete answer. "
        + _COMMON
        + ' Format: {{"question": "...", "answer": "..."}}'
    ),
    ("mcq", "a5-v1"): (
        "Here is a Moroccan Wikipedia passage.\n\n[[Passage]]\n{document}\n\n"
        "Write one multiple-choice question in the style of MMLU about a fact of the passage, phrased so "
        "it makes sense without the passage, with exactly {n_choices} distinct choices of which exactly "
        "one is right. "
        + _COMMON
        + ' Format: {{"question": "...", "choices": ["...", ...], "answer": "<letter of the right choice>"}}'
    ),
    ("extractive", "a5-v1"): (
        "Here is a Moroccan Wikipedia passage.\n\n[[Passage]]\n{document}\n\n"
        "Write one question whose answer is a short span copied exactly, character for character, from "
        "the passage, and that span. " + _COMMON + ' Format: {{"question": "...", "answer": "..."}}'
    ),
    ("mc_extractive", "a5-v1"): (
        "Here is a Moroccan Wikipedia passage.\n\n[[Passage]]\n{document}\n\n"
        "Write one reading-comprehension question in the style of Belebele that needs the passage, with "
        "exactly {n_choices} distinct choices of which exactly one is right. "
        + _COMMON
        + ' Format: {{"question": "...", "choices": ["...", ...], "answer": "<letter of the right choice>"}}'
    ),
    ("continuation", "a6-v1"): (
        "Here is a Moroccan social-media post.\n\n[[Post]]\n{document}\n\n"
        "Continue it naturally with a few sentences, in the same voice. "
        + _COMMON
        + ' Format: {{"answer": "..."}}'
    ),
    ("reply", "a6-v1"): (
        "Here is a Moroccan social-media post.\n\n[[Post]]\n{document}\n\n"
        "Write a friendly, relevant reply to it. " + _COMMON + ' Format: {{"answer": "..."}}'
    ),
    ("summarization", "a6-v1"): (
        "Here is a Moroccan social-media post.\n\n[[Post]]\n{document}\n\n"
        "Summarize what it says in one short sentence. " + _COMMON + ' Format: {{"answer": "..."}}'
    ),
    ("rephrasing", "a6-v1"): (
        "Here is a Moroccan social-media post.\n\n[[Post]]\n{document}\n\n"
        "Rephrase it with other words, keeping its meaning, politely. "
        + _COMMON
        + ' Format: {{"answer": "..."}}'
    ),
    ("explanation", "a6-v1"): (
        "Here is a Moroccan social-media post.\n\n[[Post]]\n{document}\n\n"
        "Explain what the author means and the context a reader needs. "
        + _COMMON
        + ' Format: {{"answer": "..."}}'
    ),
    ("safe_response", "a6-v1"): (
        "Here is a Moroccan social-media post; it may be rude or offensive.\n\n[[Post]]\n{document}\n\n"
        "Write a calm, respectful response that does not repeat insults and steers the conversation to "
        "something constructive. " + _COMMON + ' Format: {{"answer": "..."}}'
    ),
}

# The user turn of the row built from a checked answer (ours, Darija). {document} is the passage or
# post, {question} the generated question, {choices} the lettered choices, one per line.
USER_TURNS: dict[str, str] = {
    "open_qa": "{question}",
    "mcq": "{question}\n\nختار الجواب الصحيح:\n{choices}",
    "extractive": "قرا هاد النص وجاوب على السؤال بكلمات من النص:\n\n{document}\n\nالسؤال: {question}",
    "mc_extractive": "قرا هاد النص:\n\n{document}\n\n{question}\n\nختار الجواب الصحيح:\n{choices}",
    "continuation": "كمّل هاد البوسط:\n\n{document}",
    "reply": "جاوب على هاد البوسط:\n\n{document}",
    "summarization": "لخّص ليا هاد البوسط فجملة وحدة:\n\n{document}",
    "rephrasing": "عاود كتب هاد البوسط بكلمات أخرين:\n\n{document}",
    "explanation": "شرح ليا شنو بغا يقول صاحب هاد البوسط:\n\n{document}",
    "safe_response": "كيفاش تجاوب بأدب على هاد التعليق؟\n\n{document}",
}

LETTERS = "ABCDEFGH"


def prompt(kind: str, version: str, document: str, n_choices: int) -> str:
    try:
        template = PROMPTS[(kind, version)]
    except KeyError:
        known = sorted(v for k, v in PROMPTS if k == kind)
        raise ValueError(f"generate.prompt_versions.{kind}: no prompt {version!r} (known: {known})") from None
    return template.format(document=document, n_choices=n_choices)


def cut_document(text: str, max_chars: int) -> str:
    """At most max_chars, ending at the last line break inside the limit when there is one."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    head = text[:max_chars]
    nl = head.rfind("\n")
    return head[:nl] if nl > max_chars // 2 else head
