"""Story completion (paper §5.3, App. A.7): long Darija texts -> prompt/continuation pairs.

A story is cut into segments of at most `segment_tokens` tokens of the base model's tokenizer (the
one sft trains), line by line, so segments end at line breaks; a line longer than a segment is cut
at the last whitespace before the limit (at the token boundary when it has none). Each segment is
then cut into a prompt and its continuation at the line break nearest `prompt_fraction` of its
tokens, or at a whitespace there when the segment is a single line. Deterministic: no randomness,
only the text and the tokenizer.

A story too short to give one segment of `min_segment_tokens` is rejected with that reason; a last
piece shorter than that is dropped and counted in the stats (tail_tokens_dropped). Every segment of a
story keeps the story's id in meta.origin_ids, so a whole story lies on one side of train/test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from atlas_forge import records

PHASE = "generate"
# the user turn: "complete this story" (ours, Darija)
USER_TURN = "كمّل هاد الحكاية:\n\n{prompt}"


@dataclass(frozen=True)
class Segment:
    text: str
    tokens: int
    split: str  # "line" (segment ended at a line break) or "word" (a line longer than a segment)


class Counter_:
    """Token counts of strings, memoized (one tokenizer call per distinct string)."""

    def __init__(self, tokenizer):
        self.tok, self.memo = tokenizer, {}

    def __call__(self, text: str) -> int:
        n = self.memo.get(text)
        if n is None:
            n = self.memo[text] = len(self.tok(text, add_special_tokens=False)["input_ids"])
        return n


def _cut_long_line(line: str, limit: int, count: Counter_, tokenizer) -> list[str]:
    """A line of more than `limit` tokens as pieces of at most `limit`, cut at whitespace."""
    pieces = []
    rest = line
    while rest and count(rest) > limit:
        enc = tokenizer(rest, add_special_tokens=False, return_offsets_mapping=True)
        end = enc["offset_mapping"][limit - 1][1]  # character end of the limit-th token
        space = rest.rfind(" ", 0, end + 1)
        cut = space if space > 0 else end
        piece = rest[:cut]
        while count(piece) > limit and " " in piece.strip():  # retokenizing can differ at the edge
            piece = piece[: piece.rstrip().rfind(" ")]
        if not piece.strip():
            piece = rest[:end]
        pieces.append(piece.strip())
        rest = rest[len(piece) :].lstrip()
    if rest.strip():
        pieces.append(rest.strip())
    return pieces


def segments(text: str, limit: int, count: Counter_, tokenizer) -> list[Segment]:
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
    units: list[tuple[str, str]] = []  # (text, how it was cut)
    for ln in lines:
        if not ln:
            continue
        if count(ln) > limit:
            units += [(p, "word") for p in _cut_long_line(ln, limit, count, tokenizer)]
        else:
            units.append((ln, "line"))
    out: list[Segment] = []
    cur: list[str] = []
    how = "line"
    for unit, cut in units:
        trial = "\n".join([*cur, unit])
        if cur and count(trial) > limit:
            seg = "\n".join(cur)
            out.append(Segment(seg, count(seg), how))
            cur, how = [unit], cut
        else:
            cur.append(unit)
            how = "word" if cut == "word" else how
    if cur:
        seg = "\n".join(cur)
        out.append(Segment(seg, count(seg), how))
    return out


def split_segment(seg: str, fraction: float, count: Counter_) -> tuple[str, str] | None:
    """(prompt, continuation): at the line break nearest `fraction` of the tokens, else at the word
    boundary nearest it; None when no cut leaves text on both sides."""
    lines = seg.split("\n")
    total = count(seg)
    target = fraction * total
    if len(lines) > 1:
        best = min(range(1, len(lines)), key=lambda k: (abs(count("\n".join(lines[:k])) - target), k))
        return "\n".join(lines[:best]), "\n".join(lines[best:])
    words = [m.start() for m in re.finditer(r"\s+", seg)]
    if not words:
        return None
    best = min(words, key=lambda p: (abs(count(seg[:p]) - target), p))
    head, tail = seg[:best].strip(), seg[best:].strip()
    return (head, tail) if head and tail else None


def segment_table(df: pl.DataFrame, cfg, tokenizer_path: str):
    """(rows, rejects, stats) for one story source, measured with the tokenizer at tokenizer_path."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    count = Counter_(tokenizer)
    out, reasons = [], {}
    tail_dropped = tail_tokens = 0
    for i, (rid, source, msgs, lang, meta) in enumerate(
        df.select("id", "source", "messages", "lang", "meta").rows()
    ):
        text = (msgs[0]["content"] if msgs else "") or ""
        segs = segments(text, cfg.segment_tokens, count, tokenizer)
        kept = [s for s in segs if s.tokens >= cfg.min_segment_tokens]
        tail_dropped += len(segs) - len(kept)
        tail_tokens += sum(s.tokens for s in segs if s.tokens < cfg.min_segment_tokens)
        made = 0
        for k, seg in enumerate(kept):
            pair = split_segment(seg.text, cfg.prompt_fraction, count)
            if pair is None:
                continue
            prompt, cont = pair
            m = {
                **records.load_meta(meta),
                "origin_ids": [rid],
                "segment": k,
                "segment_tokens": seg.tokens,
                "prompt_tokens": count(prompt),
                "cut": seg.split,
                "shots": "zero",
                "template": "story:v1",
            }
            out.append(
                records.make_record(
                    source,
                    f"{rid}:{k}",
                    "story",
                    [
                        {"role": "user", "content": USER_TURN.format(prompt=prompt)},
                        {"role": "assistant", "content": cont},
                    ],
                    lang or "ary_Arab",
                    m,
                )
            )
            made += 1
        if not made:
            reasons[i] = (
                f"story: too short (no segment of {cfg.min_segment_tokens}+ tokens with text "
                f"on both sides of a cut; {count(text)} tokens)"
            )
    table = records.from_rows(out)
    mask = pl.Series([i in reasons for i in range(df.height)], dtype=pl.Boolean)
    rejected = records.reject(df.filter(mask), "", PHASE).with_columns(
        pl.Series("reason", [reasons[i] for i in sorted(reasons)], dtype=pl.String)
    )
    used = {r["meta"] and records.load_meta(r["meta"])["origin_ids"][0] for r in out}
    if len(used) + rejected.height != df.height:
        raise RuntimeError(f"story: {df.height} stories in, {len(used)} used + {rejected.height} rejected")
    stats = {
        "rows_in": df.height,
        "generated": table.height,
        "stories_used": df.height - len(reasons),
        "rejected": len(reasons),
        "rows_out": table.height,
        "tail_segments_dropped": tail_dropped,
        "tail_tokens_dropped": tail_tokens,
        "segment_tokens": cfg.segment_tokens,
        "tokenizer": str(tokenizer_path),
        "reasons": dict(sorted({r.split(" (")[0]: 0 for r in reasons.values()}.items())),
    }
    for r in reasons.values():
        stats["reasons"][r.split(" (")[0]] += 1
    return table, rejected, stats
