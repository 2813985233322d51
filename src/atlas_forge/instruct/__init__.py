"""instruct: turn native rows into Darija chat instructions (paper §3: zero-shot, few-shot, multi-turn).

Counting. A source row expands into *items*, one instruction/answer pair each:
translation rows give one item per ordered pair of their languages among `translation_langs`
(and, with `transliteration`, ary_Latn<->ary_Arab items of task "transliteration"); sentiment and
summarization rows give one item. Rows are then dealt to shot types in the exact proportions of
`shots` (seeded shuffle), and every item is answered in exactly one output conversation:

- zero: one conversation per item;
- few: one conversation per item, with `few_shot_k` solved examples of the same task and direction
  from OTHER rows in its first user turn (examples are context, not consumed);
- multi: the items of multi rows are grouped, per task, into conversations of 2..`multi_turn_max`
  turns from distinct rows; an item left without a partner becomes a zero-shot conversation.

So: items = sum over output rows of len(meta.origin_ids), and every input row is either in some
origin_ids or has no item at all (a translation row with one usable language); both are checked.
Ids: record_id(source, "<origin id>:<direction>|..." over the answered items).

Sentiment answers are the full choice line ("A. إيجابي"), see templates.sentiment_choices.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from functools import cache

import polars as pl

from atlas_forge import io, records
from atlas_forge.config import ConfigError, parse
from atlas_forge.instruct import templates

log = logging.getLogger(__name__)
PHASE = "instruct"


@dataclass(frozen=True)
class Shots:
    zero: float
    few: float
    multi: float


@dataclass(frozen=True)
class InstructConfig:
    seed: int
    shots: Shots
    few_shot_k: int = 2
    multi_turn_max: int = 3
    translation_langs: list[str] = field(
        default_factory=lambda: ["ary_Arab", "eng_Latn", "fra_Latn", "arb_Arab"]
    )
    transliteration: bool = True
    sentiment_letters: list[str] = field(default_factory=lambda: ["A", "B", "C"])

    def validate(self, section: str) -> None:
        s = self.shots
        if min(s.zero, s.few, s.multi) < 0 or abs(s.zero + s.few + s.multi - 1.0) > 1e-6:
            raise ConfigError(f"{section}.shots: zero + few + multi must be 1 and each >= 0")
        if self.few_shot_k < 1:
            raise ConfigError(f"{section}.few_shot_k: must be >= 1")
        if self.multi_turn_max < 2:
            raise ConfigError(f"{section}.multi_turn_max: a multi-turn conversation needs >= 2 turns")
        unknown = [lang for lang in self.translation_langs if lang not in templates.LANG_NAMES]
        if unknown:
            raise ConfigError(f"{section}.translation_langs: no Darija name for {unknown[0]!r}")


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


def _items_of_row(
    rid: str, source: str, task: str, msgs: list[dict], lang: str, meta_s: str | None, start: int,
    cfg: InstructConfig,
) -> list[Item]:
    meta = records.load_meta(meta_s)
    base = {"origin": rid, "source": source, "lang": lang}
    out: list[tuple[str, str | None, str, str, tuple[str, ...]]] = []
    labels: tuple[str, ...] = ()
    if task == "translation":
        texts = meta.get("texts", {})
        langs = [lang for lang in cfg.translation_langs if texts.get(lang)]
        out += [("translation", f"{a}->{b}", texts[a], texts[b], ()) for a in langs for b in langs if a != b]
        if cfg.transliteration and texts.get("ary_Latn") and texts.get("ary_Arab"):
            out += [
                ("transliteration", "ary_Latn->ary_Arab", texts["ary_Latn"], texts["ary_Arab"], ()),
                ("transliteration", "ary_Arab->ary_Latn", texts["ary_Arab"], texts["ary_Latn"], ()),
            ]
    elif task == "sentiment":
        choices = templates.sentiment_choices(meta["labels"], cfg.sentiment_letters)
        answer = choices[meta["labels"].index(meta["label"])]
        out.append(("sentiment", None, msgs[0]["content"], answer, tuple(choices)))
        labels = tuple(meta["labels"])
    elif task == "summarization":
        out.append(("summarization", None, msgs[0]["content"], msgs[1]["content"], ()))
    else:
        raise ValueError(f"instruct: no templates for task {task!r} (row {rid}, source {source})")
    return [
        Item(start + i, task=t, direction=d, text=x, answer=a, choices=c, labels=labels, **base)
        for i, (t, d, x, a, c) in enumerate(out)
    ]


@cache
def _options(task: str, direction: str | None, labels: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(templates.templates_for(task, direction, labels).items()))


def _pick_template(cfg: InstructConfig, item: Item) -> tuple[str, str]:
    # a hash of (seed, item key), so one row's wording does not shift when other rows change; no RNG
    # object per item
    options = _options(item.task, item.direction, item.labels)
    digest = hashlib.blake2b(f"{cfg.seed}\x1ftemplate\x1f{item.key}".encode(), digest_size=8).digest()
    return options[int.from_bytes(digest, "little") % len(options)]


def _prompt(template: str, item: Item) -> str:
    return templates.render(template, item.text, item.direction, list(item.choices))


class _Out:
    """The output table, column by column, plus what the count check needs (no meta re-parsing)."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, items: list[Item], shots: str, messages: list[dict], tids: list[str], extra: dict) -> None:
        first = items[0]
        origins = [it.origin for it in items]
        meta = {"shots": shots, "template": tids[0], "origin_ids": origins, **extra}
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


def build_instructions(df: pl.DataFrame, cfg: InstructConfig) -> tuple[pl.DataFrame, dict]:
    """Pure core: (instruction table, counts)."""
    items: list[Item] = []
    row_items: list[list[Item]] = []
    cols = (df[c].to_list() for c in ("id", "source", "task", "messages", "lang", "meta"))
    for rid, source, task, msgs, lang, meta_s in zip(*cols, strict=True):
        got = _items_of_row(rid, source, task, msgs, lang, meta_s, len(items), cfg)
        items += got
        row_items.append(got)
    used_rows = [i for i, got in enumerate(row_items) if got]

    rng = random.Random(cfg.seed)
    order = used_rows[:]
    rng.shuffle(order)
    n_few, n_multi = round(cfg.shots.few * len(order)), round(cfg.shots.multi * len(order))
    few_rows = set(order[:n_few])
    multi_rows = set(order[n_few : n_few + n_multi])

    pools: dict[tuple[str, str | None], list[Item]] = defaultdict(list)
    for it in items:
        pools[(it.task, it.direction)].append(it)

    out = _Out()
    zero_items: list[Item] = []
    multi_items: dict[str, list[Item]] = defaultdict(list)
    for i, got in enumerate(row_items):
        for it in got:
            if i in multi_rows:
                multi_items[it.task].append(it)
            elif i in few_rows:
                examples = _examples(pools[(it.task, it.direction)], it, cfg.few_shot_k, rng)
                if not examples:
                    zero_items.append(it)
                    continue
                tid, tpl = _pick_template(cfg, it)
                shown = "\n\n".join(
                    f"{_prompt(tpl, ex)}\n{templates.FEW_SHOT_ANSWER.format(answer=ex.answer)}"
                    for ex in examples
                )
                user = (
                    f"{templates.FEW_SHOT_INTRO}\n\n{shown}\n\n{templates.FEW_SHOT_OUTRO}\n{_prompt(tpl, it)}"
                )
                msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": it.answer}]
                out.add([it], "few", msgs, [tid], {"example_ids": [ex.origin for ex in examples]})
            else:
                zero_items.append(it)

    for task in sorted(multi_items):
        groups, leftovers = _group(multi_items[task], cfg.multi_turn_max, rng)
        zero_items += leftovers
        for group in groups:
            msgs, tids = [], []
            for it in group:
                tid, tpl = _pick_template(cfg, it)
                tids.append(tid)
                msgs += [
                    {"role": "user", "content": _prompt(tpl, it)},
                    {"role": "assistant", "content": it.answer},
                ]
            out.add(group, "multi", msgs, tids, {"turns": len(group)})

    for it in zero_items:
        tid, tpl = _pick_template(cfg, it)
        msgs = [{"role": "user", "content": _prompt(tpl, it)}, {"role": "assistant", "content": it.answer}]
        out.add([it], "zero", msgs, [tid], {})

    table = out.table()
    counts = _check_counts(df, items, row_items, out.rows)
    return table, counts


def _examples(pool: list[Item], item: Item, k: int, rng: random.Random) -> list[Item]:
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


def _group(items: list[Item], max_turns: int, rng: random.Random) -> tuple[list[list[Item]], list[Item]]:
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


def _check_counts(
    df: pl.DataFrame, items: list[Item], row_items: list[list[Item]], rows: list[tuple]
) -> dict:
    answered: Counter[str] = Counter()
    shots: Counter[str] = Counter()
    for *_, msgs, _lang, _meta, shot, origins in rows:
        shots[shot] += 1
        answered.update(origins)
        if sum(m["role"] == "assistant" for m in msgs) != len(origins):
            raise RuntimeError("instruct: a conversation's answers do not match its origin_ids")
    expected = Counter(it.origin for it in items)
    if answered != expected:
        raise RuntimeError(f"instruct: {sum(expected.values())} items but {sum(answered.values())} answered")
    no_items = sum(1 for got in row_items if not got)
    if len({it.origin for it in items}) + no_items != df.height:
        raise RuntimeError(f"instruct: rows in {df.height} != rows used + rows without items ({no_items})")
    return {
        "rows_in": df.height,
        "rows_used": df.height - no_items,
        "rows_without_items": no_items,
        "items": len(items),
        "conversations": len(rows),
        "shots": dict(sorted(shots.items())),
    }


def rows_without_items(df: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Input rows no conversation answers (e.g. a pair with one usable language), as rejects."""
    origin_ids = pl.col("meta").str.json_decode(pl.Struct({"origin_ids": pl.List(pl.String)}))
    used = table.select(origin_ids.struct.field("origin_ids").explode().drop_nulls().unique())
    unused = df.filter(~pl.col("id").is_in(used.to_series().implode()))
    return records.reject(unused, "no instruction: fewer than two usable languages or fields", PHASE)


def run_cli(args: argparse.Namespace) -> None:
    cfg = parse(InstructConfig, args.params, "instruct")
    df = io.read_table(args.input, PHASE)
    table, counts = build_instructions(df, cfg)
    rejected = rows_without_items(df, table)
    unused = counts["rows_without_items"]
    if rejected.height != unused:
        raise RuntimeError(f"instruct: {rejected.height} rejects but {unused} rows unused")
    io.write_table(table, args.out, PHASE)
    io.write_table(rejected, args.rejects, PHASE, rejects=True)
    log.info("%s: %s", args.input, counts)
