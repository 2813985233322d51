"""Throughput of our log-likelihood scorer vs lm-evaluation-harness 0.4.13 (run by hand).

Same model, same items, same prompts, same batch size, in one process. The model is a random tiny
Gemma 2 scaled up (default hidden 512 x 8 layers) so compute dominates; lm-eval's start-up (task
indexing, model load) is timed separately and left out of its items/s.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python bench/eval_throughput.py --items 40
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4000)
    args = ap.parse_args()

    import torch
    from test_evaluate import make_tiny_model, mcq_rows
    from test_lm_eval_parity import _lm_eval_task

    from atlas_forge import records
    from atlas_forge.evaluate import families, metrics
    from atlas_forge.evaluate.loglik import LoglikScorer, Request

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="af_bench_"))
    model, tok = make_tiny_model(
        tmp / "model",
        hidden=args.hidden,
        layers=args.layers,
        heads=4,
        intermediate=4 * args.hidden,
        vocab=args.vocab,
        lines=3000,
    )
    n_params = sum(p.numel() for p in model.parameters())
    rows = families.sorted_rows(records.from_rows(mcq_rows(args.items + 3)))
    dev, test = rows[:3], rows[3:]
    sets = {
        "af_bench_letters": [
            {"prompt": families.mcq_prompt(r, dev), "choices": list("ABCD"), "gold": r["meta"]["answer"]}
            for r in test
        ],
        "af_bench_endings": [
            {
                "prompt": families.mcq_prompt(r, dev).rsplit("\nA. ", 1)[0],
                "choices": r["meta"]["choices"],
                "gold": r["meta"]["answer"],
            }
            for r in test
        ],
    }
    task_dir = tmp / "tasks"
    task_dir.mkdir()
    for name, items in sets.items():
        _lm_eval_task(task_dir, name, items)
    print(
        f"model: Gemma 2, {n_params / 1e6:.1f}M params; {len(test)} items per set; batch {args.batch_size}; "
        f"threads {args.threads}"
    )

    ours = {}
    scorer = LoglikScorer(model, tok, batch_size=args.batch_size)
    for name, items in sets.items():
        t0 = time.perf_counter()
        res = scorer.score_groups([[Request(it["prompt"], " " + c) for c in it["choices"]] for it in items])
        dt = time.perf_counter() - t0
        acc = metrics.mean(
            [
                float(metrics.argmax([ll for ll, _ in r]) == it["gold"])
                for it, r in zip(items, res, strict=True)
            ]
        )
        ours[name] = (len(items) / dt, acc, [[ll for ll, _ in r] for r in res])

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    t0 = time.perf_counter()
    tm = TaskManager(include_path=str(task_dir))
    lm = HFLM(
        pretrained=str(tmp / "model"),
        add_bos_token=True,
        dtype="float32",
        device="cpu",
        batch_size=args.batch_size,
        attn_implementation="eager",
    )
    startup = time.perf_counter() - t0
    print(f"lm-eval start-up (task index + model load): {startup:.1f} s (excluded below)")
    print(
        f"{'set':<18}{'ours it/s':>10}{'lm-eval it/s':>14}{'ratio':>8}{'acc ours':>10}{'acc lm-eval':>12}"
        f"{'max|Δll|':>10}"
    )
    for name, items in sets.items():
        t0 = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm, tasks=[name], task_manager=tm, log_samples=True, num_fewshot=0
        )
        dt = time.perf_counter() - t0
        theirs = {s["doc_id"]: [float(r[0]) for r in s["filtered_resps"]] for s in out["samples"][name]}
        delta = max(
            abs(a - b) for i, lls in enumerate(ours[name][2]) for a, b in zip(lls, theirs[i], strict=True)
        )
        rate = len(items) / dt
        print(
            f"{name:<18}{ours[name][0]:>10.2f}{rate:>14.2f}{ours[name][0] / rate:>8.2f}"
            f"{ours[name][1]:>10.3f}{out['results'][name]['acc,none']:>12.3f}{delta:>10.1e}"
        )


if __name__ == "__main__":
    main()
