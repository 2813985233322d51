"""Already-Darija chat as a source (issue 11, item 5): the released Darija-SFT-Mixture's schema, read
through the `kind: hf` path from a local dataset folder, subsets selected by its `dataset` column,
straight to filter and mixture, and a card that counts rows per subset against a reference."""

from __future__ import annotations

import json
import re
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
    src = _source(fixture_dir, select={"dataset": ["doda", "msda", "mac", "wikipedia"]})
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
    src = _source(fixture_dir, select={"dataset": ["doda", "msda", "mac", "wikipedia"]})
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
        yaml.safe_dump({"cite": "Table 1", "subsets": {"doda": 6, "madar": 18800, "msda": 2}})
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
    assert counts["msda"]["diff"] == 0 and counts["mac"]["reference"] is None
    assert counts["wikipedia"]["reference"] is None
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


# The paper's Table 1 as printed (arXiv:2409.17912v2 §3): name -> (section, rows). The test's own copy:
# the reference file must agree with it, and the card must show every row of it.
TABLE1 = {
    "Translation": ("§4.1", 85662),
    "Transliteration": ("§4.1", 16920),
    "Sentiment Analysis": ("§4.2", 86212),
    "Summarization": ("§4.3", 16756),
    "MW-QA": ("§5.1", 30555),
    "MSM-MG": ("§5.2", 11808),
    "Story Completion": ("§5.3", 48983),
    "TÜLU-Darija": ("§6", 161259),
    "Hard-coded": ("§C.1", 130),
}
TABLE1_TOTAL = 458285
# the fixture's `dataset` values -> the Table 1 row their rows belong to (doda: DODa's translation and
# transliteration rows, one group of two rows; see the reference file)
FIXTURE_ROWS = {
    "doda": "Translation + Transliteration",
    "msda": "Sentiment Analysis",
    "mac": "Sentiment Analysis",
    "wikipedia": "MW-QA",
    "tulu": "TÜLU-Darija",
}


def _mixture_cli(tmp_path: Path, inputs: list[Path], rejects: list[Path], reference: str) -> tuple[int, Path]:
    d = tmp_path / "out"
    params = {"seed": 1, "test_fraction": 0.3, "subset_reference": reference,
              "sources": ["darija_sft_mixture"]}
    outs = {"--train": "train.parquet", "--test": "test.parquet",
            "--card-json": "card.json", "--card-md": "card.md"}
    rc = main(
        ["mixture", "--params", json.dumps({"mixture": params}), "--inputs", *map(str, inputs),
         "--rejects", *map(str, rejects), *(x for flag, f in outs.items() for x in (flag, str(d / f)))]
    )
    return rc, d


def _split_subsets(path: Path) -> Counter:
    return Counter(records.load_meta(m)["subset"] for m in pl.read_parquet(path)["meta"])


def test_released_mixture_card_shows_all_of_table1(fixture_dir, tmp_path):
    """The overlay's own reference file, the fixture's rows through ingest and the mixture CLI: the
    card lists the nine Table 1 rows with the paper's counts and the fixture's counts in their rows."""
    overlay = yaml.safe_load(OVERLAY.read_text(encoding="utf-8"))
    reference = str(ROOT / overlay["mixture"]["subset_reference"])
    src = _source(fixture_dir)
    out, rej, _ = ingest.ingest_rows(src, ingest.read_rows(src))
    write_table(out, tmp_path / "kept.parquet", "test")
    write_table(rej, tmp_path / "rejects" / "ingest" / "darija_sft_mixture.parquet", "test", rejects=True)
    rc, d = _mixture_cli(tmp_path, [tmp_path / "kept.parquet"],
                         [tmp_path / "rejects" / "ingest" / "darija_sft_mixture.parquet"], reference)
    assert rc == 0
    card = json.loads((d / "card.json").read_text())
    t1 = card["table1"]
    assert "2409.17912v2" in t1["cite"] and t1["path"] == reference

    # all nine rows, in the paper's order, with the paper's sections and counts
    assert [(r["name"], r["section"], r["paper"]) for r in t1["rows"]] == [(n, *v) for n, v in TABLE1.items()]
    assert t1["total"]["paper"] == TABLE1_TOTAL == sum(p for _, p in TABLE1.values())

    # the fixture's counts, per split, in the right rows (read back from the split files, not the card)
    train, test = _split_subsets(d / "train.parquet"), _split_subsets(d / "test.parquet")
    assert train and test and set(train) | set(test) == set(FIXTURE_ROWS)
    lines = {r["name"]: r for r in t1["rows"]} | {g["name"]: g for g in t1["groups"]}
    assert set(FIXTURE_ROWS.values()) <= set(lines)
    for name, line in lines.items():
        keys = [k for k, row in FIXTURE_ROWS.items() if row == name]
        if line.get("group"):  # a row of a group: no per-row count is guessed
            assert line["mixture"] is None and line["train"] is None and line["diff"] is None
            continue
        exp_train, exp_test = sum(train[k] for k in keys), sum(test[k] for k in keys)
        got = (line["train"], line["test"], line["mixture"])
        assert got == (exp_train, exp_test, exp_train + exp_test), name
        assert line["diff"] == line["mixture"] - line["paper"]
    assert lines["Sentiment Analysis"]["mixture"] == 4 and lines["MW-QA"]["mixture"] == 3
    assert lines["Summarization"]["mixture"] == 0 and lines["Hard-coded"]["mixture"] == 0
    (group,) = t1["groups"]
    assert group["name"] == "Translation + Transliteration" and group["shared_keys"] == ["doda"]
    assert group["paper"] == TABLE1["Translation"][1] + TABLE1["Transliteration"][1] and group["mixture"] == 6
    assert {r["group"] for r in t1["rows"] if r["group"]} == {group["id"]}
    assert t1["unmapped"] == [] and t1["no_subset"] is None
    assert t1["total"]["mixture"] == len(darija_sft_fixture.rows()) == train.total() + test.total()
    assert t1["total"]["diff"] == len(darija_sft_fixture.rows()) - TABLE1_TOTAL

    md = (d / "card.md").read_text()
    assert "## Table 1 of the paper against this mixture" in md
    for name, (section, paper) in TABLE1.items():
        line = lines[name]
        got = "in group: Translation + Transliteration |" if line.get("group") else (
            f"{line['train']} | {line['test']} | {line['mixture']} | {line['diff']:+d} |")
        head = f"| {name} | {section} | {paper} | "
        (md_line,) = [m for m in md.splitlines() if m.startswith(head)]
        assert got in md_line, md_line
    assert "| group: Translation + Transliteration (doda in several rows) | §4.1 | 102582 |" in md
    n = len(darija_sft_fixture.rows())
    tr, te = train.total(), test.total()
    assert f"| Total | | {TABLE1_TOTAL} | {tr} | {te} | {n} | {n - TABLE1_TOTAL:+d} |" in md


def test_table1_lists_unmapped_keys_and_rows_without_subset(tmp_path):
    """A subset key the reference does not map, and rows with no subset, get their own lines."""
    from atlas_forge.mixture import load_reference, table1_section

    def row(key, i):
        meta = {} if key is None else {"subset": key}
        msgs = [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": f"a {i}"}]
        return records.make_record("s", f"{key}-{i}", "chat", msgs, "ary_Arab", meta)

    ref = load_reference(str(ROOT / "configs" / "reference" / "atlas-chat-table1.yaml"))
    train = records.from_rows([row("marsum", 0), row("not_a_key", 1), row("not_a_key", 2), row(None, 3)])
    test = records.from_rows([row("myc", 4), row("transliteration", 5)])
    t1 = table1_section(train, test, ref)
    assert [(u["key"], u["train"], u["test"]) for u in t1["unmapped"]] == [("not_a_key", 2, 0)]
    assert t1["no_subset"] == {"train": 1, "test": 0, "mixture": 1}
    by_name = {r["name"]: r for r in t1["rows"]}
    assert by_name["Summarization"]["mixture"] == 1 and by_name["Sentiment Analysis"]["test"] == 1
    assert t1["groups"][0]["keys"]["transliteration"] == 1 and t1["groups"][0]["mixture"] == 1
    assert len(t1["rows"]) == 9 and t1["total"]["mixture"] == 6


def _bad(ref: dict, path: str, value):
    """ref with the value at dotted path replaced (None: the key removed)."""
    *parents, last = path.split(".")
    node = ref
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return ref


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("subset_map.doda", ["translation", "translit"],
         "subset_map.doda: 'translit' is not a row of table1.rows"),
        ("subset_map.myc", [], "subset_map.myc: maps to no Table 1 row"),
        ("table1.rows.mw_qa.rows", -5, "table1.rows.mw_qa.rows: -5 is negative"),
        ("table1.rows.mw_qa.rows", "30,555", "table1.rows.mw_qa.rows: expected int"),
        ("table1.rows.hard_coded.rows", True, "table1.rows.hard_coded.rows: expected int, got bool"),
        ("table1.total", 458284, "table1.total: 458284, but table1.rows sum to 458285"),
        ("table1.rows.msm_mg.name", None, "table1.rows.msm_mg.name: required key is missing"),
        ("subsets.doda", 1.5, "subsets.doda: expected int"),
        ("subsets.madar", -1, "subsets.madar: -1 is negative"),
        ("subset_mpa", {"doda": "translation"}, "subset_mpa: unknown key"),
        ("table1", None, "subset_map: maps subset keys to table rows, but there is no table1"),
    ],
)
def test_bad_reference_file_names_file_and_key(tmp_path, key, value, message):
    from atlas_forge.mixture import load_reference

    good = ROOT / "configs" / "reference" / "atlas-chat-table1.yaml"
    ref = _bad(yaml.safe_load(good.read_text(encoding="utf-8")), key, value)
    bad = tmp_path / "table1.yaml"
    bad.write_text(yaml.safe_dump(ref, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{bad}: {message}")):
        load_reference(str(bad))


def test_mixture_cli_fails_on_a_bad_reference(fixture_dir, tmp_path, capsys):
    good = ROOT / "configs" / "reference" / "atlas-chat-table1.yaml"
    ref = _bad(yaml.safe_load(good.read_text(encoding="utf-8")), "subset_map.tulu", "tulu")
    bad = tmp_path / "table1.yaml"
    bad.write_text(yaml.safe_dump(ref, allow_unicode=True), encoding="utf-8")
    src = _source(fixture_dir)
    out, _, _ = ingest.ingest_rows(src, ingest.read_rows(src))
    write_table(out, tmp_path / "kept.parquet", "test")
    rc, d = _mixture_cli(tmp_path, [tmp_path / "kept.parquet"], [], str(bad))
    assert rc == 2 and not (d / "card.json").exists()
    assert f"{bad}: subset_map.tulu: 'tulu' is not a row of table1.rows" in capsys.readouterr().err


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
    assert [r["name"] for r in card["table1"]["rows"]] == list(TABLE1)
    splits = card["splits"]
    assert card["table1"]["total"]["mixture"] == splits["train"]["rows"] + splits["test"]["rows"]
