"""instruct: turn native rows into Darija chat instructions (paper §3: zero-shot, few-shot, multi-turn).

Counting. A source row expands into *items*, one instruction/answer pair each:
translation rows give one item per direction of `translation_directions` whose two languages the row
has (default: the paper's six, Darija <-> English, French, MSA; other pairs only when listed), and,
with `transliteration`, ary_Latn<->ary_Arab items of task "transliteration"; sentiment and
summarization rows give one item (articles cut to their first `summarization_max_words` words).
Rows are then dealt to shot types in the exact proportions of `shots` (seeded shuffle), and every
item is answered in exactly one output conversation:

- zero: one conversation per item;
- few: one conversation per item, with `few_shot_k` solved examples of the same task and direction
  from OTHER rows in its first user turn (examples are context, not consumed);
- multi: the items of multi rows are grouped, per task, into conversations of 2..`multi_turn_max`
  turns from distinct rows; an item left without a partner becomes a zero-shot conversation.

No leakage. With `sides` (the mixture's seed and test_fraction, passed by the rule), every source
row has a side (sides.is_test of its id) and only rows of the same side are combined: few-shot
examples come from the item's own side, multi-turn partners too. So mixture, which puts a
conversation on the side of its source rows, never shows a test row's sentence in training.

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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache

import polars as pl

from atlas_forge import io, records, templates
from atlas_forge.config import ConfigError
from atlas_forge.conversations import (  # noqa: F401 (Shots, Sides: its config's API)
    Item,
    OutTable,
    Shots,
    Sides,
    group_items,
    pick_examples,
    row_sides,
)
from atlas_forge.phase import PATH, Phase, entries

log = logging.getLogger(__name__)
PHASE = "instruct"




# paper §3/Table 1: Darija <-> English, French, MSA, both ways (plus transliteration, below)
PAPER_DIRECTIONS = [
    "ary_Arab->eng_Latn", "eng_Latn->ary_Arab",
    "ary_Arab->fra_Latn", "fra_Latn->ary_Arab",
    "ary_Arab->arb_Arab", "arb_Arab->ary_Arab",
]




@dataclass(frozen=True)
class InstructConfig:
    seed: int
    shots: Shots
    few_shot_k: int = 2
    multi_turn_max: int = 3
    translation_directions: list[str] = field(default_factory=lambda: list(PAPER_DIRECTIONS))
    transliteration: bool = True
    sentiment_letters: list[str] = field(default_factory=lambda: ["A", "B", "C"])
    # our choice: an article is cut to its first N words (0: kept whole), so its title, the only
    # supervised tokens, still fits sft.max_length; the paper's titles are short, its articles are not
    summarization_max_words: int = 60
    # ours (issue 11): zero-shot rows use the exact prompt and answer format the evaluate phase scores
    # (atlas_forge/benchmarks.py, lm-eval's DarijaBench tasks): sentiment as a plain-text lettered
    # continuation, translation/transliteration/summarization through the chat template with the
    # harness's prompts. The paper overlays turn it off and keep only the paper's templates.
    benchmark_format: bool = True
    sides: Sides | None = None

    def validate(self, section: str) -> None:
        s = self.shots
        if min(s.zero, s.few, s.multi) < 0 or abs(s.zero + s.few + s.multi - 1.0) > 1e-6:
            raise ConfigError(f"{section}.shots: zero + few + multi must be 1 and each >= 0")
        if self.few_shot_k < 1:
            raise ConfigError(f"{section}.few_shot_k: must be >= 1")
        if self.multi_turn_max < 2:
            raise ConfigError(f"{section}.multi_turn_max: a multi-turn conversation needs >= 2 turns")
        for i, d in enumerate(self.translation_directions):
            src, _, tgt = d.partition("->")
            if not src or not tgt or src == tgt:
                raise ConfigError(
                    f"{section}.translation_directions[{i}]: {d!r} is not '<lang>-><other lang>'"
                )
            unknown = [lang for lang in (src, tgt) if lang not in templates.LANG_NAMES]
            if unknown:
                raise ConfigError(f"{section}.translation_directions[{i}]: no Darija name for {unknown[0]!r}")
        if len(set(self.translation_directions)) != len(self.translation_directions):
            raise ConfigError(f"{section}.translation_directions: a direction is listed twice")
        if self.summarization_max_words < 0:
            raise ConfigError(f"{section}.summarization_max_words: must be >= 0 (0 keeps articles whole)")
        if self.sides is not None and not 0.0 <= self.sides.test_fraction < 1.0:
            raise ConfigError(f"{section}.sides.test_fraction: {self.sides.test_fraction} is outside [0, 1)")




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
        for d in cfg.translation_directions:  # in the listed order
            a, b = d.split("->")
            if texts.get(a) and texts.get(b):
                out.append(("translation", d, texts[a], texts[b], ()))
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
        out.append(("summarization", None, shorten(msgs[0]["content"], cfg.summarization_max_words),
                    msgs[1]["content"], ()))
    else:
        raise ValueError(f"instruct: no templates for task {task!r} (row {rid}, source {source})")
    return [
        Item(start + i, task=t, direction=d, text=x, answer=a, choices=c, labels=labels, **base)
        for i, (t, d, x, a, c) in enumerate(out)
    ]


def benchmark_turn(item: Item) -> tuple[str, str, str, dict] | None:
    """(template id, user text, answer, extra meta) in the scored format, or None when the benchmark
    has no such item (e.g. a direction the harness does not score, offensive-comment labels)."""
    from atlas_forge import benchmarks

    if item.task == "sentiment":
        label = item.labels[item.choices.index(item.answer)]
        try:
            doc = benchmarks.sentiment_doc(item.text, label, list(item.labels))
        except ValueError:
            return None
        # plain text, as the harness scores it: the lettered prompt, then " <letter>"
        return "bench:darija_sentiment", benchmarks.sentiment_text(doc), benchmarks.sentiment_target(doc), {
            "format": "plain"
        }
    if item.task in ("translation", "transliteration"):
        src, tgt = (item.direction or "").split("->")
        code = benchmarks.translation_direction(src, tgt)
        prompts = {**benchmarks.TRANSLATION_PROMPTS, **benchmarks.TRANSLITERATION_PROMPTS}
        if code is None:
            return None
        return f"bench:{code}", prompts[code].format(item.text), item.answer, {}
    if item.task == "summarization":
        doc = benchmarks.generation_doc(benchmarks.SUMMARIZATION_PROMPT.format(item.text), item.answer, None)
        return "bench:darija_summarization", benchmarks.summarization_text(doc), item.answer, {}
    return None


def shorten(text: str, max_words: int) -> str:
    """The first max_words whitespace-separated words of text (0: all of it). Line breaks inside the
    kept part stay; a cut article ends where its N-th word ends."""
    if max_words <= 0:
        return text
    words = text.split()
    if len(words) <= max_words:
        return text
    # cut the original text after its max_words-th word, so its own spacing and line breaks stay
    pos = 0
    for w in words[:max_words]:
        pos = text.index(w, pos) + len(w)
    return text[:pos]


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
    side = row_sides(df["id"].to_list(), cfg.sides)

    rng = random.Random(cfg.seed)
    order = used_rows[:]
    rng.shuffle(order)
    n_few, n_multi = round(cfg.shots.few * len(order)), round(cfg.shots.multi * len(order))
    few_rows = set(order[:n_few])
    multi_rows = set(order[n_few : n_few + n_multi])

    # few-shot examples and multi-turn partners come from rows of the item's own side only
    pools: dict[tuple[str, str | None, str], list[Item]] = defaultdict(list)
    for it in items:
        pools[(it.task, it.direction, side[it.origin])].append(it)

    out = OutTable(side if cfg.sides is not None else None)
    zero_items: list[Item] = []
    multi_items: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for i, got in enumerate(row_items):
        for it in got:
            if i in multi_rows:
                multi_items[(it.task, side[it.origin])].append(it)
            elif i in few_rows:
                pool = pools[(it.task, it.direction, side[it.origin])]
                examples = pick_examples(pool, it, cfg.few_shot_k, rng)
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

    for key in sorted(multi_items):
        groups, leftovers = group_items(multi_items[key], cfg.multi_turn_max, rng)
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
        bench = benchmark_turn(it) if cfg.benchmark_format else None
        if bench is not None:
            tid, user, answer, extra = bench
            msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            out.add([it], "zero", msgs, [tid], extra)
            continue
        tid, tpl = _pick_template(cfg, it)
        msgs = [{"role": "user", "content": _prompt(tpl, it)}, {"role": "assistant", "content": it.answer}]
        out.add([it], "zero", msgs, [tid], {})

    table = out.table()
    counts = _check_counts(df, items, row_items, out.rows)
    n = cfg.summarization_max_words
    counts["articles_shortened"] = sum(
        1 for task, msgs in zip(df["task"].to_list(), df["messages"].to_list(), strict=True)
        if n and task == "summarization" and len(msgs[0]["content"].split()) > n
    )
    if cfg.sides is not None:
        counts["rows_by_side"] = dict(sorted(Counter(side[o] for o in {it.origin for it in items}).items()))
    return table, counts








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


CONTRACT = Phase(
    name="instruct",
    module=__name__,
    help="turn native rows into Darija chat instructions (zero-shot, few-shot, multi-turn)",
    config=InstructConfig,
    # the mixture's train/test draw: only rows of one side are combined (few-shot, multi-turn)
    reads=("mixture.seed", "mixture.test_fraction"),
    into=(("mixture.seed", "sides.seed"), ("mixture.test_fraction", "sides.test_fraction")),
    jobs=lambda params: [{"source": s["id"]} for s in entries(params, "ingest", "sources", "extra_sources")
                         if s["role"] == "native"],
    args=(("--input", {"required": True, **PATH}), ("--out", {"required": True, **PATH}),
          ("--rejects", {"required": True, **PATH})),
)


def run_cli(args: argparse.Namespace, job) -> None:
    cfg = job.config
    df = io.read_table(args.input, PHASE)
    table, counts = build_instructions(df, cfg)
    rejected = rows_without_items(df, table)
    unused = counts["rows_without_items"]
    if rejected.height != unused:
        raise RuntimeError(f"instruct: {rejected.height} rejects but {unused} rows unused")
    io.write_table(table, args.out, PHASE)
    io.write_table(rejected, args.rejects, PHASE, rejects=True)
    log.info("%s: %s", args.input, counts)
