"""Recovery a user can follow (issue 13 item 2), on the real default build under git and DVC.

Each scenario breaks the build the way a crash does, then checks:
- before recovery, `dvc status` and `snakemake -n` agree on what is stale (DVC's stale stages plus
  every stage downstream of them are exactly the phases Snakemake plans jobs for);
- the documented command brings the build back, with no manual unlock: the README's
  `snakemake --cores all` (what `make pipeline` runs), then `dvc commit` (DVC cannot know what
  Snakemake alone rebuilt); or `dvc repro`, then `snakemake --touch` (DVC skips a stage whose inputs
  came back byte for byte, Snakemake judges a rebuilt folder by its time, as after a pull). Then
  both front ends plan nothing.

Scenarios: Snakemake killed (SIGKILL) during a forced sft rerun, leaving its lock, an incomplete job
and half a training; a deleted model behind existing scores; Snakemake killed during evaluation.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import DVC, ENV, SNAKEMAKE, copy_build, md5, sh
from .test_pipeline_consistency import snakemake_rules

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(default_build, tmp_path_factory) -> Path:
    """A copy of the session's default build (a git repo built by `dvc repro`: tests/conftest.py)."""
    return copy_build(default_build, tmp_path_factory.mktemp("recovery") / "repo")


def dvc_stale(root: Path) -> set[str]:
    """Stages `dvc status` reports, with every stage downstream of them (what `dvc repro` reruns)."""
    status = json.loads(sh([*DVC, "status", "--json"], root).stdout or "{}")
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    outs = {name: [next(iter(o)) if isinstance(o, dict) else o
                   for key in ("outs", "metrics", "plots") for o in st.get(key, [])]
            for name, st in stages.items()}

    def under(a: str, b: str) -> bool:
        return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")

    stale, grew = set(status), True
    while grew:
        grew = False
        for name, st in stages.items():
            upstream = [o for s in stale for o in outs[s]]
            if name not in stale and any(under(d, o) for d in st.get("deps", []) for o in upstream):
                stale.add(name)
                grew = True
    return stale


def snakemake_stale(root: Path) -> set[str]:
    """Phases (rules/<phase>.smk) with a job in `snakemake -n`."""
    phase_of = {r["name"]: Path(r["file"]).stem for r in snakemake_rules(root)}
    out = sh([*SNAKEMAKE, "-n", "--cores", "1"], root).stdout
    rules = set(re.findall(r"^(?:local)?rule (\w+):$", out, flags=re.M)) - {"all"}
    return {phase_of[r] for r in rules}


def agree(root: Path, expected: set[str]) -> None:
    assert snakemake_stale(root) == dvc_stale(root) == expected


def clean(root: Path) -> None:
    out = sh([*SNAKEMAKE, "-n", "--cores", "1"], root).stdout
    assert "Nothing to be done" in out, "\n".join(re.findall(r"(?m)^\s*(?:rule |output:|reason:).*$", out))
    assert dvc_stale(root) == set()


def kill_snakemake_when(root: Path, args: list[str], ready) -> None:
    """Run Snakemake and SIGKILL it (alone: its running job is orphaned, as after a kill -9 of the
    Snakemake process) once ready() holds; then wait until the orphan is gone."""
    proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=root, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.2)
    assert proc.poll() is None, "Snakemake ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    os.killpg(proc.pid, signal.SIGKILL)  # the job it had started: a second crash, mid-job
    assert list((root / ".snakemake" / "locks").glob("*.lock")), "a killed run leaves its lock"


def test_killed_forced_sft_rerun(repo):
    adapter = repo / "models/sft/adapter/adapter_model.safetensors"
    before = md5(adapter)
    ckpts = repo / "models/sft/checkpoints"
    sh(["rm", "-rf", str(ckpts)], repo)  # train from the start: the kill lands mid-training
    # kill once the new run's first checkpoint exists (step 50 of the default's 100)
    kill_snakemake_when(repo, ["--cores", "1", "--forcerun", "sft"],
                        lambda: not adapter.exists() and any(ckpts.glob("checkpoint-*/trainer_state.json")))
    assert not (ckpts / "checkpoint-100").exists()
    assert not adapter.exists()
    agree(repo, {"sft", "evaluate", "report"})
    # the README's line (what `make pipeline` runs) reruns the incomplete sft job, resuming its checkpoint
    run = sh([*SNAKEMAKE, "--cores", "all"], repo)
    assert "resuming from checkpoint checkpoint-" in (repo / "logs/sft.log").read_text(), run.stdout[-2000:]
    assert md5(adapter) == before  # exact resume: the same adapter as the first build
    sh([*DVC, "commit", "-f"], repo)  # record what Snakemake rebuilt (timings in the cards changed)
    clean(repo)


def test_missing_model_is_rebuilt_though_scores_exist(repo):
    merged = repo / "models/sft/merged"
    before = md5(merged / "model.safetensors")
    sh(["rm", "-rf", str(merged)], repo)
    agree(repo, {"sft", "evaluate", "report"})
    # through DVC: its sft stage runs Snakemake, which rebuilds the model (a target of `rule all`)
    run = sh([*DVC, "repro"], repo)
    assert "Running stage 'sft'" in run.stdout
    assert md5(merged / "model.safetensors") == before
    # the evaluations' inputs came back byte for byte, so DVC kept them; Snakemake adopts that
    sh([*SNAKEMAKE, "--cores", "all", "--touch"], repo)
    clean(repo)


def test_killed_evaluation_then_readme_line(repo):
    # force one evaluation (the smallest run that shows the effect: the judge task scores 7 batches);
    # kill while it is scoring (it has kept some finished batches)
    def scoring():
        return any(p.read_text().count("\n") >= 2 for p in repo.glob("results/*/*.partial.jsonl"))

    kill_snakemake_when(repo, ["--cores", "1", "--forcerun", "results/sft/alpaca_judge.json"], scoring)
    assert list(repo.glob("results/sft/alpaca_judge.partial.jsonl")), "the kill landed mid-evaluation"
    # the README's line right away: no --unlock, no --rerun-incomplete by hand
    run = sh([*SNAKEMAKE, "--cores", "all"], repo)
    assert "removed the lock of a run that no longer exists" in run.stderr
    assert "rule evaluate_task" in run.stdout + run.stderr
    assert not list(repo.glob("results/*/*.partial.jsonl"))
    sh([*DVC, "commit", "-f"], repo)
    clean(repo)


def test_threads_change_reruns_nothing(repo):
    """Threads are how a job runs (profile), not a param: neither front end reruns anything for them.
    Runs last: it edits the profile of the built copy."""
    clean(repo)
    profile = repo / "profiles/default/config.yaml"
    text = profile.read_text(encoding="utf-8")
    edited = re.sub(r"(?m)^  sft: 1$", "  sft: 2", text)
    assert edited != text
    profile.write_text(edited, encoding="utf-8")
    clean(repo)
    out = sh([*SNAKEMAKE, "-n", "--cores", "4", "--set-threads", "sft=3", "evaluate_task=2"], repo).stdout
    assert "Nothing to be done" in out
