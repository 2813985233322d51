"""The registered task kinds, by family: the lm-eval twins (families.py) and the judge (judge.py), one
entry each, so neither task module imports the other.
"""

from __future__ import annotations


def run(cfg, model, tokenizer, df, fewshot_df, batch_size: int, model_dir=None, answers=None,
        backend=None) -> tuple[dict, list, dict]:
    """(scores, samples, settings) for one task on one model, by its family; `answers`: a judged task's
    baseline answers (answers phase); `backend`: the generation backend, called as lm.generate (default
    lm.generate; vllm_backend.VLLMGenerator with evaluate.backend: vllm)."""
    from atlas_forge.evaluate import families

    if cfg.family != "judge":
        return families.run_task(cfg, model, tokenizer, df, fewshot_df, batch_size, model_dir=model_dir,
                                  backend=backend)
    from atlas_forge.evaluate.judge import run_judge

    rows, settings = families.task_rows(cfg, df)
    scores, samples, extra = run_judge(cfg, model, tokenizer, rows, batch_size, model_dir=model_dir,
                                     answers=answers, backend=backend)
    return scores, samples, {**settings, **extra}

