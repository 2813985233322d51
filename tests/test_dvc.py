"""DVC front end over the real default pipeline (slow: builds it once per session).

One session fixture builds the embedded default through `dvc repro` in a temp git repo, commits
dvc.lock, pushes to a temp remote and pulls into a fresh `git clone`. The tests then check what a
user relies on: a second `dvc repro` does nothing; the clone's files match dvc.lock; after the one
documented command (`snakemake --touch`) Snakemake plans no job there; an experiment
(`dvc exp run -S sft.lora.r=4`) reruns and `dvc exp show` lists its metrics next to its params.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import copy_project

pytestmark = pytest.mark.slow

ENV = {
    **os.environ,
    # the venv first on PATH: the stages call `python -m snakemake`, the rules `python -m atlas_forge`
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GIT_AUTHOR_NAME": "atlas-forge tests",
    "GIT_AUTHOR_EMAIL": "tests@atlas-forge.invalid",
    "GIT_COMMITTER_NAME": "atlas-forge tests",
    "GIT_COMMITTER_EMAIL": "tests@atlas-forge.invalid",
}
DVC = [sys.executable, "-m", "dvc"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def sh(cmd: list[str], cwd: Path, timeout: int = 3600, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return proc


@dataclass
class Built:
    repo: Path
    clone: Path
    remote: Path
    first: subprocess.CompletedProcess  # the building `dvc repro`
    second: subprocess.CompletedProcess  # the no-op `dvc repro`
    touch: subprocess.CompletedProcess  # `snakemake --touch` in the clone


@pytest.fixture(scope="session")
def dvc_built(tmp_path_factory) -> Built:
    base = tmp_path_factory.mktemp("dvc")
    repo, clone, remote = base / "repo", base / "clone", base / "remote"
    repo.mkdir()
    remote.mkdir()
    copy_project(repo)
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "project"], repo)
    # the committed default remote (../dvc-remote) is overridden in the git-ignored config.local
    sh([*DVC, "remote", "modify", "--local", "local", "url", str(remote)], repo)

    first = sh([*DVC, "repro"], repo)
    second = sh([*DVC, "repro"], repo)
    # dvc.lock and the git-tracked metric (cache: false) go to git, the rest to the remote
    sh(["git", "add", "dvc.lock", "results/scores.json"], repo)
    sh(["git", "commit", "-qm", "dvc repro"], repo)
    sh([*DVC, "push"], repo)

    sh(["git", "clone", "-q", str(repo), str(clone)], base)
    sh([*DVC, "remote", "modify", "--local", "local", "url", str(remote)], clone)
    sh([*DVC, "pull"], clone)
    touch = sh([*SNAKEMAKE, "--cores", "all", "--touch"], clone)
    return Built(repo, clone, remote, first, second, touch)


def stages(root: Path) -> list[str]:
    return list(yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_repro_runs_every_stage_then_nothing(dvc_built):
    for stage in stages(dvc_built.repo):
        assert f"Running stage '{stage}'" in dvc_built.first.stdout, stage
    assert "Data and pipelines are up to date." in dvc_built.second.stdout, dvc_built.second.stdout
    assert "Running stage" not in dvc_built.second.stdout


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
                assert listing, out["path"]
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
    """An experiment with a cheap param change reruns sft onwards; exp show lists metrics + params."""
    clone = dvc_built.clone
    run = sh([*DVC, "exp", "run", "-n", "lora-r4", "-S", "sft.lora.r=4"], clone)
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
    exp = [row for row in found if row.get("name") == "lora-r4"]
    assert exp, [(row.get("rev"), row.get("name")) for row in found]
    data = exp[0]["data"]
    assert data["params"]["params.yaml"]["data"]["sft"]["lora"]["r"] == 4
    metrics = data["metrics"]
    assert metrics["results/scores.json"]["data"], metrics
    assert metrics["metrics/train.json"]["data"], metrics
    baseline = [row for row in found if row.get("rev") != "workspace" and row.get("name") != "lora-r4"]
    assert baseline, [(row.get("rev"), row.get("name")) for row in found]
    base_data = baseline[0]["data"]
    assert base_data["params"]["params.yaml"]["data"]["sft"]["lora"]["r"] != 4
    assert base_data["metrics"]["results/scores.json"]["data"]
