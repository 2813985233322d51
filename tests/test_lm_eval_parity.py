"""Parity with lm-evaluation-harness 0.4.13 (HF backend, add_bos_token=True, fp32).

Same tiny Gemma 2, same items, same prompt strings: our scorer and lm-eval must agree on every
choice's log-likelihood (|Δ| < 1e-4) and on acc / acc_norm. Items have distinct contexts (lm-eval
computes identical requests once). Runs fully offline: the tasks read a local JSONL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tiny-model helpers live in test_evaluate.py

pytestmark = pytest.mark.slow
TOL = 1e-4


def _lm_eval_task(tmp, name: str, items: list[dict]) -> None:
    data = tmp / f"{name}.jsonl"
    data.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    # field names (not Jinja templates) so lm-eval passes our prompt strings through untouched
    (tmp / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data.resolve()}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: prompt\n"
        "doc_to_choice: choices\n"
        "doc_to_target: gold\n"
        'target_delimiter: " "\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )


def run_lm_eval(model_dir, task_dir, tasks: list[str], batch_size: int = 4) -> dict:
    """{task: {"acc", "acc_norm", "logliks": {doc_id: [ll per choice]}}} from lm-eval's own scoring."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},add_bos_token=True,dtype=float32,attn_implementation=eager",
        tasks=tasks,
        task_manager=TaskManager(include_path=str(task_dir)),
        batch_size=batch_size,
        device="cpu",
        log_samples=True,
        num_fewshot=0,
    )
    res = {}
    for t in tasks:
        metrics = out["results"][t]
        res[t] = {
            "acc": metrics["acc,none"],
            "acc_norm": metrics["acc_norm,none"],
            "logliks": {s["doc_id"]: [float(r[0]) for r in s["filtered_resps"]] for s in out["samples"][t]},
        }
    return res


def test_parity_with_lm_eval(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    from test_evaluate import make_tiny_model, mcq_rows

    from atlas_forge import records
    from atlas_forge.evaluate import families, metrics
    from atlas_forge.evaluate.loglik import LoglikScorer, Request

    model_dir = tmp_path / "model"
    model, tok = make_tiny_model(model_dir)
    rows = families.sorted_rows(records.from_rows(mcq_rows(20)))
    dev, test = rows[:1], rows[1:]  # one-shot prompts: exercise the few-shot layout too
    letters = [
        {"prompt": families.mcq_prompt(r, dev), "choices": list("ABCD"), "gold": r["meta"]["answer"]}
        for r in test
    ]
    endings = [
        {"prompt": families.user_text(r), "choices": r["meta"]["choices"], "gold": r["meta"]["answer"]}
        for r in test
    ]
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    _lm_eval_task(task_dir, "af_parity_letters", letters)
    _lm_eval_task(task_dir, "af_parity_endings", endings)
    ref = run_lm_eval(model_dir, task_dir, ["af_parity_letters", "af_parity_endings"])

    scorer = LoglikScorer(model, tok, batch_size=4, add_bos=True)
    # both scorer paths are exercised: one-token letters (one pass per context), multi-token endings
    assert all(len(scorer.encode_pair(letters[0]["prompt"], " " + c).cont) == 1 for c in "ABCD")
    assert any(
        len(scorer.encode_pair(it["prompt"], " " + c).cont) > 1 for it in endings for c in it["choices"]
    )
    max_delta = 0.0
    for name, items in (("af_parity_letters", letters), ("af_parity_endings", endings)):
        ours = scorer.score_groups([[Request(it["prompt"], " " + c) for c in it["choices"]] for it in items])
        acc, acc_norm = [], []
        for i, (it, res) in enumerate(zip(items, ours, strict=True)):
            lls = [ll for ll, _ in res]
            theirs = ref[name]["logliks"][i]
            assert len(theirs) == len(lls)
            for a, b in zip(lls, theirs, strict=True):
                max_delta = max(max_delta, abs(a - b))
                assert abs(a - b) < TOL, (name, i, lls, theirs)
            pred, pred_norm = metrics.choice_preds(lls, it["choices"])
            acc.append(float(pred == it["gold"]))
            acc_norm.append(float(pred_norm == it["gold"]))
        assert metrics.mean(acc) == pytest.approx(ref[name]["acc"])
        if name == "af_parity_endings":
            assert metrics.mean(acc_norm) == pytest.approx(ref[name]["acc_norm"])
    print(f"max |Δ loglik| vs lm-eval: {max_delta:.2e}")
