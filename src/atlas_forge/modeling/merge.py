"""Merge a LoRA adapter into its base model's safetensors, one shard at a time.

PEFT's way (`PeftModel.from_pretrained(base).merge_and_unload()`) builds the whole model a second time
in the sft job, beside the one just trained: at Gemma-2-2B shape that is two more 10 GB copies of the
weights (the base reloaded, then the save's serialisation buffers) next to the trained model and its
optimizer. Here the base is never built as a model: each shard of the base checkpoint is read, the
adapter's delta is added to the tensors it targets, and the shard is written out under the same name,
so the peak is one shard (and its serialised bytes) plus the adapter, whatever the model's size.

The arithmetic is PEFT's own (peft/tuners/lora/layer.py, Linear.get_delta_weight and merge):
delta = (B @ A) * scaling, computed in float32 when the adapter is half precision, added in place to
the base weight; scaling = alpha / r (alpha / sqrt(r) with use_rslora). tests/test_modeling.py checks
that the result equals merge_and_unload's, bit for bit. Adapters with features this does not implement
(DoRA, LoRA biases, per-module rank or alpha patterns, fan_in_fan_out) are refused by name rather than
merged wrongly; the project's own params never produce them.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

ADAPTER_PREFIX = "base_model.model."
SAFE_INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
# the keys of adapter_config.json whose non-default values this merge does not implement
UNSUPPORTED = {"use_dora": False, "lora_bias": False, "fan_in_fan_out": False, "rank_pattern": {},
               "alpha_pattern": {}}


def base_shards(base: str | Path) -> list[str]:
    """The base checkpoint's safetensors files, in the index's order (one file when unsharded)."""
    base = Path(base)
    if (base / SAFE_INDEX).exists():
        weight_map = json.loads((base / SAFE_INDEX).read_text())["weight_map"]
        return list(dict.fromkeys(weight_map.values()))
    if (base / SINGLE).exists():
        return [SINGLE]
    raise FileNotFoundError(f"{base}: no {SINGLE} or {SAFE_INDEX} (the base must be saved as safetensors)")


def adapter_scaling(cfg: dict, path: Path) -> float:
    for key, default in UNSUPPORTED.items():
        if cfg.get(key, default) not in (default, None):
            raise ValueError(f"{path}: {key}={cfg[key]!r} is not supported by the streaming merge "
                             "(atlas_forge.modeling.merge): only plain LoRA adapters")
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def adapter_deltas(adapter: str | Path) -> tuple[dict[str, tuple], dict[str, object], float]:
    """({base weight key: (A, B)}, {base key: replacement tensor (modules_to_save)}, scaling)."""
    from safetensors.torch import load_file

    adapter = Path(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    scaling = adapter_scaling(cfg, adapter / "adapter_config.json")
    tensors = load_file(adapter / "adapter_model.safetensors")
    pairs: dict[str, dict[str, object]] = {}
    replaced: dict[str, object] = {}
    for key, value in tensors.items():
        name = key.removeprefix(ADAPTER_PREFIX)
        for part in ("lora_A", "lora_B"):
            marker = f".{part}.weight"
            if name.endswith(marker):
                pairs.setdefault(name[: -len(marker)] + ".weight", {})[part] = value
                break
        else:
            replaced[name] = value  # modules_to_save: the trained copy replaces the base tensor
    broken = [k for k, v in pairs.items() if set(v) != {"lora_A", "lora_B"}]
    if broken:
        raise ValueError(f"{adapter}: LoRA weights without their A/B pair: {broken[:3]}")
    return {k: (v["lora_A"], v["lora_B"]) for k, v in pairs.items()}, replaced, scaling


def merged_tensor(weight, a, b, scaling: float):
    """PEFT's merge of one Linear: half-precision adapters are multiplied in float32 (as PEFT does on
    CPU), the delta is cast to the adapter's dtype, and added in place to the weight."""
    import torch

    half = a.dtype in (torch.float16, torch.bfloat16)
    delta = (b.float() @ a.float() if half else b @ a) * scaling
    if half:
        delta = delta.to(a.dtype)
    weight += delta
    return weight


def merge_adapter(base: str | Path, adapter: str | Path, out: str | Path) -> dict[str, int]:
    """Write base + adapter to `out` (an existing empty folder) with the base's shard layout and its
    config files; returns {"shards", "merged_tensors", "replaced_tensors"}."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    base, out = Path(base), Path(out)
    deltas, replaced, scaling = adapter_deltas(adapter)
    targets = set(deltas) | set(replaced)
    seen: set[str] = set()
    shards = base_shards(base)
    for shard in shards:
        tensors = {}
        with safe_open(base / shard, framework="pt") as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                t = f.get_tensor(key)
                if key in deltas:
                    t = merged_tensor(t, *deltas[key], scaling)
                elif key in replaced:
                    t = replaced[key].to(t.dtype)
                seen.add(key)
                tensors[key] = t
        # the format key tells transformers these are PyTorch tensors (it refuses a file without it)
        save_file(tensors, out / shard, metadata={**metadata, "format": "pt"})
        del tensors
    missing = sorted(targets - seen)
    if missing:
        raise ValueError(f"{adapter}: adapter weights for tensors the base {base} lacks: {missing[:3]}")
    for name in (SAFE_INDEX, "config.json", "generation_config.json"):
        if (base / name).exists():
            shutil.copyfile(base / name, out / name)
    return {"shards": len(shards), "merged_tensors": len(deltas), "replaced_tensors": len(replaced)}
