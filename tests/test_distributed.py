"""Multi-process training (issue 12 item 2): `sft` under `accelerate launch` with 2 CPU processes
(gloo) gives the loss curve of 1 process at the same global batch, and the FSDP launch reads the base
weights on rank 0 only.

Each test runs the phase's real CLI in subprocesses and compares the logged loss per step
(metrics/loss.tsv), the held-out losses, the token count and the adapter with a 1-process run.
LoRA dropout is 0: each rank draws its own dropout masks, so with dropout the curves agree only in
expectation. 48 train rows, a multiple of the global batch 8: accelerate fills a short last batch
of several processes with rows from the start, which 1 process does not (not covered here).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .test_modeling import SFT, chat_rows, sft_paths, write_rows

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}
ROOT = Path(__file__).resolve().parents[1]
# 8 steps of global batch 8 (48 rows: 6 steps an epoch, so the run crosses into epoch 2 and its
# reshuffle); accumulation 2, so each step also sums micro-batches padded apiece; group_by_length
# (the params.yaml sampling), whose index order must not depend on the process count (48 rows: its
# mega-batches over per-device batch x accumulation would be 12 rows for 2 processes, 8 for 1)
MP_SFT = {**SFT, "max_steps": 8, "logging_steps": 1, "gradient_accumulation_steps": 2,
          "train_sampling": "group_by_length", "lora": {**SFT["lora"], "dropout": 0.0}}
GLOBAL_BATCH = 8
TOL = 1e-4  # measured: 1e-6 (loss.tsv rounding); rows in another order or unsynced gradients: 5e-3 to 5e-2


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def sft_run(base, data, out: Path, processes: int, launch: list[str] = ()) -> dict[str, str]:
    """Run the sft CLI with `processes` processes (accelerate launch if more than 1) at the global
    batch GLOBAL_BATCH; return its output paths."""
    paths = sft_paths(out)
    per_device = GLOBAL_BATCH // processes // MP_SFT["gradient_accumulation_steps"]
    params = {**MP_SFT, "per_device_batch_size": per_device}
    cmd = [sys.executable, "-m", "atlas_forge", "sft", "--params", json.dumps({"sft": params}),
           "--base", str(base),
           "--train", data["train"], "--test", data["test"], "--threads", "1"]
    for k, v in paths.items():
        cmd += [f"--{k}", v]
    if processes > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch, "--num_processes", str(processes),
               "--main_process_port", free_port(), *cmd[1:]]
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    paths["log"] = run.stderr
    return paths


def loss_curve(paths: dict[str, str]) -> dict[int, float]:
    lines = Path(paths["loss"]).read_text().splitlines()[1:]
    return {int(s): float(a) for s, a, _ in (ln.split("\t") for ln in lines) if a}


def adapter(paths: dict[str, str]) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(paths["adapter"]) / "adapter_model.safetensors")


def assert_same_training(one: dict[str, str], two: dict[str, str]) -> None:
    a, b = loss_curve(one), loss_curve(two)
    assert sorted(a) == sorted(b) == list(range(1, MP_SFT["max_steps"] + 1))
    gaps = {s: abs(a[s] - b[s]) for s in a}
    assert max(gaps.values()) < TOL, f"loss per step, 1 vs 2 processes: {a} vs {b}"
    ma, mb = (json.loads(Path(p["metrics"]).read_text()) for p in (one, two))
    assert ma["tokens"] == mb["tokens"]  # the same rows were trained on
    for key in ("train_loss", "eval_loss_base", "eval_loss_sft"):
        assert mb[key] == pytest.approx(ma[key], abs=TOL), key
    wa, wb = adapter(one), adapter(two)
    assert sorted(wa) == sorted(wb)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < TOL


@pytest.fixture(scope="module")
def mp_data(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("mp_data")
    return {**data, "train": write_rows(d / "train.parquet", chat_rows(48, seed=2))}


@pytest.fixture(scope="module")
def one_process(tiny_base, mp_data, tmp_path_factory):
    return sft_run(tiny_base, mp_data, tmp_path_factory.mktemp("one"), processes=1)


@pytest.mark.slow
def test_sft_two_processes_give_the_one_process_curve(tiny_base, mp_data, one_process, tmp_path):
    # --multi_gpu is accelerate's multi-process launcher (torchrun); on a machine without GPUs it runs
    # CPU processes over gloo (`--cpu` alone starts 1 process)
    two = sft_run(tiny_base, mp_data, tmp_path, processes=2, launch=["--multi_gpu"])
    assert "global batch 8 = 2 per device x 2 processes x 2 accumulation steps" in two["log"]
    assert "global batch 8 = 4 per device x 1 processes x 2 accumulation steps" in one_process["log"]
    assert_same_training(one_process, two)


@pytest.mark.slow
def test_fsdp_launch_reads_the_base_weights_on_rank0_only(tiny_base, mp_data, one_process, tmp_path):
    # the project's FSDP config (fsdp_cpu_ram_efficient_loading: true): accelerate launch exports
    # ACCELERATE_USE_FSDP and FSDP_CPU_RAM_EFFICIENT_LOADING. On CPU accelerate trains with DDP rather
    # than FSDP (FSDP is for accelerators), so this checks the loading and rank 0's weights reaching
    # rank 1, not sharding.
    two = sft_run(tiny_base, mp_data, tmp_path, processes=2,
                  launch=["--config_file", "configs/accelerate_fsdp.yaml", "--mixed_precision", "no"])
    loaded = dict(re.findall(r"sft: rank (\d) loaded the base model: (\d+ of \d+ parameters read from disk, "
                             r"\d+ on meta)", two["log"]))
    n = re.search(r"rank 0 loaded the base model: \d+ of (\d+)", two["log"]).group(1)
    assert loaded == {"0": f"{n} of {n} parameters read from disk, 0 on meta",
                      "1": f"0 of {n} parameters read from disk, {n} on meta"}, two["log"][-3000:]
    # rank 1 trained and scored with rank 0's weights: the 1-process run's figures
    assert_same_training(one_process, two)
