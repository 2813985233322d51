from collections import Counter

import pytest

from atlas_forge import records, templates
from atlas_forge.config import ConfigError, parse
from atlas_forge.instruct import PAPER_DIRECTIONS, InstructConfig, build_instructions

PARAMS = {
    "seed": 7,
    "shots": {"zero": 0.8, "few": 0.1, "multi": 0.1},
    "few_shot_k": 2,
    "multi_turn_max": 3,
    "translation_directions": list(PAPER_DIRECTIONS),
    "transliteration": True,
    "sentiment_letters": ["A", "B", "C"],
    # these tests check the paper's templates; the benchmark format is tested on its own
    "benchmark_format": False,
    "summarization_max_words": 0,
}


def _cfg(**kw):
    return parse(InstructConfig, {**PARAMS, **kw}, "instruct")


def _sentiment(n):
    labels = ["positive", "negative", "neutral"]
    return records.from_rows(
        [
            records.make_record(
                "sent",
                str(i),
                "sentiment",
                [{"role": "user", "content": f"تعليق رقم {i}"}],
                "ary_Arab",
                {"label": labels[i % 3], "labels": labels},
            )
            for i in range(n)
        ]
    )


def _pairs(n):
    rows = []
    for i in range(n):
        texts = {"ary_Arab": f"جملة {i}", "eng_Latn": f"sentence {i}", "ary_Latn": f"jomla {i}"}
        if i % 2:
            texts["fra_Latn"] = f"phrase {i}"
        rows.append(
            records.make_record(
                "pairs",
                str(i),
                "translation",
                [{"role": "user", "content": texts["ary_Arab"]}],
                "ary_Arab",
                {"texts": texts},
            )
        )
    return records.from_rows(rows)


def _metas(df):
    return [records.load_meta(m) for m in df["meta"]]


def test_sentiment_counts_shots_and_answers():
    df = _sentiment(200)
    out, counts = build_instructions(df, _cfg())
    metas = _metas(out)
    answered = Counter(i for m in metas for i in m["origin_ids"])
    assert answered == Counter(df["id"].to_list())  # every row answered exactly once
    rows_by_shot = Counter()
    for m in metas:
        rows_by_shot[m["shots"]] += len(m["origin_ids"])
    # exact quota for few; multi rows that found no partner fall back to zero-shot
    assert rows_by_shot["few"] == 20
    assert 18 <= rows_by_shot["multi"] <= 20 and rows_by_shot["zero"] == 200 - 20 - rows_by_shot["multi"]
    assert counts["items"] == 200 and counts["conversations"] == out.height
    for msgs, m in zip(out["messages"].to_list(), metas, strict=True):
        assert [x["role"] for x in msgs] == ["user", "assistant"] * (len(msgs) // 2)
        assert len(msgs) // 2 == len(m["origin_ids"])
        assert msgs[-1]["content"] in ("A. إيجابي", "B. سلبي", "C. محايد")
        if m["shots"] == "few":
            assert len(m["example_ids"]) == 2 and m["origin_ids"][0] not in m["example_ids"]
            assert msgs[0]["content"].count("الجواب: ") == 2
        if m["shots"] == "multi":
            assert 2 <= m["turns"] <= 3 and len(set(m["origin_ids"])) == m["turns"]
    # the answer is the row's own label
    by_id = {r["id"]: records.load_meta(r["meta"])["label"] for r in df.iter_rows(named=True)}
    for msgs, m in zip(out["messages"].to_list(), metas, strict=True):
        if m["shots"] == "zero":
            assert msgs[1]["content"].endswith(templates.label_name(by_id[m["origin_ids"][0]]))


def test_translation_directions_and_determinism():
    df = _pairs(40)
    cfg = _cfg(shots={"zero": 1.0, "few": 0.0, "multi": 0.0})
    out, counts = build_instructions(df, cfg)
    # paper directions only: even rows ary_Arab<->eng_Latn (2) + transliteration (2); odd rows add
    # ary_Arab<->fra_Latn (2); eng_Latn<->fra_Latn is not a paper direction
    assert counts["items"] == out.height == 20 * 4 + 20 * 6
    metas = _metas(out)
    assert len(set(out["id"])) == out.height
    tasks = Counter((t, m["direction"]) for t, m in zip(out["task"], metas, strict=True))
    assert tasks[("transliteration", "ary_Latn->ary_Arab")] == 40
    assert tasks[("translation", "fra_Latn->ary_Arab")] == 20
    assert not any(d in ("fra_Latn->eng_Latn", "eng_Latn->fra_Latn") for _, d in tasks)
    row = next(
        r
        for r, m in zip(out.iter_rows(named=True), metas, strict=True)
        if m["direction"] == "eng_Latn->ary_Arab" and m["origin_ids"] == [df["id"][3]]
    )
    assert "sentence 3" in row["messages"][0]["content"] and row["messages"][1]["content"] == "جملة 3"
    # the target's Darija name, in whichever form the picked template uses (للدارجة, بالدارجة)
    assert "لدارجة" in row["messages"][0]["content"]
    again, _ = build_instructions(df, cfg)
    assert again.equals(out)
    other, _ = build_instructions(df, _cfg(seed=8, shots={"zero": 1.0, "few": 0.0, "multi": 0.0}))
    assert not other.equals(out)
    no_translit, c2 = build_instructions(df, _cfg(transliteration=False))
    assert c2["items"] == 20 * 2 + 20 * 4
    # other pairs only when listed
    _, c3 = build_instructions(df, _cfg(translation_directions=[*PAPER_DIRECTIONS, "fra_Latn->eng_Latn"]))
    assert c3["items"] == 20 * 4 + 20 * 7


def test_multi_turn_never_pairs_one_sentence_with_itself():
    df = _pairs(30)
    out, _ = build_instructions(df, _cfg(shots={"zero": 0.0, "few": 0.0, "multi": 1.0}))
    for m in _metas(out):
        if m["shots"] == "multi":
            assert len(set(m["origin_ids"])) == len(m["origin_ids"])
    assert sum(len(m["origin_ids"]) for m in _metas(out)) == 15 * 4 + 15 * 6


def test_summarization_and_bad_config():
    rows = [
        records.make_record(
            "art",
            str(i),
            "summarization",
            [{"role": "user", "content": f"مقال {i}"}, {"role": "assistant", "content": f"عنوان {i}"}],
            "ary_Arab",
            {},
        )
        for i in range(10)
    ]
    out, counts = build_instructions(records.from_rows(rows), _cfg())
    assert counts["items"] == 10
    assert all(m[-1]["content"].startswith("عنوان") for m in out["messages"].to_list())
    with pytest.raises(ConfigError, match="shots"):
        _cfg(shots={"zero": 0.5, "few": 0.1, "multi": 0.1})
    with pytest.raises(ValueError, match="templates"):
        build_instructions(records.from_rows([records.make_record("x", "1", "chat", [], "ary_Arab")]), _cfg())
