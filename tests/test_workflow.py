"""The workflow itself: lint-clean, config validated at the edge, overlays plan, CLI help is fast."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import CORPORA, ROOT


def _smk(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_lint_clean():
    run = _smk("--lint")
    assert run.returncode == 0 and "Congratulations" in run.stdout + run.stderr, run.stdout[-3000:]


@pytest.mark.parametrize("overlay", ["paper-gemma2-2b", "paper-gemma2-9b", "paper-gemma2-27b"])
def test_paper_configs_plan(overlay):
    run = _smk("-n", "--forceall", "--cores", "1", "--configfile", f"configs/{overlay}.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sft" in run.stdout


def test_hub_benchmark_overlay_adds_to_sources():
    run = _smk("-n", "--forceall", "--cores", "1", "--configfile", "configs/darija-benchmarks-hf.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    # extra_sources add to the default's sources instead of replacing them
    for source in ("darijammlu", "darijabench_mac", "belebele_ary", "sample_pairs"):
        assert f"source={source}" in run.stdout, source
    assert "task=darijammlu_hf_3shot" in run.stdout and "task=darijammlu" in run.stdout


@pytest.mark.skipif(not CORPORA.exists(), reason="../shared/corpora not present")
def test_corpora_config_plans_every_corpus():
    run = _smk("mixture", "-n", "--forceall", "--cores", "1", "--configfile", "configs/corpora.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    for source in ("doda_sentences", "nllb_seed", "marsum", "mac", "myc", "msac", "elecmorocco2016", "omcd",
                   "qadi_ma"):
        assert f"source={source}" in run.stdout, source
    # the tokenizer is its own target: the data never waits for pre-training (issue 19 item 3)
    assert "rule tokenizer:" in run.stdout
    assert "rule base_model:" not in run.stdout and "rule sft:" not in run.stdout


def test_data_phases_never_wait_for_the_model():
    """No data job takes the model: the mixture's plan from scratch holds no base_model job."""
    run = _smk("mixture", "-n", "--forceall", "--cores", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rule tokenizer:" in run.stdout and "rule base_model:" not in run.stdout


def test_invalid_params_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft:\n  lora: {r: 'sixteen'}\n")
    run = _smk("-n", "--cores", "1", "--configfile", str(bad))
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "['sft']['lora']['r']" in out and "sixteen" in out, out[-2000:]


def test_a_misspelt_key_fails_the_plan_and_names_it(tmp_path):
    """The schema lets `sft.lora.rr` through; the phase's typed config, checked when the graph is built,
    does not: `snakemake -n` fails at once, naming the key (not once the sft job starts)."""
    bad = tmp_path / "typo.yaml"
    bad.write_text("sft:\n  lora: {rr: 8}\n")
    run = _smk("-n", "--cores", "1", "--configfile", str(bad))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "sft.lora.rr: unknown key" in out, out[-2000:]
    assert "Job stats" not in out  # nothing was planned
    # a per-entry view is checked too: one task's misspelt key names the task
    bad.write_text("evaluate:\n  extra_tasks:\n"
                   "    - {name: t1, family: darijammlu, sources: [sample_mcq], num_fewshots: 3}\n")
    run = _smk("-n", "--cores", "1", "--configfile", str(bad))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "evaluate.tasks[t1].num_fewshots: unknown key" in out, out[-2000:]


def test_cli_help_is_fast_and_lists_phases():
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "atlas_forge", "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    for phase in ("ingest", "split", "instruct", "translate", "filter", "mixture", "tokenizer", "base_model",
                  "sft", "evaluate", "report"):
        assert phase in run.stdout
    assert time.perf_counter() - start < 5, "heavy imports leaked into the CLI's import path"


def test_cli_bad_json_is_a_clear_error():
    run = subprocess.run([sys.executable, "-m", "atlas_forge", "split", "--params", "{bad", "--input", "a",
                          "--train", "b", "--bench", "c"], capture_output=True, text=True)
    assert run.returncode == 2 and "not valid JSON" in run.stderr
