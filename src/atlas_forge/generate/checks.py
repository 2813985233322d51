"""Structural checks of a generated answer. Each failure is a reject reason of the form
"generate: <what> (<detail>)": mixture's card groups reasons by the part before the parenthesis."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from atlas_forge.generate.prompts import FIELDS, LETTERS
from atlas_forge.language import arabic_ratio


class Invalid(ValueError):
    """The answer cannot make a row; the message is the reject reason."""


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    answer_index: int | None = None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse(content: str) -> dict:
    text = content.strip()
    # models often wrap JSON in a Markdown fence despite the prompt; the content is still usable
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.S)
    if fence:
        text = fence.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise Invalid(f"generate: malformed answer (not JSON: {e.msg} at char {e.pos})") from None
    if not isinstance(value, dict):
        raise Invalid(f"generate: malformed answer (a JSON {type(value).__name__}, not an object)")
    return value


def check(content: str, kind: str, document: str, n_choices: int, min_arabic_ratio: float) -> Answer:
    """The checked answer of one generation, or Invalid with the reason."""
    value = parse(content)
    for name in FIELDS[kind]:
        v = value.get(name)
        if name == "choices":
            if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
                raise Invalid("generate: missing field (choices: need a list of strings)")
        elif not isinstance(v, str) or not v.strip():
            raise Invalid(f"generate: missing field ({name}: need a non-empty string)")
    question = (value.get("question") or "").strip()
    answer = value["answer"].strip()
    choices: tuple[str, ...] = ()
    index = None
    if "choices" in FIELDS[kind]:
        choices = tuple(c.strip() for c in value["choices"])
        if len(choices) != n_choices or not all(choices) or len(set(map(_norm, choices))) != len(choices):
            raise Invalid(
                f"generate: bad choices (need {n_choices} distinct non-empty, got "
                f"{len(choices)} with {len(set(map(_norm, choices)))} distinct)"
            )
        letters = LETTERS[: len(choices)]
        stripped = answer.rstrip(".):").strip()
        if len(stripped) == 1 and stripped.upper() in letters:
            index = letters.index(stripped.upper())
        elif _norm(answer) in [_norm(c) for c in choices]:  # the choice's text instead of its letter
            index = [_norm(c) for c in choices].index(_norm(answer))
        else:
            raise Invalid(f"generate: answer not among the choices (answer {answer[:40]!r})")
    for name, text in (("question", question), ("answer", answer), *(("choices", c) for c in choices)):
        if not text:
            continue
        ratio, letters_n = arabic_ratio(text)
        # short fields (a number, a name) carry too few letters to judge their script
        if letters_n >= 4 and ratio < min_arabic_ratio:
            raise Invalid(
                f"generate: not Darija script ({name}: Arabic letters {ratio:.2f} < {min_arabic_ratio})"
            )
    # after the script check: an answer in another script is reported as such, not as a missing span
    if kind == "extractive" and _norm(answer) not in _norm(document):
        raise Invalid(f"generate: extractive answer not in the passage (answer {answer[:40]!r})")
    return Answer(question=question, answer=answer, choices=choices, answer_index=index)
