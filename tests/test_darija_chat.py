"""Already-Darija chat as a source (issue 11, item 5): the released Darija-SFT-Mixture's schema, read
through the `kind: hf` path from a local dataset folder, subsets selected by its `dataset` column,
straight to filter and mixture, and a card that counts rows per subset against a reference."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml

from atlas_forge import ingest, records
from atlas_forge.cli import main
from atlas_forge.config import ConfigError, parse
from atlas_forge.filters import FilterConfig, run_steps
from atlas_forge.io import write_table

from . import darija_sft_fixture
from .conftest import ROOT

OVERLAY = ROOT / "configs" / "paper-mixture-hf.yaml"


def _released_source() -> dict:
    """The overlay's source entry, as written."""
    return yaml.safe_load(OVERLAY.read_text(encoding="utf-8"))["ingest"]["extra_sources"][0]


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    return darija_sft_fixture.write(tmp_path_factory.mktemp("hub"))


def _source(fixture_dir: Path, **kw) -> ingest.SourceConfig:
    # the overlay's own entry, pointed at the local copy (what an offline user does)
    return ingest.parse_source({**_released_source(), "name": str(fixture_dir), **kw})


def test_overlay_pins_a_full_revision():
    src = _released_source()
    assert src["role"] == "darija_chat" and src["kind"] == "hf"
    assert len(src["revision"]) == 40 and int(src["revision"], 16) >= 0
    assert src["filter_steps"] == ["empty", "exact_dedup", "decontaminate"]


def test_hf_fixture_ingests_with_subset_selection(fixture_dir):
    src = _source(fixture_dir, select={"dataset": ["doda", "sentiment", "wikipedia"]})
    out, rej, n_read = ingest.ingest_rows(src, ingest.read_rows(src))
    expected = Counter(r["dataset"] for r in darija_sft_fixture.rows())
    assert n_read == sum(expected.values()) == out.height + rej.height
    assert rej.height == expected["tulu"]
    assert set(rej["reason"]) == {"not selected: dataset=tulu"}
    subsets = Counter(records.load_meta(m)["subset"] for m in out["meta"])
    assert subsets == {k: v for k, v in expected.items() if k != "tulu"}
    assert set(out["task"]) == {"chat"} and set(out["lang"]) == {"ary_Arab"}
    wiki = out.filter(pl.col("meta").str.contains('"subset": "wikipedia"'))
    assert wiki["messages"].list.len().to_list() == [4, 4, 4]  # multi-turn chats kept whole
    # no select: every row, the paper's Table 1 mixture
    src_all = _source(fixture_dir)
    all_rows, no_rej, _ = ingest.ingest_rows(src_all, ingest.read_rows(src_all))
    assert all_rows.height == n_read and no_rej.height == 0


def test_darija_chat_needs_chat_task_and_select_values(fixture_dir):
    with pytest.raises(ConfigError, match="darija_chat"):
        _source(fixture_dir, task="translation", columns={"ary_Arab": "a", "eng_Latn": "b"})
    with pytest.raises(ConfigError, match="select.dataset"):
        _source(fixture_dir, select={"dataset": []})


def test_fixture_rows_through_filter_and_mixture_card(fixture_dir, tmp_path):
    src = _source(fixture_dir, select={"dataset": ["doda", "sentiment", "wikipedia"]})
    out, rej, _ = ingest.ingest_rows(src, ingest.read_rows(src))
    # a benchmark item equal to one doda row's question: decontamination removes that row
    bench = records.from_rows(
        [
            records.make_record(
                "bench",
                "1",
                "translation",
                [{"role": "user", "content": out["messages"][0][0]["content"]}],
                "ary_Arab",
                {},
            )
        ]
    )
    fcfg = parse(FilterConfig, {"steps": src.filter_steps}, "filter")
    kept, frej, report = run_steps(out, fcfg.steps, fcfg, bench)
    assert frej.height == 1 and frej["reason"][0].startswith("decontaminate")
    write_table(kept, tmp_path / "kept.parquet", "test")
    write_table(rej, tmp_path / "rejects" / "ingest" / "darija_sft_mixture.parquet", "test", rejects=True)
    write_table(frej, tmp_path / "rejects" / "filter" / "darija_sft_mixture.parquet", "test", rejects=True)
    ref = tmp_path / "table1.yaml"
    ref.write_text(
        yaml.safe_dump({"cite": "Table 1", "subsets": {"doda": 6, "madar": 18800, "sentiment": 4}})
    )
    d = tmp_path / "out"
    params = {
        "seed": 1,
        "test_fraction": 0.2,
        "subset_reference": str(ref),
        "sources": ["darija_sft_mixture"],
    }
    rc = main(
        [
            "mixture",
            "--params",
            json.dumps({"mixture": params}),
            "--inputs",
            str(tmp_path / "kept.parquet"),
            "--rejects",
            str(tmp_path / "rejects" / "ingest" / "darija_sft_mixture.parquet"),
            str(tmp_path / "rejects" / "filter" / "darija_sft_mixture.parquet"),
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
    assert rc == 0
    card = json.loads((d / "card.json").read_text())
    counts = card["subsets"]["counts"]
    assert counts["doda"]["rows"] == 5 and counts["doda"]["reference"] == 6 and counts["doda"]["diff"] == -1
    assert counts["sentiment"]["diff"] == 0 and counts["wikipedia"]["reference"] is None
    assert counts["madar"]["rows"] == 0 and counts["madar"]["diff"] == -18800
    assert card["subsets"]["reference"]["cite"] == "Table 1"
    assert card["rejects"]["ingest"]["darija_sft_mixture"] == {"not selected: dataset=tulu": 2}
    md = (d / "card.md").read_text()
    assert "## Subsets (meta.subset)" in md and "| doda | " in md and "| -1 |" in md


def test_paper_reference_file_is_well_formed():
    from atlas_forge.mixture import load_reference

    overlay = yaml.safe_load(OVERLAY.read_text(encoding="utf-8"))
    ref = load_reference(str(ROOT / overlay["mixture"]["subset_reference"]))
    assert ref.subsets == {"doda": 67680, "madar": 18800}
    assert "2409.17912" in ref.cite and "2409.17912v2" in ref.table1.cite


@pytest.mark.slow
def test_overlay_builds_the_released_mixture_end_to_end(tmp_path):
    """snakemake mixture with configs/paper-mixture-hf.yaml, `name` pointed at the local fixture:
    ingest (kind hf) -> filter (the overlay's steps) -> mixture, whose card compares per subset."""
    import os
    import subprocess
    import sys

    from .conftest import copy_project

    work = copy_project(tmp_path / "work")
    folder = darija_sft_fixture.write(tmp_path / "hub")
    local = _released_source() | {"name": str(folder)}
    (work / "local.yaml").write_text(yaml.safe_dump({"ingest": {"extra_sources": [local]}}), encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "mixture",
         "--configfile", "configs/paper-mixture-hf.yaml", "local.yaml"],
        cwd=work, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    card = json.loads((work / "data/reports/mixture_card.json").read_text())
    assert set(card["splits"]["train"]["by_source"]) == {"darija_sft_mixture"}
    counts = card["subsets"]["counts"]
    expected = Counter(r["dataset"] for r in darija_sft_fixture.rows())
    assert {k: counts[k]["rows"] for k in expected} == dict(expected)
    assert counts["doda"]["reference"] == 67680 and counts["madar"]["reference"] == 18800
    filter_report = json.loads((work / "data/reports/filter/darija_sft_mixture.json").read_text())
    assert [s["step"] for s in filter_report["steps"]] == ["empty", "exact_dedup", "decontaminate"]
    assert "## Subsets (meta.subset)" in (work / "data/reports/mixture_card.md").read_text()
