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


def resolve_device(device: str = "auto", dtype: str = "auto"):
    """(torch device, torch dtype): the GPU when present, bf16 there (as the paper's runs), fp32 on CPU."""
    import torch

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if dtype == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dt = getattr(torch, dtype)
    return dev, dt


def load_model(model_dir: str | Path, device: str = "auto", dtype: str = "auto", add_bos: bool = True):
    """Model and tokenizer loaded as lm-eval's HF backend loads them: the tokenizer gets
    `add_bos_token` (lm-eval passes it to AutoTokenizer.from_pretrained), so whether BOS is added follows
    the tokenizer's own rule for the model (e.g. Gemma's post-processor), not a guess of ours."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev, dt = resolve_device(device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, add_bos_token=add_bos)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dt, attn_implementation="eager")
    return model.to(dev).eval(), tokenizer


def evaluate(
    task: dict,
    model_dir,
    model_name: str,
    data: list,
    batch_size: int = 8,
    threads: int = 1,
    model=None,
    tokenizer=None,
    fewshot_data: list | None = None,
    device: str = "auto",
    dtype: str = "auto",
    work: str | Path | None = None,
):
    """Score a task; returns (result dict, samples). `model`/`tokenizer` may be passed preloaded.
    `work`: a file that keeps each finished batch, so a rerun after a crash computes only the rest
    (evaluate/resume.py); it is removed when the task is done."""
    import torch

    from atlas_forge.evaluate import resume
    from atlas_forge.evaluate.families import TaskConfig, main_metric, run_task

    section = f"evaluate.tasks[{task.get('name', '?') if isinstance(task, dict) else '?'}]"
    cfg = config.parse(TaskConfig, task, section)
    torch.set_num_threads(max(1, int(threads)))
    if not data:
        raise ValueError(f"task {cfg.name}: no --data files")
    df = io.read_tables(data, PHASE)
    fewshot_df = io.read_tables(fewshot_data, PHASE) if fewshot_data else None
    if cfg.fewshot_sources and cfg.num_fewshot and fewshot_df is None:
        raise ValueError(f"task {cfg.name}: fewshot_sources {cfg.fewshot_sources} but no --fewshot-data")
    if model is None:
        model, tokenizer = load_model(model_dir, device, dtype, add_bos=cfg.add_bos)
    model_sha = model_sha256(model_dir) if model_dir else None
    data_sha = sha256_files([*data, *(fewshot_data or [])])
    judge = task.get("judge") or {}
    fingerprint = {
        "task": task, "model_sha256": model_sha, "data_sha256": data_sha, "code_sha256": resume.code_sha256(),
        "judge_sha256": model_sha256(judge["model"]) if judge.get("backend") == "local" and judge.get("model")
        else None,
        "device": str(next(model.parameters()).device), "dtype": str(next(model.parameters()).dtype),
    }
    t0 = time.perf_counter()
    with resume.keep_work(work, fingerprint):
        scores, samples, settings = run_task(
            cfg, model, tokenizer, df, fewshot_df, batch_size, model_dir=model_dir
        )
    elapsed = time.perf_counter() - t0
    settings = {
        "batch_size": batch_size,
        "device": str(next(model.parameters()).device),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        **settings,
    }
    result = {
        "task": cfg.name,
        "family": cfg.family,
        "column": cfg.column,
        "model": model_name,
        "scores": {k: (None if v is None else float(v)) for k, v in scores.items()},
        "main_metric": main_metric(cfg, scores),
        "n": len(samples),
        "settings": settings,
        "items_per_s": round(len(samples) / max(elapsed, 1e-9), 3),
        "model_sha256": model_sha,
        "data_sha256": data_sha,
        "harness": f"atlas-forge {__version__} (lm-evaluation-harness 0.4.13 task definitions)",
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
    from atlas_forge.evaluate.resume import partial_path

    # finished batches are kept beside the output until it is written (not a Snakemake output, which
    # a failed job would delete): a rerun after a crash scores only what is left
    work = partial_path(args.out)
    result, samples = evaluate(
        args.task, args.model, args.model_name, args.data, batch_size=args.batch_size, threads=args.threads,
        fewshot_data=args.fewshot_data, device=args.device, dtype=args.dtype, work=work,
    )
    io.write_jsonl(samples, args.samples)
    io.write_json(result, args.out)
    work.unlink(missing_ok=True)
