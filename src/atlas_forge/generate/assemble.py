"""Checked generations -> Darija chat rows, assembled as the native sets are (paper §3): documents are dealt
to zero-shot, few-shot and multi-turn in the exact proportions of `shots` (seeded), few-shot rows show
`few_shot_k` solved examples of the same type from other documents, multi-turn rows group
2..`multi_turn_max` items of one type from distinct documents. Built on the pieces instruct uses too
(atlas_forge.conversations: Item, the output table, example and group draws, sides), so both sets follow
one set of rules, including "only documents of the same train/test side are combined" when the rule
passes the mixture's sides.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import polars as pl

from atlas_forge import templates
from atlas_forge.conversations import Item, OutTable, group_items, pick_examples, row_sides
from atlas_forge.generate import prompts
from atlas_forge.generate.checks import Answer


def user_turn(kind: str, document: str, ans: Answer) -> tuple[str, str]:
    """(user text, assistant text) of one checked generation."""
    lettered = [f"{prompts.LETTERS[k]}. {c}" for k, c in enumerate(ans.choices)]
    user = prompts.USER_TURNS[kind].format(
        document=document, question=ans.question, choices="\n".join(lettered)
    )
    # a multiple-choice answer is the full choice line ("B. ..."), as instruct's sentiment answers
    answer = lettered[ans.answer_index] if ans.answer_index is not None else ans.answer
    return user, answer


def assemble(df: pl.DataFrame, answers: dict[int, tuple[str, Answer]], cfg, model: str):
    """(table, counts): one output conversation answers every checked item exactly once."""
    from atlas_forge.generate.prompts import cut_document

    rows = df.select("id", "source", "messages", "lang").rows()
    items: list[Item] = []
    for i in sorted(answers):
        rid, source, msgs, lang = rows[i]
        kind, ans = answers[i]
        user, answer = user_turn(kind, cut_document(msgs[0]["content"], cfg.max_document_chars), ans)
        items.append(
            Item(
                len(items),
                origin=rid,
                source=source,
                lang=lang or "ary_Arab",
                task=f"gen_{kind}",
                direction=None,
                text=user,
                answer=answer,
            )
        )
    side = row_sides([it.origin for it in items], cfg.sides)
    rng = random.Random(cfg.seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    n_few, n_multi = round(cfg.shots.few * len(order)), round(cfg.shots.multi * len(order))
    few, multi = set(order[:n_few]), set(order[n_few : n_few + n_multi])
    pools: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for it in items:
        pools[(it.task, side[it.origin])].append(it)

    def tid(it: Item) -> str:
        kind = it.task.removeprefix("gen_")
        return f"generate:{kind}:{cfg.prompt_versions[kind]}"

    extra = {"generated_by": model}
    out = OutTable(side if cfg.sides is not None else None)
    zero: list[Item] = []
    multi_items: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for k, it in enumerate(items):
        if k in multi:
            multi_items[(it.task, side[it.origin])].append(it)
        elif k in few:
            examples = pick_examples(pools[(it.task, side[it.origin])], it, cfg.few_shot_k, rng)
            if not examples:
                zero.append(it)
                continue
            shown = "\n\n".join(
                f"{ex.text}\n{templates.FEW_SHOT_ANSWER.format(answer=ex.answer)}" for ex in examples
            )
            user = f"{templates.FEW_SHOT_INTRO}\n\n{shown}\n\n{templates.FEW_SHOT_OUTRO}\n{it.text}"
            out.add(
                [it],
                "few",
                [{"role": "user", "content": user}, {"role": "assistant", "content": it.answer}],
                [tid(it)],
                {**extra, "example_ids": [ex.origin for ex in examples]},
            )
        else:
            zero.append(it)
    for key in sorted(multi_items):
        groups, leftovers = group_items(multi_items[key], cfg.multi_turn_max, rng)
        zero += leftovers
        for group in groups:
            msgs = [
                m
                for it in group
                for m in ({"role": "user", "content": it.text}, {"role": "assistant", "content": it.answer})
            ]
            out.add(group, "multi", msgs, [tid(it) for it in group], {**extra, "turns": len(group)})
    for it in zero:
        out.add(
            [it],
            "zero",
            [{"role": "user", "content": it.text}, {"role": "assistant", "content": it.answer}],
            [tid(it)],
            extra,
        )
    table = out.table()
    answered = Counter(o for *_, origins in out.rows for o in origins)
    if answered != Counter(it.origin for it in items):
        raise RuntimeError(f"generate: {len(items)} items but {sum(answered.values())} answered")
    return table, {
        "conversations": table.height,
        "shots": dict(sorted(Counter(r[7] for r in out.rows).items())),
    }
