"""SFT training throughput on this machine (run by hand).

    .venv/bin/python bench/train_throughput.py [--train T.parquet --test T.parquet] [--rows 400]
        [--steps 20] [--steps-50m 8] [--threads 2] [--skip-50m]

Measures tokens/s (non-padding tokens) of the `sft` phase's trainer (TRL SFTTrainer + LoRA,
assistant-only loss) for (a) the tiny default Gemma 2 and (b) a ~50M-parameter Gemma 2, on a mixture:
the corpora mixture when --train/--test name it (data/processed/mixture/*.parquet after
`snakemake --cores all mixture --configfile configs/corpora.yaml`), else synthetic Darija chats.
Variants: our shipped settings (no gradient checkpointing, length-grouped batches), each of those
alone, packing (BFD), and TRL's SFTConfig defaults (gradient checkpointing on, random order, no
packing) as the peer. Same seed, steps, batch and rows for all; the held-out loss after training
(on the same seeded test sample) shows the speed costs no quality. Prints the MFU the same tokens/s
would be on a GPU, from 4·N FLOPs per token for LoRA (forward 2N + backward through activations 2N;
no weight gradients for frozen N). Figures go to bench/results/train_throughput.json.
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

OURS = "ours (shipped: no checkpointing, length-grouped)"
PEER = "TRL defaults (checkpointing, random order)"
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


def sample_mixture(folder: Path, train: str, test: str, rows: int) -> tuple[str, str]:
    """Seeded samples of a real mixture: `rows` train rows (tokenizing all 120k corpora rows per variant
    would dominate the run) and 256 test rows, the same for every variant."""
    out = []
    for src, n, name in ((train, rows, "train"), (test, 256, "test")):
        df = io.read_table(src, "bench")
        df = df.sample(n=min(n, df.height), seed=0, shuffle=True) if df.height > n else df
        io.write_table(df, folder / f"{name}.parquet", "bench")
        out.append(str(folder / f"{name}.parquet"))
    return out[0], out[1]


TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 512}
M50 = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
       "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 512}


def build_base(folder: Path, model: dict, text: str, vocab: int, threads: int) -> tuple[str, int]:
    from atlas_forge.modeling import base_model, tokenizer

    tok_dir = folder / f"tokenizer-{vocab}"
    if not tok_dir.exists():  # the tokenizer phase first, as the pipeline runs it
        tokenizer.build(tokenizer.TokenizerConfig(tokenizer=base_model.TokenizerParams(vocab_size=vocab)),
                        [text], tok_dir)
    params = base_model.BaseModelParams(
        tokenizer=base_model.TokenizerParams(vocab_size=vocab),
        model=base_model.ModelParams(**model),
        pretrain=base_model.PretrainParams(steps=0),
    )
    out = folder / f"base-{model['hidden_size']}"
    info = base_model.run(params, [text], tok_dir, out, threads=threads)
    return str(out), info["parameters"]


def bench_sft(base: str, train: str, test: str, folder: Path, name: str, steps: int, threads: int,
              **overrides) -> dict:
    from atlas_forge.modeling import sft

    params = sft.SftParams(max_steps=steps, save_steps=10_000, logging_steps=max(1, steps // 4),
                           per_device_batch_size=8, max_length=256, max_eval_rows=256, **overrides)
    out = folder / name
    t0 = time.perf_counter()
    m = sft.run(params, base, train, test, str(out / "adapter"), str(out / "merged"), str(out / "card.md"),
                str(out / "ckpt"), str(out / "metrics.json"), str(out / "loss.tsv"), str(out / "loss.png"),
                threads=threads)
    return {"tokens_per_s": m["tokens_per_s"], "train_runtime_s": m["train_runtime_s"], "tokens": m["tokens"],
            "eval_loss_base": round(m["eval_loss_base"], 4), "eval_loss_after": round(m["eval_loss_sft"], 4),
            "phase_wall_s": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps-50m", type=int, default=8, help="steps for the ~50M model (slow on CPU)")
    ap.add_argument("--skip-50m", action="store_true")
    ap.add_argument("--train", help="a mixture's train.parquet (default: synthetic rows)")
    ap.add_argument("--test", help="its test.parquet")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    variants = {
        OURS: {"train_sampling": "group_by_length"},
        "no checkpointing, random order": {},
        "checkpointing, length-grouped": {"gradient_checkpointing": True,
                                          "train_sampling": "group_by_length"},
        "packing bfd (padding-free)": {"packing": True, "packing_strategy": "bfd"},
        PEER: {"gradient_checkpointing": True},
    }
    results = {}
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        if a.train:
            train, test = sample_mixture(folder, a.train, a.test, a.rows)
        else:
            train, test = write_mixture(folder, a.rows, 64)
        models = {"tiny": (TINY, 2048)} if a.skip_50m else {"tiny": (TINY, 2048), "~50M": (M50, 16384)}
        for mname, (cfg, vocab) in models.items():
            base, n = build_base(folder, cfg, train, vocab, a.threads)
            for vname, over in variants.items():
                name = f"{mname}-{len(results)}"
                steps = a.steps if mname == "tiny" else a.steps_50m
                r = bench_sft(base, train, test, folder, name, steps, a.threads, **over)
                r["steps"] = steps
                r["parameters"] = n
                for gpu, peak in GPU_PEAK_FLOPS.items():
                    r[f"mfu_if_{gpu}"] = 4 * n * r["tokens_per_s"] / peak
                results[f"{mname} / {vname}"] = r
                print(f"{mname:5s} {vname:42s} {n / 1e6:6.1f}M params  {r['tokens_per_s']:9.1f} tok/s  "
                      f"held-out loss {r['eval_loss_base']:.3f} -> {r['eval_loss_after']:.3f}  "
                      f"(4N FLOPs/token -> {4 * n * r['tokens_per_s'] / 1e9:.2f} GFLOP/s)", flush=True)
    summary = {}
    for mname in ("tiny", "~50M"):
        ours, peer = results.get(f"{mname} / {OURS}"), results.get(f"{mname} / {PEER}")
        if ours and peer:
            ratio = round(ours["tokens_per_s"] / peer["tokens_per_s"], 2)
            summary[mname] = {"speedup_vs_trl_defaults": ratio, "eval_loss_ours": ours["eval_loss_after"],
                              "eval_loss_trl": peer["eval_loss_after"]}
            print(f"{mname}: ours vs TRL defaults: {ratio:.2f}x tokens/s, "
                  f"held-out loss {ours['eval_loss_after']:.4f} vs {peer['eval_loss_after']:.4f}")
    report = {"data": a.train or f"synthetic ({a.rows} rows)", "threads": a.threads,
              "batch": 8, "max_length": 256, "summary": summary, "runs": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
