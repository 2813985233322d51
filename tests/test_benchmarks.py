"""Benchmark definitions (atlas_forge.benchmarks) against lm-eval's own task objects, and the Hub overlay.

Fast checks; tests/test_benchmark_parity.py (slow) compares scores with lm-eval's runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_forge import benchmarks

ROOT = Path(__file__).resolve().parents[1]
HUB = Path(__file__).parent / "fixtures" / "hub"


def _lm_eval_task(tmp_path, include: str, data_files: dict):
    """lm-eval's stock task object (include by absolute path) on the fixture files."""
    import lm_eval
    import yaml
    from lm_eval.tasks import TaskManager

    stock = Path(lm_eval.__file__).parent / "tasks" / include
    name = "af_" + stock.stem.replace("-", "_")
    body = {
        "include": str(stock),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files},
    }
    if "summarization" in include:  # its ROUGE/BERTScore metrics load from the Hub; prompts don't need them
        body["metric_list"] = [{"metric": "chrf"}]
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    tm = TaskManager(include_path=str(tmp_path), include_defaults=False)
    return tm.load_task_or_group([name])[name]


def _docs(path: Path) -> list[dict]:
    import json

    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.mark.parametrize(
    "family,include,files,split",
    [
        (
            "darijammlu",
            "darijammlu/_default_darijammlu_template_yaml",
            {
                "test": "DarijaMMLU/reading/test-00000-of-00001.jsonl",
                "dev": "DarijaMMLU/reading/dev-00000-of-00001.jsonl",
            },
            "test",
        ),
        (
            "darijahellaswag",
            "darijahellaswag/darijahellaswag.yaml",
            {
                "train": "DarijaHellaSwag/data/train-00000-of-00001.jsonl",
                "validation": "DarijaHellaSwag/data/validation-00000-of-00001.jsonl",
            },
            "validation",
        ),
        ("belebele", "belebele/belebele_ary_Arab.yaml", {"test": "belebele/data/ary_Arab.jsonl"}, "test"),
        (
            "darija_sentiment",
            "darija_bench/darija_sentiment/darija_sentiment_mac.yaml",
            {"mac": "DarijaBench/data/mac-00000-of-00001.jsonl"},
            "mac",
        ),
        (
            "darija_translation",
            "darija_bench/darija_translation/doda_translation_all.yaml",
            {"doda": "DarijaBench/data/doda-00000-of-00001.jsonl"},
            "doda",
        ),
        (
            "darija_transliteration",
            "darija_bench/darija_transliteration/transliteration_all.yaml",
            {"transliteration": "DarijaBench/data/transliteration-00000-of-00001.jsonl"},
            "transliteration",
        ),
        (
            "darija_summarization",
            "darija_bench/darija_summarization/summarization.yaml",
            {"marsum": "DarijaBench/data/marsum-00000-of-00001.jsonl"},
            "marsum",
        ),
    ],
)
def test_prompts_equal_lm_eval_task_objects(family, include, files, split, tmp_path):
    task = _lm_eval_task(tmp_path, include, {k: str(HUB / v) for k, v in files.items()})
    fam = benchmarks.FAMILIES[family]
    theirs = list(task.eval_docs)
    raw = _docs(HUB / files[split])
    assert len(theirs) == len(raw) > 0
    for doc, ref in zip(raw, theirs, strict=True):
        assert fam.text(doc) == task.doc_to_text(ref)
        target = task.doc_to_target(ref)
        ours = fam.target(doc)
        if fam.output == "multiple_choice":
            choices = task.doc_to_choice(ref)
            if fam.choices is not None:
                assert fam.choices(doc) == choices
            gold = target if isinstance(target, int) else choices.index(target)
            assert (ours if isinstance(ours, int) else choices.index(ours)) == gold
        else:
            assert ours == target


def test_native_rows_become_darijabench_documents():
    row = {
        "id": "x",
        "task": "sentiment",
        "messages": [{"role": "user", "content": "زوين بزاف"}],
        "meta": {"label": "positive", "labels": ["positive", "negative"]},
    }
    (doc,) = benchmarks.docs_of_row(row, "darija_sentiment")
    text = benchmarks.sentiment_text(doc)
    assert "A. سلبي\nB. ايجابي" in text and "C." not in text  # the harness's letter order, 2 labels
    assert benchmarks.sentiment_target(doc) == "B"
    row = {
        "id": "y",
        "task": "translation",
        "messages": [],
        "meta": {"texts": {"ary_Arab": "سلام", "eng_Latn": "hello", "ary_Latn": "salam"}},
    }
    docs = benchmarks.docs_of_row(row, "darija_translation")
    assert {d["direction"] for d in docs} == {"dr_en", "en_dr"}
    docs = benchmarks.docs_of_row(row, "darija_transliteration", ["ar_dr"])
    assert [d["messages"][1]["content"] for d in docs] == ["سلام"]
    with pytest.raises(ValueError, match="no DarijaBench answer word"):
        benchmarks.sentiment_doc("x", "offensive", ["offensive", "not_offensive"])


def test_hub_source_offline_names_the_dataset(monkeypatch, tmp_path):
    from atlas_forge import sources

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    with pytest.raises(RuntimeError, match="'MBZUAI-Paris/DarijaBench'.*offline"):
        list(sources.read_hf("MBZUAI-Paris/DarijaBench", "aee7e92e1b78f5dc9fb69124a37d605e15dee34d", "mac"))


def test_hub_source_offline_names_the_dataset_for_a_moving_revision(monkeypatch, tmp_path):
    from atlas_forge import sources

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(RuntimeError, match="'MBZUAI-Paris/DarijaHellaSwag'.*offline"):
        list(sources.read_hf("MBZUAI-Paris/DarijaHellaSwag", "main", "validation"))


def test_moving_revision_is_read_at_its_commit(monkeypatch, caplog):
    """A branch is resolved to the commit it points at (rows then record that commit); the Hub API is
    stood in for by a local server answering HfApi's revision request."""
    import http.server
    import json as _json
    import threading

    import huggingface_hub
    from huggingface_hub import HfApi

    from atlas_forge import sources

    sha = "0123456789abcdef0123456789abcdef01234567"
    seen: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.path)
            known = self.path.split("?")[0] == "/api/datasets/MBZUAI-Paris/DarijaHellaSwag/revision/main"
            body = _json.dumps({"id": "MBZUAI-Paris/DarijaHellaSwag", "sha": sha} if known else {}).encode()
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    api = HfApi(endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with caplog.at_level("WARNING"):
            assert sources.resolve_revision("MBZUAI-Paris/DarijaHellaSwag", "main", api) == sha
        assert f"pin it: revision: {sha}" in caplog.text
        assert seen and seen[0].startswith("/api/datasets/MBZUAI-Paris/DarijaHellaSwag/revision/main")
        # a full commit and a local folder are read as they are, without asking the Hub
        n = len(seen)
        full = "aee7e92e1b78f5dc9fb69124a37d605e15dee34d"
        assert sources.resolve_revision("MBZUAI-Paris/DarijaBench", full, api) == full
        assert sources.resolve_revision(str(HUB / "DarijaMMLU"), "fixture", api) == "fixture"
        assert len(seen) == n
        with pytest.raises(Exception):  # noqa: B017 - the Hub's 404, whatever class the client gives it
            sources.resolve_revision("MBZUAI-Paris/Nope", "main", api)
    finally:
        server.shutdown()


def test_every_subject_from_one_source_entry():
    from atlas_forge import sources

    rows = list(sources.read_hf(str(HUB / "DarijaMMLU"), "fixture", "test", "*"))
    assert {r.config for r in rows} == {"general_knowledge", "reading"}


@pytest.mark.skipif(not (ROOT.parent / "shared" / "corpora").is_dir(), reason="../shared/corpora absent")
def test_hub_overlay_plans_every_table2_task():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--forceall",
            "--cores",
            "1",
            "--configfile",
            "configs/corpora.yaml",
            "configs/darija-benchmarks-hf.yaml",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    planned = out.stdout + out.stderr
    for task in (
        "darijammlu_hf",
        "darijammlu_hf_3shot",
        "darijahellaswag_hf",
        "darijahellaswag_hf_10shot",
        "belebele_ary_hf",
        "belebele_ary_hf_5shot",
        "darijabench_sentiment",
        "darijabench_translation",
        "darijabench_translation_flores_plus",
        "darijabench_translation_madar",
        "darijabench_translation_seed",
        "darijabench_transliteration",
        "darijabench_summarization",
        "darija_alpacaeval",
        "darijabench_summarization_judge",
    ):
        for model in ("base", "sft"):
            assert f"results/{model}/{task}.json" in planned, (model, task)
    # both judged columns: DarijaAlpacaEval waits for the baseline's answers, made once for both models
    assert planned.count("output: results/answers/darija_alpacaeval.jsonl") == 1
    judged = [block for block in planned.split("\n\n") if "results/sft/darija_alpacaeval.json" in block
              and "rule evaluate_task" in block]
    assert judged and "results/answers/darija_alpacaeval.jsonl" in judged[0]
