"""DVC front end over the real default pipeline.

The session's default build is made by `dvc repro` in a temp git repo (tests/conftest.py); a copy of
it commits dvc.lock, pushes to a temp remote and pulls into a fresh `git clone`. The tests then check what a
user relies on: a second `dvc repro` does nothing; the clone's files match dvc.lock; after the one
documented command (`snakemake --touch`) Snakemake plans no job there; an experiment
(`dvc exp run -S sft.max_steps=10`) reruns and `dvc exp show` lists its metrics next to its params.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import DVC, SNAKEMAKE, copy_build, md5, repro_logs, sh

pytestmark = pytest.mark.slow


@dataclass
class Built:
    repo: Path
    clone: Path
    remote: Path
    first: str  # stdout of the building `dvc repro`
    second: str  # stdout of the no-op `dvc repro`
    touch: subprocess.CompletedProcess  # `snakemake --touch` in the clone


@pytest.fixture(scope="module")
def dvc_built(default_build, tmp_path_factory) -> Built:
    """The session's default build (made by `dvc repro` in a git repo: tests/conftest.py) in a copy that
    commits dvc.lock, pushes to a temp remote, and is pulled into a fresh `git clone`."""
    base = tmp_path_factory.mktemp("dvc")
    repo, clone, remote = base / "repo", base / "clone", base / "remote"
    copy_build(default_build, repo)
    remote.mkdir()
    logs = repro_logs(default_build)
    # the committed default remote (../dvc-remote) is overridden in the git-ignored config.local
    sh([*DVC, "remote", "modify", "--local", "local", "url", str(remote)], repo)
    # dvc.lock and the git-tracked metric (cache: false) go to git, the rest to the remote
    sh(["git", "add", "dvc.lock", "results/scores.json"], repo)
    sh(["git", "commit", "-qm", "dvc repro"], repo)
    sh([*DVC, "push"], repo)

    sh(["git", "clone", "-q", str(repo), str(clone)], base)
    sh([*DVC, "remote", "modify", "--local", "local", "url", str(remote)], clone)
    sh([*DVC, "pull"], clone)
    touch = sh([*SNAKEMAKE, "--cores", "all", "--touch"], clone)
    return Built(repo, clone, remote, logs["first_repro"], logs["second_repro"], touch)


def stages(root: Path) -> list[str]:
    return list(yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def test_repro_runs_every_stage_then_nothing(dvc_built):
    for stage in stages(dvc_built.repo):
        assert f"Running stage '{stage}'" in dvc_built.first, stage
    assert "Data and pipelines are up to date." in dvc_built.second, dvc_built.second
    assert "Running stage" not in dvc_built.second


def test_status_clean_after_repro(dvc_built):
    out = sh([*DVC, "status"], dvc_built.repo).stdout
    assert "Data and pipelines are up to date." in out, out


def test_lock_lists_every_out_and_checkpoints_stay_out(dvc_built):
    lock = yaml.safe_load((dvc_built.repo / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    assert set(lock) == set(stages(dvc_built.repo))
    outs = {o["path"] for st in lock.values() for o in st.get("outs", [])}
    assert {"models/sft/adapter", "models/sft/merged", "results/scores.json", "metrics/train.json"} <= outs
    assert not any(o.startswith("models/sft/checkpoints") for o in outs)
    for st in lock.values():
        assert st["params"]["params.yaml"], "every stage records its params section"


EMPTY_BY_DESIGN = {"results/answers", "models/variants", "data/processed/variants", "results/variants"}


def test_clone_matches_lock(dvc_built):
    """Every file `dvc pull` restored in the fresh clone has the hash dvc.lock records."""
    clone = dvc_built.clone
    lock = yaml.safe_load((clone / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    cache = clone / ".dvc" / "cache" / "files" / "md5"
    checked = 0
    for stage in lock.values():
        for out in stage.get("outs", []):
            path, digest = clone / out["path"], out["md5"]
            if digest.endswith(".dir"):
                listing = json.loads((cache / digest[:2] / digest[2:]).read_text(encoding="utf-8"))
                # empty only where the build makes nothing there (results/answers: no task of the
                # default is judged against a baseline; the variants' folders: no variant declared)
                assert listing or out["path"] in EMPTY_BY_DESIGN, out["path"]
                for entry in listing:
                    assert md5(path / entry["relpath"]) == entry["md5"], f"{out['path']}/{entry['relpath']}"
                    checked += 1
                assert out["nfiles"] == len(listing)
            else:
                assert md5(path) == digest, out["path"]
                checked += 1
    assert checked > 20
    out = sh([*DVC, "status"], clone).stdout
    assert "Data and pipelines are up to date." in out, out


def test_snakemake_agrees_after_pull_and_touch(dvc_built):
    """After `dvc pull` and `snakemake --touch`, a fresh clone needs no Snakemake job."""
    dry = sh([*SNAKEMAKE, "--cores", "all", "-n"], dvc_built.clone)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    # and DVC still agrees after the touch (content unchanged)
    out = sh([*DVC, "status"], dvc_built.clone).stdout
    assert "Data and pipelines are up to date." in out, out


def test_exp_run_and_show(dvc_built):
    """An experiment with a cheap param change (10 sft steps instead of the default's 100) reruns sft
    onwards; exp show lists metrics + params."""
    clone = dvc_built.clone
    run = sh([*DVC, "exp", "run", "-n", "steps10", "-S", "sft.max_steps=10"], clone)
    for stage in ("sft", "evaluate", "report"):
        assert f"Running stage '{stage}'" in run.stdout, run.stdout[-3000:]
    for stage in ("ingest", "split", "mixture", "base_model"):
        assert f"Running stage '{stage}'" not in run.stdout, stage
    shown = json.loads(sh([*DVC, "exp", "show", "--json"], clone).stdout)
    found = []

    def walk(node):  # rows: {"rev", "name", "data": {"params", "metrics", ...}, "experiments": [...]}
        if isinstance(node, dict):
            if isinstance(node.get("data"), dict) and "params" in node["data"]:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    exp = [row for row in found if row.get("name") == "steps10"]
    assert exp, [(row.get("rev"), row.get("name")) for row in found]
    data = exp[0]["data"]
    assert data["params"]["params.yaml"]["data"]["sft"]["max_steps"] == 10
    metrics = data["metrics"]
    assert metrics["results/scores.json"]["data"], metrics
    assert metrics["metrics/train.json"]["data"], metrics
    baseline = [row for row in found if row.get("rev") != "workspace" and row.get("name") != "steps10"]
    assert baseline, [(row.get("rev"), row.get("name")) for row in found]
    base_data = baseline[0]["data"]
    assert base_data["params"]["params.yaml"]["data"]["sft"]["max_steps"] != 10
    assert base_data["metrics"]["results/scores.json"]["data"]
