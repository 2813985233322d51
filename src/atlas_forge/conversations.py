"""Building Darija chat conversations from items (instruction/answer pairs): the pieces the instruct
phase (native rows) and the generate phase (documents/posts) share, on a floor below both.

An item is answered in exactly one conversation: zero-shot, few-shot (solved examples of the same task
and direction from other rows, as context) or multi-turn (2..N items from distinct rows). With `sides`
(the mixture's seed and test_fraction) only rows of the same side are combined, so mixture, which puts
a conversation on the side of its source rows, never shows a test row's sentence in training.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

import polars as pl

from atlas_forge import records
from atlas_forge.sides import is_test


@dataclass(frozen=True)
class Shots:
    zero: float
    few: float
    multi: float


@dataclass(frozen=True)
class Sides:
    """The mixture's train/test draw (mixture.seed, mixture.test_fraction), set by the rule."""

    seed: int
    test_fraction: float


@dataclass(frozen=True, slots=True)
class Item:
    index: int  # global order: row order, then direction order
    origin: str  # input row id
    source: str
    lang: str
    task: str
    direction: str | None
    text: str
    answer: str
    choices: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # sentiment: canonical labels (offensive-language sets get own wording)

    @property
    def key(self) -> str:
        return f"{self.origin}:{self.direction or ''}"


class OutTable:
    """The output table, column by column, plus what the count check needs (no meta re-parsing)."""

    def __init__(self, sides: dict[str, str] | None = None) -> None:
        self.rows: list[tuple] = []
        self.sides = sides  # row id -> side, written to meta.side when the rule passes `sides`

    def add(self, items: list[Item], shots: str, messages: list[dict], tids: list[str], extra: dict) -> None:
        first = items[0]
        origins = [it.origin for it in items]
        meta = {"shots": shots, "template": tids[0], "origin_ids": origins, **extra}
        if self.sides is not None:
            meta["side"] = self.sides[first.origin]
        if first.direction:
            meta["direction"] = first.direction
        if len(items) > 1:
            meta["templates"] = tids
            if first.direction:
                meta["directions"] = [it.direction for it in items]
        key = "|".join(it.key for it in items)
        self.rows.append((
            min(it.index for it in items), records.record_id(first.source, key), first.source, first.task,
            messages, first.lang, records.dump_meta(meta), shots, origins,
        ))

    def table(self) -> pl.DataFrame:
        self.rows.sort(key=lambda r: r[0])
        if not self.rows:
            return records.empty()
        _, ids, sources, tasks, messages, langs, metas, *_ = zip(*self.rows, strict=True)
        # messages from flat columns: one Series of many small nested lists converts list by list
        flat = pl.DataFrame(
            {
                "row": [i for i, msgs in enumerate(messages) for _ in msgs],
                "role": [m["role"] for msgs in messages for m in msgs],
                "content": [m["content"] for msgs in messages for m in msgs],
            },
            schema={"row": pl.Int64, "role": pl.String, "content": pl.String},
        )
        nested = flat.group_by("row", maintain_order=True).agg(pl.struct("role", "content").alias("messages"))
        if nested.height != len(ids):
            raise RuntimeError("instruct: a conversation without messages")
        table = pl.DataFrame(
            {"id": ids, "source": sources, "task": tasks, "lang": langs, "meta": metas},
            schema={c: records.SCHEMA[c] for c in ("id", "source", "task", "lang", "meta")},
        ).with_columns(nested["messages"].cast(records.SCHEMA["messages"]))
        return table.select(list(records.SCHEMA))


def row_sides(ids: list[str], sides: Sides | None) -> dict[str, str]:
    """{row id: "train" | "test"} as the mixture will draw it; all "train" without `sides`."""
    if sides is None:
        return dict.fromkeys(ids, "train")
    return {i: "test" if is_test(sides.seed, i, sides.test_fraction) else "train" for i in ids}


def pick_examples(pool: list[Item], item: Item, k: int, rng: random.Random) -> list[Item]:
    """k distinct items of `pool` from rows other than the item's own, drawn without scanning the pool."""
    chosen: dict[str, Item] = {}
    # pools can hold every row of a corpus: sample by bounded rejection instead of filtering the pool
    for _ in range(20 * k if pool else 0):
        if len(chosen) == k:
            break
        cand = pool[rng.randrange(len(pool))]
        if cand.origin != item.origin and cand.origin not in chosen:
            chosen[cand.origin] = cand
    if len(chosen) < k:  # small pool: take what exists, in pool order
        for cand in pool:
            if len(chosen) == k:
                break
            if cand.origin != item.origin and cand.origin not in chosen:
                chosen[cand.origin] = cand
    return list(chosen.values())


def group_items(items: list[Item], max_turns: int, rng: random.Random) -> tuple[list[list[Item]], list[Item]]:
    """Seeded conversations of 2..max_turns items from distinct rows; leftovers cannot be paired."""
    shuffled = items[:]
    rng.shuffle(shuffled)
    queue = deque(shuffled)
    groups: list[list[Item]] = []
    leftovers: list[Item] = []
    while queue:
        size = rng.randint(2, max_turns)
        group: list[Item] = []
        skipped: list[Item] = []
        while queue and len(group) < size:
            it = queue.popleft()
            # two directions of one sentence in one conversation would give the answer away
            if any(g.origin == it.origin for g in group):
                skipped.append(it)
            else:
                group.append(it)
        queue.extendleft(reversed(skipped))
        if len(group) >= 2:
            groups.append(group)
        else:
            leftovers += group
    return groups, leftovers
