import json

import polars as pl

from atlas_forge import mixture, records, store
from atlas_forge.cli import main
from atlas_forge.io import write_table


def _rows(source, n, task="translation"):
    return records.from_rows(
        [
            records.make_record(
                source,
                str(i),
                task,
                [
                    {"role": "user", "content": f"سطر {i} ديال {source}"},
                    {"role": "assistant", "content": "جواب"},
                ],
                "ary_Arab",
            )
            for i in range(n)
        ]
    )


def _cfg(**kw):
    return mixture.MixtureConfig(**{"seed": 3, "test_fraction": 0.2, **kw})


def test_weights_caps_and_stable_test_side():
    tables = pl.concat([_rows("a", 100), _rows("b", 60, "sentiment")])
    train, test, steps = mixture.build_mixture(tables, _cfg(weights={"a": 0.5, "b": 2.0}))
    both = pl.concat([train, test])
    assert both.filter(pl.col("source") == "a").height == 50
    assert both.filter(pl.col("source") == "b").height == 120
    assert both.filter(pl.col("source") == "a")["id"].n_unique() == 50
    assert steps["b"] == {"rows_in": 60, "weight": 2.0, "rows_weighted": 120, "cap": None, "rows_out": 120}
    # duplicates of one row stay on one side; sides do not depend on weights
    assert not set(train["id"]) & set(test["id"])
    plain_train, plain_test, _ = mixture.build_mixture(tables, _cfg())
    assert set(test["id"]) <= set(plain_test["id"])
    assert 0.1 < plain_test.height / tables.height < 0.35  # 160 rows: binomial spread around 0.2
    _, _, capped = mixture.build_mixture(tables, _cfg(weights={"b": 2.0}, caps={"b": 70, "a": 1000}))
    assert capped["b"]["rows_out"] == 70 and capped["a"]["rows_out"] == 100
    zero, _, _ = mixture.build_mixture(tables, _cfg(weights={"a": 0.0}))
    assert "a" not in set(zero["source"])


def test_order_independent_and_card_counts():
    a, b = _rows("a", 30), _rows("b", 20, "sentiment")
    t1 = mixture.build_mixture(pl.concat([a, b]), _cfg())
    t2 = mixture.build_mixture(pl.concat([b.reverse(), a]), _cfg())
    assert t1[0].equals(t2[0]) and t1[1].equals(t2[1])
    rej = records.reject(_rows("a", 3), "empty text", "ingest")
    card = mixture.build_card(t1[0], t1[1], t1[2], rej, {"f": "0"}, {"seed": 3})
    tr = card["splits"]["train"]
    assert tr["rows"] == t1[0].height
    assert tr["tokens"] == t1[0].height * 5  # 4 words + 1 word per row
    assert sum(v["rows"] for v in tr["by_task"].values()) == tr["rows"]
    assert card["rejects"] == {"ingest": {"a": {"empty text": 3}}}
    assert "| ingest | a | empty text | 3 |" in mixture.card_markdown(card)


def test_cli_byte_identical(tmp_path):
    write_table(_rows("a", 40), tmp_path / "a.parquet", "test")
    write_table(_rows("b", 25, "sentiment"), tmp_path / "b.parquet", "test")
    write_table(records.reject(_rows("a", 2), "bad", "filter"), tmp_path / "r.parquet", "test", rejects=True)
    params = {"seed": 1, "test_fraction": 0.25, "weights": {"a": 1.5}, "caps": {"b": 10}}
    outs = []
    for run in ("x", "y"):
        d = tmp_path / run
        assert (
            main(
                [
                    "mixture",
                    "--params",
                    json.dumps({"mixture": params}),
                    "--inputs",
                    str(tmp_path / "a.parquet"),
                    str(tmp_path / "b.parquet"),
                    "--rejects",
                    str(tmp_path / "r.parquet"),
                    "--train",
                    str(d / "train.parquet"),
                    "--test",
                    str(d / "test.parquet"),
                    "--card-json",
                    str(d / "card.json"),
                    "--card-md",
                    str(d / "card.md"),
                ]
            )
            == 0
        )
        outs.append({p.name: p.read_bytes() for p in sorted(d.iterdir())})
    assert outs[0] == outs[1] and len(outs[0]) == 4
    card = json.loads(outs[0]["card.json"])
    assert card["weighting"]["a"]["rows_out"] == 60 and card["weighting"]["b"]["rows_out"] == 10
    assert card["params_sha256"] == store.sha256_json(params)
    assert set(card["files_sha256"]) == {str(tmp_path / n) for n in ("a.parquet", "b.parquet", "r.parquet")}
    assert card["splits"]["train"]["rows"] + card["splits"]["test"]["rows"] == 70
