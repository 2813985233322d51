"""How jobs run lives in Snakemake profiles (profiles/), not in params: the paper profiles are sized
from each model's weights, reach the paper's global batch, and the README's GPU commands plan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from atlas_forge.modeling.gemma2_configs import GEMMA2, weight_bytes

from .conftest import CORPORA, ROOT

SIZES = list(GEMMA2)  # 2b, 9b, 27b
JOB_KEYS = {"threads", "resources", "launcher"}
PAPER_GLOBAL_BATCH = 128  # Atlas-Chat §7: 8 GPUs x per-device 4 x accumulation 4


def _smk(*args: str, cwd: Path = ROOT, **env_over: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env_over}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _yaml(rel: str) -> dict:
    return yaml.safe_load((ROOT / rel).read_text(encoding="utf-8"))


def _profile(size: str) -> dict:
    return _yaml(f"profiles/paper-gemma2-{size}/config.yaml")


def _processes(resources: dict) -> int:
    """Training processes the sft launcher starts (accelerate's num_processes), else 1."""
    launcher = resources.get("launcher", "python")
    m = re.search(r"--config_file\s+(\S+)", launcher)
    return int(_yaml(m.group(1))["num_processes"]) if m else 1


def test_params_and_overlays_hold_no_job_settings():
    for rel in ["params.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml"))]:
        data = _yaml(rel) or {}
        for section, values in data.items():
            if isinstance(values, dict):
                assert not JOB_KEYS & set(values), f"{rel}: {section} sets {JOB_KEYS & set(values)}"


def test_overlay_with_resources_is_an_error(tmp_path):
    bad = tmp_path / "old.yaml"
    bad.write_text("sft:\n  resources: {gpu: 1}\n")
    run = _smk("-n", "--cores", "1", "--configfile", str(bad))
    assert run.returncode != 0
    assert "sft.resources" in run.stdout + run.stderr and "profiles/default" in run.stdout + run.stderr


def test_paper_profiles_are_generated_from_sizes():
    run = subprocess.run([sys.executable, "scripts/paper_profiles.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("size", SIZES)
def test_memory_covers_the_weights(size):
    """Host memory (mem_mb) of each model phase holds its bf16 weights as many times as it holds them:
    the checkpoint's memory-mapped pages and the copy built from them; sft's rank 0 also gathers the
    r 256 adapter and its AdamW moments (fp32) for every checkpoint."""
    from atlas_forge.modeling.gemma2_configs import lora_param_count

    weights_mb = weight_bytes(GEMMA2[size], "bfloat16") / 1e6
    res = _profile(size)["set-resources"]
    assert res["base_model"]["mem_mb"] >= 2 * weights_mb, res["base_model"]
    assert res["evaluate_task"]["mem_mb"] >= 2 * weights_mb, res["evaluate_task"]
    # under FSDP only rank 0 reads the weights (load_base): the process count does not multiply them
    lora_mb = 12 * lora_param_count(GEMMA2[size], 256) / 1e6
    assert res["sft"]["mem_mb"] >= 2 * weights_mb + lora_mb, res["sft"]
    # and each GPU count matches what the launcher starts
    assert res["sft"]["gpu"] == _processes(res["sft"])
    assert res["evaluate_task"]["gpu"] == 1


def test_27b_base_model_fits_its_54_gb():
    assert weight_bytes(GEMMA2["27b"], "bfloat16") > 54e9
    assert _profile("27b")["set-resources"]["base_model"]["mem_mb"] * 1e6 > 54e9


@pytest.mark.parametrize("size", SIZES)
def test_paper_global_batch(size):
    sft = _yaml(f"configs/paper-gemma2-{size}.yaml")["sft"]
    gpus = _processes(_profile(size)["set-resources"]["sft"])
    assert sft["per_device_batch_size"] * sft["gradient_accumulation_steps"] * gpus == PAPER_GLOBAL_BATCH
    # the overlay says how it gets there
    text = (ROOT / f"configs/paper-gemma2-{size}.yaml").read_text()
    assert re.search(r"global batch 128.*(accumulation|GPU count)", text, re.S), size


@pytest.mark.parametrize("profile", ["default", *(f"paper-gemma2-{s}" for s in SIZES)])
def test_profiles_name_real_rules(profile):
    """Snakemake ignores set-resources for a rule that does not exist: a typo would go unnoticed."""
    rules = set(_smk("--list-rules").stdout.split())
    cfg = _yaml(f"profiles/{profile}/config.yaml")
    named = set(cfg.get("set-resources", {})) | set(cfg.get("set-threads", {}))
    assert named <= rules, named - rules
    assert {"base_model", "sft", "evaluate_task"} <= set(cfg["set-threads"])


def test_makefile_offline_only_for_default_and_tests():
    text = (ROOT / "Makefile").read_text()
    assert not re.search(r"^export HF_(HUB|DATASETS)_OFFLINE", text, re.M), "offline forced on every command"
    for target in ("pipeline", "test", "check"):
        assert re.search(rf"^[^#\n]*\b{target}\b[^:\n]*: export HF_HUB_OFFLINE", text, re.M), target


def _readme_commands(heading: str) -> list[str]:
    """The `snakemake ...` commands of a README section (continuation lines joined)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(heading, 1)[1]
    section = re.split(r"\n## ", section, maxsplit=1)[0]  # with its ### subsections
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    cmds = []
    for block in blocks:
        for cmd in block.replace("\\\n", " ").splitlines():
            cmd = cmd.split("#", 1)[0].strip()
            if cmd.startswith("snakemake "):
                cmds.append(" ".join(cmd.split()))
    return cmds


@pytest.mark.skipif(not CORPORA.exists(), reason="../shared/corpora not present (configs/corpora.yaml)")
def test_readme_gpu_commands_plan():
    """Each paper-config command the README's GPU section names plans the model phases, with its
    profile's GPUs, and reaches for the Hub model only when run (a dry run stays offline)."""
    cmds = [c for c in _readme_commands("## GPU install") if "paper-gemma2" in c]
    assert cmds, "README's GPU section names no paper-config command"
    for cmd in cmds:
        args = cmd.split()[1:]
        if "--profile" in args and "profiles/slurm" in args:
            pytest.importorskip("snakemake_executor_plugin_slurm")
        run = _smk(*args, "-n", "--forceall", "-p", HF_HUB_OFFLINE="1")
        out = run.stdout + run.stderr
        assert run.returncode == 0, (cmd, out[-3000:])
        for rule in ("base_model", "mixture", "sft", "evaluate_task", "report"):
            assert re.search(rf"^\s*{rule}\s+\d+\s*$", out, re.M), (cmd, rule)
        size = re.search(r"paper-gemma2-(\w+)\.yaml", cmd).group(1)
        assert f"google/gemma-2-{size}-it" in out
        gpus = _processes(_profile(size)["set-resources"]["sft"]) if "--workflow-profile" in args else None
        if gpus:
            assert re.search(rf"rule sft:.*?gpu={gpus}\b", out, re.S), (cmd, gpus)
        if size == "27b" and "--workflow-profile" in args:
            assert "accelerate launch --config_file configs/accelerate_fsdp.yaml -m atlas_forge sft" in out


@pytest.mark.parametrize("profile", [f"paper-gemma2-{s}" for s in SIZES])
def test_other_hardware_reruns_nothing(default_build, profile):
    """The default, built with profiles/default, is up to date under a GPU profile's threads,
    memory, GPUs and launcher: none of them is a param or part of the rerun check."""
    run = _smk("-n", "--cores", "2", "--workflow-profile", f"profiles/{profile}", cwd=default_build)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
