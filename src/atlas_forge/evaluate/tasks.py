"""The registered task kinds, by family: the lm-eval twins (families.py) and the judge (judge.py), one
entry each, so neither task module imports the other.
"""

from __future__ import annotations

from typing import Any

import polars as pl


def run(cfg, model, tokenizer, df, fewshot_df, batch_size: int, model_dir=None) -> tuple[dict, list, dict]:
    """(scores, samples, settings) for one task on one model, by its family."""
    from atlas_forge.evaluate import families

    if cfg.family != "judge":
        return families.run_task(cfg, model, tokenizer, df, fewshot_df, batch_size, model_dir=model_dir)
    from atlas_forge.evaluate.judge import run_judge

    rows = families.sorted_rows(df.filter(pl.col("source").is_in(cfg.sources)), cfg.sources)
    if not rows:
        raise ValueError(f"task {cfg.name}: no bench rows in sources {cfg.sources}")
    settings: dict[str, Any] = {
        "num_fewshot": cfg.num_fewshot,
        "apply_chat_template": cfg.use_chat_template,
        "add_bos": cfg.add_bos,
        "max_items": cfg.max_items,
        "harness_task": cfg.family,
    }
    scores, samples, extra = run_judge(cfg, model, tokenizer, rows, batch_size, model_dir=model_dir)
    return scores, samples, {**settings, **extra}

