"""answers phase: a baseline model's answers to a judged task's instructions, made once and kept.

The paper judges DarijaAlpacaEval pairwise against the answers of Jais-13B-Chat (§9, App. C.3). Those
answers are an artifact of their own: results/answers/<task>.jsonl, one line per item (key, id, source,
prompt, answer), with results/answers/<task>.json beside it (the baseline, its decoding, the hashes of
what made it). Every evaluated model of the build (base, sft) is judged against the same file, and it is
made again only when the task's rows, its `baseline` params or this code change.

The baseline decodes as its task's `baseline.decoding` says (the paper: "the default sampling-based
decoding", i.e. the model's own generation_config, seeded here so that a rebuild draws the same text).
A Hub baseline (inceptionai/jais-13b-chat) is read from the Hub at `baseline.revision`; a local folder
(models/base) is an input of the job.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from atlas_forge import __version__, config, io
from atlas_forge.evaluate import CONTRACT as EVALUATE
from atlas_forge.evaluate import EvaluateJob, _tasks
from atlas_forge.phase import PATH, PATHS, Phase
from atlas_forge.store import model_sha256, sha256_files

log = logging.getLogger(__name__)
PHASE = "answers"


def answer(task: dict, data: list, batch_size: int = 8, threads: int = 1, device: str = "auto",
           dtype: str = "auto", model=None, tokenizer=None) -> tuple[list[dict], dict]:
    """(answer rows, card) of the task's baseline; `model`/`tokenizer` may be passed preloaded."""
    import torch

    from atlas_forge.evaluate.families import task_rows
    from atlas_forge.evaluate.judge import judge_items
    from atlas_forge.evaluate.lm import encode_chat, generate, load_model
    from atlas_forge.evaluate.task_config import TaskConfig

    cfg = config.parse(TaskConfig, task, f"evaluate.tasks[{task.get('name', '?')}]")
    if cfg.baseline is None:
        raise ValueError(f"task {cfg.name}: no baseline (opponent: baseline and a `baseline` section)")
    b = cfg.baseline
    torch.set_num_threads(max(1, int(threads)))
    rows, _ = task_rows(cfg, io.read_tables(data, PHASE))
    items = judge_items(rows, cfg)
    new_tokens = b.max_new_tokens or cfg.new_tokens
    t0 = time.perf_counter()
    if b.backend == "openai":
        texts = endpoint_answers(b, [it["prompt"] for it in items], cfg.name)
    else:
        if model is None:
            model, tokenizer = load_model(b.model, device, dtype, add_bos=b.add_bos, revision=b.revision)
        if b.prompt_template is None and not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"evaluate.tasks[{cfg.name}].baseline.prompt_template: {b.model}'s tokenizer "
                             "has no chat template; give the model's prompt with {instruction}")
        prompts = [encode_chat(tokenizer, it["prompt"], b.prompt_template) for it in items]
        texts = generate(model, tokenizer, prompts, new_tokens, batch_size, desc=f"{cfg.name} baseline",
                         sampling=b.decoding.sampling())
    elapsed = time.perf_counter() - t0
    out = [{"key": it["key"], "id": it["row"]["id"], "source": it["row"]["source"], "prompt": it["prompt"],
            "answer": text} for it, text in zip(items, texts, strict=True)]
    local = b.backend == "local" and Path(b.model).is_dir()
    card = {
        "task": cfg.name,
        "baseline": b.model,
        "backend": b.backend,
        "revision": b.revision,
        "model_sha256": model_sha256(b.model) if local else None,
        "decoding": b.decoding.describe(),
        "max_new_tokens": new_tokens if b.backend == "local" else "the endpoint's",
        "prompt_template": b.prompt_template or "chat template",
        "batch_size": batch_size,
        **({"base_url": b.base_url} if b.backend == "openai" else {
            "device": str(next(model.parameters()).device),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}),
        "n": len(out),
        "n_empty": sum(1 for r in out if not r["answer"].strip()),
        "items_per_s": round(len(out) / max(elapsed, 1e-9), 3),
        "data_sha256": sha256_files(data),
        "harness": f"atlas-forge {__version__}",
    }
    if card["n_empty"]:
        log.warning("%s: %d of %d baseline answers are empty (kept: an empty answer is the baseline's "
                    "answer, and the judge sees it)", cfg.name, card["n_empty"], len(out))
    return out, card


def endpoint_answers(b, prompts: list[str], task: str) -> list[str]:
    """The baseline's answers from an OpenAI-compatible endpoint (chat_client, as the judge's), one user
    turn each. Sampling: `decoding.temperature`, or 1.0 (the API's default) when it is null; the
    endpoint's own seed is not the pipeline's, so the answers file is what makes a rebuild exact. Every
    answer is needed: a request that fails after its retries fails the job, naming how many."""
    from atlas_forge.chat_client import ChatClient, fan_out

    temperature = b.decoding.temperature if b.decoding.temperature is not None else 1.0
    client = ChatClient(b.base_url, b.model, api_key_env=b.api_key_env,
                        temperature=temperature if b.decoding.sample else 0.0, name=f"{task} baseline")
    out: list[str | None] = [None] * len(prompts)
    failed = []
    for i, text, err in fan_out(client, prompts, b.concurrency, ordered=True):
        if err is not None:
            failed.append(f"item {i}: {err}")
        else:
            out[i] = text
    if failed:
        raise RuntimeError(f"{task}: {len(failed)} of {len(prompts)} baseline answers failed at {client.url} "
                           f"(first: {failed[0]})")
    return out


def _jobs(params) -> list[dict]:
    return [{"task": t["name"]} for t in _tasks(params) if t.get("opponent") == "baseline"]


CONTRACT = Phase(
    name="answers",
    module=__name__,
    help="a baseline model's answers to a judged task's instructions (the other side of its pairs)",
    config=EvaluateJob,
    section="evaluate",
    view=EVALUATE.view,
    jobs=_jobs,
    stage="evaluate",
    args=(("--device", {"default": "auto", "help": "auto (GPU when present), cpu, cuda, cuda:1, ..."}),
          ("--dtype", {"default": "auto", "help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, ..."}),
          ("--data", {"required": True, **PATHS}),
          ("--out", {"required": True, **PATH}),
          ("--card", {"required": True, **PATH}),
          ("--threads", {"type": int, "default": 1})),
)


def run_cli(args, job) -> None:
    rows, card = answer(job.config.task, args.data, batch_size=job.config.batch_size, threads=args.threads,
                        device=args.device, dtype=args.dtype)
    io.write_jsonl(rows, args.out)
    io.write_json(card, args.card)
