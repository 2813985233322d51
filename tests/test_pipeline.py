"""End to end: the embedded default builds in a fresh copy, reruns nothing, and a param change
reruns exactly its dependants (Snakemake's params trigger). Fast tier: the checks read the session's
one default build (tests/conftest.py), which the fast tier builds anyway."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, copy_build


def _snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)


def _planned_rules(out: str) -> dict[str, int]:
    """Rule -> job count from a dry run's job stats table."""
    counts, in_table = {}, False
    for line in out.splitlines():
        if line.startswith("job") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


@pytest.fixture(scope="module")
def built(default_build):
    return default_build  # conftest: the session's one default build, read-only here


@pytest.fixture(scope="module")
def own_copy(default_build, tmp_path_factory):
    """A copy for the tests that run Snakemake in the tree (it writes its lock and metadata there)."""
    return copy_build(default_build, tmp_path_factory.mktemp("pipeline") / "repo")


def test_scores_for_every_task_and_model(built):
    params = yaml.safe_load((built / "params.yaml").read_text())
    scores = json.loads((built / "results/scores.json").read_text())
    for model in params["evaluate"]["models"]:
        for task in params["evaluate"]["tasks"]:
            metrics = scores[model][task["name"]]
            assert metrics, f"no metric for {model}/{task['name']}"
            for name, value in metrics.items():
                if value is None and name == "win_rate":  # nothing could be judged: null, not 0
                    continue
                assert isinstance(value, (int, float)) and math.isfinite(value), (model, task["name"], name)
    report = (built / "results/report.md").read_text()
    assert all(t["name"] in report for t in params["evaluate"]["tasks"])
    assert (built / "plots/scores.png").stat().st_size > 1000


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_committed_scores_are_what_a_fresh_build_writes(built):
    """results/scores.json is tracked (DVC metrics, cache: false: `dvc metrics diff` across commits), so a
    fresh clone's `make pipeline` must leave it as committed. Floats within 1e-9 relative: a stale file
    differs in the first digits, and the last bit is a BLAS's business, not the pipeline's."""
    committed = json.loads((ROOT / "results/scores.json").read_text(encoding="utf-8"))
    fresh = json.loads((built / "results/scores.json").read_text(encoding="utf-8"))
    assert _close(committed, fresh), (
        "results/scores.json is stale: run `make pipeline` and commit results/scores.json (docs/dvc.md)")


def test_fine_tuning_lowers_held_out_loss(built):
    metrics = json.loads((built / "metrics/train.json").read_text())
    assert metrics["eval_loss_sft"] < metrics["eval_loss_base"]


TRAIN_TASK = {"darija_sentiment": "sentiment", "darija_translation": "translation",
              "darija_transliteration": "transliteration", "darija_summarization": "summarization"}


def test_scored_format_is_a_supervised_span(built):
    """Issue 11: what evaluate scores is what sft trains. For a sample of bench items of every task the
    data phases serve, the scored continuation (multiple choice: " <letter>"; generation: the model
    turn) starts a supervised span of a training row of the same task, right after the same tokens."""
    import random

    import polars as pl

    from atlas_forge import benchmarks, records
    from atlas_forge.encoding import encode_row
    from atlas_forge.evaluate import load_model
    from atlas_forge.evaluate.families import encode_chat
    from atlas_forge.evaluate.loglik import encode_pair

    params = yaml.safe_load((built / "params.yaml").read_text())
    _, tok = load_model(built / "models/base")
    train = pl.read_parquet(built / "data/processed/mixture/train.parquet")
    spans: dict[str, list[tuple[list[int], list[int], int, str]]] = {}
    for task, msgs, meta in zip(train["task"], train["messages"], train["meta"], strict=True):
        meta = records.load_meta(meta)
        ids, mask = encode_row(tok, msgs, None, fmt=meta.get("format", "chat"))
        for p in range(1, len(ids)):
            if mask[p] and not mask[p - 1]:
                spans.setdefault(task, []).append((ids, mask, p, msgs[0]["content"].split("\n")[0]))
    checked = 0
    for t in params["evaluate"]["tasks"]:
        if t["family"] not in TRAIN_TASK:
            continue
        fam = benchmarks.FAMILIES[t["family"]]
        rows = []
        for src in t["sources"]:
            df = pl.read_parquet(built / f"data/interim/split/{src}/bench.parquet")
            rows += [{**r, "meta": records.load_meta(r["meta"])} for r in df.to_dicts()]
        docs = [d for r in rows for d in benchmarks.docs_of_row(r, t["family"], t.get("directions"))]
        for doc in random.Random(0).sample(docs, min(10, len(docs))):
            text = fam.text(doc)
            if fam.output == "multiple_choice":
                ctx, cont = encode_pair(tok, text, " " + str(fam.target(doc)))
            else:
                ctx, cont = encode_chat(tok, text), []
            before = ctx[-8:]
            found = any(
                ids[p - len(before) : p] == before
                and ids[p : p + len(cont)] == cont
                and all(mask[p : p + len(cont)])
                and (fam.output == "multiple_choice" or header == text.split("\n")[0])
                for ids, mask, p, header in spans.get(TRAIN_TASK[t["family"]], [])
            )
            assert found, (t["name"], text[-120:])
            checked += 1
    assert checked >= 30


def test_rerun_runs_nothing(own_copy):
    run = _snakemake(own_copy, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in run.stdout + run.stderr


def test_param_change_reruns_only_dependants(own_copy):
    built = own_copy
    params_file = built / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["filter"]["min_chars"] += 1
    params_file.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    try:
        dry = _snakemake(built, "-n", "--cores", "2")
    finally:
        params_file.write_text(original)
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = _planned_rules(dry.stdout + dry.stderr)
    # every source that is filtered into training (native, translated chat, generated sets) reruns
    n_train_sources = len(list((built / "data/interim/filtered").glob("*.parquet")))
    assert n_train_sources >= sum(s["role"] in ("native", "chat") for s in params["ingest"]["sources"])
    assert planned.get("filter_source") == n_train_sources, planned
    for downstream in ("mixture", "sft", "report"):
        assert planned.get(downstream) == 1, planned
    # base model scores do not depend on the mixture: only the fine-tuned model is re-evaluated
    assert planned.get("evaluate_task") == len(params["evaluate"]["tasks"]), planned
    for upstream in ("ingest_source", "split_source", "instruct_source", "translate_source", "base_model"):
        assert upstream not in planned, planned
