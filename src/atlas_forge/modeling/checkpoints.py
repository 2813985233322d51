"""sft's checkpoints: the fingerprint of the run that owns them, resuming from the last complete one,
and a Trainer made exact on resume (batches, random draws and loss sums as an uninterrupted run)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from atlas_forge import io
from atlas_forge.store import files_sha256, sha256_bytes

log = logging.getLogger(__name__)
RUN_FILE = "atlas_forge_run.json"  # fingerprint of the run that owns the checkpoints folder
# key in a checkpoint's trainer_state.json (TrainerState.stateful_callbacks) for the training-loss sums
LOSS_LEDGER = "atlas_forge_loss"


def fingerprint(params, base: str, train: str, test: str) -> dict[str, Any]:
    base_info = Path(base) / "base_model.json"
    weights = sorted(Path(base).glob("*.safetensors"))
    return {
        # threads (--threads) change speed, not results, and are not in params: another thread count resumes
        # ASCII-escaped JSON, as the fingerprints of existing checkpoints were taken (store.sha256_json
        # keeps non-ASCII, which would orphan them where a param holds Darija, e.g. system_message)
        "params": sha256_bytes(json.dumps(dataclasses.asdict(params), sort_keys=True).encode()),
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

