"""No source row on both sides: mixture train/test keyed by the source row, bench/train kept apart by
split + decontamination (issue 11, item 3). Each check fails on any shared source row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from atlas_forge import mixture, records
from atlas_forge.config import parse
from atlas_forge.filters import FilterConfig, run_steps
from atlas_forge.instruct import PAPER_DIRECTIONS, InstructConfig, build_instructions
from atlas_forge.split import SplitConfig, split_table
from atlas_forge.textnorm import normalize_arabic

SEED, TEST_FRACTION = 5, 0.3


def _instruct_cfg(sides: bool = True, **kw):
    data = {
        "seed": 7,
        "shots": {"zero": 0.4, "few": 0.3, "multi": 0.3},
        "translation_directions": list(PAPER_DIRECTIONS),
        "benchmark_format": False,  # the paper's templates (what these tests were written for)
        **({"sides": {"seed": SEED, "test_fraction": TEST_FRACTION}} if sides else {}),
        **kw,
    }
    return parse(InstructConfig, data, "instruct")


def _mix_cfg():
    return mixture.MixtureConfig(seed=SEED, test_fraction=TEST_FRACTION)


def _pairs(source: str, n: int, start: int = 0, lang: str = "ary_Arab") -> pl.DataFrame:
    """Translation rows; `lang` is the text the split keys on (the first user turn), as ingest does."""
    rows = []
    for i in range(start, start + n):
        texts = {
            "ary_Arab": f"هادي الجملة نمرة {i} ديال الاختبار",
            "eng_Latn": f"this is test sentence number {i}",
            "ary_Latn": f"hadi jjomla nmra {i} dyal l2ikhtibar",
            "fra_Latn": f"voici la phrase de test numero {i}",
        }
        rows.append(
            records.make_record(
                source,
                str(i),
                "translation",
                [{"role": "user", "content": texts[lang]}],
                lang,
                {"texts": texts},
            )
        )
    return records.from_rows(rows)


def shared_source_rows(train: pl.DataFrame, test: pl.DataFrame) -> set[str]:
    """Source rows (origin ids, few-shot example ids; own id for rows without) in both splits."""

    def keys(df):
        return {k for ks in mixture.source_keys(df) for k in ks}

    return keys(train) & keys(test)


def test_instruct_combines_rows_of_one_side_only():
    out, counts = build_instructions(_pairs("p", 300), _instruct_cfg())
    metas = [records.load_meta(m) for m in out["meta"]]
    assert {m["shots"] for m in metas} == {"zero", "few", "multi"}
    sides = mixture.row_sides(out, _mix_cfg())
    assert None not in sides  # every conversation's origins and examples share one side
    assert [m["side"] for m in metas] == sides
    assert counts["rows_by_side"]["test"] > 0 and counts["rows_by_side"]["train"] > 0


def test_mixture_never_puts_one_source_row_on_both_sides():
    out, _ = build_instructions(_pairs("p", 300), _instruct_cfg())
    train, test, _ = mixture.build_mixture(out, _mix_cfg())
    assert train.height and test.height
    assert shared_source_rows(train, test) == set()
    # every direction of one sentence is on one side
    by_origin: dict[str, set[str]] = {}
    for name, df in (("train", train), ("test", test)):
        for ks in mixture.source_keys(df):
            for k in ks:
                by_origin.setdefault(k, set()).add(name)
    assert all(len(v) == 1 for v in by_origin.values())


def test_conversations_straddling_sides_are_rejected_with_a_reason():
    # instruct without sides combines rows across the draw: mixture rejects those conversations
    out, _ = build_instructions(_pairs("p", 300), _instruct_cfg(sides=False))
    kept, rejected = mixture.drop_side_conflicts(out, _mix_cfg())
    assert rejected.height > 0 and set(rejected["reason"]) == {mixture.BOTH_SIDES}
    assert kept.height + rejected.height == out.height
    train, test, _ = mixture.build_mixture(kept, _mix_cfg())
    assert shared_source_rows(train, test) == set()
    with pytest.raises(ValueError, match="both sides"):
        mixture.build_mixture(out, _mix_cfg())


def test_the_check_catches_a_shared_row():
    out, _ = build_instructions(_pairs("p", 40), _instruct_cfg(shots={"zero": 1.0, "few": 0.0, "multi": 0.0}))
    # the old draw, by conversation id: directions of one sentence end up on both sides
    by_conv = pl.Series([mixture.is_test(SEED, i, 0.5) for i in out["id"]])
    assert shared_source_rows(out.filter(~by_conv), out.filter(by_conv))


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", normalize_arabic(text).casefold()))


def _bench_leaks(train_rows: pl.DataFrame, bench: pl.DataFrame) -> set[tuple[str, ...]]:
    """Bench texts (every language of a bench item) that a training message contains whole, as a
    run of whole words (a plain check, independent of the filter's n-gram index)."""
    bench_texts = {_words(t) for m in bench["meta"] for t in records.load_meta(m)["texts"].values()}
    bench_texts.discard(())
    lengths = sorted({len(t) for t in bench_texts})
    found = set()
    for msgs in train_rows["messages"].to_list():
        for m in msgs:
            w = _words(m["content"])
            for k in lengths:
                if k > len(w):
                    break
                found |= {w[i : i + k] for i in range(len(w) - k + 1)} & bench_texts
    return found


def test_bench_and_train_share_no_source_row_across_sources():
    """Two sources sharing sentences (DODa sentences are also in doda_ongoing): split keys each
    source by its own first-user text (doda_sentences: Arabic script, doda_ongoing: Latin script),
    so a sentence held out from one can be a training row of the other; decontamination against
    every bench set removes it."""
    a = _pairs("a", 120)
    # rows 60..119 of a again, keyed on their Latin-script text under another source, plus new ones
    b = _pairs("b", 120, start=60, lang="ary_Latn")
    cfg = SplitConfig(bench_fraction=0.2, salt="s")
    a_train, a_bench = split_table(a, cfg)
    b_train, b_bench = split_table(b, cfg)
    bench = pl.concat([a_bench, b_bench])
    icfg = _instruct_cfg()
    instr = pl.concat([build_instructions(t, icfg)[0] for t in (a_train, b_train)])
    assert _bench_leaks(instr, bench), "fixture should contain cross-source overlap to remove"
    fcfg = parse(FilterConfig, {"steps": ["decontaminate"]}, "filter")
    kept, rejected, _ = run_steps(instr, fcfg.steps, fcfg, bench)
    assert rejected.height and _bench_leaks(kept, bench) == set()


def _used_item_texts(kept: pl.DataFrame, train_rows: pl.DataFrame) -> set[tuple[str, ...]]:
    """The texts of source rows a conversation shows: both languages of each answered direction."""
    texts = {
        rid: {lang: _words(t) for lang, t in records.load_meta(m)["texts"].items()}
        for rid, m in zip(train_rows["id"], train_rows["meta"], strict=True)
    }
    used = set()
    for m in (records.load_meta(x) for x in kept["meta"]):
        directions = m.get("directions") or [m["direction"]] * len(m["origin_ids"])
        for origin, d in zip(m["origin_ids"], directions, strict=True):
            used |= {texts[origin][lang] for lang in d.split("->") if lang in texts[origin]}
    return used


def test_short_bench_items_shared_across_sources_are_removed():
    """DODa's word-or-two entries (below decontaminate.min_words) inside a templated prompt: a line
    equal to a bench item is the item, whatever its length and trailing punctuation."""
    words = ["رائع", "زوين بزاف", "مزيان", "واخا", "بلاتي شوية", "صافي", "علاش لا", "دابا", "غدا", "مبروك"]
    latn = [
        "ra2i3",
        "zwin bzaf",
        "mzyan",
        "wakha",
        "blati chwiya",
        "safi",
        "3lach la",
        "daba",
        "ghda",
        "mbrouk",
    ]
    eng = [
        "great",
        "very nice",
        "good",
        "okay",
        "slow down",
        "enough",
        "why not",
        "now",
        "tomorrow",
        "congrats",
    ]

    def table(source, lang, punct):
        return records.from_rows(
            [
                records.make_record(
                    source,
                    str(i),
                    "translation",
                    [{"role": "user", "content": {"ary_Arab": a, "ary_Latn": b}[lang] + punct}],
                    lang,
                    {"texts": {"ary_Arab": a + punct, "ary_Latn": b + punct, "eng_Latn": c + punct}},
                )
                for i, (a, b, c) in enumerate(zip(words, latn, eng, strict=True))
            ]
        )

    a, b = table("a", "ary_Arab", ""), table("b", "ary_Latn", ".")
    cfg = SplitConfig(bench_fraction=0.5, salt="x")
    (a_train, a_bench), (b_train, b_bench) = split_table(a, cfg), split_table(b, cfg)
    bench = pl.concat([a_bench, b_bench])
    train_rows = pl.concat([a_train, b_train])
    instr = pl.concat(
        [
            build_instructions(t, _instruct_cfg(shots={"zero": 1.0, "few": 0.0, "multi": 0.0}))[0]
            for t in (a_train, b_train)
        ]
    )
    bench_texts = {_words(t) for m in bench["meta"] for t in records.load_meta(m)["texts"].values()}
    assert _used_item_texts(instr, train_rows) & bench_texts, (
        "fixture should share short items across sources"
    )
    fcfg = parse(FilterConfig, {"steps": ["decontaminate"]}, "filter")
    kept, rejected, _ = run_steps(instr, fcfg.steps, fcfg, bench)
    assert _used_item_texts(kept, train_rows) & bench_texts == set()
    assert kept.height  # rows of sentences that no bench set holds stay


def test_built_mixture_and_bench_sets_share_no_source_row(default_build):
    """On the artifacts of the default build (shared with the other end-to-end tests): mixture
    train/test, and bench vs train."""
    built = default_build / "data" / "processed" / "mixture"
    train = pl.read_parquet(built / "train.parquet")
    test = pl.read_parquet(built / "test.parquet")
    assert train.height and test.height
    assert shared_source_rows(train, test) == set()
    benches = [
        pl.read_parquet(p) for p in sorted((default_build / "data/interim/split").glob("*/bench.parquet"))
    ]
    bench = pl.concat([b for b in benches if b.height])
    bench_pairs = bench.filter(pl.col("task") == "translation")
    assert bench_pairs.height
    assert _bench_leaks(train, bench_pairs) == set()
    # no bench item's own id is a training row's source row
    assert not set(bench["id"]) & {k for ks in mixture.source_keys(train) for k in ks}


def test_card_counts_side_conflicts(tmp_path: Path):
    from atlas_forge.cli import main
    from atlas_forge.io import write_table

    out, _ = build_instructions(_pairs("p", 100), _instruct_cfg(sides=False))
    write_table(out, tmp_path / "p.parquet", "test")
    params = {"seed": SEED, "test_fraction": TEST_FRACTION}
    rc = main(
        [
            "mixture",
            "--params",
            json.dumps({"mixture": params}),
            "--inputs",
            str(tmp_path / "p.parquet"),
            "--train",
            str(tmp_path / "train.parquet"),
            "--test",
            str(tmp_path / "test.parquet"),
            "--card-json",
            str(tmp_path / "card.json"),
            "--card-md",
            str(tmp_path / "card.md"),
            "--mixture-rejects",
            str(tmp_path / "rej.parquet"),
        ]
    )
    assert rc == 0
    card = json.loads((tmp_path / "card.json").read_text())
    n = card["rejects"]["mixture"]["p"][mixture.BOTH_SIDES.split(" (")[0]]
    assert n == pl.read_parquet(tmp_path / "rej.parquet").height > 0
    assert card["splits"]["train"]["rows"] + card["splits"]["test"]["rows"] + n == out.height
