"""Gemma-style chat template and message preparation.

Rendering: `<bos><start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n…<end_of_turn>\n`.
The assistant content and its `<end_of_turn>` sit inside `{% generation %}…{% endgeneration %}`, so
`return_assistant_tokens_mask` (TRL `assistant_only_loss`) trains the answer and the stop token.
The template emits the only BOS: the tokenizer adds no special tokens of its own (STACK.md: two BOS
tokens otherwise). Gemma 2 has no system role; `prepare_messages` folds or rejects system turns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN]  # ids 0..5 in this order

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ '<start_of_turn>user\\n' + message['content'] + '<end_of_turn>\\n' }}"
    "{% elif message['role'] == 'assistant' or message['role'] == 'model' %}"
    "{{ '<start_of_turn>model\\n' }}"
    "{% generation %}{{ message['content'] + '<end_of_turn>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ raise_exception('Gemma 2 has no ' + message['role'] + ' role; fold system messages first') }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def prepare_messages(
    messages: Iterable[Mapping[str, str]],
    system_message: Literal["fold", "error"] = "fold",
    row_id: str | None = None,
) -> list[dict[str, str]]:
    """Plain user/assistant messages for the template.

    system_message="fold": system turns are prepended to the next user turn (blank line between);
    "error": a system turn raises ValueError naming the row id.
    """
    out: list[dict[str, str]] = []
    pending: list[str] = []
    for m in messages:
        role, content = m["role"], m["content"] or ""
        if role == "system":
            if system_message == "error":
                raise ValueError(
                    f"row {row_id or '?'}: has a system message; Gemma 2 has no system role "
                    "(set sft.system_message: fold to fold it into the first user turn)"
                )
            if system_message != "fold":
                raise ValueError(f"system_message: {system_message!r} is not one of 'fold', 'error'")
            pending.append(content)
            continue
        if role not in ("user", "assistant"):
            raise ValueError(f"row {row_id or '?'}: unknown role {role!r} (allowed: user, assistant, system)")
        if pending and role == "user":
            content = "\n\n".join([*pending, content])
            pending = []
        out.append({"role": role, "content": content})
    if pending:
        if out and out[0]["role"] == "user":  # system turn after the first user turn: fold into that one
            out[0] = {"role": "user", "content": "\n\n".join([*pending, out[0]["content"]])}
        else:
            out.insert(0, {"role": "user", "content": "\n\n".join(pending)})
    return out
