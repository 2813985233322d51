"""Log-likelihood scoring that reproduces lm-evaluation-harness (0.4.13, HF backend) exactly.

lm-eval's rule, mirrored here:
- continuation = target_delimiter (" ") + choice, built by the caller;
- trailing whitespace of the context moves to the start of the continuation;
- context+continuation are encoded together and split at len(encode(context)); the model input is
  encode(context) + that split-off tail (so a merge across the boundary behaves as in lm-eval);
- both encodes use add_special_tokens=add_bos (lm-eval's `add_bos_token=True` for Gemma), except when
  the text already starts with the BOS string;
- the score is the sum of log-softmax (fp32) over the continuation tokens; is_greedy says whether
  every continuation token is the argmax.

Speed-ups that do not change the arithmetic beyond float noise:
- requests are grouped by context; when every continuation of a context is one token (letters
  A/B/C/D), the context runs once and each choice is read off the last position;
- otherwise the context runs once with its KV cache, which is repeated for all of that context's
  continuations, then the continuations run together (right padded);
- contexts are processed longest first (lm-eval's order), with a tqdm bar in items/s.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from atlas_forge.evaluate import resume


@dataclass
class Request:
    context: str
    continuation: str


@dataclass
class Encoded:
    ctx: list[int]
    cont: list[int]


def split_whitespace(context: str, continuation: str) -> tuple[str, str]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def tok_encode(tokenizer, text: str, add_bos: bool) -> list[int]:
    """lm-eval's HFLM.tok_encode: special tokens unless the text already starts with BOS."""
    bos = tokenizer.bos_token
    return tokenizer.encode(text, add_special_tokens=add_bos and not (bos and text.startswith(bos)))


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


def _shared_prefix(members) -> list[int] | None:
    """The tokens all continuations share except their last one, or None when they differ earlier."""
    conts = [m[2] for m in members]
    n = len(conts[0])
    if any(len(c) != n for c in conts) or any(c[:-1] != conts[0][:-1] for c in conts):
        return None
    return list(conts[0][:-1])


class LoglikScorer:
    def __init__(
        self, model, tokenizer, batch_size: int = 8, add_bos: bool = True, max_length: int | None = None
    ):
        self.model = model.eval()
        self.tok = tokenizer
        self.batch_size = max(1, int(batch_size))
        self.add_bos = add_bos
        self.max_length = max_length or int(getattr(model.config, "max_position_embeddings", 2048))
        self.bos_str = tokenizer.bos_token
        self.device = next(model.parameters()).device
        # transformers 5.24 renamed forward(past_key_values=) to forward(cache=)
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # --- tokenization, as lm-eval's HFLM.tok_encode / TemplateLM._encode_pair -----------------
    def tok_encode(self, text: str) -> list[int]:
        return tok_encode(self.tok, text, self.add_bos)

    def encode_pair(self, context: str, continuation: str) -> Encoded:
        return Encoded(*encode_pair(self.tok, context, continuation, self.add_bos))

    # --- scoring ----------------------------------------------------------------------------
    @torch.no_grad()
    def score_groups(
        self, groups: Sequence[Sequence[Request]], progress: bool = False, desc: str = "loglik"
    ) -> list[list[tuple[float, bool]]]:
        """Score groups of requests (typically: one group = the choices of one item).

        Returns, per group, [(loglik, is_greedy)] in request order.
        """
        from tqdm import tqdm

        # encode and regroup by context tokens (an item's choices normally share one context)
        units: list[tuple[list[int], list[tuple[int, int, list[int]]]]] = []
        for gi, group in enumerate(groups):
            by_ctx: dict[tuple[int, ...], list[tuple[int, int, list[int]]]] = {}
            for ri, req in enumerate(group):
                enc = self.encode_pair(req.context, req.continuation)
                by_ctx.setdefault(tuple(enc.ctx), []).append((gi, ri, enc.cont))
            units.extend((list(ctx), members) for ctx, members in by_ctx.items())
        out: list[list[tuple[float, bool] | None]] = [[None] * len(g) for g in groups]
        # longest first, like lm-eval (errors and memory peaks show up early)
        order = sorted(
            range(len(units)), key=lambda i: -(len(units[i][0]) + max(len(m[2]) for m in units[i][1]))
        )
        # continuations that differ only in their last token (letters " A"/" B" that the tokenizer splits
        # into a space and a letter, or one-token choices) need one sequence per context: ctx + the shared
        # prefix, every choice read off its last position; they batch across items like lm-eval's
        # one-token grouping. The arithmetic is the same as scoring each continuation on its own.
        single = [i for i in order if _shared_prefix(units[i][1]) is not None]
        multi = [i for i in order if _shared_prefix(units[i][1]) is None]
        bar = tqdm(total=len(groups), desc=desc, unit="item", disable=not progress, mininterval=1.0)
        done_groups: set[int] = set()

        def tick(members):
            new = {m[0] for m in members} - done_groups
            done_groups.update(new)
            bar.update(len(new))

        # one-token continuations: batch contexts (right padded), read the last real position
        for start in range(0, len(single), self.batch_size):
            chunk = [units[i] for i in single[start : start + self.batch_size]]
            prefixes = [_shared_prefix(members) for _, members in chunk]
            ctxs = [self._trim(ctx, len(p) + 1) for (ctx, _), p in zip(chunk, prefixes, strict=True)]
            seqs = [c + p for c, p in zip(ctxs, prefixes, strict=True)]
            conts = [[m[2][-1] for m in members] for _, members in chunk]

            def one_batch(ctxs=ctxs, seqs=seqs, prefixes=prefixes, conts=conts):
                logprobs = self._forward_right_padded(seqs)
                batch = []
                for lp, c, p, cs in zip(logprobs, ctxs, prefixes, conts, strict=True):
                    # the shared prefix tokens, then the choice's own last token
                    head = sum(float(lp[len(c) - 1 + k][t]) for k, t in enumerate(p))
                    head_greedy = all(int(lp[len(c) - 1 + k].argmax()) == t for k, t in enumerate(p))
                    last = lp[len(c) + len(p) - 1]
                    best = int(last.argmax())
                    batch.append([(head + float(last[t]), head_greedy and best == t) for t in cs])
                return batch

            # an interrupted evaluation's finished batches are reused as they are (evaluate/resume.py)
            key = {"seqs": seqs, "ctxs": ctxs, "conts": conts}
            batch = resume.cached("loglik", self.model, key, one_batch)
            for (_, members), res in zip(chunk, batch, strict=True):
                for (gi, ri, _), (ll, greedy) in zip(members, res, strict=True):
                    out[gi][ri] = (float(ll), bool(greedy))
                tick(members)
        # longer continuations: context once with its KV cache, then all its continuations
        for i in multi:
            ctx, members = units[i]
            conts = [m[2] for m in members]
            results = resume.cached(
                "loglik_shared_context", self.model,
                {"ctx": ctx, "conts": conts, "batch_size": self.batch_size, "max_length": self.max_length},
                lambda ctx=ctx, conts=conts: self._score_shared_context(ctx, conts),
            )
            for (gi, ri, _), (ll, greedy) in zip(members, results, strict=True):
                out[gi][ri] = (float(ll), bool(greedy))
            tick(members)
        bar.close()
        return out  # type: ignore[return-value]

    def _trim(self, ctx: list[int], cont_len: int) -> list[int]:
        # lm-eval keeps the last max_length+1 tokens of ctx+cont and drops the final one
        keep = self.max_length + 1 - cont_len
        return ctx[-keep:] if len(ctx) > keep else ctx

    def _forward_right_padded(self, seqs: list[list[int]]) -> list[torch.Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        for j, s in enumerate(seqs):
            ids[j, : len(s)] = torch.tensor(s, dtype=torch.long)
        # no attention mask, as lm-eval: right padding never reaches earlier positions (causal)
        logits = self.model(input_ids=ids.to(self.device)).logits
        lp = F.log_softmax(logits.float(), dim=-1).cpu()
        return [lp[j, : len(s)] for j, s in enumerate(seqs)]

    def _score_shared_context(self, ctx: list[int], conts: list[list[int]]) -> list[tuple[float, bool]]:
        longest = max(len(c) for c in conts)
        ctx = self._trim(ctx, longest)
        if len(ctx) + longest - 1 > self.max_length:  # pragma: no cover - only with tiny max_length
            raise ValueError("context + continuation exceed the model's max length")
        first = self.model(input_ids=torch.tensor([ctx], device=self.device), use_cache=True)
        last_lp = F.log_softmax(first.logits[0, -1].float(), dim=-1).cpu()
        results: list[tuple[float, bool]] = [(0.0, True)] * len(conts)
        tails = [(j, c) for j, c in enumerate(conts) if len(c) > 1]
        for j, c in enumerate(conts):
            if len(c) == 1:
                results[j] = (float(last_lp[c[0]]), int(last_lp.argmax()) == c[0])
        for start in range(0, len(tails), self.batch_size):
            chunk = tails[start : start + self.batch_size]
            past = first.cache if getattr(first, "cache", None) is not None else first.past_key_values
            if start + self.batch_size < len(tails):
                past = copy.deepcopy(past)  # repeat and the forward below change the cache in place
            past.batch_repeat_interleave(len(chunk))
            width = max(len(c) - 1 for _, c in chunk)
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            for k, (_, c) in enumerate(chunk):
                ids[k, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
            n = len(ctx)
            pos = torch.arange(n, n + width).unsqueeze(0).expand(len(chunk), -1)
            mask = torch.ones(len(chunk), n + width, dtype=torch.long)
            logits = self.model(
                input_ids=ids.to(self.device), **{self._cache_kw: past}, position_ids=pos.to(self.device),
                attention_mask=mask.to(self.device), use_cache=True,
            ).logits
            lp = F.log_softmax(logits.float(), dim=-1).cpu()
            for k, (j, c) in enumerate(chunk):
                t = torch.tensor(c, dtype=torch.long)
                rows = torch.cat([last_lp.unsqueeze(0), lp[k, : len(c) - 1]], dim=0)
                total = float(rows.gather(1, t.unsqueeze(1)).sum())
                greedy = bool((rows.argmax(-1) == t).all())
                results[j] = (total, greedy)
        return results
