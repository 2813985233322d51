"""docs/paper_scale.md: the per-GPU memory formula of LoRA training at the paper's shape
(gemma2_configs.gpu_memory), checked against arithmetic done by hand, and the doc's tables against
the formula (so the doc cannot drift from it). Fast: no torch, no subprocess."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

from atlas_forge.modeling.gemma2_configs import (
    GEMMA2,
    GPUS_GIB,
    PLAN_CASES,
    TRL_TOKEN_CHUNK,
    TRL_VOCAB_CHUNK,
    GiB,
    gpu_memory,
    lora_param_count,
    render_plan,
)

from .conftest import ROOT


def _paper_profiles():
    spec = importlib.util.spec_from_file_location("paper_profiles", ROOT / "scripts/paper_profiles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doc_tables_are_the_formulas_output():
    pp = _paper_profiles()
    doc = (ROOT / pp.PLAN_DOC).read_text(encoding="utf-8")
    block = doc.split(pp.PLAN_BEGIN, 1)[1].split(pp.PLAN_END, 1)[0]
    assert block == render_plan(), "docs/paper_scale.md is stale: run python scripts/paper_profiles.py"
    assert pp.with_plan(doc) == doc


def test_readme_links_the_doc():
    gpu_section = (ROOT / "README.md").read_text(encoding="utf-8").split("## GPU install", 1)[1]
    assert "docs/paper_scale.md" in gpu_section.split("\n## ", 1)[0]


def test_2b_lora_states_by_hand():
    # Gemma-2-2B: hidden 2304, q 8 x 256 = 2048, kv 4 x 256 = 1024, intermediate 9216, 26 layers;
    # LoRA r 256 adds r x (in + out) per target
    per_layer = (2304 + 2048) + 2 * (2304 + 1024) + (2048 + 2304) + 3 * (2304 + 9216)
    lora = 26 * 256 * per_layer
    assert lora == 332_267_520 == lora_param_count(GEMMA2["2b"], 256)
    mem = gpu_memory("2b")
    assert mem.lora_states == lora * (4 + 4 + 8)  # fp32 weight, grad, two AdamW moments
    assert mem.checkpoints == 26 * 4 * 2048 * 2304 * 2  # one bf16 layer input per layer
    assert mem.weights == 2_614_341_888 * 2
    assert mem.gathered_layers == mem.gathered_embedding == 0  # no FSDP on one GPU
    assert mem.total == sum(mem.terms().values())


def test_sharding_divides_by_n():
    one, eight = gpu_memory("27b", 1), gpu_memory("27b", 8)
    assert eight.weights == one.weights // 8 and eight.lora_states == one.lora_states // 8
    # activations are per process, whatever the sharding
    for term in ("checkpoints", "layer_activations", "attention_masks", "loss"):
        assert getattr(eight, term) == getattr(one, term), term
    # FSDP gathers the embedding unit (256000 x 4608, bf16) and two 566 M-parameter decoder layers
    assert eight.gathered_embedding == 256000 * 4608 * 2
    assert eight.gathered_layers == 2 * 566_249_472 * 2
    assert one.gathered_layers == one.gathered_embedding == 0


def test_27b_needs_fsdp_on_80_gb():
    cap80 = min(GPUS_GIB.values()) * GiB
    assert gpu_memory("27b", 1).total > cap80
    assert gpu_memory("27b", 8).total < cap80
    assert gpu_memory("2b").total < cap80 and gpu_memory("9b").total < cap80


def test_fp32_doubles_weights_not_lora_states():
    bf16, fp32 = gpu_memory("2b"), gpu_memory("2b", dtype="float32")
    assert fp32.weights == 2 * bf16.weights
    assert fp32.lora_states == bf16.lora_states


def test_plan_runs_27b_on_the_fsdp_processes():
    processes = yaml.safe_load((ROOT / "configs/accelerate_fsdp.yaml").read_text())["num_processes"]
    profile = yaml.safe_load((ROOT / "profiles/paper-gemma2-27b/config.yaml").read_text())
    assert ("27b", processes) in PLAN_CASES
    assert profile["set-resources"]["sft"]["gpu"] == processes


def test_trl_tile_sizes_are_the_installed_trls():
    """The loss term counts TRL's chunked LM head tile: fail when a TRL upgrade changes its shape."""
    trl = importlib.util.find_spec("trl")  # finds the package without importing it (nor torch)
    pkg = Path(trl.origin).parent
    kernel = (pkg / "kernels/chunked_logprob.py").read_text(encoding="utf-8")
    utils = (pkg / "trainer/utils.py").read_text(encoding="utf-8")
    assert int(re.search(r"^TOKEN_CHUNK_SIZE = (\d+)", kernel, re.M).group(1)) == TRL_TOKEN_CHUNK
    assert int(re.search(r"^_CHUNKED_LOGPROB_CHUNK_SIZE = (\d+)", utils, re.M).group(1)) == TRL_VOCAB_CHUNK
