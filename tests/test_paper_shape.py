"""scripts/gemma2_shape.py, on a reduced config: the Hub layout, Gemma 2's specials at their ids, the
tokenizer's size matching the config, seeded weights, and the pipeline's own pretrained path (the
tokenizer and base_model phases) reading the folder as it would read google/gemma-2-2b-it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REDUCED = ["--set", "num_hidden_layers=2", "--set", "hidden_size=64", "--set", "intermediate_size=128",
           "--set", "head_dim=16", "--set", "vocab_size=3000", "--max-shard-size", "300KB"]


def shape_script():
    spec = importlib.util.spec_from_file_location("gemma2_shape", ROOT / "scripts/gemma2_shape.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("shape") / "gemma-2-2b-it"
    run = subprocess.run([sys.executable, str(ROOT / "scripts/gemma2_shape.py"), "--out", str(out), *REDUCED],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return out, json.loads(run.stdout.strip().splitlines()[-1])


def test_reduced_shape_has_the_hub_layout_and_gemma_specials(reduced):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, info = reduced
    cfg = json.loads((out / "config.json").read_text())
    two_b = shape_script().GEMMA2["2b"]
    # every key of the published 2B config is kept, except the ones the reduced shape sets
    reduced_keys = {"num_hidden_layers", "hidden_size", "intermediate_size", "head_dim", "vocab_size"}
    # transformers 5 writes rope_theta inside rope_parameters
    cfg["rope_theta"] = cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta"))
    kept = {k: v for k, v in two_b.items() if k not in reduced_keys}
    assert {k: cfg.get(k) for k in kept} == kept
    assert cfg["architectures"] == ["Gemma2ForCausalLM"]
    assert cfg.get("dtype", cfg.get("torch_dtype")) == "bfloat16"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2 and shards == info["shards"]
    assert all((out / s).exists() for s in shards) and shards[0].startswith("model-00001-of-")
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [1, 107]
    tok = AutoTokenizer.from_pretrained(out, add_bos_token=True)
    assert len(tok) == cfg["vocab_size"] == info["vocab_size"] == 3000
    ids = tok.convert_tokens_to_ids(["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"])
    assert ids == [0, 1, 2, 3, 106, 107]
    text = "سلام، كيداير؟"
    enc = tok(text).input_ids
    assert enc[0] == 2 and enc.count(2) == 1 and tok.decode(enc, skip_special_tokens=True) == text
    chat = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=True,
                                   add_generation_prompt=True)
    chat = chat["input_ids"] if hasattr(chat, "keys") else chat
    assert chat[:2] == [2, 106] and 107 in chat and chat.count(2) == 1
    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == info["parameters"] == info["formula_parameters"]


def test_shape_weights_are_seeded(reduced, tmp_path):
    out, _ = reduced
    script = shape_script()
    overrides = script.parse_overrides([REDUCED[i + 1] for i in range(0, 10, 2)])
    again = script.write_shape_model(tmp_path / "again", overrides=overrides, max_shard_size="300KB")
    script.write_shape_model(tmp_path / "other", seed=7, overrides=overrides, max_shard_size="300KB")
    for shard in again["shards"]:
        assert (tmp_path / "again" / shard).read_bytes() == (out / shard).read_bytes()
    assert (tmp_path / "other" / again["shards"][0]).read_bytes() != (out / again["shards"][0]).read_bytes()


def test_pipeline_reads_the_shape_folder_as_a_pretrained_base(reduced, tmp_path):
    from safetensors.torch import load_file

    from atlas_forge import config, phases
    from atlas_forge.modeling import base_model, tokenizer

    out, _ = reduced
    spec = {"kind": "pretrained", "name_or_path": str(out), "revision": ""}
    contract = phases.contract("tokenizer")
    tok_cfg = contract.parse(contract.params({"base_model": spec})).config
    tok_info = tokenizer.build(tok_cfg, [], tmp_path / "tok")
    assert tok_info["vocab_size"] == 3000 and tok_info["chat_template"].startswith("atlas-forge gemma")
    info = base_model.run(config.parse(base_model.BaseModelParams, spec, "base_model"), [], tmp_path / "tok",
                          tmp_path / "base")
    assert info["kind"] == "pretrained" and info["vocab_size"] == 3000
    saved = {k: v for f in (tmp_path / "base").glob("*.safetensors") for k, v in load_file(f).items()}
    source = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
    assert saved.keys() == source.keys() and all((saved[k] == source[k]).all() for k in saved)


def test_reduced_vocab_below_gemmas_reserved_ids_is_refused():
    with pytest.raises(ValueError, match="reserved ids"):
        shape_script().gemma_vocab_tokenizer(["سلام"], 200)
