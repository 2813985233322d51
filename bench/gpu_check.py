"""GPU check: LoRA SFT throughput/MFU/memory and log-likelihood evaluation items/s on Gemma-2-2B's
architecture, randomly initialised (no weights download), against lm-eval's HF backend.

    bench/gpu_check.sh                      # what to run; picks the shape from the machine
    .venv/bin/python bench/gpu_check.py --shape gemma2-2b --out bench/results/gpu_check.json
    .venv/bin/python bench/gpu_check.py --shape tiny --device cpu --out /tmp/gpu_check_cpu.json

Shapes: `gemma2-2b` is the published config (atlas_forge/modeling/gemma2_configs.py: hidden 2304,
26 layers, 8 heads, 4 KV heads, head_dim 256, intermediate 9216, vocab 256000, sliding window
4096, soft-capping 50/30) at the paper's training settings (§7: LoRA r 256, alpha 128, sequence
2048, per-device batch 4, bf16) with the paper configs' gradient checkpointing and the sft phase's
eager attention. `tiny` is the same code on a toy shape, so the CPU run in the tests checks every
code path the GPU run takes.

Training: random tokens, full sequences (no padding), AdamW on the LoRA weights, bf16 weights and
autocast; a few warm-up steps, then timed steps until --train-steps or --train-seconds.
MFU = tokens/s x 4N / peak, N = all parameters (LoRA: forward 2N + backward through activations 2N,
no weight gradients for the frozen N; attention's sequence-squared FLOPs and checkpointing's
re-computed forward are not counted, as in train_throughput.py). Peak: 989 TFLOPS bf16 dense for
H100/H200, 312 for A100, else --peak-tflops.

Evaluation: an endings set (HellaSwag-like: a context and 4 endings, the score is the summed
log-probability of each ending) scored by the project's scorer (evaluate/loglik.py, what the
evaluate phase runs) and by lm-eval 0.4.13's HFLM on the same model object, items and batch size;
items/s for both, and the largest score difference between them (they compute the same numbers).
Tokenizer: a byte-level BPE trained here on synthetic text (ids stay below the model's vocabulary).

vLLM greedy parity (`--only vllm-parity`, run by gpu_check.sh after the check above, only where vllm is
importable; else skipped with a note): the endings set's contexts, greedy, through lm.generate (the HF
engine, what `evaluate.backend: hf` runs) and through evaluate/vllm_backend.py (`evaluate.backend:
vllm`) on the same randomly initialised model saved to a temporary directory; identical/total outputs
and items/s of each -> gpu_check_vllm.json. A random model's logits are nearly flat, so bf16 kernel
differences can flip a greedy choice: the first differing item is recorded to tell that from a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
TARGETS = {"mfu": 0.40, "eval_speedup_vs_lm_eval": 2.0}  # issue 12: on an H100/H200
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

SHAPES = {
    # paper settings (§7) on the published 2B architecture
    "gemma2-2b": {"model": "2b", "seq": 2048, "batch": 4, "lora_r": 256, "lora_alpha": 128,
                  "eval_items": 200, "eval_batch": 32, "ctx_words": 120, "ending_words": 24,
                  "gen_tokens": 64},
    # the same code paths in seconds on a CPU
    "tiny": {"model": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
                       "sliding_window": 64, "max_position_embeddings": 256, "vocab_size": 1024},
             "seq": 64, "batch": 2, "lora_r": 8, "lora_alpha": 16,
             "eval_items": 8, "eval_batch": 4, "ctx_words": 20, "ending_words": 6,
             "gen_tokens": 8},
}

SYLLABLES = ["ka", "la", "ma", "sh", "di", "ra", "wa", "ba", "ha", "fi", "kh", "ou", "ne", "ta", "zi", "gh"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(n))


def build_tokenizer(vocab: int, seed: int = 0):
    """Byte-level BPE with Gemma's special tokens (<pad> 0, <eos> 1, <bos> 2), trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab, 4000),
                                  special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator((_words(rng, 30) for _ in range(2000)), trainer)
    # one BOS, added by the post-processor (lm-eval and the project both encode with special tokens)
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_model(shape: dict, device, dtype):
    """Randomly initialised Gemma 2, created on the device in its dtype (no host copy, no download)."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from atlas_forge.modeling.gemma2_configs import GEMMA2

    spec = GEMMA2[shape["model"]] if isinstance(shape["model"], str) else {**GEMMA2["2b"], **shape["model"]}
    cfg = Gemma2Config(**spec, attn_implementation="eager")  # as modeling/sft.py and evaluate load it
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Gemma2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    return model, spec


def peak_flops(device_name: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def bench_train(shape: dict, device, steps: int, seconds: float, peak: float | None) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from atlas_forge.modeling.gemma2_configs import lora_param_count, param_count

    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32  # bf16 on the GPU as the paper; CPU: smoke test
    model, spec = build_model(shape, device, dtype)
    n_params = param_count(spec)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    lora = LoraConfig(r=shape["lora_r"], lora_alpha=shape["lora_alpha"], lora_dropout=0.05,
                      target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.enable_input_require_grads()  # checkpointing with frozen embeddings needs grads at the input
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=5e-5)
    b, s = shape["batch"], shape["seq"]
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(3, spec["vocab_size"], (b, s), generator=gen).to(device)

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    def sync():
        if cuda:
            torch.cuda.synchronize()

    model.train()
    for _ in range(2):  # warm-up: kernels, allocator, optimizer state
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    done, losses, start = 0, [], time.perf_counter()
    while done < steps and time.perf_counter() - start < seconds:
        losses.append(step())
        done += 1
    sync()
    elapsed = time.perf_counter() - start
    tokens_s = done * b * s / elapsed
    out = {
        "params": n_params,
        "lora_params": lora_param_count(spec, shape["lora_r"]),
        "dtype": str(dtype).replace("torch.", ""),
        "attn_implementation": "eager",
        "gradient_checkpointing": True,
        "batch": b, "seq": s, "lora_r": shape["lora_r"],
        "steps": done, "seconds": round(elapsed, 3),
        "step_s": round(elapsed / max(done, 1), 4),
        "tokens_per_s": round(tokens_s, 1),
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)] if losses else None,
        "model_flops_per_token": 4 * n_params,
        "mfu": round(tokens_s * 4 * n_params / peak, 4) if peak else None,
    }
    if cuda:
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
    model = opt = None  # free the GPU for the evaluation model
    if cuda:
        torch.cuda.empty_cache()
    return out


def endings_set(n: int, ctx_words: int, ending_words: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    return [(_words(rng, ctx_words) + ":", [_words(rng, ending_words) for _ in range(4)]) for _ in range(n)]


def bench_eval(shape: dict, device, with_lm_eval: bool) -> dict:
    import torch

    from atlas_forge.evaluate.loglik import LoglikScorer, Request

    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32  # as evaluate.resolve_device: bf16 on a GPU
    model, spec = build_model(shape, device, dtype)
    model.eval()
    tok = build_tokenizer(spec["vocab_size"])
    items = endings_set(shape["eval_items"], shape["ctx_words"], shape["ending_words"])
    bs = shape["eval_batch"]

    def sync():
        if cuda:
            torch.cuda.synchronize()

    groups = [[Request(ctx, " " + e) for e in ends] for ctx, ends in items]
    scorer = LoglikScorer(model, tok, batch_size=bs, add_bos=True)
    scorer.score_groups(groups[: max(1, len(groups) // 10)])  # warm-up
    sync()
    start = time.perf_counter()
    ours = scorer.score_groups(groups)
    sync()
    ours_s = time.perf_counter() - start
    out: dict = {
        "items": len(items), "choices": 4, "batch_size": bs, "dtype": str(dtype).replace("torch.", ""),
        "tokens_per_item": round(
            sum(len(tok(c + " " + " ".join(e)).input_ids) for c, e in items) / len(items), 1),
        "ours": {"seconds": round(ours_s, 3), "items_per_s": round(len(items) / ours_s, 2)},
    }
    if with_lm_eval:
        try:
            from lm_eval.api.instance import Instance
            from lm_eval.models.huggingface import HFLM
        except ImportError as exc:  # lm-eval comes with the dev extra
            out["lm_eval"] = {"skipped": f"lm-eval not importable: {exc}"}
        else:
            lm = HFLM(pretrained=model, tokenizer=tok, batch_size=bs, add_bos_token=True,
                      device=str(device), max_length=int(spec["max_position_embeddings"]))
            reqs = [Instance(request_type="loglikelihood", doc={}, arguments=(ctx, " " + e), idx=j)
                    for ctx, ends in items for j, e in enumerate(ends)]
            warm = [Instance(request_type="loglikelihood", doc={}, arguments=(ctx + " ", e), idx=0)
                    for ctx, ends in items[: max(1, len(items) // 10)] for e in ends]
            lm.loglikelihood(warm, disable_tqdm=True)
            sync()
            start = time.perf_counter()
            theirs = lm.loglikelihood(reqs, disable_tqdm=True)
            sync()
            lm_s = time.perf_counter() - start
            ours_flat = [ll for group in ours for ll, _ in group]
            theirs_flat = [ll for ll, _ in theirs]
            agree = sum(
                max(range(4), key=lambda j, g=g: ours_flat[4 * g + j])
                == max(range(4), key=lambda j, g=g: theirs_flat[4 * g + j])
                for g in range(len(items))
            )
            out["lm_eval"] = {"seconds": round(lm_s, 3), "items_per_s": round(len(items) / lm_s, 2)}
            out["speedup_vs_lm_eval"] = round(lm_s / ours_s, 2)
            diffs = [abs(a - b) for a, b in zip(ours_flat, theirs_flat, strict=True)]
            out["max_abs_loglik_diff"] = round(max(diffs), 5)
            out["argmax_agreement"] = round(agree / len(items), 4)
    model = lm = scorer = None
    if cuda:
        torch.cuda.empty_cache()
    return out


def bench_vllm_parity(shape: dict, device) -> dict:
    """Greedy outputs of the HF engine (lm.generate) and the vLLM backend on the same prompts."""
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        note = f"vllm not importable ({exc}): the vLLM greedy-parity step is skipped"
        print(f"gpu_check: {note}")
        return {"skipped": note}
    import torch

    from atlas_forge.evaluate import lm, vllm_backend

    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    model, spec = build_model(shape, device, dtype)
    model.eval()
    tok = build_tokenizer(spec["vocab_size"])
    prompts = [lm.encode_prompt(tok, ctx) for ctx, _ in endings_set(shape["eval_items"], shape["ctx_words"],
                                                                   shape["ending_words"])]
    new_tokens, bs = shape.get("gen_tokens", 32), shape["eval_batch"]
    out: dict = {"items": len(prompts), "max_new_tokens": new_tokens, "batch_size": bs,
                 "dtype": str(dtype).replace("torch.", "")}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    lm.generate(model, tok, prompts[: max(1, bs)], new_tokens, bs)  # warm-up
    sync()
    start = time.perf_counter()
    hf = lm.generate(model, tok, prompts, new_tokens, bs)
    sync()
    hf_s = time.perf_counter() - start
    out["hf"] = {"seconds": round(hf_s, 3), "items_per_s": round(len(prompts) / hf_s, 2)}
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        tok.save_pretrained(d)
        try:
            gen = vllm_backend.load(d, dtype=out["dtype"], device=device.type)
            gen(model, tok, prompts[: max(1, bs)], new_tokens, bs)  # warm-up
            start = time.perf_counter()
            theirs = gen(model, tok, prompts, new_tokens, bs)
            v_s = time.perf_counter() - start
        except Exception as exc:  # a failed vLLM step is a finding, not a crash of the whole check
            out["vllm"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            return out
    p = gen.last_params
    out["vllm"] = {"seconds": round(v_s, 3), "items_per_s": round(len(prompts) / v_s, 2),
                   "version": getattr(vllm, "__version__", None),
                   "sampling_params": {"temperature": p.temperature, "max_tokens": p.max_tokens,
                                       "stop_token_ids": list(p.stop_token_ids)}}
    same = [a == b for a, b in zip(hf, theirs, strict=True)]
    out["identical"], out["total"] = sum(same), len(same)
    if not all(same):
        k = same.index(False)
        out["first_difference"] = {"item": k, "hf": hf[k][:300], "vllm": theirs[k][:300]}
    out["speedup_vllm_vs_hf"] = round(hf_s / v_s, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="gemma2-2b")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cpu")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--train-seconds", type=float, default=150.0, help="stop timing training after this")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the GPU's bf16 dense peak, if not an H100/H200/A100")
    ap.add_argument("--no-lm-eval", action="store_true")
    ap.add_argument("--only", choices=["all", "vllm-parity"], default="all",
                    help="vllm-parity: only the vLLM greedy-parity step (skipped when vllm is absent)")
    args = ap.parse_args(argv)

    import torch

    wanted = args.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but no CUDA device", file=sys.stderr)
        return 2
    device = torch.device(wanted)
    shape = SHAPES[args.shape]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = peak_flops(name, args.peak_tflops) if device.type == "cuda" else None
    report: dict = {
        "shape": args.shape, "device": device.type, "device_name": name,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "peak_bf16_flops": peak, "targets": TARGETS,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        # the figures of a CPU run are no GPU figures: the run proves the code paths, not the speed
        report["note"] = "CPU run: code paths only; GPU figures need a CUDA device"
    start = time.perf_counter()
    if args.only == "vllm-parity":
        report["vllm_parity"] = bench_vllm_parity(shape, device)
    else:
        report["train"] = bench_train(shape, device, args.train_steps, args.train_seconds, peak)
        report["eval"] = bench_eval(shape, device, with_lm_eval=not args.no_lm_eval)
    report["seconds"] = round(time.perf_counter() - start, 1)
    if device.type == "cuda" and args.only == "all":
        mfu, speed = report["train"]["mfu"], report["eval"].get("speedup_vs_lm_eval")
        report["meets_targets"] = {
            "mfu": None if mfu is None else mfu >= TARGETS["mfu"],
            "eval_speedup_vs_lm_eval": None if speed is None else speed >= TARGETS["eval_speedup_vs_lm_eval"],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkstemp(dir=args.out.parent, suffix=".json")[1])
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)  # whole file or nothing: an interrupted run leaves no half JSON
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
