"""SFT training throughput on this machine (run by hand).

    .venv/bin/python bench/train_throughput.py [--rows 400] [--steps 20] [--threads 2] [--skip-50m]

Measures tokens/s of the `sft` phase's trainer (TRL SFTTrainer + LoRA, assistant-only loss) on
synthetic Darija chat rows for (a) the tiny default Gemma 2 and (b) a ~50M-parameter Gemma 2, each
with our settings (no packing), with packing (BFD, padding-free) and with TRL's defaults
(gradient checkpointing on). Prints the MFU the same tokens/s would be on a GPU, from 4·N FLOPs per
token for LoRA (forward 2N + backward through activations 2N; no weight gradients for frozen N).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from atlas_forge import io, records

GPU_PEAK_FLOPS = {"H100 bf16 dense": 989e12, "A100 bf16 dense": 312e12}

# a fixed Darija Q/A vocabulary: learnable patterns (the tests and the timing runs use it)
WORDS = {
    "water": "الما", "bread": "الخبز", "house": "الدار", "car": "الطوموبيل", "sea": "البحر",
    "tea": "أتاي", "friend": "صاحبي", "work": "الخدمة", "market": "السوق", "school": "المدرسة",
    "child": "الدري", "money": "الفلوس", "road": "الطريق", "city": "المدينة", "sun": "الشمس",
    "door": "الباب", "book": "الكتاب", "mother": "الواليدة", "father": "الواليد", "food": "الماكلة",
}
ADJ = ["زوين", "كبير", "صغير", "جديد", "قديم", "سخون", "بارد", "غالي", "رخيص", "بعيد"]


def synthetic_rows(n: int, seed: int = 0, source: str = "synthetic") -> list[dict]:
    """`n` short Darija chat rows in the canonical record shape, from three fixed Q/A patterns."""
    rng = random.Random(seed)
    rows = []
    eng = list(WORDS)
    for i in range(n):
        e = rng.choice(eng)
        d, a = WORDS[e], rng.choice(ADJ)
        kind = i % 3
        if kind == 0:
            msgs = [{"role": "user", "content": f"كيفاش نقولو \"{e}\" بالدارجة؟"},
                    {"role": "assistant", "content": f"\"{e}\" بالدارجة هي {d}."}]
        elif kind == 1:
            msgs = [{"role": "user", "content": f"عافاك دير جملة فيها {d} و {a}."},
                    {"role": "assistant", "content": f"هاد {d} {a} بزاف، الله يبارك."}]
        else:
            msgs = [{"role": "user", "content": f"واش {d} {a}؟"},
                    {"role": "assistant", "content": f"إيه، {d} {a}. واش بغيتي شي حاجة خرا؟"},
                    {"role": "user", "content": "لا، شكرا."},
                    {"role": "assistant", "content": "بلا جميل، نهارك مبروك."}]
        rows.append(records.make_record(source, f"{seed}-{i}", "chat", msgs, "ary_Arab"))
    return rows


def write_mixture(folder: Path, n_train: int, n_test: int, seed: int = 0) -> tuple[str, str]:
    train, test = folder / "train.parquet", folder / "test.parquet"
    io.write_table(records.from_rows(synthetic_rows(n_train, seed)), train, "bench")
    io.write_table(records.from_rows(synthetic_rows(n_test, seed + 1)), test, "bench")
    return str(train), str(test)


TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 512}
M50 = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
       "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 512}


def build_base(folder: Path, model: dict, text: str, vocab: int, threads: int) -> tuple[str, int]:
    from atlas_forge.modeling import base_model

    params = base_model.BaseModelParams(
        tokenizer=base_model.TokenizerParams(vocab_size=vocab),
        model=base_model.ModelParams(**model),
        pretrain=base_model.PretrainParams(steps=0),
    )
    out = folder / f"base-{model['hidden_size']}"
    info = base_model.run(params, [text], out, threads=threads)
    return str(out), info["parameters"]


def bench_sft(base: str, train: str, test: str, folder: Path, name: str, steps: int, threads: int,
              **overrides) -> dict:
    from atlas_forge.modeling import sft

    params = sft.SftParams(max_steps=steps, save_steps=10_000, logging_steps=max(1, steps // 4),
                           per_device_batch_size=8, max_length=256, **overrides)
    out = folder / name
    t0 = time.perf_counter()
    m = sft.run(params, base, train, test, str(out / "adapter"), str(out / "merged"), str(out / "card.md"),
                str(out / "ckpt"), str(out / "metrics.json"), str(out / "loss.tsv"), str(out / "loss.png"),
                threads=threads)
    return {"tokens_per_s": m["tokens_per_s"], "train_runtime_s": m["train_runtime_s"], "tokens": m["tokens"],
            "phase_wall_s": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-50m", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    variants = {
        "ours (no packing)": {},
        "packing bfd (padding-free)": {"packing": True, "packing_strategy": "bfd"},
        "TRL defaults (grad. checkpointing)": {"gradient_checkpointing": True},
    }
    results = {}
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        train, test = write_mixture(folder, a.rows, 64)
        models = {"tiny": (TINY, 2048)} if a.skip_50m else {"tiny": (TINY, 2048), "~50M": (M50, 16384)}
        for mname, (cfg, vocab) in models.items():
            base, n = build_base(folder, cfg, train, vocab, a.threads)
            for vname, over in variants.items():
                name = f"{mname}-{len(results)}"
                r = bench_sft(base, train, test, folder, name, a.steps, a.threads, **over)
                r["parameters"] = n
                for gpu, peak in GPU_PEAK_FLOPS.items():
                    r[f"mfu_if_{gpu}"] = 4 * n * r["tokens_per_s"] / peak
                results[f"{mname} / {vname}"] = r
                print(f"{mname:5s} {vname:36s} {n / 1e6:6.1f}M params  {r['tokens_per_s']:9.1f} tok/s  "
                      f"(4N FLOPs/token -> {4 * n * r['tokens_per_s'] / 1e9:.2f} GFLOP/s)", flush=True)
    for mname in ("tiny", "~50M"):
        ours = results.get(f"{mname} / ours (no packing)")
        peer = results.get(f"{mname} / TRL defaults (grad. checkpointing)")
        if ours and peer:
            print(f"{mname}: ours vs TRL defaults: {ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
