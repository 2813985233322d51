"""Phase `sft`: supervised fine-tuning with TRL's SFTTrainer, resumable from checkpoints.

`method: lora` (the paper's recipe) trains a LoRA adapter and merges it into the base; `method: full`
trains every weight through the same TRL path, with the same checkpoints, resume and exactness (the
paper compares the two and reports that full fine-tuning forgets: its analysis section). With full,
`--adapter` holds no weights, only a note: the trained model is `--merged` itself.

Honest signal: the held-out loss on --test (assistant tokens only, the same masking as training) is
measured on the base model before training and on the fine-tuned model after; both go to metrics.
(LoRA's B matrices start at zero, so the adapter-wrapped model before training *is* the base model;
with full fine-tuning nothing has changed yet either.)
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from atlas_forge import config, io
from atlas_forge.modeling import atomic_dir, files_sha256, swap_dir
from atlas_forge.modeling.chat_template import prepare_messages
from atlas_forge.modeling.checkpoints import (
    fingerprint,
    prepare_checkpoints,
    restore_loss_ledger,
    resumable_trainer,
    rewrap_after_eval,
)
from atlas_forge.modeling.distributed import accelerate_shards, load_base, share_rank0_weights
from atlas_forge.modeling.loss_curve import loss_rows, plot_loss, write_loss_tsv
from atlas_forge.modeling.merge import merge_adapter
from atlas_forge.modeling.model_card import model_card
from atlas_forge.phase import PATH, Phase

log = logging.getLogger(__name__)
PHASE = "sft"


@dataclass(frozen=True)
class LoraParams:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # modules trained in full beside the adapter (PEFT modules_to_save), e.g. [norm] for a tiny model
    # whose frozen output distribution is too flat to move (ours; the paper: none). Not the embeddings
    # of a model that ties them to its output layer: see tied_embedding_modules
    modules_to_save: list[str] = field(default_factory=list)


TIED_EMBEDDING_MODULES = ("embed_tokens", "lm_head")


def tied_embedding_modules(lora: LoraParams, tie_word_embeddings: bool) -> list[str]:
    """The adapter modules that would make the merged model differ from the trained one.

    Gemma 2 ties its input embeddings to its output layer. An adapter on `embed_tokens` (LoRA or
    modules_to_save) trains the input side only, while the output layer keeps the frozen weight; merging
    writes the change into the one shared matrix, so the output layer changes too. Measured on the
    corpora recipe with embed_tokens among target_modules: the merged model's transliteration chrF
    fell from 12.65 to 0.92, every answer one syllable repeated.
    """
    if not tie_word_embeddings:
        return []
    return sorted({m for m in (*lora.target_modules, *lora.modules_to_save) if m in TIED_EMBEDDING_MODULES})


@dataclass(frozen=True)
class SftParams:
    seed: int = 1234
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 2e-3
    warmup_ratio: float = 0.03
    # per process: the global batch is per_device_batch_size x processes x gradient_accumulation_steps
    # (logged at the start); the same global batch gives the same curve on 1 or N processes
    per_device_batch_size: int = 16
    per_device_eval_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    max_length: int = 256
    bf16: bool = False
    packing: bool = False
    packing_strategy: Literal["bfd", "bfd_split", "wrapped"] = "bfd"
    gradient_checkpointing: bool = False
    # ours: batches of similar length waste less compute on padding (TRL's default is "random")
    train_sampling: Literal["random", "group_by_length"] = "group_by_length"
    # lora: the paper's recipe (adapter, then merged); full: every weight trained (the paper's comparison)
    method: Literal["lora", "full"] = "lora"
    lora: LoraParams = field(default_factory=LoraParams)
    optimizer: str = "adamw_torch"
    scheduler: str = "cosine"
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 5
    eval_steps: int = 0  # > 0: also evaluate on --test every eval_steps (start and end are always measured)
    # > 0: score the held-out loss on a seeded sample of this many test rows; on CPU the full corpora
    # test split (~14k chats) costs more than the training run itself
    max_eval_rows: int = 0
    system_message: Literal["fold", "error"] = "fold"
    # threads are not a param (how a job runs): the --threads flag, fed by the workflow profile

    def validate(self, section: str) -> None:
        if not 0 <= self.warmup_ratio < 1:
            raise config.ConfigError(f"{section}.warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.max_eval_rows < 0:
            raise config.ConfigError(f"{section}.max_eval_rows: must be 0 (all rows) or positive, got "
                                     f"{self.max_eval_rows}")
        for key in ("per_device_batch_size", "gradient_accumulation_steps", "max_length", "save_steps",
                    "logging_steps"):
            if getattr(self, key) <= 0:
                raise config.ConfigError(f"{section}.{key}: must be positive, got {getattr(self, key)}")


def load_chats(path: str, system_message: str, tokenizer=None):
    """A datasets.Dataset from a canonical table, system turns folded or rejected.

    With a tokenizer, rows come tokenized ({input_ids, assistant_masks}, encoding.encode_row), so each
    row's format (meta.format: chat, or plain for the scored multiple-choice continuation) is honoured;
    TRL then builds the labels from the mask. Without one: {"messages": [...]}.
    """
    from datasets import Dataset

    from atlas_forge import records
    from atlas_forge.encoding import encode_row

    df = io.read_table(path, PHASE)
    rows = []
    for rid, messages, meta in zip(df["id"].to_list(), df["messages"].to_list(), df["meta"].to_list(),
                                   strict=True):
        msgs = prepare_messages(messages or [], system_message=system_message, row_id=rid)
        if not any(m["role"] == "assistant" for m in msgs):
            raise ValueError(f"{path}: row {rid} has no assistant message to train on")
        if tokenizer is None:
            rows.append({"messages": msgs})
            continue
        fmt = records.load_meta(meta).get("format", "chat")
        ids, mask = encode_row(tokenizer, msgs, None, fmt=fmt)
        rows.append({"input_ids": ids, "assistant_masks": mask})
    if not rows:
        raise ValueError(f"{path}: no rows")
    return Dataset.from_list(rows)


def eval_sample(ds, max_rows: int, seed: int):
    """The held-out rows to score: all of them, or a seeded sample of max_rows kept in table order."""
    if max_rows <= 0 or len(ds) <= max_rows:
        return ds
    import random

    keep = sorted(random.Random(seed).sample(range(len(ds)), max_rows))
    return ds.select(keep)


def training_args(params: SftParams, checkpoints: str, cuda: bool):
    """TRL's SFTConfig from the params. Creating it sets up torch.distributed when launched with
    several processes (accelerate launch, torchrun)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=checkpoints,
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        learning_rate=params.learning_rate,
        warmup_steps=params.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        per_device_train_batch_size=params.per_device_batch_size,
        per_device_eval_batch_size=params.per_device_eval_batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        max_length=params.max_length,
        bf16=params.bf16,
        packing=params.packing,
        packing_strategy=params.packing_strategy,
        gradient_checkpointing=params.gradient_checkpointing,
        train_sampling_strategy=params.train_sampling,
        optim=params.optimizer,
        lr_scheduler_type=params.scheduler,
        seed=params.seed,
        data_seed=params.seed,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=params.save_total_limit,
        logging_steps=params.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if params.eval_steps > 0 else "no",
        eval_steps=params.eval_steps if params.eval_steps > 0 else None,
        # rows arrive tokenized with their own mask (encoding.encode_row: chat or plain format); TRL turns
        # `assistant_masks` into labels for any dataset, while its assistant_only_loss flag only accepts
        # conversational (untokenized) data
        assistant_only_loss=False,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not cuda,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        # LoRA (and modules_to_save) take part in every forward: DDP need not search for unused ones
        ddp_find_unused_parameters=False,
    )


def run(params: SftParams, base: str, train: str, test: str, adapter: str, merged: str, card: str,
        checkpoints: str, metrics_path: str, loss_path: str, plot_path: str,
        threads: int = 1) -> dict[str, Any]:
    import torch
    from peft import LoraConfig
    from transformers import AutoConfig, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    torch.set_num_threads(max(1, threads))
    lora = params.method == "lora"
    # before any data or weights are read: the config alone says whether the embeddings are tied
    tied = lora and tied_embedding_modules(params.lora, bool(getattr(AutoConfig.from_pretrained(base),
                                                                     "tie_word_embeddings", False)))
    if tied:
        raise ValueError(
            f"sft.lora: {tied} in target_modules/modules_to_save, but {base} ties its input embeddings to "
            "its output layer (tie_word_embeddings): the adapter would train the input side only and "
            "merging would change the output layer too, so the merged model is not the trained one. "
            "Leave them out, or use a base whose embeddings are not tied."
        )
    base_info_path = Path(base) / "base_model.json"
    base_info = io.read_json(base_info_path) if base_info_path.exists() else {"name_or_path": base}

    # add_bos_token as lm-eval loads it: plain-format rows must be tokenized as they are scored (the
    # chat template emits its own BOS and is tokenized without special tokens either way)
    tokenizer = AutoTokenizer.from_pretrained(base, add_bos_token=True)
    train_ds = load_chats(train, params.system_message, tokenizer)
    test_ds = load_chats(test, params.system_message, tokenizer)
    test_rows = len(test_ds)
    test_ds = eval_sample(test_ds, params.max_eval_rows, params.seed)
    log.info("sft: %d train rows, %d test rows (%d scored)", len(train_ds), test_rows, len(test_ds))

    cuda = torch.cuda.is_available()
    # before the model: the arguments set up torch.distributed (one process per rank under accelerate
    # launch or torchrun), and from_pretrained must see it (load_base)
    args = training_args(params, checkpoints, cuda)
    log.info("sft: global batch %d = %d per device x %d processes x %d accumulation steps",
             params.per_device_batch_size * args.world_size * params.gradient_accumulation_steps,
             params.per_device_batch_size, args.world_size, params.gradient_accumulation_steps)
    model = load_base(base, params, cuda)
    share_rank0_weights(model, fsdp=accelerate_shards(args))

    fp = fingerprint(params, base, train, test)
    # rank 0 first: it alone removes another run's checkpoints or a partial one; the others then find
    # the folder as it left it
    with args.main_process_first(local=False, desc="checkpoints"):
        resume = prepare_checkpoints(checkpoints, fp)

    peft_config = LoraConfig(
        r=params.lora.r,
        lora_alpha=params.lora.alpha,
        lora_dropout=params.lora.dropout,
        target_modules=list(params.lora.target_modules),
        modules_to_save=list(params.lora.modules_to_save) or None,
        task_type="CAUSAL_LM",
    ) if lora else None

    class Progress(TrainerCallback):
        def __init__(self):
            self.t0 = self.tokens0 = self.step0 = None
            self.trainer = None

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()
            self.tokens0, self.step0 = state.num_input_tokens_seen, state.global_step
            restore_loss_ledger(self.trainer)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and state.is_world_process_zero:  # every rank gets the same (gathered) figures
                shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in logs.items()}
                log.info("step %d/%d %s", state.global_step, state.max_steps, shown)

    progress = Progress()
    trainer = resumable_trainer(SFTTrainer, params.seed)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=test_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
    )
    progress.trainer = trainer
    del model  # the trainer holds it; no other reference may outlive release_training_state
    # PEFT keeps target_modules as a set and writes it as list(set): an order that changes with the
    # process's string hash seed, so two identical runs wrote different adapter_config.json bytes. A
    # sorted list is written as it stands (and read back as the same set).
    for lora_config in getattr(trainer.model, "peft_config", {}).values():
        if isinstance(lora_config.target_modules, set):
            lora_config.target_modules = sorted(lora_config.target_modules)

    eval_base = trainer.evaluate(metric_key_prefix="eval")["eval_loss"]
    log.info("held-out loss of the base model: %.4f", eval_base)
    rewrap_after_eval(trainer)
    if resume:
        log.info("resuming from checkpoint %s", Path(resume).name)
    trainer.train(resume_from_checkpoint=resume)
    eval_sft = trainer.evaluate(metric_key_prefix="eval")["eval_loss"]
    log.info("held-out loss of the fine-tuned model: %.4f (base %.4f)", eval_sft, eval_base)

    state = trainer.state
    runtime = time.perf_counter() - progress.t0
    tokens_run = state.num_input_tokens_seen - (progress.tokens0 or 0)
    # the base model's held-out loss is step 0 of the curve (train() starts a fresh log history)
    rows = loss_rows([{"step": 0, "eval_loss": eval_base}, *state.log_history])
    train_losses = [a for _, a, _ in rows if a is not None]
    # the Trainer's own training_loss is the mean over this call's steps; the sums restored from the
    # checkpoint make it the whole run's (the mean over every step, as an uninterrupted run reports)
    metrics = {
        "train_loss": trainer._total_loss_scalar / max(state.global_step, 1),
        "train_loss_last": train_losses[-1] if train_losses else None,
        "eval_loss_base": float(eval_base),
        "eval_loss_sft": float(eval_sft),
        "steps": int(state.global_step),
        "steps_this_run": int(state.global_step - (progress.step0 or 0)),
        "resumed_from": Path(resume).name if resume else None,
        "tokens": int(state.num_input_tokens_seen),
        "train_runtime_s": round(runtime, 2),
        "tokens_per_s": round(tokens_run / runtime, 1) if runtime > 0 else 0.0,
        "train_rows": len(train_ds),
        "test_rows": test_rows,
        "test_rows_scored": len(test_ds),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "device": "cuda" if cuda else "cpu",
        "method": params.method,
    }

    main = trainer.is_world_process_zero()
    if lora:
        save_adapter_and_merge(trainer, tokenizer, base, adapter, merged, main)
    else:
        save_full(trainer, tokenizer, adapter, merged, main)
    if not main:
        return metrics

    mixture_sha = {"train": files_sha256([train]), "test": files_sha256([test])}
    write_loss_tsv(rows, loss_path)
    plot_loss(rows, plot_path, f"{'LoRA' if lora else 'Full'} SFT of {base_info.get('name_or_path', base)}")
    io.write_text(model_card(base_info, params, metrics, train, test, mixture_sha), card)
    io.write_json(metrics, metrics_path)
    log.info("sft done: %s", json.dumps(metrics))
    return metrics


def save_adapter_and_merge(trainer, tokenizer, base: str, adapter: str, merged: str, main: bool) -> None:
    # adapter: Trainer.save_model gathers the LoRA weights under FSDP (collective), writes on rank 0 only
    tmp_adapter = Path(adapter).parent / f".{Path(adapter).name}.tmp"
    if main:
        shutil.rmtree(tmp_adapter, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp_adapter))
    if main:
        # Trainer.save_model also pickles its TrainingArguments (training_args.bin): the adapter ships
        # safetensors only (issue 13 item 6); the arguments are in the card and metrics
        (tmp_adapter / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(tmp_adapter)
        swap_dir(tmp_adapter, adapter)
    trainer.accelerator.wait_for_everyone()
    release_training_state(trainer)
    if main:
        # merged: the base's weights from disk plus the saved adapter (works the same after FSDP training)
        merge(base, adapter, merged, tokenizer)


def save_full(trainer, tokenizer, adapter: str, merged: str, main: bool) -> None:
    """method full: the trained model is the merged model; the adapter folder only says so (a copy of
    the weights there would double a 27B model's disk for nothing)."""
    tmp = Path(merged).parent / f".{Path(merged).name}.tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # under FSDP: the full state dict gathered, written on rank 0
    if main:
        (tmp / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(tmp)
        swap_dir(tmp, merged)
        with atomic_dir(adapter) as note:
            io.write_json({"method": "full", "weights": str(merged),
                           "note": "full fine-tuning trains every weight: the model is the merged folder"},
                          Path(note) / "method.json")
    trainer.accelerator.wait_for_everyone()


def merge(base: str, adapter: str, merged: str, tokenizer) -> None:
    """The base's weights plus the saved adapter, as safetensors with the tokenizer: streamed shard by
    shard (modeling/merge.py), so the job never builds a second model beside the trained one."""
    import resource

    def peak_gb() -> float:  # Linux: KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9

    before = peak_gb()
    with atomic_dir(merged) as tmp:
        counts = merge_adapter(base, adapter, tmp)
        tokenizer.save_pretrained(tmp)
    # whether the merge or training set the job's peak (bench/paper_shape.py reads the job's whole peak)
    log.info("merged %d LoRA weights (%d replaced) into %d shard(s) of %s; peak RSS %.2f GB before the "
             "merge, %.2f GB after", counts["merged_tensors"], counts["replaced_tensors"], counts["shards"],
             base, before, peak_gb())


def release_training_state(trainer) -> bool:
    """Drop the trained model, its optimizer and every reference the Trainer keeps to them (its
    callback handler and accelerator hold their own) before the merge: the merge reads the base from
    disk, and at the paper's shape the training copy and its optimizer states would otherwise sit beside
    the merge's shard (measured at 2B: the sft job peaked at 18.5 GB with the callback handler's
    reference left, the model's 5.2 GB more than its training peak). True when the model is freed."""
    import gc
    import weakref

    model = weakref.ref(trainer.model)
    trainer.accelerator.free_memory()
    trainer.model = trainer.model_wrapped = None
    trainer.optimizer = trainer.lr_scheduler = None
    handler = trainer.callback_handler
    handler.model = handler.optimizer = handler.lr_scheduler = None
    gc.collect()
    if model() is not None:
        log.warning("sft: the trained model is still referenced after training; the merge runs beside it")
    return model() is None


CONTRACT = Phase(
    name="sft",
    module=__name__,
    help="supervised fine-tuning with TRL (LoRA, or full), resumable from checkpoints",
    config=SftParams,
    args=(("--base", {"required": True, **PATH}), ("--train", {"required": True, **PATH}),
          ("--test", {"required": True, **PATH}), ("--adapter", {"required": True, **PATH}),
          ("--merged", {"required": True, **PATH}), ("--card", {"required": True, **PATH}),
          ("--checkpoints", {"required": True, **PATH}), ("--metrics", {"required": True, **PATH}),
          ("--loss", {"required": True, **PATH}), ("--plot", {"required": True, **PATH}),
          ("--threads", {"type": int, "default": 1})),
)


def run_cli(args, job) -> None:
    params = job.config
    run(params, args.base, args.train, args.test, args.adapter, args.merged, args.card, args.checkpoints,
        args.metrics, args.loss, args.plot, threads=args.threads)
