import dataclasses
import json

import polars as pl
import pytest

from atlas_forge import ingest, records
from atlas_forge.cli import main
from atlas_forge.config import ConfigError

from .conftest import ROOT


def _spec(**kw):
    base = {
        "id": "s",
        "kind": "csv",
        "role": "native",
        "task": "sentiment",
        "lang": "ary_Arab",
        "columns": {"text": "text", "label": "label"},
        "labels": {"1": "positive", "-1": "negative"},
    }
    return {**base, **kw}


def _run(spec):
    src = ingest.parse_source(spec)
    return ingest.ingest_rows(src, ingest.read_rows(src))


def test_csv_quoted_newline_bad_label_empty_text_and_latin1(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(
        "text,label\n"
        '"زوين بزاف\nالسطر التاني",1\n'  # record spans lines 2-3
        "خايب,-1\n"  # line 4
        "عادي,0\n"  # line 5: label outside the set
        ",1\n".encode()  # line 6: empty text
        + b"caf\xe9,1\n"  # line 7: latin-1 byte
        + "مزيان,1\n".encode()  # line 8
    )
    out, rej, n = _run(_spec(path=str(path)))
    assert n == 6 and out.height == 3 and rej.height == 3
    assert out["messages"].to_list()[0][0]["content"] == "زوين بزاف\nالسطر التاني"
    metas = [records.load_meta(m) for m in out["meta"]]
    assert [m["line"] for m in metas] == [2, 4, 8]
    assert metas[1]["label"] == "negative" and metas[1]["labels"] == ["positive", "negative"]
    reasons = dict(zip([records.load_meta(m)["line"] for m in rej["meta"]], rej["reason"], strict=True))
    assert reasons[5].startswith("label outside declared set")
    assert reasons[6] == "empty text: text"
    assert reasons[7].startswith("encoding")
    assert set(rej["phase"]) == {"ingest"}
    records.validate(rej, "rej", "ingest", rejects=True)


def test_jsonl_bad_line_and_chat(tmp_path):
    path = tmp_path / "c.jsonl"
    good = {
        "id": "a",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        "dataset": "oasst",
    }
    bad_role = {"id": "b", "messages": [{"role": "assistant", "content": "x"}]}
    path.write_text(json.dumps(good) + "\n{not json\n\n" + json.dumps(bad_role) + "\n", encoding="utf-8")
    spec = {
        "id": "c",
        "kind": "jsonl",
        "path": str(path),
        "role": "chat",
        "task": "chat",
        "lang": "eng_Latn",
        "columns": {"messages": "messages", "subset": "dataset", "key": "id"},
    }
    out, rej, n = _run(spec)
    assert (n, out.height, rej.height) == (3, 1, 2)
    assert records.load_meta(out["meta"][0])["subset"] == "oasst"
    assert out["id"][0] == records.record_id("c", "key:a")
    assert sorted(rej["reason"])[1].startswith("unparseable line")
    assert (
        records.load_meta(rej.filter(pl.col("reason").str.starts_with("unparseable"))["meta"][0])["line"] == 2
    )


def test_translation_texts_and_tsv_without_header_with_filter(tmp_path):
    pairs = tmp_path / "p.csv"
    pairs.write_text("en,ar,latn\nI go.,كنمشي.,kanmchi.\nOnly english,,\n", encoding="utf-8")
    spec = {
        "id": "p",
        "kind": "csv",
        "path": str(pairs),
        "role": "native",
        "task": "translation",
        "lang": "ary_Arab",
        "columns": {"eng_Latn": "en", "ary_Arab": "ar", "ary_Latn": "latn"},
    }
    out, rej, _ = _run(spec)
    assert out.height == 1 and rej["reason"].to_list() == ["empty text: ary_Arab"]
    assert records.load_meta(out["meta"][0])["texts"] == {
        "eng_Latn": "I go.",
        "ary_Arab": "كنمشي.",
        "ary_Latn": "kanmchi.",
    }
    qadi = tmp_path / "q.txt"
    qadi.write_text('واش "نتا" هنا\tMA\nشلونك\tIQ\nفين غادي\tMA\n', encoding="utf-8")
    spec = {
        "id": "q",
        "kind": "tsv",
        "path": str(qadi),
        "header": False,
        "role": "raw",
        "task": "raw",
        "lang": "ary_Arab",
        "columns": {"text": 0},
        "filter": {"1": "MA"},
    }
    out, rej, n = _run(spec)
    assert (n, out.height) == (3, 2) and rej["reason"].to_list() == ["filtered: 1 != MA"]
    assert out["messages"][0][0]["content"] == 'واش "نتا" هنا'


def test_config_errors_name_source_and_field(tmp_path):
    with pytest.raises(ConfigError, match="kind"):
        ingest.parse_source(_spec(kind="xls", path="x"))
    with pytest.raises(ConfigError, match=r"source 's'\)\.encoding: 'cp-1256' is not a Python text codec"):
        ingest.parse_source(_spec(path="x", encoding="cp-1256"))
    with pytest.raises(ConfigError, match=r"\.encoding: 'base64' is not a Python text codec"):
        ingest.parse_source(_spec(path="x", encoding="base64"))  # a codec, but bytes to bytes
    with pytest.raises(ConfigError, match=r"\.encoding: only text kinds"):
        ingest.parse_source(_spec(kind="xlsx", path="x", encoding="cp1256"))
    with pytest.raises(ConfigError, match=r"\.sheet: only xlsx sources have sheets"):
        ingest.parse_source(_spec(path="x", sheet="data"))
    with pytest.raises(ConfigError, match=r"\.columns\.text: header is false"):
        ingest.parse_source(_spec(kind="xlsx", path="x", header=False))
    assert ingest.parse_source(_spec(path="x", encoding="CP1256")).encoding == "CP1256"
    assert ingest.parse_source(_spec(kind="xlsx", path="x", sheet=0)).sheet == 0
    with pytest.raises(ValueError, match=r"source 's'.*path"):
        _run(_spec(path=str(tmp_path / "missing*.csv")))
    (tmp_path / "h.csv").write_text("body,label\nx,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'text'"):
        _run(_spec(path=str(tmp_path / "h.csv")))


def test_cli_writes_table_and_rejects(tmp_path, caplog):
    caplog.set_level("INFO")
    path = tmp_path / "r.txt"
    path.write_text("سطر واحد\n\nسطر جوج\n", encoding="utf-8")
    spec = {
        "id": "r",
        "kind": "text",
        "path": str(path),
        "role": "raw",
        "task": "raw",
        "lang": "ary_Arab",
        "columns": {"text": "text"},
    }
    rc = main(
        [
            "ingest",
            "--params",
            json.dumps({"ingest": {"source": spec}}),
            "--out",
            str(tmp_path / "o.parquet"),
            "--rejects",
            str(tmp_path / "x.parquet"),
        ]
    )
    assert rc == 0
    assert pl.read_parquet(tmp_path / "o.parquet").height == 2
    assert pl.read_parquet(tmp_path / "x.parquet").height == 0
    # every job logs what a workflow profile must grant it (bench/paper_shape.py reads these lines)
    import re

    line = re.search(r"job resources: phase=ingest wall_s=([\d.]+) peak_rss_mb=(\d+)", caplog.text)
    assert line and float(line.group(1)) >= 0 and int(line.group(2)) > 10  # this interpreter alone > 10 MB


def _hub_folder(parent, texts):
    """A local dataset folder named `belebele` in the Hub layout (README configs -> data file)."""
    folder = parent / "belebele"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: ary_Arab\n  data_files:\n  - split: test\n"
        "    path: data/ary_Arab.jsonl\n---\n",
        encoding="utf-8",
    )
    rows = [{"question_number": i, "question": t, "dialect": "ary_Arab"} for i, t in enumerate(texts, 1)]
    (folder / "data" / "ary_Arab.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return folder


def test_local_hub_folders_of_one_name_are_each_read_from_their_own_files(tmp_path, monkeypatch):
    """Two local folders both named `belebele`: each ingest gets its own folder's rows. `datasets`
    keys a local folder in its cache by the folder's name, so it used to serve the second folder the
    rows it had cached for the first (a 60-row folder ingested as the 14-row test fixture)."""
    import datasets

    shared = tmp_path / "hf-datasets-cache"  # the cache every load_dataset call shares by default
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", shared)
    big = _hub_folder(tmp_path / "a", [f"سؤال رقم {i} من الستين" for i in range(60)])
    small = _hub_folder(tmp_path / "b", [f"سؤال رقم {i} من الأربعطاش" for i in range(14)])
    expected = {
        big: [f"سؤال رقم {i} من الستين" for i in range(60)],
        small: [f"سؤال رقم {i} من الأربعطاش" for i in range(14)],
    }
    for folder in (big, small, big):
        spec = {
            "id": "belebele_local",
            "kind": "hf",
            "name": str(folder),
            "revision": "local",
            "config": "ary_Arab",
            "split": "test",
            "role": "eval",
            "task": "benchmark",
            "lang": "ary_Arab",
            "columns": {"text": "question"},
        }
        out, rej, n = _run(spec)
        assert (n, out.height, rej.height) == (len(expected[folder]), len(expected[folder]), 0), folder
        assert [m[0]["content"] for m in out["messages"]] == expected[folder]
        metas = [records.load_meta(m) for m in out["meta"]]
        assert {m["file"] for m in metas} == {f"hf://{folder}@local/test/ary_Arab"}
        assert [m["line"] for m in metas] == list(range(1, len(expected[folder]) + 1))
        first = {"question_number": 1, "question": expected[folder][0], "dialect": "ary_Arab"}
        assert metas[0]["doc"] == first
    # nothing was read from, or left in, the shared cache under the folders' common name
    assert not list(shared.glob("**/belebele*"))


def test_reader_registry_covers_the_declared_kinds(tmp_path):
    import typing

    import yaml

    from atlas_forge import sources

    schema = yaml.safe_load((ROOT / "rules" / "schemas" / "params.schema.yaml").read_text(encoding="utf-8"))
    item = schema["properties"]["ingest"]["properties"]["sources"]["items"]["properties"]
    assert set(sources.READERS) == set(item["kind"]["enum"]) == set(sources.KINDS)
    assert set(typing.get_args(typing.get_type_hints(ingest.SourceConfig)["kind"])) == set(sources.KINDS)
    assert set(sources.TEXT_KINDS) == {"csv", "tsv", "jsonl", "text"}
    # a kind no reader is registered for: the error names the source and the known kinds
    bad = dataclasses.replace(ingest.parse_source(_spec(path=str(tmp_path / "x.csv"))), kind="xls")
    with pytest.raises(sources.UnknownKindError, match=r"source 's': field 'kind' 'xls'.*known: csv, tsv"):
        sources.read_source(bad)
    with pytest.raises(ValueError, match="two readers"):
        sources.register("csv")(lambda cfg: iter(()))
