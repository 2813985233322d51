"""Phase `sft`: LoRA supervised fine-tuning with TRL's SFTTrainer, resumable from checkpoints.

Honest signal: the held-out loss on --test (assistant tokens only, the same masking as training) is
measured on the base model before training and on the fine-tuned model after; both go to metrics.
(LoRA's B matrices start at zero, so the adapter-wrapped model before training *is* the base model.)
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from atlas_forge.phase import PATH, Phase

log = logging.getLogger(__name__)
PHASE = "sft"
RUN_FILE = "atlas_forge_run.json"  # fingerprint of the run that owns the checkpoints folder
# key in a checkpoint's trainer_state.json (TrainerState.stateful_callbacks) for the training-loss sums
LOSS_LEDGER = "atlas_forge_loss"


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


def fingerprint(params: SftParams, base: str, train: str, test: str) -> dict[str, Any]:
    base_info = Path(base) / "base_model.json"
    weights = sorted(Path(base).glob("*.safetensors"))
    return {
        # threads (--threads) change speed, not results, and are not in params: another thread count resumes
        "params": hashlib.sha256(json.dumps(dataclasses.asdict(params), sort_keys=True).encode()).hexdigest(),
        "base": files_sha256(weights + ([base_info] if base_info.exists() else [])),
        "data": files_sha256([train, test]),
    }


def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest `checkpoint-N` whose trainer_state.json (written last by the Trainer) is readable.

    A run killed while saving leaves a newer, partial checkpoint: it is removed so that it is neither
    resumed from nor counted by checkpoint rotation.
    """
    found = []
    for d in ckpt_dir.glob("checkpoint-*"):
        suffix = d.name.removeprefix("checkpoint-")
        if d.is_dir() and suffix.isdigit():
            found.append((int(suffix), d))
    for _, d in sorted(found, reverse=True):
        try:
            json.loads((d / "trainer_state.json").read_text())
            return d
        except (OSError, ValueError):
            log.warning("removing incomplete checkpoint %s", d)
            shutil.rmtree(d, ignore_errors=True)
    return None


def prepare_checkpoints(checkpoints: str, fp: dict[str, Any]) -> str | None:
    """Return the latest checkpoint to resume from, or None. Checkpoints of another run are removed."""
    ckpt_dir = Path(checkpoints)
    run_file = ckpt_dir / RUN_FILE
    if ckpt_dir.exists():
        previous = json.loads(run_file.read_text()) if run_file.exists() else None
        if previous != fp:
            log.warning("checkpoints in %s belong to another run (params, base or data changed): "
                        "removing them", ckpt_dir)
            shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(fp, run_file)
    last = last_complete_checkpoint(ckpt_dir)
    return str(last) if last else None


def resumable_trainer(trainer_cls, data_seed: int):
    """`trainer_cls` (SFTTrainer) made exact on resume: a run killed at any step and resumed takes the
    same batches, the same random draws and the same loss sums as an uninterrupted run.

    - group_by_length: transformers' LengthGroupedSampler shuffles with the global torch RNG at the
      moment an epoch starts iterating. After a resume that RNG is the restored checkpoint's (or not
      yet restored), not what the uninterrupted run had at that epoch's start, so the epoch's batches
      differ. Here the shuffle of epoch e is seeded by data_seed + e alone (as accelerate's seedable
      random sampler does for train_sampling: random), and consumes no global RNG.
    - several processes: transformers groups by length over per-device batch x accumulation, so the
      index order (its mega-batches) changes with the process count. Here it is grouped over the
      global batch (x world size); accelerate then deals consecutive per-device slices to the ranks,
      so one optimizer step of N processes takes exactly the rows, in the order, of 1 process with an
      N times larger per-device batch (tests/test_distributed.py).
    - train loss: the Trainer keeps the running loss sum and the part not yet logged in memory only,
      and on resume reports the mean of the resumed steps. Both are saved in each checkpoint's
      trainer_state.json (written last, so a checkpoint that has it is complete) and restored when
      training starts (restore_loss_ledger). Single process: with several, each rank's unlogged part
      is its own and rank 0's is saved.
    """
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self, batch_size: int, lengths: list[int], seed: int):
            super().__init__(batch_size, lengths=lengths)
            self.seed = seed
            self.set_epoch(0)

        def set_epoch(self, epoch: int) -> None:
            # accelerate's DataLoaderShard.set_epoch reaches the sampler, also behind skip_first_batches
            self.generator = torch.Generator().manual_seed(self.seed + int(epoch))

    class ResumableTrainer(trainer_cls):
        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            if type(sampler) is LengthGroupedSampler:
                global_batch = sampler.batch_size * self.args.world_size
                return EpochSeededLengthGroupedSampler(global_batch, sampler.lengths, data_seed)
            return sampler

        def _save_checkpoint(self, model, trial):
            # before super(): it writes trainer_state.json last, which then carries the sums
            self.state.stateful_callbacks[LOSS_LEDGER] = {
                "total": self._total_loss_scalar,
                "unlogged": float(self._tr_loss.item()),
                "last_logged": self._globalstep_last_logged,
            }
            super()._save_checkpoint(model, trial)

    return ResumableTrainer


def restore_loss_ledger(trainer) -> None:
    """On resume, put the checkpoint's loss sums back (called from on_train_begin, after the Trainer
    loaded the checkpoint's state and zeroed its sums)."""
    ledger = trainer.state.stateful_callbacks.get(LOSS_LEDGER)
    if not ledger or trainer.state.global_step == 0:
        return
    trainer._total_loss_scalar = float(ledger["total"])
    trainer._tr_loss.fill_(float(ledger["unlogged"]))
    trainer._globalstep_last_logged = int(ledger["last_logged"])


def rewrap_after_eval(trainer) -> None:
    """Let train() wrap the model in DDP after an evaluate() that came first.

    trainer.evaluate() before train() prepares the bare model in accelerate's evaluation mode (no DDP)
    and marks it prepared; train()'s prepare then returns it as it is, so with several processes each
    rank steps on its own gradients, never all-reduced (measured: per-rank grad norms differ from step
    1, the loss curve drifts from the 1-process one). Dropping the mark (and the autocast wrapper that
    prepare put on forward) makes train() wrap it. FSDP and DeepSpeed prepare in full for evaluation
    and keep that model; a single process has nothing to wrap.
    """
    model, acc = trainer.model, trainer.accelerator
    if trainer.args.world_size <= 1 or trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        return
    if trainer.model_wrapped is not model or not getattr(model, "_is_accelerate_prepared", False):
        return
    del model._is_accelerate_prepared
    if "_original_forward" in model.__dict__:
        del model.__dict__["_original_forward"]
        model.__dict__.pop("forward", None)
    acc._models[:] = [m for m in acc._models if m is not model]


def loss_rows(log_history: list[dict[str, Any]]) -> list[tuple[int, float | None, float | None]]:
    by_step: dict[int, list[float | None]] = {}
    for entry in log_history:
        step = int(entry.get("step", 0))
        if "loss" in entry:
            by_step.setdefault(step, [None, None])[0] = float(entry["loss"])
        if "eval_loss" in entry:
            by_step.setdefault(step, [None, None])[1] = float(entry["eval_loss"])
    return [(s, v[0], v[1]) for s, v in sorted(by_step.items())]


def write_loss_tsv(rows, path: str) -> None:
    def fmt(x):
        return "" if x is None else f"{x:.6f}"

    lines = ["step\tloss\teval_loss"] + [f"{s}\t{fmt(a)}\t{fmt(b)}" for s, a, b in rows]
    io.write_text("\n".join(lines) + "\n", path)


def plot_loss(rows, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train = [(s, a) for s, a, _ in rows if a is not None]
    evals = [(s, b) for s, _, b in rows if b is not None]
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), marker="o", label="held-out loss (assistant tokens)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def model_card(base_info: dict[str, Any], params: SftParams, metrics: dict[str, Any], train: str, test: str,
               mixture_sha: dict[str, str]) -> str:
    p = json.dumps(dataclasses.asdict(params), indent=2, sort_keys=True)
    return f"""# atlas-forge SFT model

LoRA supervised fine-tuning (TRL SFTTrainer, assistant-only loss) of
`{base_info.get("name_or_path", "?")}` (revision `{base_info.get("revision") or "-"}`,
{base_info.get("parameters", "?")} parameters, kind `{base_info.get("kind", "?")}`), following the
Atlas-Chat recipe (arXiv 2409.17912).

## Data

| split | file | sha256 |
|---|---|---|
| train | `{train}` | `{mixture_sha["train"]}` |
| test | `{test}` | `{mixture_sha["test"]}` |

## Results

| metric | value |
|---|---|
| held-out loss, base model | {metrics["eval_loss_base"]:.4f} |
| held-out loss, fine-tuned | {metrics["eval_loss_sft"]:.4f} |
| final train loss | {metrics["train_loss"]:.4f} |
| optimizer steps | {metrics["steps"]} |
| training tokens (non-padding) | {metrics["tokens"]} |
| tokens/s | {metrics["tokens_per_s"]:.1f} |

Held-out loss: mean cross-entropy on the assistant tokens (answer and `<end_of_turn>`) of
{metrics["test_rows_scored"]} of the test split's {metrics["test_rows"]} rows (`max_eval_rows`: a seeded
sample).

## Parameters

```json
{p}
```

Outputs: `adapter/` (LoRA, safetensors) and `merged/` (adapter merged into the base, safetensors, tokenizer).
"""


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


def load_base(base: str, params: SftParams, cuda: bool):
    """The base model, its weights read from disk once per node rather than once per rank.

    Under FSDP with fsdp_cpu_ram_efficient_loading (configs/accelerate_fsdp.yaml; accelerate launch
    exports ACCELERATE_USE_FSDP and FSDP_CPU_RAM_EFFICIENT_LOADING), only local rank 0 reads them; the
    other ranks build the model with its parameters on the meta device (buffers, e.g. the rotary
    frequencies, computed for real: accelerate re-registers them and does not send them), to be
    filled from rank 0 (accelerate's FSDP2 prepare broadcasts rank 0's state dict; without FSDP,
    share_rank0_weights). transformers 5.24's from_pretrained does not do this itself: it checks
    the same flags but reads the whole checkpoint on every rank (measured). torch.distributed must be
    set up before (training_args). Logged per rank (tests/test_distributed.py reads it).
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if (params.bf16 and cuda) else torch.float32
    if rank0_reads_weights() and local_rank() != 0:
        from accelerate import init_empty_weights
        from transformers import AutoConfig

        with init_empty_weights(include_buffers=False):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base),
                                                     attn_implementation="eager", dtype=dtype)
        model.tie_weights()  # init_empty_weights re-registers each parameter, which unties them
    else:
        model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="eager", dtype=dtype)
    n = sum(p.numel() for p in model.parameters())
    on_meta = sum(p.numel() for p in model.parameters() if p.device.type == "meta")
    log.info("sft: rank %d loaded the base model: %d of %d parameters read from disk, %d on meta",
             global_rank(), n - on_meta, n, on_meta)
    return model


def rank0_reads_weights() -> bool:
    """FSDP's RAM-efficient loading asked for (transformers' own test, is_fsdp_enabled: the env that
    accelerate launch sets from the config, and torch.distributed set up)."""
    from transformers.integrations import is_fsdp_enabled

    return is_fsdp_enabled()


def local_rank() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


def global_rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


def accelerate_shards(args) -> bool:
    """Whether the Trainer's accelerator will use FSDP: the launch asked for it and the processes are
    on accelerators (accelerate turns ACCELERATE_USE_FSDP into FSDP for multi-GPU-like states only;
    on CPU it stays MULTI_CPU, i.e. DDP)."""
    import os

    from accelerate.utils import DistributedType

    state = getattr(args, "distributed_state", None)
    wanted = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    return wanted and state is not None and state.distributed_type not in (DistributedType.NO,
                                                                           DistributedType.MULTI_CPU)


def share_rank0_weights(model, fsdp: bool) -> None:
    """Give ranks that built the model on meta (load_base) rank 0's weights, where FSDP will not.

    accelerate shards with FSDP on accelerators only: on CPU (gloo) the same launch with the FSDP
    config trains with DDP, whose wrapper would broadcast rank 0's parameters too, but only at train()
    while the held-out loss of the base model is measured before. Every parameter and buffer is sent
    (persistent or not, tied ones twice), in the same order on every rank.
    """
    import torch.distributed as dist

    if fsdp or not dist.is_initialized() or not rank0_reads_weights():
        return
    if any(p.device.type == "meta" for p in model.parameters()):
        model.to_empty(device="cpu")
        model.tie_weights()
    tensors = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for _, t in tensors:
        dist.broadcast(t.data, src=0)


def run(params: SftParams, base: str, train: str, test: str, adapter: str, merged: str, card: str,
        checkpoints: str, metrics_path: str, loss_path: str, plot_path: str,
        threads: int = 1) -> dict[str, Any]:
    import torch
    from peft import LoraConfig
    from transformers import AutoConfig, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    torch.set_num_threads(max(1, threads))
    # before any data or weights are read: the config alone says whether the embeddings are tied
    tied = tied_embedding_modules(params.lora, bool(getattr(AutoConfig.from_pretrained(base),
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
    )

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
    }

    main = trainer.is_world_process_zero()
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
    if not main:
        return metrics
    # merged: the base reloaded on CPU plus the saved adapter (works the same after FSDP training)
    merge(base, adapter, merged, tokenizer)

    mixture_sha = {"train": files_sha256([train]), "test": files_sha256([test])}
    write_loss_tsv(rows, loss_path)
    plot_loss(rows, plot_path, f"LoRA SFT of {base_info.get('name_or_path', base)}")
    io.write_text(model_card(base_info, params, metrics, train, test, mixture_sha), card)
    io.write_json(metrics, metrics_path)
    log.info("sft done: %s", json.dumps(metrics))
    return metrics


def merge(base: str, adapter: str, merged: str, tokenizer) -> None:
    """Merge the LoRA adapter into the base weights; save as safetensors with the tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="eager", dtype="auto")
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    with atomic_dir(merged) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


CONTRACT = Phase(
    name="sft",
    module=__name__,
    help="LoRA supervised fine-tuning with TRL, resumable from checkpoints",
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
