"""Chat template, tiny base model, LoRA SFT (honest held-out signal) and resume after a kill."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_forge import io, records
from atlas_forge.modeling.chat_template import prepare_messages

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

WORDS = {"water": "الما", "bread": "الخبز", "house": "الدار", "sea": "البحر", "tea": "أتاي",
         "friend": "صاحبي", "market": "السوق", "school": "المدرسة", "money": "الفلوس", "road": "الطريق"}
ADJ = ["زوين", "كبير", "صغير", "جديد", "قديم", "بارد"]

TINY_BASE = {
    "kind": "tiny", "name_or_path": "", "revision": "", "seed": 7,
    "tokenizer": {"vocab_size": 400},
    "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 256},
    "pretrain": {"steps": 20, "batch_size": 8, "max_length": 64, "learning_rate": 0.003},
}
def build_base(spec: dict, text_paths: list[str], out: Path) -> dict:
    """The two phases behind models/base, as the pipeline runs them: the tokenizer, then the model on it."""
    from atlas_forge import config, phases
    from atlas_forge.modeling import base_model, tokenizer

    tok_dir = out.parent / f"{out.name}-tokenizer"
    contract = phases.contract("tokenizer")
    tokenizer.build(contract.parse(contract.params({"base_model": spec})).config, text_paths, tok_dir)
    params = config.parse(base_model.BaseModelParams, spec, "base_model")
    return base_model.run(params, text_paths, tok_dir, out)


SFT = {
    "seed": 3, "epochs": 1, "max_steps": 24, "learning_rate": 0.01, "warmup_ratio": 0.0,
    "per_device_batch_size": 4, "per_device_eval_batch_size": 16, "gradient_accumulation_steps": 1,
    "max_length": 128, "bf16": False, "packing": False, "gradient_checkpointing": False,
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0,
             "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]},
    "optimizer": "adamw_torch", "scheduler": "constant", "save_steps": 100, "logging_steps": 4,
    "system_message": "fold",
}


def chat_rows(n: int, seed: int) -> list[dict]:
    """Darija Q/A in fixed, learnable patterns (same distribution for train and held-out rows)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        e = rng.choice(list(WORDS))
        d, a = WORDS[e], rng.choice(ADJ)
        if i % 2:
            msgs = [{"role": "user", "content": f"كيفاش نقولو {e} بالدارجة؟"},
                    {"role": "assistant", "content": f"{e} بالدارجة هي {d}."}]
        else:
            msgs = [{"role": "user", "content": f"واش {d} {a}؟"},
                    {"role": "assistant", "content": f"إيه، {d} {a} بزاف."}]
        rows.append(records.make_record("synthetic", f"{seed}-{i}", "chat", msgs, "ary_Arab"))
    return rows


def write_rows(path: Path, rows: list[dict]) -> str:
    io.write_table(records.from_rows(rows), path, "test")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(data):
    from atlas_forge.modeling.base_model import load_texts
    from atlas_forge.modeling.tokenizer import train_tokenizer

    return train_tokenizer(load_texts([data["text"]]), 400)


CHAT = [{"role": "user", "content": "سلام، كيداير؟"}, {"role": "assistant", "content": "لاباس، الحمد لله."},
        {"role": "user", "content": "شكرا"}, {"role": "assistant", "content": "بلا جميل"}]


# --- chat template -------------------------------------------------------------------------------

def test_template_renders_gemma_format_with_one_bos(tokenizer):
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert text == ("<bos><start_of_turn>user\nسلام، كيداير؟<end_of_turn>\n<start_of_turn>model\n"
                    "لاباس، الحمد لله.<end_of_turn>\n<start_of_turn>user\nشكرا<end_of_turn>\n"
                    "<start_of_turn>model\nبلا جميل<end_of_turn>\n")
    bos = tokenizer.convert_tokens_to_ids("<bos>")
    ids = tokenizer.apply_chat_template(CHAT, return_dict=True)["input_ids"]
    assert ids.count(bos) == 1 and ids[0] == bos
    # rendering then tokenizing again (what evaluators do) must not add a second BOS
    assert tokenizer(text)["input_ids"] == ids


def test_assistant_mask_covers_answers_and_end_of_turn(tokenizer):
    out = tokenizer.apply_chat_template(CHAT, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = [i for i, m in zip(ids, mask, strict=True) if m]
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert tokenizer.decode(masked) == "لاباس، الحمد لله.<end_of_turn>بلا جميل<end_of_turn>"
    assert masked.count(eot) == 2 and ids[-2] == eot and mask[-2] == 1
    # the user turns and the turn headers are not trained
    assert "سلام" not in tokenizer.decode(masked) and "model" not in tokenizer.decode(masked)


def test_generation_prompt(tokenizer):
    text = tokenizer.apply_chat_template(CHAT[:1], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<end_of_turn>\n<start_of_turn>model\n")


def test_system_message_fold_and_error(tokenizer):
    msgs = [{"role": "system", "content": "جاوب بالدارجة."}, *CHAT[:2]]
    folded = prepare_messages(msgs, "fold", row_id="r1")
    assert [m["role"] for m in folded] == ["user", "assistant"]
    assert folded[0]["content"] == "جاوب بالدارجة.\n\nسلام، كيداير؟"
    with pytest.raises(ValueError, match="row r1"):
        prepare_messages(msgs, "error", row_id="r1")
    assert prepare_messages(CHAT, "error") == CHAT
    with pytest.raises(Exception, match="no system role"):  # the template itself refuses a system turn
        tokenizer.apply_chat_template(msgs, tokenize=False)


# --- base model ----------------------------------------------------------------------------------

def test_tiny_base_model_reloads(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = json.loads((tiny_base / "base_model.json").read_text())
    assert info["kind"] == "tiny" and info["parameters"] > 0 and len(info["text_sha256"]) == 64
    assert info["pretrain_loss_end"] < info["pretrain_loss_start"]
    assert (tiny_base / "model.safetensors").exists() and not list(tiny_base.glob("*.bin"))
    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    assert type(model).__name__ == "Gemma2ForCausalLM"
    assert model.config.eos_token_id == tok.convert_tokens_to_ids(["<eos>", "<end_of_turn>"])
    assert tok.apply_chat_template(CHAT, tokenize=False).startswith("<bos><start_of_turn>user\n")
    prompt = tok.apply_chat_template(CHAT[:1], add_generation_prompt=True, return_dict=True)
    ids = torch.tensor([prompt["input_ids"]])
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tok))


def test_tiny_base_model_is_deterministic(tiny_base, data, tmp_path):

    again = tmp_path / "base"
    build_base(TINY_BASE, [data["text"]], again)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_base / name).read_bytes(), name
    # a different seed gives different weights
    other = tmp_path / "other"
    build_base({**TINY_BASE, "seed": 8}, [data["text"]], other)
    assert (other / "model.safetensors").read_bytes() != (tiny_base / "model.safetensors").read_bytes()


def test_pretrained_kind_from_local_path(tiny_base, tmp_path):

    spec = {"kind": "pretrained", "name_or_path": str(tiny_base), "revision": ""}
    out = tmp_path / "fetched"
    info = build_base(spec, [], out)
    assert info["kind"] == "pretrained" and info["name_or_path"] == str(tiny_base)
    from safetensors.torch import load_file

    a, b = load_file(out / "model.safetensors"), load_file(tiny_base / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (out / "chat_template.jinja").read_text() == (tiny_base / "chat_template.jinja").read_text()


def test_base_model_params_are_checked():
    from atlas_forge import config
    from atlas_forge.modeling import base_model

    with pytest.raises(config.ConfigError, match="name_or_path"):
        config.parse(base_model.BaseModelParams, {"kind": "pretrained"}, "base_model")
    with pytest.raises(config.ConfigError, match="base_model.model.hidden_sise"):
        config.parse(base_model.BaseModelParams, {"model": {"hidden_sise": 3}}, "base_model")


def test_parallel_texts_make_one_document_per_row(tmp_path):
    from atlas_forge.modeling.base_model import load_texts

    texts = {"ary_Arab": "واش نتا مزيان؟", "ary_Latn": "wach nta mzyan?", "eng_Latn": "Are you well?"}
    latin = [{"role": "user", "content": texts["ary_Latn"]}]
    rows = [records.make_record("pairs", f"r{i}", "translation", latin, "ary_Latn", meta={"texts": texts})
            for i in range(8)]
    rows.append(records.make_record("pairs", "solo", "translation", [{"role": "user", "content": "غير هادي"}],
                                    "ary_Arab", meta={"texts": {"ary_Arab": "غير هادي"}}))
    path = write_rows(tmp_path / "pairs.parquet", rows)
    assert load_texts([path]) == [texts["ary_Latn"]] * 8 + ["غير هادي"]
    docs = load_texts([path], parallel_texts=True)
    assert docs[-1] == "غير هادي"  # one version: its message, as without the option
    forward = "\n".join(texts[k] for k in sorted(texts))
    backward = "\n".join(texts[k] for k in sorted(texts, reverse=True))
    assert set(docs[:-1]) == {forward, backward}  # both orders occur, each row in one of them
    assert load_texts([path], parallel_texts=True) == docs  # the order is the row id's, not random


def test_parallel_repeat_weights_bilingual_documents_in_pretraining(data, tmp_path):
    from atlas_forge import config
    from atlas_forge.modeling import base_model

    texts = {"ary_Arab": "واش نتا مزيان اليوم؟", "ary_Latn": "wach nta mzyan lyoum?"}
    latin = [{"role": "user", "content": texts["ary_Latn"]}]
    pairs = [records.make_record("pairs", f"p{i}", "translation", latin, "ary_Latn", meta={"texts": texts})
             for i in range(40)]
    path = write_rows(tmp_path / "pairs.parquet", pairs)
    assert base_model.parallel_documents([path, data["text"]]) == base_model.load_texts([path], True)
    assert base_model.parallel_documents([data["text"]]) == []

    def blocks(repeat):
        spec = {**TINY_BASE, "pretrain": {**TINY_BASE["pretrain"], "steps": 2, "parallel_texts": True,
                                          "parallel_repeat": repeat}}
        info = build_base(spec, [data["text"], path], tmp_path / f"base{repeat}")
        return info["pretrain"]["blocks"]

    one, three = blocks(1), blocks(3)
    # the tokenizer sees each document once (same vocabulary either way); the stream has the 40
    # bilingual documents twice more: <bos> text <eos> each, cut into blocks of max_length
    from transformers import AutoTokenizer

    assert (tmp_path / "base1/tokenizer.json").read_text() == (tmp_path / "base3/tokenizer.json").read_text()
    tok = AutoTokenizer.from_pretrained(tmp_path / "base1")
    size = lambda docs: sum(len(tok(d, add_special_tokens=False)["input_ids"]) + 2 for d in docs)  # noqa: E731
    all_docs = base_model.load_texts([data["text"], path], True)
    width = TINY_BASE["pretrain"]["max_length"]
    assert one == size(all_docs) // width
    assert three == (size(all_docs) + 2 * size(base_model.parallel_documents([path]))) // width
    with pytest.raises(config.ConfigError, match="base_model.pretrain.parallel_repeat"):
        config.parse(base_model.BaseModelParams, {"pretrain": {"parallel_repeat": 0}}, "base_model")

    # the bilingual phase: its steps on the bilingual documents alone, after the mixed ones
    spec = {**TINY_BASE, "pretrain": {**TINY_BASE["pretrain"], "steps": 2, "parallel_texts": True,
                                      "parallel_steps": 3}}
    info = build_base(spec, [data["text"], path], tmp_path / "phase")
    phase = info["pretrain"]["bilingual_phase"]
    assert info["pretrain"]["steps"] == 2 and info["pretrain"]["blocks"] == one
    assert phase["steps"] == 3 and phase["blocks"] == size(base_model.parallel_documents([path])) // width
    weights = lambda d: (tmp_path / d / "model.safetensors").read_bytes()  # noqa: E731
    assert weights("phase") != weights("base1")
    with pytest.raises(config.ConfigError, match="base_model.pretrain.parallel_steps"):
        config.parse(base_model.BaseModelParams, {"pretrain": {"parallel_steps": -1}}, "base_model")


def test_query_pre_attn_scalar_defaults_to_gemma_and_zero_means_head_dim(tokenizer):
    from atlas_forge import config
    from atlas_forge.modeling import base_model

    def built(model_spec):
        spec = {**TINY_BASE, "model": {**TINY_BASE["model"], **model_spec}}
        params = config.parse(base_model.BaseModelParams, spec, "base_model")
        return base_model.build_tiny_model(params, tokenizer).config.query_pre_attn_scalar

    assert built({}) == 256
    assert built({"query_pre_attn_scalar": 0}) == TINY_BASE["model"]["head_dim"]
    assert built({"query_pre_attn_scalar": 64}) == 64


# --- sft -----------------------------------------------------------------------------------------

def test_eval_sample_is_seeded_ordered_and_bounded():
    from datasets import Dataset

    from atlas_forge import config
    from atlas_forge.modeling import sft

    ds = Dataset.from_list([{"i": i} for i in range(50)])
    assert sft.eval_sample(ds, 0, 1) is ds and sft.eval_sample(ds, 50, 1) is ds
    a, b, c = (sft.eval_sample(ds, 10, seed)["i"] for seed in (1, 1, 2))
    assert a == b and a != c and len(a) == 10 and a == sorted(a) and len(set(a)) == 10
    with pytest.raises(config.ConfigError, match="sft.max_eval_rows"):
        config.parse(sft.SftParams, {"max_eval_rows": -1}, "sft")


def sft_paths(root: Path) -> dict[str, str]:
    return {k: str(root / v) for k, v in {
        "adapter": "adapter", "merged": "merged", "card": "README.md", "checkpoints": "checkpoints",
        "metrics": "metrics.json", "loss": "loss.tsv", "plot": "loss.png"}.items()}


def test_sft_learns_and_writes_outputs(tiny_base, data, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, PreTrainedModel

    from atlas_forge import config
    from atlas_forge.modeling import sft

    # a spy, not a stand-in: every model the job builds from disk is counted and still built
    loads, head_outputs = [], []
    original = PreTrainedModel.from_pretrained.__func__

    def counted(cls, *args, **kwargs):
        loads.append(str(args[0] if args else kwargs.get("pretrained_model_name_or_path")))
        model = original(cls, *args, **kwargs)
        head = model.get_output_embeddings()
        head.register_forward_hook(lambda m, i, o: head_outputs.append(tuple(o.shape)))
        return model

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counted))
    released = []
    release = sft.release_training_state
    monkeypatch.setattr(sft, "release_training_state", lambda trainer: released.append(release(trainer)))
    p = sft_paths(tmp_path)
    params = config.parse(sft.SftParams, SFT, "sft")
    m = sft.run(params, str(tiny_base), data["train"], data["test"], p["adapter"], p["merged"], p["card"],
                p["checkpoints"], p["metrics"], p["loss"], p["plot"])
    monkeypatch.undo()
    # the job builds its model once: the merge streams the base's shards instead of building it again
    assert loads == [str(tiny_base)]
    assert released == [True]  # the trained model is freed before the merge reads the base
    # training and held-out losses come from TRL's chunked LM head: the (batch, length, vocabulary)
    # logits, 8 GB per micro-batch at the paper's batch 4 x 2048 x 256,000 in fp32, are never built
    assert head_outputs == []
    # ... and writes what PEFT's merge_and_unload writes, bit for bit
    from peft import PeftModel

    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype="auto"),
                                          p["adapter"]).merge_and_unload().state_dict()
    streamed = load_file(Path(p["merged"]) / "model.safetensors")
    assert set(streamed) == {k for k in reference if k != "lm_head.weight"}  # tied: saved once
    before = load_file(Path(tiny_base) / "model.safetensors")
    changed = [k for k in streamed if not torch.equal(streamed[k], before[k])]
    assert any("q_proj" in k for k in changed)
    assert all(torch.equal(streamed[k], reference[k]) for k in streamed)
    # honest signal: held-out assistant-token loss drops after fine-tuning
    assert m["eval_loss_sft"] < m["eval_loss_base"] - 0.1, m
    assert m["steps"] == 24 and m["tokens"] > 0 and m["tokens_per_s"] > 0 and m["resumed_from"] is None
    assert json.loads(Path(p["metrics"]).read_text()) == m
    assert (Path(p["adapter"]) / "adapter_model.safetensors").exists()
    assert (Path(p["merged"]) / "model.safetensors").exists()
    assert Path(p["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = Path(p["loss"]).read_text().splitlines()
    assert lines[0] == "step\tloss\teval_loss" and len(lines) >= 6
    assert lines[1].startswith("0\t\t")  # the base model's held-out loss at step 0
    card = Path(p["card"]).read_text()
    assert "atlas-forge/tiny-gemma2" in card and io_sha(data["train"]) in card
    merged = AutoModelForCausalLM.from_pretrained(p["merged"])
    assert type(merged).__name__ == "Gemma2ForCausalLM"
    assert not [k for k in merged.state_dict() if "lora" in k]


def io_sha(path: str) -> str:
    from atlas_forge.modeling import files_sha256

    return files_sha256([path])


def test_sft_refuses_an_adapter_on_tied_embeddings(tiny_base, data, tmp_path):
    """The tiny Gemma 2 ties its embeddings like Gemma 2: an adapter on them would be merged into the
    output layer as well (tied_embedding_modules), so the run stops before reading data or weights."""
    from atlas_forge import config
    from atlas_forge.modeling import sft

    assert sft.tied_embedding_modules(sft.LoraParams(modules_to_save=["norm"]), True) == []
    assert sft.tied_embedding_modules(sft.LoraParams(modules_to_save=["embed_tokens"]), False) == []
    p = sft_paths(tmp_path)
    for lora in ({"target_modules": ["q_proj", "embed_tokens"]}, {"modules_to_save": ["norm", "lm_head"]}):
        params = config.parse(sft.SftParams, {**SFT, "lora": {**SFT.get("lora", {}), **lora}}, "sft")
        with pytest.raises(ValueError, match=r"sft\.lora: \['(embed_tokens|lm_head)'\].*tie_word_embeddings"):
            sft.run(params, str(tiny_base), data["train"], data["test"], p["adapter"], p["merged"],
                    p["card"], p["checkpoints"], p["metrics"], p["loss"], p["plot"])
    assert not Path(p["checkpoints"]).exists() and not Path(p["adapter"]).exists()


def test_sft_rejects_system_rows_when_asked(tmp_path):
    from atlas_forge.modeling.sft import load_chats

    row = records.make_record("s", "k", "chat", [{"role": "user", "content": "سلام"},
                                                 {"role": "assistant", "content": "لاباس"}], "ary_Arab")
    row["messages"].insert(0, {"role": "system", "content": "x"})
    df = records.from_rows([row])
    path = tmp_path / "t.parquet"
    df.write_parquet(path)  # validate() forbids the system role; write raw to test sft's own check
    with pytest.raises(Exception, match="system"):
        load_chats(str(path), "error")


@pytest.mark.slow
def test_sft_resumes_after_kill(tiny_base, data, tmp_path):
    p = sft_paths(tmp_path)
    params = {**SFT, "max_steps": 30, "save_steps": 3, "per_device_batch_size": 2, "logging_steps": 3}
    cmd = [sys.executable, "-m", "atlas_forge", "sft", "--params", json.dumps({"sft": params}),
           "--base", str(tiny_base), "--train", data["train"], "--test", data["test"], "--threads", "1"]
    for k, v in p.items():
        cmd += [f"--{k}", v]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    ckpts = Path(p["checkpoints"])

    with open(tmp_path / "run1.log", "w") as log1:
        proc = subprocess.Popen(cmd, stdout=log1, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 80
        while time.time() < deadline and proc.poll() is None:
            if any((c / "trainer_state.json").exists() for c in ckpts.glob("checkpoint-*")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "first run ended before a checkpoint could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not Path(p["metrics"]).exists() and not Path(p["adapter"]).exists()

    run2 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert "resuming from checkpoint checkpoint-" in run2.stderr
    m = json.loads(Path(p["metrics"]).read_text())
    resumed = int(m["resumed_from"].removeprefix("checkpoint-"))
    assert 0 < resumed < 30 and m["steps"] == 30 and m["steps_this_run"] == 30 - resumed
    state = json.loads((ckpts / "checkpoint-30" / "trainer_state.json").read_text())
    assert state["global_step"] == 30
    assert (Path(p["adapter"]) / "adapter_model.safetensors").exists()
    assert m["eval_loss_sft"] < m["eval_loss_base"]


def test_full_fine_tuning_trains_every_weight_and_resumes_exactly(tiny_base, data, tmp_path):
    """sft.method full: the same TRL path without an adapter. Every weight is trainable and moves, the
    held-out loss drops, the merged folder is the trained model; a rerun resumes from the last
    checkpoint and writes the same weights (the exactness LoRA has)."""
    import torch
    from safetensors.torch import load_file

    from atlas_forge import config
    from atlas_forge.modeling import sft

    p = sft_paths(tmp_path)
    params = config.parse(sft.SftParams, {**SFT, "method": "full", "learning_rate": 1e-3, "max_steps": 6,
                                          "save_steps": 3, "save_total_limit": 4}, "sft")
    args = (str(tiny_base), data["train"], data["test"], p["adapter"], p["merged"], p["card"],
            p["checkpoints"], p["metrics"], p["loss"], p["plot"])
    m = sft.run(params, *args)
    base = load_file(Path(tiny_base) / "model.safetensors")
    trained = load_file(Path(p["merged"]) / "model.safetensors")
    assert m["method"] == "full" and m["steps"] == 6 and m["eval_loss_sft"] < m["eval_loss_base"], m
    assert m["trainable_parameters"] == sum(t.numel() for t in base.values() if t.is_floating_point())
    moved = [k for k in base if not torch.equal(base[k], trained[k])]
    assert len(moved) == len(base), sorted(set(base) - set(moved))
    assert json.loads((Path(p["adapter"]) / "method.json").read_text())["method"] == "full"
    assert not list(Path(p["adapter"]).glob("*.safetensors"))
    assert Path(p["card"]).read_text().count("Full supervised fine-tuning") == 1
    first = Path(p["merged"], "model.safetensors").read_bytes()

    # as if killed after step 3: the rerun resumes there and ends with the uninterrupted run's weights
    shutil.rmtree(Path(p["checkpoints"]) / "checkpoint-6")
    again = sft.run(params, *args)
    assert again["resumed_from"] == "checkpoint-3" and again["steps"] == 6 and again["steps_this_run"] == 3
    assert Path(p["merged"], "model.safetensors").read_bytes() == first


@pytest.mark.parametrize("rslora", [False, True])
def test_streaming_merge_matches_peft_on_a_sharded_base(tmp_path, rslora):
    """The merge reads a sharded base shard by shard and writes what PEFT's merge_and_unload gives,
    bit for bit: LoRA deltas (alpha/r, or alpha/sqrt(r) with rslora) and a modules_to_save copy."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, Gemma2Config

    from atlas_forge.modeling.merge import merge_adapter

    torch.manual_seed(0)
    cfg = Gemma2Config(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "base", max_shard_size="60KB")
    shards = sorted(p.name for p in (tmp_path / "base").glob("*.safetensors"))
    assert len(shards) > 2
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "down_proj"], modules_to_save=["norm"],
                      use_rslora=rslora)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), lora)
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:  # B starts at zero: give every trained tensor a value to merge
                param.add_(torch.randn_like(param) * 0.1)
    peft_model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "merged").mkdir()
    counts = merge_adapter(tmp_path / "base", tmp_path / "adapter", tmp_path / "merged")
    # "norm" names the final norm and, by suffix, the 4 norms of each of the 3 layers (PEFT matches so)
    assert counts == {"shards": len(shards), "merged_tensors": 6, "replaced_tensors": 13}
    assert sorted(p.name for p in (tmp_path / "merged").glob("*.safetensors")) == shards
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"),
                                          tmp_path / "adapter").merge_and_unload().state_dict()
    streamed = {k: v for s in shards for k, v in load_file(tmp_path / "merged" / s).items()}
    assert set(streamed) == set(reference) - {"lm_head.weight"}
    assert [k for k in streamed if not torch.equal(streamed[k], reference[k])] == []
    base_norm = AutoModelForCausalLM.from_pretrained(tmp_path / "base").state_dict()["model.norm.weight"]
    assert not torch.equal(streamed["model.norm.weight"], base_norm)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "merged").config.num_hidden_layers == 3


def test_streaming_merge_refuses_what_it_does_not_implement(tmp_path):
    from atlas_forge.modeling.merge import adapter_scaling

    assert adapter_scaling({"r": 4, "lora_alpha": 8}, tmp_path) == 2.0
    with pytest.raises(ValueError, match="use_dora=True is not supported"):
        adapter_scaling({"r": 4, "lora_alpha": 8, "use_dora": True}, tmp_path / "adapter_config.json")
