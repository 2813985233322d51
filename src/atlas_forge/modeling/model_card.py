"""The fine-tuned model's card (README.md beside the adapter): base, data digests, results, params."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def model_card(base_info: dict[str, Any], params, metrics: dict[str, Any], train: str, test: str,
               mixture_sha: dict[str, str]) -> str:
    p = json.dumps(dataclasses.asdict(params), indent=2, sort_keys=True)
    full = getattr(params, "method", "lora") == "full"
    outputs = ("`merged/` (every weight trained, safetensors, tokenizer); `adapter/` holds only a note"
               if full else
               "`adapter/` (LoRA, safetensors) and `merged/` (adapter merged into the base, safetensors, "
               "tokenizer)")
    return f"""# atlas-forge SFT model

{"Full" if full else "LoRA"} supervised fine-tuning (TRL SFTTrainer, assistant-only loss) of
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

Outputs: {outputs}.
"""

