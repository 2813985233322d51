"""One route per value (issue 13 items 4 and 5): a job depends on exactly what it reads, and rules run
the phases with the interpreter that runs Snakemake."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, copy_project

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def planned_jobs(root: Path, *args: str) -> list[dict]:
    """Every job of a forced dry run: rule, inputs, outputs."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1", *args],
                          cwd=root, capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs, job = [], None
    for line in proc.stdout.splitlines():
        s = line.strip()
        if m := re.fullmatch(r"(?:local)?rule (\w+):", s):
            job = {"rule": m.group(1), "input": [], "output": []}
            jobs.append(job)
        elif job and (m := re.fullmatch(r"(input|output): (.*)", s)):
            job[m.group(1)] = m.group(2).split(", ")
    return jobs


def downstream_of(jobs: list[dict], changed: str) -> list[dict]:
    """The jobs a change of file `changed` reruns: those reading it, and everything after them."""
    dirty, hit, grew = {changed}, [], True
    while grew:
        grew = False
        for job in jobs:
            reads = any(i in dirty or any(i.startswith(d + "/") for d in dirty) for i in job["input"])
            if job not in hit and reads:
                hit.append(job)
                dirty.update(job["output"])
                grew = True
    return hit


@pytest.mark.parametrize("overlay", ["paper-gemma2-2b", "paper-gemma2-9b", "paper-gemma2-27b"])
def test_pretrained_base_depends_on_no_data(overlay):
    """With a Hub base model, a change to training data plans no base_model job and no evaluation of
    the base model (hours on a GPU: re-fetching Gemma, rescoring every benchmark)."""
    jobs = planned_jobs(ROOT, "--configfile", f"configs/{overlay}.yaml")
    for rule, own in (("tokenizer", []), ("base_model", ["models/tokenizer"])):
        job = [j for j in jobs if j["rule"] == rule]
        assert job and not [i for i in job[0]["input"] if not i.startswith("src/") and i not in own], job
    hit = downstream_of(jobs, "data/raw/sample/chat_en.jsonl")
    assert any(j["rule"] == "sft" for j in hit)  # the change does reach training
    base_work = [j for j in hit if j["rule"] in ("tokenizer", "base_model")
                 or any(o.startswith("results/base/") for o in j["output"])]
    assert not base_work, base_work


def test_tiny_base_reads_the_native_text():
    """The check above can fail: the tiny default trains its tokenizer and model on the data."""
    hit = downstream_of(planned_jobs(ROOT), "data/raw/sample/raw.txt")
    assert any(j["rule"] == "base_model" for j in hit)
    assert any(o.startswith("results/base/") for j in hit for o in j["output"])


def test_venv_snakemake_without_activation(tmp_path):
    """`.venv/bin/snakemake` with the venv not on PATH, and a `python` there that lacks atlas_forge
    (the issue's "No module named atlas_forge" in every job): the jobs still run the venv's Python."""
    root = copy_project(tmp_path / "repo")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").symlink_to("/usr/bin/python3")
    assert subprocess.run([fake / "python", "-c", "import atlas_forge"], capture_output=True).returncode != 0
    snakemake = Path(sys.executable).parent / "snakemake"
    env = {**ENV, "PATH": f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    run = subprocess.run([str(snakemake), "--cores", "1", "split"], cwd=root, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (root / "data/interim/split/sample_pairs/bench.parquet").exists()
