"""Encoding, shared by mixture, sft and evaluate ("train what is scored" in one home): a training row
as the tokens SFT trains on (input ids and the mask of supervised tokens), and a context/continuation
pair as lm-eval's harness encodes it for scoring.

`encode_row` renders a row the way TRL's SFTTrainer does with `assistant_only_loss=True`
(trl.data_utils._tokenize: `apply_chat_template(messages, tokenize=True, return_dict=True,
return_assistant_tokens_mask=True)`), then truncates to `max_length` keeping the start (TRL's default
`truncation_mode="keep_start"`). A row whose mask is all zeros after that trains on nothing: TRL
silently drops it, the mixture phase rejects it with a reason first (mixture.py).

Formats (`meta.format` of a mixture row):
- "chat" (default): the chat template, assistant turns supervised.
- "plain": one user/assistant pair scored the way lm-eval scores a multiple-choice continuation
  (issue 11: what is trained is what is scored). Context = the user text, continuation = " " + the
  answer; both are encoded together and split at the length of the encoded context, with BOS added by
  the tokenizer loaded with add_bos_token (lm-eval's rule, loglik.LoglikScorer). Only the continuation
  tokens are supervised, so the gradient reaches exactly the transition the benchmark reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def encode_row(
    tokenizer, messages: Sequence[Mapping[str, str]], max_length: int | None, fmt: str = "chat"
) -> tuple[list[int], list[int]]:
    """(input_ids, assistant_mask), both cut to max_length (None: not cut)."""
    if fmt == "plain":
        ids, mask = encode_plain(tokenizer, messages)
        if max_length is not None:
            ids, mask = ids[:max_length], mask[:max_length]
        return ids, mask
    if fmt != "chat":
        raise ValueError(f"encode_row: unknown row format {fmt!r} (known: 'chat', 'plain')")
    out = tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return ids, mask


def encode_plain(tokenizer, messages: Sequence[Mapping[str, str]]) -> tuple[list[int], list[int]]:
    """A [user, assistant] pair as lm-eval scores it: (context + continuation ids, continuation mask)."""
    if len(messages) != 2 or messages[0]["role"] != "user" or messages[1]["role"] != "assistant":
        raise ValueError("a plain-format row is exactly one user turn and one assistant turn")
    ctx, cont = encode_pair(tokenizer, messages[0]["content"], " " + messages[1]["content"], add_bos=True)
    return ctx + cont, [0] * len(ctx) + [1] * len(cont)


def plain_tokenizer(path):
    """The tokenizer as lm-eval loads it for scoring (add_bos_token=True): plain rows need its BOS rule."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, add_bos_token=True)


# --- scoring: lm-eval's HFLM.tok_encode / TemplateLM._encode_pair -------------------------------


def split_whitespace(context: str, continuation: str) -> tuple[str, str]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def tok_encode(tokenizer, text: str, add_bos: bool) -> list[int]:
    """lm-eval's HFLM.tok_encode: special tokens unless the text already starts with BOS."""
    bos = tokenizer.bos_token
    return tokenizer.encode(text, add_special_tokens=add_bos and not (bos and text.startswith(bos)))


def tok_encode_batch(tokenizer, texts: Sequence[str], add_bos: bool) -> list[list[int]]:
    """tok_encode over many texts in one call of the fast tokenizer per BOS rule: the same ids."""
    bos = tokenizer.bos_token
    special = [add_bos and not (bos and t.startswith(bos)) for t in texts]
    out: list[list[int]] = [[] for _ in texts]
    for flag in (True, False):
        idx = [i for i, s in enumerate(special) if s == flag]
        if idx:
            for i, ids in zip(idx, tokenizer([texts[i] for i in idx], add_special_tokens=flag)["input_ids"],
                              strict=True):
                out[i] = list(ids)
    return out


def encode_pair(
    tokenizer, context: str, continuation: str, add_bos: bool = True
) -> tuple[list[int], list[int]]:
    """lm-eval's TemplateLM._encode_pair: (context ids, continuation ids)."""
    if not context:
        raise ValueError("empty context is not supported")
    context, continuation = split_whitespace(context, continuation)
    whole = tok_encode(tokenizer, context + continuation, add_bos)
    ctx = tok_encode(tokenizer, context, add_bos)
    cont = whole[len(ctx) :]
    if not cont:
        raise ValueError(
            f"continuation {continuation!r} encodes to no tokens after context {context[-40:]!r}"
        )
    return ctx, cont
