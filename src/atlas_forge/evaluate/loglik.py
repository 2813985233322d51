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
- logits only where a score is read (`logits_to_keep`): lm-eval computes the LM head and a
  log-softmax over every position of every sequence, which dominates its cost for Gemma 2's 256,000
  words; here the model's own head (softcapping included) runs on the scored positions only;
- shared prefixes are computed once: every request is lm-eval's sequence (context, trimmed as lm-eval
  trims it, + continuation minus its last token). Sequences are sorted, and those that share at least
  a quarter of their tokens with the previous one go into one row as a prefix tree: each token appears
  once per row, position ids are its depth, and a 4-D attention mask lets a token see exactly its
  ancestors, i.e. its own sequence's earlier tokens. So an item's context runs once for all of its
  endings (HellaSwag), a few-shot prefix once for all the questions that share it (DarijaMMLU dev
  shots, Belebele), and letters that differ only in their last token read off one position.
  Sliding-window layers (Gemma 2) get the window in positions, as in the unpacked sequence.
  A row that is a single path (one sequence and its prefixes) runs without a mask, as lm-eval's.
  Without a usable 4-D mask (an attention implementation other than eager/sdpa, unknown layer types)
  only such single-path rows are formed;
- a row holds at most ROW_FACTOR times its longest sequence, and a batch at most as many tokens as
  `batch_size` of its longest sequences (lm-eval's batch); rows run widest first, with a tqdm bar
  in items/s.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from atlas_forge.encoding import encode_pair, split_whitespace, tok_encode  # noqa: F401 (lm-eval's names)
from atlas_forge.evaluate import resume


@dataclass
class Request:
    context: str
    continuation: str


@dataclass
class Encoded:
    ctx: list[int]
    cont: list[int]


def _common(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class _Seq:
    """One request as lm-eval runs it: tokens = context (trimmed) + continuation minus its last token."""

    tokens: list[int]
    n_ctx: int
    cont: list[int]
    request: tuple[int, int]


@dataclass
class _Row:
    """One model input row, a prefix tree of sequences: parents[i] is the index of token i's parent
    (-1: a root), positions[i] its depth; targets = per request, [[row index whose logits predict,
    token], ...]; requests = (group, request) per target list."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    targets: list[list[list[int]]] = field(default_factory=list)
    requests: list[tuple[int, int]] = field(default_factory=list)
    longest: int = 0  # longest sequence in the row
    chain: bool = True  # a single path: plain causal attention, no mask needed
    path: list[int] = field(default_factory=list)  # row indices of the last sequence added

    def add(self, seq: _Seq, shared: int) -> None:
        """Add a sequence whose first `shared` tokens are those of the last sequence added."""
        if shared < len(self.path) and shared < len(seq.tokens):
            self.chain = False  # it branches off before the end of the last one
        path = self.path[:shared]
        for depth in range(shared, len(seq.tokens)):
            self.parents.append(path[-1] if path else -1)
            self.positions.append(depth)
            self.tokens.append(seq.tokens[depth])
            path.append(len(self.tokens) - 1)
        if len(path) > len(self.path) or path != self.path[: len(path)]:
            self.path = path
        self.longest = max(self.longest, len(seq.tokens))
        n = seq.n_ctx
        self.targets.append([[path[n - 1 + k], t] for k, t in enumerate(seq.cont)])
        self.requests.append(seq.request)


ROW_FACTOR = 4  # a packed row holds at most this many times its longest sequence (attention is quadratic)

_LAYER_TYPES = {"full_attention", "sliding_attention"}


def packing_masks(model) -> tuple[dict[str, int | None] | None, bool]:
    """({layer type: sliding window or None}, whether the model takes a dict of masks by layer type),
    or (None, False) when packed rows are not possible: they need a custom 4-D additive mask, which
    transformers' eager and sdpa attention take as given (masking_utils returns a 4-D mask as is)."""
    cfg = model.config
    if getattr(cfg, "_attn_implementation", None) not in ("eager", "sdpa"):
        return None, False
    layer_types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None)
    if layer_types:
        if not set(layer_types) <= _LAYER_TYPES:
            return None, False
        masks = {t: window if t == "sliding_attention" else None for t in sorted(set(layer_types))}
        # a dict only where there is more than one kind (Gemma 2's causal_mask_mapping)
        return masks, len(masks) > 1
    # no layer types: every layer uses the config's window, if any (a 4-D mask is used as is)
    return ({"sliding_attention": window} if window else {"full_attention": None}), False


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
        self._dtype = next(model.parameters()).dtype
        self._keep_kw = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._masks, self._layer_types = packing_masks(model)

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

        seqs = []
        for gi, group in enumerate(groups):
            for ri, req in enumerate(group):
                enc = self.encode_pair(req.context, req.continuation)
                ctx = self._trim(enc.ctx, len(enc.cont))
                seqs.append(_Seq(ctx + enc.cont[:-1], len(ctx), enc.cont, (gi, ri)))
        rows = self._pack(seqs)
        out: list[list[tuple[float, bool] | None]] = [[None] * len(g) for g in groups]
        left = [len(g) for g in groups]  # requests not scored yet, per group (for the item bar)
        bar = tqdm(total=len(groups), desc=desc, unit="item", disable=not progress, mininterval=1.0)
        for chunk in self._batches(rows):
            # an interrupted evaluation's finished batches are reused as they are (evaluate/resume.py)
            key = [[r.tokens, r.parents, r.targets] for r in chunk]
            batch = resume.cached("loglik_rows", self.model, key, lambda chunk=chunk: self._score_rows(chunk))
            for row, res in zip(chunk, batch, strict=True):
                for (gi, ri), (ll, greedy) in zip(row.requests, res, strict=True):
                    out[gi][ri] = (float(ll), bool(greedy))
                    left[gi] -= 1
                    bar.update(int(left[gi] == 0))
        bar.close()
        return out  # type: ignore[return-value]

    def _trim(self, ctx: list[int], cont_len: int) -> list[int]:
        # lm-eval keeps the last max_length+1 tokens of ctx+cont and drops the final one
        keep = self.max_length + 1 - cont_len
        if keep < 1:
            raise ValueError(f"a continuation of {cont_len} tokens leaves no room for its context")
        return ctx[-keep:] if len(ctx) > keep else ctx

    def _pack(self, seqs: list[_Seq]) -> list[_Row]:
        """Rows of sequences that share prefixes (see the module docstring); independent of batch_size."""
        rows: list[_Row] = []
        row: _Row | None = None
        for seq in sorted(seqs, key=lambda q: q.tokens):  # stable: equal sequences keep request order
            if row is not None:
                shared = _common([row.tokens[i] for i in row.path], seq.tokens)
                added = len(seq.tokens) - shared
                extends = shared == len(row.path) and row.chain  # the row stays one path
                if extends or (
                    self._masks is not None
                    and 4 * shared >= len(seq.tokens)
                    and len(row.tokens) + added <= ROW_FACTOR * max(row.longest, len(seq.tokens))
                ):
                    row.add(seq, shared)
                    continue
            row = _Row()
            rows.append(row)
            row.add(seq, 0)
        return rows

    def _batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Widest rows first; a batch holds at most the tokens of batch_size of its longest sequences."""
        rows = sorted(rows, key=lambda r: -len(r.tokens))
        out: list[list[_Row]] = []
        for r in rows:
            if out:
                batch = out[-1]
                longest = max(r.longest, *(b.longest for b in batch))
                if (len(batch) + 1) * len(batch[0].tokens) <= self.batch_size * longest:
                    batch.append(r)
                    continue
            out.append([r])
        return out

    def _score_rows(self, chunk: list[_Row]) -> list[list[tuple[float, bool]]]:
        """[(loglik, is_greedy)] per target list of each row, from one right-padded forward."""
        width = max(len(r.tokens) for r in chunk)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        for j, r in enumerate(chunk):
            ids[j, : len(r.tokens)] = torch.tensor(r.tokens, dtype=torch.long)
        kwargs: dict = {}
        if not all(r.chain for r in chunk):
            kwargs.update(self._tree_inputs(chunk, width))
        # chains run without an attention mask, as lm-eval: right padding never reaches earlier positions
        # logits only where a target is read: the LM head and log-softmax over the vocabulary dominate
        # lm-eval's cost for a large vocabulary, and every other position's logits are thrown away
        where = sorted({p for r in chunk for t in r.targets for p, _ in t})
        if self._keep_kw:
            kwargs["logits_to_keep"] = torch.tensor(where, device=self.device)
            col = {p: k for k, p in enumerate(where)}
        else:
            col = {p: p for p in where}
        logits = self.model(input_ids=ids.to(self.device), **kwargs).logits
        lp = F.log_softmax(logits.float(), dim=-1)
        rr, cc, tt = [], [], []
        for j, r in enumerate(chunk):
            for t in r.targets:
                for p, tok in t:
                    rr.append(j)
                    cc.append(col[p])
                    tt.append(tok)
        picked = lp[torch.tensor(rr, device=self.device), torch.tensor(cc, device=self.device)]
        toks = torch.tensor(tt, device=self.device)
        values = picked.gather(1, toks.unsqueeze(1)).squeeze(1).cpu()
        hits = (picked.argmax(-1) == toks).cpu()
        out, k = [], 0
        for r in chunk:
            res = []
            for t in r.targets:
                res.append((float(values[k : k + len(t)].sum()), bool(hits[k : k + len(t)].all())))
                k += len(t)
            out.append(res)
        return out

    def _tree_inputs(self, chunk: list[_Row], width: int) -> dict:
        """position_ids and the 4-D additive attention masks of prefix-tree rows: a token sees its
        ancestors and itself. Sliding-window layers get their own mask, the window counted in positions
        as in the unpacked sequence."""
        pos = torch.zeros((len(chunk), width), dtype=torch.long)
        allowed = torch.zeros((len(chunk), width, width), dtype=torch.bool)
        for j, r in enumerate(chunk):
            pos[j, : len(r.positions)] = torch.tensor(r.positions, dtype=torch.long)
            a = allowed[j]
            for i, parent in enumerate(r.parents):  # parents come first: copy the parent's row
                if parent >= 0:
                    a[i] = a[parent]
                a[i, i] = True
            for i in range(len(r.tokens), width):
                a[i, i] = True  # padding sees itself only; nothing sees padding
        low = torch.tensor(torch.finfo(self._dtype).min, dtype=self._dtype)
        zero = torch.zeros((), dtype=self._dtype)

        def additive(ok: torch.Tensor) -> torch.Tensor:
            return torch.where(ok, zero, low).unsqueeze(1).to(self.device)

        window = self._masks.get("sliding_attention")
        if window is not None and int(pos.max()) < window:
            window = None  # no position reaches the window: the sliding layers see the full mask
        sliding = None
        if window is not None:
            sliding = additive(allowed & (pos.unsqueeze(2) - pos.unsqueeze(1) < window))
        full = additive(allowed) if sliding is None or len(self._masks) > 1 else None
        by_type = {t: full if sliding is None or t != "sliding_attention" else sliding for t in self._masks}
        masks = by_type if self._layer_types else next(iter(by_type.values()))
        return {"attention_mask": masks, "position_ids": pos.to(self.device)}
