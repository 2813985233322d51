"""sft across processes: the base weights read once per node (FSDP's RAM-efficient loading) and sent
to the other ranks, and the ranks' identities."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def load_base(base: str, params, cuda: bool):
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

    dtype = torch.bfloat16 if params.bf16 and (cuda or cpu_has_bf16()) else torch.float32
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


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (oneDNN's AVX512-BF16 or AMX kernels). There, `bf16`
    loads the frozen base in bf16 as on a GPU: half the memory, and ~6x fp32's matmul speed (measured on
    this project's 2-core Xeon with AMX: 1.7 TFLOP/s bf16 vs 0.29 fp32). Elsewhere bf16 is emulated and
    slower than fp32, so the weights stay fp32 (the Trainer's bf16 autocast still applies)."""
    import torch

    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe is not None and torch.backends.mkldnn.is_available() and probe())


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

