"""Greedy generation the way serving engines do it, over the plain Hugging Face model.

lm.generate calls `run()` for greedy decoding; its outputs are the batch-by-batch `model.generate`
path's (lm.generate_padded, lm-eval's HF backend) item for item. What differs is the work done:

- Continuous batching: `batch_size` slots. A row leaves as soon as it is finished (a stop token,
  max_new_tokens, or an `until` stop string that settles its text) and the next waiting prompt takes
  its slot; the padded path runs every batch until its longest row stops and decodes rows that already
  hit a stop string.
- Shared prefix: the prompts' common token prefix (chat template opening, the task instruction) is run
  through the model once; its KV cache is expanded to every row and only each row's suffix is
  prefilled.
- Logits only for each row's last position (`logits_to_keep=1`), never the vocabulary at every
  position of a prompt.

The running rows' KV cache is one left-padded tensor per layer, so rows of any length share a forward.
The attention masks are built here from each row's own token positions (a dict of 4D masks, which the
Gemma 2 forward takes as it is): a row attends to what it would attend to alone, so its output does
not depend on its neighbours' lengths. That includes Gemma 2's sliding-window layers: the window
counts the row's positions, as a batch of one does; HF's left-padded batches count columns (padding
included), which differs only for sequences longer than the window. Soft-capping, the query scalar
and rotary positions are the model's own forward.

Float results can depend on the shapes a matrix product sees (batch composition, padding); greedy
outputs flip only on a near tie, which the tests check does not happen on the pipeline's models.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Trailing characters of a row's decoded text that a later token may still change (a tokenizer's
# clean-up of spaces before punctuation reaches back 2 characters); an unfinished UTF-8 sequence
# decodes to U+FFFD and is dropped as well.
UNSETTLED_CHARS = 4

# The model families whose forward takes a dict of per-layer-type 4D masks and whose attention layers
# are "full_attention"/"sliding_attention" (checked by tests/test_engine.py); others use the padded path.
SUPPORTED_MODEL_TYPES = ("gemma2",)

# generation_config fields that would change greedy logits inside model.generate (logits processors):
# with any of them set, the padded path (model.generate) is the reference and is used instead.
_PROCESSOR_DEFAULTS = {
    "repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,),
    "suppress_tokens": (None,), "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,), "min_length": (None, 0), "min_new_tokens": (None, 0),
    "sequence_bias": (None,), "encoder_repetition_penalty": (None, 1.0),
    "exponential_decay_length_penalty": (None,),
}


def supports(model) -> bool:
    """Whether run() reproduces model.generate's greedy outputs for this model."""
    cfg = model.config
    if getattr(cfg, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return False
    if getattr(cfg, "_attn_implementation", None) != "eager":
        return False
    gen = getattr(model, "generation_config", None)
    return all(getattr(gen, k, None) in ok for k, ok in _PROCESSOR_DEFAULTS.items())


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the prompts' common token prefix, leaving every prompt at least one suffix token
    (the row's last prompt token must be prefilled in its own row to give its first logits)."""
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def until_settled(text: str, until: Sequence[str]) -> bool:
    """Whether `text`'s cut at the stop strings (`text.split(term)[0]` for each term in order, as
    lm-eval's postprocessing does) can no longer change, whatever is decoded after `text`.

    A term found in the known text fixes the cut; a term not found may still appear straddling the end
    of the known text, so the known part shrinks by len(term) - 1 before the next term is looked for."""
    known, cut = text, None
    for term in until:
        if not term:
            continue
        if cut is not None:
            cut = cut.split(term)[0]
            continue
        at = known.find(term)
        if at >= 0:
            cut = known[:at]
        else:
            known = known[: max(0, len(known) - len(term) + 1)]
    return cut is not None


def settled_text(tokenizer, tokens: list[int]) -> str:
    """The part of the decoded text that more tokens cannot change (see UNSETTLED_CHARS)."""
    text = tokenizer.decode(tokens, skip_special_tokens=True).rstrip("\ufffd")
    return text[: max(0, len(text) - UNSETTLED_CHARS)]


@dataclass
class Rows:
    """The running rows: their KV cache, left padded to one length T, and what the masks need."""

    keys: list  # per layer [rows, kv heads, T, head dim]
    values: list
    valid: object  # bool [rows, T]: a real token (not padding)
    keypos: object  # long [rows, T]: each column's position in its row
    nextpos: object  # long [rows]: the position of the row's next input token
    items: list[int] = field(default_factory=list)  # the prompt index of each row
    tokens: list[list[int]] = field(default_factory=list)  # generated so far (the last one not yet fed)

    def __len__(self) -> int:
        return len(self.items)

    def keep(self, rows: list[int]) -> None:
        """Drop the other rows, and the leading columns that are padding in every row left."""
        import torch

        idx = torch.tensor(rows, dtype=torch.long, device=self.valid.device)
        self.keys = [k.index_select(0, idx) for k in self.keys]
        self.values = [v.index_select(0, idx) for v in self.values]
        self.valid, self.keypos, self.nextpos = (t.index_select(0, idx) for t in
                                                 (self.valid, self.keypos, self.nextpos))
        self.items = [self.items[r] for r in rows]
        self.tokens = [self.tokens[r] for r in rows]
        if rows:
            used = self.valid.any(0).nonzero()
            start = int(used[0]) if len(used) else self.valid.shape[1]
            if start:
                self._slice(start)

    def _slice(self, start: int) -> None:
        self.keys = [k[:, :, start:] for k in self.keys]
        self.values = [v[:, :, start:] for v in self.values]
        self.valid, self.keypos = self.valid[:, start:], self.keypos[:, start:]

    def merge(self, other: Rows) -> None:
        """Add `other`'s rows, right-aligning both caches (new columns on the left are padding)."""
        import torch

        width = max(self.valid.shape[1], other.valid.shape[1])
        a, b = _left_pad(self, width), _left_pad(other, width)
        self.keys = [torch.cat(kv) for kv in zip(a.keys, b.keys, strict=True)]
        self.values = [torch.cat(kv) for kv in zip(a.values, b.values, strict=True)]
        self.valid = torch.cat([a.valid, b.valid])
        self.keypos = torch.cat([a.keypos, b.keypos])
        self.nextpos = torch.cat([self.nextpos, other.nextpos])
        self.items = self.items + other.items
        self.tokens = self.tokens + other.tokens


def _left_pad(rows: Rows, width: int) -> Rows:
    import torch

    extra = width - rows.valid.shape[1]
    if extra == 0:
        return rows

    def pad(t):
        shape = list(t.shape)
        shape[2] = extra
        return torch.cat([t.new_zeros(shape), t], dim=2)

    n = rows.valid.shape[0]
    return Rows([pad(k) for k in rows.keys], [pad(v) for v in rows.values],
                torch.cat([rows.valid.new_zeros((n, extra)), rows.valid], 1),
                torch.cat([rows.keypos.new_zeros((n, extra)), rows.keypos], 1), rows.nextpos)


def attention_masks(valid, keypos, qpos, sliding_window: int | None, dtype) -> dict:
    """Additive 4D masks [rows, 1, queries, T] per layer type: a query sees its row's real tokens at
    positions <= its own; a sliding layer only those less than `sliding_window` positions back (HF's
    sliding_window_overlay, in the row's positions)."""
    import torch

    k = keypos[:, None, None, :]
    q = qpos[:, None, :, None]
    seen = valid[:, None, None, :] & (k <= q)
    low = torch.finfo(dtype).min

    def additive(m):
        return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill_(~m, low)

    masks = {"full_attention": additive(seen)}
    if sliding_window:
        masks["sliding_attention"] = additive(seen & (q - k < sliding_window))
    else:
        masks["sliding_attention"] = masks["full_attention"]
    return masks


class Engine:
    """One greedy run over a list of prompts (token ids, already cut to the model's context)."""

    def __init__(self, model, max_new_tokens: int, batch_size: int, stops: Sequence[int], pad: int,
                 finished: Callable[[list[int]], bool] | None = None):
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.batch_size = max(1, batch_size)
        self.stops = set(stops)
        self.pad = pad
        self.finished = finished  # the `until` check on a row's tokens (None: no stop strings)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.window = getattr(model.config, "sliding_window", None)
        self.stats = {"forwards": 0, "row_steps": 0, "prefilled_tokens": 0, "prefix_tokens": 0}
        self._prefix_kv: tuple[tuple[int, ...], object] | None = None  # reused by every run()

    def _forward(self, ids, qpos, valid, keypos, keys, values):
        """One model forward on the rows' new tokens; (each row's last-position logits, the new cache)."""
        import torch
        from transformers import DynamicCache

        masks = attention_masks(valid, keypos, qpos, self.window, self.dtype)
        cache = DynamicCache(ddp_cache_data=list(zip(keys, values, strict=True))) if keys else DynamicCache()
        with torch.no_grad():
            out = self.model(input_ids=ids, position_ids=qpos, attention_mask=masks, cache=cache,
                             use_cache=True, logits_to_keep=1)
        self.stats["forwards"] += 1
        return out.logits[:, -1, :], [la.keys for la in cache.layers], [la.values for la in cache.layers]

    def _prefix(self, prefix: list[int]):
        """The shared prefix's KV cache (batch of one), computed once for all runs of this engine."""
        import torch

        if not prefix:
            return None
        if self._prefix_kv is not None and self._prefix_kv[0] == tuple(prefix):
            return self._prefix_kv[1]
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        pos = torch.arange(len(prefix), device=self.device)[None]
        valid = torch.ones_like(ids, dtype=torch.bool)
        _, keys, values = self._forward(ids, pos, valid, pos, [], [])
        self.stats["prefix_tokens"] += len(prefix)
        self._prefix_kv = (tuple(prefix), (keys, values))
        return keys, values

    def _prefill(self, items: list[int], prompts, plen: int, prefix_kv) -> tuple[Rows, list[int]]:
        """New rows: the prefix cache expanded to them, their suffixes (left padded) run in one forward."""
        import torch

        sufs = [prompts[i][plen:] for i in items]
        width = max(len(s) for s in sufs)
        n = len(items)
        ids = torch.full((n, width), self.pad, dtype=torch.long)
        valid = torch.zeros((n, plen + width), dtype=torch.bool)
        keypos = torch.zeros((n, plen + width), dtype=torch.long)
        valid[:, :plen] = True
        keypos[:, :plen] = torch.arange(plen)
        for r, s in enumerate(sufs):
            ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            valid[r, plen + width - len(s):] = True
            keypos[r, plen + width - len(s):] = torch.arange(plen, plen + len(s))
        ids, valid, keypos = ids.to(self.device), valid.to(self.device), keypos.to(self.device)
        keys, values = ([k.expand(n, -1, -1, -1) for k in prefix_kv[0]],
                        [v.expand(n, -1, -1, -1) for v in prefix_kv[1]]) if prefix_kv else ([], [])
        logits, keys, values = self._forward(ids, keypos[:, plen:], valid, keypos, keys, values)
        self.stats["prefilled_tokens"] += sum(len(s) for s in sufs)
        nextpos = torch.tensor([len(prompts[i]) for i in items], dtype=torch.long, device=self.device)
        rows = Rows(keys, values, valid, keypos, nextpos, list(items), [[] for _ in items])
        return rows, logits.argmax(-1).tolist()

    def _step(self, rows: Rows) -> list[int]:
        """Feed each row's last generated token; the next token of every row."""
        import torch

        ids = torch.tensor([[t[-1]] for t in rows.tokens], dtype=torch.long, device=self.device)
        qpos = rows.nextpos[:, None]
        valid = torch.cat([rows.valid, torch.ones_like(qpos, dtype=torch.bool)], 1)
        keypos = torch.cat([rows.keypos, qpos], 1)
        logits, rows.keys, rows.values = self._forward(ids, qpos, valid, keypos, rows.keys, rows.values)
        rows.valid, rows.keypos, rows.nextpos = valid, keypos, rows.nextpos + 1
        self.stats["row_steps"] += len(rows)
        return logits.argmax(-1).tolist()

    def _take(self, rows: Rows, new: list[int], out: dict[int, list[int]]) -> None:
        """Append each row's new token; finished rows leave (their tokens go to `out`)."""
        stay = []
        for r, tok in enumerate(new):
            toks = rows.tokens[r]
            if tok in self.stops:
                done = True
            else:
                toks.append(tok)
                done = len(toks) >= self.max_new_tokens or (self.finished is not None and self.finished(toks))
            if done:
                out[rows.items[r]] = toks
            else:
                stay.append(r)
        if len(stay) < len(rows):
            rows.keep(stay)

    def run(self, prompts: list[list[int]], plen: int | None = None) -> list[list[int]]:
        """Each prompt's generated tokens (stop token excluded), in the prompts' order; rows enter the
        slots in that order. `plen`: the length of the prefix every prompt shares (None: their common
        prefix); the caller passes the whole prompt set's so the chunks of one call share its cache."""
        out: dict[int, list[int]] = {}
        if not prompts:
            return []
        plen = shared_prefix_len(prompts) if plen is None else plen
        prefix_kv = self._prefix(prompts[0][:plen])
        waiting = deque(range(len(prompts)))
        rows: Rows | None = None
        while waiting or rows:
            while waiting and (rows is None or len(rows) < self.batch_size):
                free = self.batch_size - (len(rows) if rows else 0)
                items = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                new, first = self._prefill(items, prompts, plen, prefix_kv)
                self._take(new, first, out)
                if len(new):
                    if rows:
                        rows.merge(new)
                    else:
                        rows = new
            if rows:
                self._take(rows, self._step(rows), out)
                if not len(rows):
                    rows = None
        return [out[i] for i in range(len(prompts))]
