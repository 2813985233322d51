"""evaluate phase: score one model on one benchmark task.

Writes results/<model>/<task>.json (scores, n, settings, hashes of model and data) and
results/<model>/<task>.samples.jsonl (one line per scored item). Families: see families.py, and
judge.py for the pairwise judge family (win rate against reference answers).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from atlas_forge import __version__, config, io

log = logging.getLogger(__name__)
PHASE = "evaluate"


def sha256_files(paths) -> str:
    """One digest over files (name and content, sorted by name), streamed in 1 MiB blocks."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def model_sha256(model_dir: str | Path) -> str:
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    return sha256_files(files)


def load_model(model_dir: str | Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    return model.eval(), tokenizer


def evaluate(
    task: dict,
    model_dir,
    model_name: str,
    data: list,
    batch_size: int = 8,
    threads: int = 1,
    model=None,
    tokenizer=None,
):
    """Score a task; returns (result dict, samples). `model`/`tokenizer` may be passed preloaded."""
    import torch

    from atlas_forge.evaluate.families import TaskConfig, main_metric, run_family
    from atlas_forge.evaluate.judge import JudgeTaskConfig, run_judge

    section = f"evaluate.tasks[{task.get('name', '?')}]"
    is_judge = isinstance(task, dict) and task.get("family") == "judge"
    cfg = config.parse(JudgeTaskConfig if is_judge else TaskConfig, task, section)
    torch.set_num_threads(max(1, int(threads)))
    if not data:
        raise ValueError(f"task {cfg.name}: no --data files")
    df = io.read_tables(data, PHASE)
    if cfg.sources:
        df = df.filter(df["source"].is_in(cfg.sources))
    if model is None:
        model, tokenizer = load_model(model_dir)
    t0 = time.perf_counter()
    if is_judge:
        scores, samples, settings = run_judge(cfg, model, tokenizer, df, batch_size, model_dir=model_dir)
    else:
        scores, samples, settings = run_family(cfg, model, tokenizer, df, batch_size)
    elapsed = time.perf_counter() - t0
    settings = {"batch_size": batch_size, "dtype": "float32", "max_items": cfg.max_items, **settings}
    result = {
        "task": cfg.name,
        "family": cfg.family,
        "model": model_name,
        "scores": {k: float(v) for k, v in scores.items()},
        "main_metric": "win_rate" if is_judge else main_metric(cfg.family, scores),
        "n": len(samples),
        "settings": settings,
        "model_sha256": model_sha256(model_dir) if model_dir else None,
        "data_sha256": sha256_files(data),
        "harness": f"atlas-forge {__version__}",
    }
    log.info(
        "%s on %s: %s (%d items, %.1f items/s)",
        model_name,
        cfg.name,
        result["scores"],
        len(samples),
        len(samples) / max(elapsed, 1e-9),
    )
    return result, samples


def run_cli(args) -> None:
    result, samples = evaluate(
        args.task, args.model, args.model_name, args.data, batch_size=args.batch_size, threads=args.threads
    )
    io.write_jsonl(samples, args.samples)
    io.write_json(result, args.out)
