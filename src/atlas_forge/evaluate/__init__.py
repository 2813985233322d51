"""evaluate phase: score one model on one benchmark task.

Writes results/<model>/<task>.json (scores, n, settings, hashes of model and data) and
results/<model>/<task>.samples.jsonl (one line per scored item). Families: see families.py, and
judge.py for the pairwise judge family (win rate against reference answers).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from atlas_forge import __version__, config, io
from atlas_forge.evaluate.lm import load_model, resolve_device  # noqa: F401 (its API)
from atlas_forge.phase import PATH, PATHS, Phase, by_id, entries
from atlas_forge.store import model_sha256, sha256_files

log = logging.getLogger(__name__)
PHASE = "evaluate"


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
    answers: str | Path | None = None,
    backend: str = "hf",
    generator=None,
):
    """Score a task; returns (result dict, samples). `model`/`tokenizer` may be passed preloaded.
    `backend` (evaluate.backend): hf, or vllm: greedy generation on vLLM (evaluate/vllm_backend.py,
    loaded here unless `generator` is passed preloaded), log-likelihoods still on the HF model, which is
    loaded as well.
    `work`: a file that keeps each finished batch, so a rerun after a crash computes only the rest
    (evaluate/resume.py); it is removed when the task is done. `answers`: a judged task's baseline answers
    (results/answers/<task>.jsonl, the answers phase)."""
    import torch

    from atlas_forge.evaluate import resume
    from atlas_forge.evaluate.families import main_metric
    from atlas_forge.evaluate.task_config import TaskConfig
    from atlas_forge.evaluate.tasks import run

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
    if backend not in ("hf", "vllm"):
        raise config.ConfigError(f"evaluate.backend: {backend!r} is not one of 'hf', 'vllm'")
    if backend == "vllm" and generator is None:
        from atlas_forge.evaluate import vllm_backend

        generator = vllm_backend.load(model_dir, dtype=dtype, device=device)
    model_sha = model_sha256(model_dir) if model_dir else None
    data_sha = sha256_files([*data, *(fewshot_data or []), *([answers] if answers else [])])
    judge = task.get("judge") or {}
    fingerprint = {
        "task": task, "model_sha256": model_sha, "data_sha256": data_sha, "code_sha256": resume.code_sha256(),
        "judge_sha256": model_sha256(judge["model"]) if judge.get("backend") == "local" and judge.get("model")
        else None,
        "device": str(next(model.parameters()).device), "dtype": str(next(model.parameters()).dtype),
        **({"backend": backend} if backend != "hf" else {}),  # an hf run keeps the key it had before
    }
    t0 = time.perf_counter()
    with resume.keep_work(work, fingerprint):
        scores, samples, settings = run(
            cfg, model, tokenizer, df, fewshot_df, batch_size, model_dir=model_dir, answers=answers,
            backend=generator,
        )
    elapsed = time.perf_counter() - t0
    settings = {
        "batch_size": batch_size,
        "device": str(next(model.parameters()).device),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        **({"backend": backend} if backend != "hf" else {}),
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


def _tasks(params) -> list[dict]:
    return entries(params, "evaluate", "tasks", "extra_tasks")


@dataclass(frozen=True)
class EvaluateJob:
    """One job's view of the evaluate section: its task's entry, the batch size and the generation
    backend (hf; vllm: optional, GPU only, greedy only, evaluate/vllm_backend.py)."""

    task: dict[str, Any]
    batch_size: int = 8
    backend: Literal["hf", "vllm"] = "hf"

    def validate(self, section: str) -> None:
        from atlas_forge.evaluate.task_config import TaskConfig

        if self.batch_size < 1:
            raise config.ConfigError(f"{section}.batch_size: must be >= 1")
        try:
            cfg = config.parse(TaskConfig, dict(self.task), f"{section}.tasks[{self.task.get('name', '?')}]")
        except ValueError as e:
            raise config.ConfigError(str(e)) from None
        if self.backend == "vllm" and cfg.family == "judge" and cfg.decoding.sample:
            raise config.ConfigError(
                f"{section}.backend: vllm decodes greedily only, and task {cfg.name} samples its answers "
                f"({section}.tasks[{cfg.name}].decoding.sample: true); use {section}.backend: hf")


def _view(params, task: str, **_) -> dict:
    sec = params["evaluate"]
    return {"task": by_id(_tasks(params), task, "name"),
            **({"batch_size": sec["batch_size"]} if "batch_size" in sec else {}),
            # named only when not the default: adding the key reran no existing hf job
            **({"backend": sec["backend"]} if sec.get("backend", "hf") != "hf" else {})}


CONTRACT = Phase(
    name="evaluate",
    module=__name__,
    help="score one model on one benchmark task; write scores and per-item samples",
    config=EvaluateJob,
    view=_view,
    jobs=lambda params: [{"task": t["name"]} for t in _tasks(params)],
    args=(("--device", {"default": "auto", "help": "auto (GPU when present), cpu, cuda, cuda:1, ..."}),
          ("--dtype", {"default": "auto", "help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, ..."}),
          ("--model", {"required": True, **PATH}), ("--model-name", {"required": True}),
          ("--data", {"required": True, **PATHS}),
          ("--fewshot-data", {"help": "tables of the task's fewshot_sources", **PATHS}),
          ("--answers", {"help": "a judged task's baseline answers (results/answers/<task>.jsonl)", **PATHS}),
          ("--out", {"required": True, **PATH}),
          ("--samples", {"required": True, **PATH}), ("--threads", {"type": int, "default": 1})),
)


def run_cli(args, job) -> None:
    from atlas_forge.evaluate.resume import partial_path

    # finished batches are kept beside the output until it is written (not a Snakemake output, which
    # a failed job would delete): a rerun after a crash scores only what is left
    work = partial_path(args.out)
    result, samples = evaluate(
        job.config.task, args.model, args.model_name, args.data, batch_size=job.config.batch_size,
        threads=args.threads,
        fewshot_data=args.fewshot_data, device=args.device, dtype=args.dtype, work=work,
        answers=args.answers[0] if args.answers else None, backend=job.config.backend,
    )
    io.write_jsonl(samples, args.samples)
    io.write_json(result, args.out)
    work.unlink(missing_ok=True)
