"""End to end: the embedded default builds in a fresh copy, reruns nothing, and a param change
reruns exactly its dependants (Snakemake's params trigger)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


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
    return default_build  # conftest: one build shared with tests/test_slurm.py


def test_scores_for_every_task_and_model(built):
    params = yaml.safe_load((built / "params.yaml").read_text())
    scores = json.loads((built / "results/scores.json").read_text())
    for model in params["evaluate"]["models"]:
        for task in params["evaluate"]["tasks"]:
            metrics = scores[model][task["name"]]
            assert metrics, f"no metric for {model}/{task['name']}"
            for name, value in metrics.items():
                assert isinstance(value, (int, float)) and math.isfinite(value), (model, task["name"], name)
    report = (built / "results/report.md").read_text()
    assert all(t["name"] in report for t in params["evaluate"]["tasks"])
    assert (built / "plots/scores.png").stat().st_size > 1000


def test_fine_tuning_lowers_held_out_loss(built):
    metrics = json.loads((built / "metrics/train.json").read_text())
    assert metrics["eval_loss_sft"] < metrics["eval_loss_base"]


def test_rerun_runs_nothing(built):
    run = _snakemake(built, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in run.stdout + run.stderr


def test_param_change_reruns_only_dependants(built):
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
    n_train_sources = sum(s["role"] in ("native", "chat") for s in params["ingest"]["sources"])
    assert planned.get("filter_source") == n_train_sources
    for downstream in ("mixture", "sft", "report"):
        assert planned.get(downstream) == 1, planned
    # base model scores do not depend on the mixture: only the fine-tuned model is re-evaluated
    assert planned.get("evaluate_task") == len(params["evaluate"]["tasks"]), planned
    for upstream in ("ingest_source", "split_source", "instruct_source", "translate_source", "base_model"):
        assert upstream not in planned, planned
