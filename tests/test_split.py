import polars as pl

from atlas_forge import records, split
from atlas_forge.cli import main
from atlas_forge.io import write_table
from atlas_forge.textnorm import normalize_arabic


def _table(texts):
    rows = [
        records.make_record("s", str(i), "raw", [{"role": "user", "content": t}], "ary_Arab")
        for i, t in enumerate(texts)
    ]
    return records.from_rows(rows)


def test_normalize_arabic_folds_spelling_variants():
    assert normalize_arabic("  أَنَا   مْشِيت\tلِلْمَدْرَسَةِ ") == "انا مشيت للمدرسه"
    assert normalize_arabic("إلى آخر") == normalize_arabic("الي اخر")
    assert normalize_arabic("كبيـــر") == "كبير"
    assert normalize_arabic("\ufefb") == "لا"  # presentation form (NFKC)
    assert normalize_arabic("Hello  World") == "Hello World"
    assert normalize_arabic(None) == ""


def _user_texts(df):
    return [normalize_arabic(m[0]["content"]) for m in df["messages"].to_list()]


def test_split_deterministic_and_no_text_overlap():
    texts = [f"جملة رقم {i % 150}" for i in range(300)]  # every text twice
    texts += [f"جُمْلَة رقم {i}" for i in range(20)]  # diacritic variants of the same sentences
    df = _table(texts)
    cfg = split.SplitConfig(bench_fraction=0.2, salt="x", min_bench_rows=0)
    train, bench = split.split_table(df, cfg)
    assert train.height + bench.height == df.height
    assert 0 < bench.height < df.height
    assert not set(_user_texts(train)) & set(_user_texts(bench))
    again = split.split_table(df.reverse(), cfg)
    assert set(again[1]["id"]) == set(bench["id"])
    other = split.split_table(df, split.SplitConfig(bench_fraction=0.2, salt="y"))
    assert set(other[1]["id"]) != set(bench["id"])


def test_min_bench_rows_and_full_bench():
    df = _table([f"سطر {i}" for i in range(20)])
    train, bench = split.split_table(df, split.SplitConfig(bench_fraction=0.01, salt="x", min_bench_rows=5))
    assert bench.height == 5 and train.height == 15
    # top-up takes the lowest hash positions
    pos = sorted(split.bucket("x", t) for t in _user_texts(df))
    assert sorted(split.bucket("x", t) for t in _user_texts(bench)) == pos[:5]
    small = df.head(6)  # fewer than 2 * min_bench_rows: no top-up
    assert split.split_table(small, split.SplitConfig(0.0, "x", 5))[1].height == 0
    train, bench = split.split_table(df, split.SplitConfig(1.0, "x", 0))
    assert train.height == 0 and bench.height == 20


def test_cli_byte_identical(tmp_path):
    df = _table([f"سطر {i}" for i in range(50)])
    write_table(df, tmp_path / "in.parquet", "test")
    outs = []
    for run in ("a", "b"):
        args = [
            "split",
            "--params",
            '{"split": {"bench_fraction": 0.3, "salt": "s", "min_bench_rows": 2}}',
            "--input",
            str(tmp_path / "in.parquet"),
            "--train",
            str(tmp_path / f"{run}_train.parquet"),
            "--bench",
            str(tmp_path / f"{run}_bench.parquet"),
        ]
        assert main(args) == 0
        outs.append([(tmp_path / f"{run}_{p}.parquet").read_bytes() for p in ("train", "bench")])
    assert outs[0] == outs[1]
    assert (
        pl.read_parquet(tmp_path / "a_train.parquet").height
        + pl.read_parquet(tmp_path / "a_bench.parquet").height
        == 50
    )


def test_normalize_arabic_equals_reference():
    from atlas_forge.textnorm import normalize_arabic, normalize_arabic_reference

    samples = ["", "  ", "\x1c a\u00a0b \u2003c\x1f", "ﻻ ﷲ ﺍﻟﺴﻼﻡ", "أإآىة\u0640\u064b\u0652 كَتَبَ",
               "Hello\tWorld\n", "مَرْحَبًا   بِكُمْ"]
    for s in samples:
        assert normalize_arabic(s) == normalize_arabic_reference(s), repr(s)
