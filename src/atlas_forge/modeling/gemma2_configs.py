"""Gemma 2's published architectures (the `config.json` of google/gemma-2-{2b,9b,27b}-it), written
out so that sizes can be computed and the architecture built without downloading anything.

Used to size the jobs of the paper configs (scripts/paper_profiles.py -> profiles/paper-gemma2-*)
and to build a randomly initialised Gemma-2-2B for GPU measurements (bench/gpu_check.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# Values of the Hub config.json files (transformers' Gemma2Config keys). Shared by all three:
# vocab 256000, rope theta 10000, sliding window 4096 on every other layer, context 8192,
# logit soft-capping 50 (attention) and 30 (final), GELU-tanh MLP, tied input/output embeddings.
_COMMON: dict[str, Any] = {
    "vocab_size": 256000,
    "max_position_embeddings": 8192,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "hidden_activation": "gelu_pytorch_tanh",
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}

GEMMA2: dict[str, dict[str, Any]] = {
    "2b": {**_COMMON, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
           "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256},
    "9b": {**_COMMON, "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
           "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
           "query_pre_attn_scalar": 256},
    "27b": {**_COMMON, "hidden_size": 4608, "intermediate_size": 36864, "num_hidden_layers": 46,
            "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 128,
            "query_pre_attn_scalar": 144},
}

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def param_count(cfg: dict[str, Any]) -> int:
    """Parameters of a Gemma 2 decoder with tied embeddings, counted from its config.

    Per layer: q/k/v/o projections (no biases), gate/up/down MLP, four RMSNorm weights; plus the
    embedding (shared with the output layer) and the final norm. Gives 2,614,341,888 (2B),
    9,241,705,984 (9B) and 27,227,128,320 (27B): the counts the Hub reports for these models.
    """
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    attn = h * q + 2 * h * kv + q * h
    mlp = 3 * h * cfg["intermediate_size"]
    layer = attn + mlp + 4 * h
    return cfg["vocab_size"] * h + cfg["num_hidden_layers"] * layer + h


def weight_bytes(cfg: dict[str, Any], dtype: str = "bfloat16") -> int:
    return param_count(cfg) * DTYPE_BYTES[dtype]


def lora_param_count(cfg: dict[str, Any], r: int,
                     targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj")) -> int:
    """Trainable parameters of LoRA rank r on the given linear layers (A: in x r, B: r x out)."""
    h, hd, inter = cfg["hidden_size"], cfg["head_dim"], cfg["intermediate_size"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
              "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
    return cfg["num_hidden_layers"] * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)


# --- GPU memory and time of LoRA training at the paper's shape (docs/paper_scale.md) ---------------
#
# One formula for the docs, the profiles and the benches. Bytes throughout; every term is a plain
# product of the config's sizes, named after what holds the memory. What each term assumes is written
# beside it, with the library code it was read from (TRL 1.16.0, PEFT 0.21.2, accelerate 1.15.0,
# transformers 5.24.0, torch 2.13.0: the versions of requirements.lock).

GiB = 2**30
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# TRL 1.16 trl/kernels/chunked_logprob.py: TOKEN_CHUNK_SIZE tokens per projection tile; the vocabulary
# width of a tile is trl/trainer/utils.py's _CHUNKED_LOGPROB_CHUNK_SIZE (add_fused_lm_head)
TRL_TOKEN_CHUNK = 4096
TRL_VOCAB_CHUNK = 32768
# ours: CUDA context (not in torch's allocator counts) plus allocator fragmentation and cuBLAS
# workspaces, per process; and NCCL's communication buffers when there is more than one process
CUDA_OVERHEAD_BYTES = 2 * GiB
NCCL_OVERHEAD_BYTES = 1 * GiB
# the configurations docs/paper_scale.md tabulates: (size, processes). 27B x 8 is the paper's FSDP run
# (configs/accelerate_fsdp.yaml's num_processes); 27B x 1 shows why it needs sharding
PLAN_CASES: tuple[tuple[str, int], ...] = (("2b", 1), ("9b", 1), ("27b", 8), ("27b", 1))
# GPU memory as nvidia-smi reports it (MiB): H100 SXM 80 GB 81,559; A100 80 GB 81,920; H200 143,771
GPUS_GIB = {"H100/A100 80 GB": 81559 / 1024, "H200 141 GB": 143771 / 1024}
PEAK_BF16_FLOPS = 989e12  # H100/H200 SXM, bf16 dense (as bench/gpu_check.py)
HFU = (0.35, 0.40, 0.45)  # ours: assumed hardware FLOPs utilisation (docs/paper_scale.md says why)


def layer_param_count(cfg: dict[str, Any]) -> int:
    """Parameters of one decoder layer (what FSDP gathers for it: the wrap unit is Gemma2DecoderLayer)."""
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    return 2 * h * q + 2 * h * kv + 3 * h * cfg["intermediate_size"] + 4 * h


def _lora_in_features(cfg: dict[str, Any], target: str) -> int:
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    return {"o_proj": q, "down_proj": cfg["intermediate_size"]}.get(target, cfg["hidden_size"])


@dataclass(frozen=True)
class GpuMemory:
    """Per-GPU memory (bytes) of LoRA training of a Gemma 2 size; one field per term, see gpu_memory."""

    weights: int           # frozen base weights held by this process: W / N
    gathered_layers: int   # FSDP: decoder layers all-gathered at once (running + prefetched)
    gathered_embedding: int  # FSDP: the tied embedding / LM head unit, gathered for the whole step
    lora_states: int       # LoRA weights + gradients + AdamW moments, all fp32, / N
    checkpoints: int       # gradient checkpointing: every layer's input
    layer_activations: int  # one layer recomputed in backward: saved tensors + backward working set
    attention_masks: int   # eager attention's additive masks (full and sliding window)
    loss: int              # TRL's chunked LM head: one logits tile + the final hidden states and grads
    overhead: int          # ours: CUDA context, allocator, NCCL

    @property
    def total(self) -> int:
        return sum(self.terms().values())

    def terms(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def gpu_memory(size: str | dict[str, Any], processes: int = 1, batch: int = 4, seq: int = 2048,
               r: int = 256, targets: tuple[str, ...] = LORA_TARGETS, dtype: str = "bfloat16",
               lora_dropout: bool = True, gradient_checkpointing: bool = True,
               fsdp_prefetch: int = 1) -> GpuMemory:
    """Per-GPU peak memory of LoRA SFT (modeling/sft.py under SFTTrainer) in bytes, term by term.

    processes N: FSDP full-shard processes (configs/accelerate_fsdp.yaml; 1 = one GPU, no sharding).
    batch b, seq L: per-device batch and sequence length (every sequence full: the worst batch).
    dtype: the weights' and activations' dtype (bf16 on a GPU; "float32" for sft's CPU runs, whose
    load_base keeps fp32). a = its bytes below; the fp32 terms stay 4 bytes.

    Terms:
    - weights = P a / N. FSDP2 (fsdp_reshard_after_forward: true) keeps 1/N of every parameter.
      accelerate's fsdp2_prepare_model upcasts only trainable parameters to fp32, so the frozen
      base stays in its dtype.
    - gathered_layers = (1 + fsdp_prefetch) x one decoder layer's parameters x a, under FSDP only:
      the wrap unit is Gemma2DecoderLayer (fsdp_transformer_layer_cls_to_wrap); FSDP2 all-gathers the
      running layer and prefetches the next one (fsdp_prefetch = 1). LoRA's own gathered weights
      (in the bf16 param_dtype) are left out: under 10% of a layer's at r 256.
    - gathered_embedding = vocab x hidden x a, under FSDP only: accelerate 1.15 shards the tied
      embedding, final norm and LM head as one unit with reshard_after_forward=False, so it stays
      gathered from the embedding lookup to the end of backward (and the fused LM head uses it).
    - lora_states = lora_param_count x (4 weight + 4 gradient + 8 AdamW moments) / N. The LoRA
      weights are fp32: PEFT 0.21's get_peft_model(autocast_adapter_dtype=True) upcasts them from the
      bf16 base and TRL 1.16's SFTTrainer turns that off only under DeepSpeed ZeRO-3; under FSDP2
      accelerate upcasts trainable parameters to fp32 too. adamw_torch keeps exp_avg and exp_avg_sq
      in the parameters' dtype.
    - checkpoints = layers x b L hidden x a: with gradient checkpointing each decoder layer keeps
      only its input (the rotary tables and the masks are shared by all layers).
      Without checkpointing: 0, and layer_activations holds every layer's saved tensors.
    - layer_activations: one layer's forward, recomputed during its backward, with what autograd
      saves (frozen linears keep no input: a frozen weight needs no input for its gradient), per token:
      4 RMSNorms x fp32 input (Gemma2RMSNorm computes in fp32) = 16 hidden;
      per LoRA target: its dropout mask (1 byte) + the dropped input (a) x in_features, + A's output
      (a r) (lora_dropout 0.05 in the paper configs; without dropout: the input a x in_features);
      attention: rotated q, repeated k and v (eager repeat_kv) = 3 a heads x head_dim;
      MLP: gate output (GELU input), GELU output, up output = 3 a intermediate;
      backward: the residual stream's incoming and outgoing gradients in fp32 = 8 hidden;
      plus the eager attention scores, b x heads x L x L elements: tanh soft-capping output (a),
      softmax output (fp32, softmax(dtype=float32)), bf16 probabilities for P.V (a; the same
      tensor in fp32) + 8 bytes of backward working set (fp32 score gradients). Eager attention: sft
      loads Gemma 2 with attn_implementation="eager" (modeling/distributed.py load_base): Gemma 2
      soft-caps its attention logits (50), which transformers' sdpa path refuses
      (integrations/sdpa_attention.py: "`sdpa` attention does not support `softcap`"); eager
      materialises the L x L scores that a fused kernel would not.
    - attention_masks = 2 x b x L x L x a: eager attention's additive float masks, one for the
      global layers and one for the sliding-window layers (Gemma2Model builds both).
    - loss = TRL_TOKEN_CHUNK x TRL_VOCAB_CHUNK x a (one logits tile, reused; TRL's add_fused_lm_head
      never materialises b x L x vocab logits) + T x hidden x (a + 4) (the selected final hidden
      states, saved, and their fp32 gradient accumulator), T = b (L - 1) labelled tokens, + the final
      norm's fp32 input b L hidden x 4.
    - overhead = CUDA_OVERHEAD_BYTES (+ NCCL_OVERHEAD_BYTES when N > 1): ours, not measured here.
    Left out: the optimizer step's temporaries (foreach AdamW, LoRA-sized), FSDP's unsharded LoRA
    gradients of one layer before reduce-scatter (bf16), the embedding output of layer 0 beyond
    its checkpoint, the logits of the evaluation passes (smaller batch, no backward).
    """
    cfg = GEMMA2[size] if isinstance(size, str) else size
    a = DTYPE_BYTES[dtype]
    n, b, s = processes, batch, seq
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    q = heads * cfg["head_dim"]
    sharded = n > 1
    tokens = b * s

    per_token = 4 * 4 * h + 3 * a * q + 3 * a * inter + 2 * 4 * h
    for t in targets:
        fan_in = _lora_in_features(cfg, t)
        per_token += ((a + 1) * fan_in if lora_dropout else a * fan_in) + a * r
    scores = b * heads * s * s
    score_bytes = a + 4 + (a if a != 4 else 0)
    saved = tokens * per_token + scores * score_bytes
    working = scores * 8
    return GpuMemory(
        weights=param_count(cfg) * a // n,
        gathered_layers=(1 + fsdp_prefetch) * layer_param_count(cfg) * a if sharded else 0,
        gathered_embedding=cfg["vocab_size"] * h * a if sharded else 0,
        lora_states=lora_param_count(cfg, r, targets) * (4 + 4 + 8) // n,
        checkpoints=layers * tokens * h * a if gradient_checkpointing else 0,
        layer_activations=(saved if gradient_checkpointing else layers * saved) + working,
        attention_masks=2 * b * s * s * a,
        loss=(min(b * (s - 1), TRL_TOKEN_CHUNK) * TRL_VOCAB_CHUNK * a + b * (s - 1) * h * (a + 4)
              + tokens * h * 4),
        overhead=CUDA_OVERHEAD_BYTES + (NCCL_OVERHEAD_BYTES if sharded else 0),
    )


def train_flops_per_token(size: str | dict[str, Any], seq: int = 2048, r: int = 256,
                          targets: tuple[str, ...] = LORA_TARGETS) -> int:
    """Hardware FLOPs per trained token of LoRA SFT with gradient checkpointing.

    Frozen weights: 2P forward + 2P recomputed forward + 2P backward (input gradients only: no weight
    gradients) = 6P, the usual "6 x params x tokens" with the recompute standing in for the weight
    gradients LoRA skips. LoRA weights: 6 x lora params as above + 2 x lora params for their weight
    gradients. Eager attention: QK^T and PV over the full L x L square (eager computes the masked
    half too), 4 L heads head_dim per token and layer forward, x 4 (forward, recompute, backward 2x).
    """
    cfg = GEMMA2[size] if isinstance(size, str) else size
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    attn = 4 * seq * q * cfg["num_hidden_layers"]
    return 6 * param_count(cfg) + 8 * lora_param_count(cfg, r, targets) + 4 * attn


def _gib(x: float) -> str:
    return f"{x / GiB:.1f}" if x else "-"


MEMORY_ROWS = {
    "weights": "frozen base weights, W / N",
    "gathered_layers": "FSDP: 2 decoder layers gathered (running + prefetched)",
    "gathered_embedding": "FSDP: embedding / LM head unit gathered (256000 x hidden)",
    "lora_states": "LoRA weights + grads + AdamW (fp32, 16 B/param) / N",
    "checkpoints": "activations: every layer's input (checkpoints)",
    "layer_activations": "activations: one layer recomputed (+ backward)",
    "attention_masks": "eager attention masks (2 x b x L x L)",
    "loss": "TRL chunked LM head (tile + final hidden)",
    "overhead": "CUDA context, allocator, NCCL (ours)",
}


def render_memory_table(cases: tuple[tuple[str, int], ...] = PLAN_CASES, **kw: Any) -> str:
    """Markdown: GiB per term and in total for each (size, processes), against 80 GB and 141 GB GPUs."""
    mems = [gpu_memory(size, n, **kw) for size, n in cases]
    head = ["term (GiB per GPU)", *(f"{size.upper()} x {n} GPU{'s' if n > 1 else ''}" for size, n in cases)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * len(cases)]
    for key, label in MEMORY_ROWS.items():
        lines.append("| " + " | ".join([label, *(_gib(getattr(m, key)) for m in mems)]) + " |")
    lines.append("| " + " | ".join(["**total**", *(f"**{_gib(m.total)}**" for m in mems)]) + " |")
    for gpu, cap in GPUS_GIB.items():
        cells = [f"fits ({_gib(cap * GiB - m.total)} free)" if m.total <= cap * GiB else
                 f"no ({_gib(m.total - cap * GiB)} over)" for m in mems]
        lines.append("| " + " | ".join([f"fits {gpu} ({cap:.1f} GiB)?", *cells]) + " |")
    return "\n".join(lines) + "\n"


def render_time_table(cases: tuple[tuple[str, int], ...] = PLAN_CASES[:3], seq: int = 2048,
                      global_batch: int = 128, r: int = 256) -> str:
    """Markdown: checkpoint sizes and time per optimizer step at HFU for each (size, GPUs)."""
    lines = ["| | " + " | ".join(f"{s.upper()} x {n}" for s, n in cases) + " |",
             "|---|" + "---:|" * len(cases)]

    def row(label: str, values: list[str]) -> None:
        lines.append("| " + " | ".join([label, *values]) + " |")

    lora = [lora_param_count(GEMMA2[s], r) for s, _ in cases]
    row("LoRA parameters (r 256, 7 targets)", [f"{p / 1e9:.3f} B" for p in lora])
    row("adapter (fp32 safetensors), GB", [f"{4 * p / 1e9:.1f}" for p in lora])
    row("optimizer state (2 x fp32), GB", [f"{8 * p / 1e9:.1f}" for p in lora])
    row("per checkpoint (adapter + optimizer), GB", [f"{12 * p / 1e9:.1f}" for p in lora])
    flops = [train_flops_per_token(s, seq, r) for s, _ in cases]
    row("FLOPs per token (fwd + recompute + bwd)", [f"{f / 1e9:.1f} G" for f in flops])
    row("8 x params (6PT + recompute), for comparison", [f"{8 * param_count(GEMMA2[s]) / 1e9:.1f} G"
                                                         for s, _ in cases])
    tokens = global_batch * seq
    for u in HFU:
        secs = [tokens * f / (n * PEAK_BF16_FLOPS * u) for f, (_, n) in zip(flops, cases, strict=True)]
        row(f"s per step at {u:.0%} of 989 TFLOPS ({tokens:,} tokens)", [f"{t:.1f}" for t in secs])
    u = HFU[1]
    row(f"hours per 1B tokens at {u:.0%}",
        [f"{1e9 * f / (n * PEAK_BF16_FLOPS * u) / 3600:.1f}" for f, (_, n) in zip(flops, cases, strict=True)])
    row("bench/gpu_check.py's MFU (4 x params per token) at 40%",
        [f"{u * 4 * param_count(GEMMA2[s]) / f:.0%}" for f, (s, _) in zip(flops, cases, strict=True)])
    return "\n".join(lines) + "\n"


def render_plan() -> str:
    """The generated part of docs/paper_scale.md (scripts/paper_profiles.py writes and checks it)."""
    return ("Per-GPU memory, per-device batch 4, sequence 2048, LoRA r 256 on the 7 projections, bf16,\n"
            "gradient checkpointing, eager attention (`gemma2_configs.gpu_memory`):\n\n"
            + render_memory_table()
            + "\nCheckpoints and time, global batch 128, every sequence 2048 tokens (an upper bound: "
              "sft pads to the\nlongest row of each batch, not to 2048) "
              "(`gemma2_configs.train_flops_per_token`):\n\n"
            + render_time_table())
