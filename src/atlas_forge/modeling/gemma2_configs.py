"""Gemma 2's published architectures (the `config.json` of google/gemma-2-{2b,9b,27b}-it), written
out so that sizes can be computed and the architecture built without downloading anything.

Used to size the jobs of the paper configs (scripts/paper_profiles.py -> profiles/paper-gemma2-*)
and to build a randomly initialised Gemma-2-2B for GPU measurements (bench/gpu_check.py).
"""

from __future__ import annotations

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
