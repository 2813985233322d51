"""Every Table 2 benchmark scored by the project equals lm-evaluation-harness 0.4.13's own stock task.

The fixtures (tests/fixtures/hub/, written by make_hub_fixtures.py) are in each Hub dataset's exact
schema. The project reads them through ingest's `kind: hf` path (datasets.load_dataset on the folder,
the call a Hub id takes); lm-eval reads the same files through its stock task YAML, included by
absolute path with only dataset_path/data_files overridden (and, offline, metric_list where the
stock task loads Hub-hosted metrics: ROUGE and BERTScore come from `evaluate.load`).

Models: the tiny Gemma 2 the default build makes (base_model code and params.yaml's base_model
section; its tokenizer adds no BOS of its own), and the same weights with a Gemma-style tokenizer
whose post-processor adds BOS itself. Multiple choice: per-item |Δ loglik| < 1e-4 and equal
acc/acc_norm. Generation (through the chat template, lm-eval --apply_chat_template): identical
outputs after the harness's filters and equal BLEU/chrF/TER/chrF.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
TOL = 1e-4
ROOT = Path(__file__).resolve().parents[1]
HUB = Path(__file__).parent / "fixtures" / "hub"


def _source(sid: str, folder: str, split: str, text: str, config: str | None = None) -> dict:
    return {
        "id": sid,
        "kind": "hf",
        "name": str(HUB / folder),
        "revision": "fixture",
        "split": split,
        "config": config,
        "role": "eval",
        "task": "benchmark",
        "lang": "ary_Arab",
        "columns": {"text": text},
    }


SOURCES = [
    _source("mmlu", "DarijaMMLU", "test", "question", "*"),
    _source("mmlu_dev", "DarijaMMLU", "dev", "question", "*"),
    _source("hellaswag", "DarijaHellaSwag", "validation", "ctx"),
    _source("hellaswag_train", "DarijaHellaSwag", "train", "ctx"),
    _source("belebele", "belebele", "test", "question", "ary_Arab"),
    *[
        _source(f"db_{s}", "DarijaBench", s, "messages")
        for s in ("mac", "myc", "doda", "transliteration", "marsum")
    ],
]

# (our task config, [(lm-eval task name, stock YAML relative to lm_eval/tasks, data_files, overrides)])
MC_TASKS = [
    ({"name": "darijammlu", "family": "darijammlu", "sources": ["mmlu"]}, "mmlu", 0),
    (
        {
            "name": "darijammlu_3",
            "family": "darijammlu",
            "sources": ["mmlu"],
            "fewshot_sources": ["mmlu_dev"],
            "num_fewshot": 3,
        },
        "mmlu",
        3,
    ),
    ({"name": "hellaswag", "family": "darijahellaswag", "sources": ["hellaswag"]}, "hellaswag", 0),
    (
        {
            "name": "hellaswag_10",
            "family": "darijahellaswag",
            "sources": ["hellaswag"],
            "fewshot_sources": ["hellaswag_train"],
            "num_fewshot": 10,
        },
        "hellaswag",
        10,
    ),
    ({"name": "belebele", "family": "belebele", "sources": ["belebele"]}, "belebele", 0),
    ({"name": "belebele_5", "family": "belebele", "sources": ["belebele"], "num_fewshot": 5}, "belebele", 5),
    (
        {
            "name": "sentiment",
            "family": "darija_sentiment",
            "sources": ["db_mac", "db_myc"],
            "n_choices": {"db_mac": 3, "db_myc": 2},
        },
        "sentiment",
        0,
    ),
]
GEN_TASKS = [
    {"name": "translation", "family": "darija_translation", "sources": ["db_doda"]},
    {"name": "transliteration", "family": "darija_transliteration", "sources": ["db_transliteration"]},
    {"name": "summarization", "family": "darija_summarization", "sources": ["db_marsum"]},
]


def _stock(rel: str) -> str:
    import lm_eval

    return str(Path(lm_eval.__file__).parent / "tasks" / rel)


def _fixture(*parts: str) -> str:
    return str(HUB.joinpath(*parts))


def lm_eval_tasks(kind: str, shots: int) -> dict[str, dict]:
    """lm-eval task name -> YAML for one of our tasks: the stock task on the fixture files."""
    out = {}
    if kind == "mmlu":
        for subj in ("general_knowledge", "reading"):
            out[f"af_mmlu_{subj}_{shots}"] = {
                "include": _stock("darijammlu/_default_darijammlu_template_yaml"),
                "data_files": {
                    "test": _fixture("DarijaMMLU", subj, "test-00000-of-00001.jsonl"),
                    "dev": _fixture("DarijaMMLU", subj, "dev-00000-of-00001.jsonl"),
                },
                "group": subj,
            }
    elif kind == "hellaswag":
        out[f"af_hellaswag_{shots}"] = {
            "include": _stock("darijahellaswag/darijahellaswag.yaml"),
            "data_files": {
                "train": _fixture("DarijaHellaSwag", "data", "train-00000-of-00001.jsonl"),
                "validation": _fixture("DarijaHellaSwag", "data", "validation-00000-of-00001.jsonl"),
            },
        }
    elif kind == "belebele":
        out[f"af_belebele_{shots}"] = {
            "include": _stock("belebele/belebele_ary_Arab.yaml"),
            "data_files": {"test": _fixture("belebele", "data", "ary_Arab.jsonl")},
        }
    elif kind == "sentiment":
        for split in ("mac", "myc"):
            out[f"af_sentiment_{split}"] = {
                "include": _stock(f"darija_bench/darija_sentiment/darija_sentiment_{split}.yaml"),
                "data_files": {split: _fixture("DarijaBench", "data", f"{split}-00000-of-00001.jsonl")},
                "source": f"db_{split}",
            }
    elif kind == "generation":
        bleu = [{"metric": m} for m in ("bleu", "ter", "chrf")]
        for code in ("dr_en", "en_dr"):
            out[f"af_translation_{code}"] = {
                "include": _stock(f"darija_bench/darija_translation/doda_translation_{code}.yaml"),
                "data_files": {"doda": _fixture("DarijaBench", "data", "doda-00000-of-00001.jsonl")},
                "metric_list": bleu,
                "task": "translation",
                "direction": code,
            }
        for code in ("dr_ar", "ar_dr"):
            out[f"af_transliteration_{code}"] = {
                "include": _stock(f"darija_bench/darija_transliteration/translation_{code}.yaml"),
                "data_files": {
                    "transliteration": _fixture("DarijaBench", "data", "transliteration-00000-of-00001.jsonl")
                },
                "metric_list": bleu,
                "task": "transliteration",
                "direction": code,
            }
        out["af_summarization"] = {
            "include": _stock("darija_bench/darija_summarization/summarization.yaml"),
            "data_files": {"marsum": _fixture("DarijaBench", "data", "marsum-00000-of-00001.jsonl")},
            # ROUGE and BERTScore: the stock task loads them from the Hub (evaluate.load); chrF is local
            "metric_list": [{"metric": "chrf"}],
            "task": "summarization",
            "direction": None,
        }
    return out


def write_yaml(task_dir: Path, name: str, spec: dict, shots: int) -> None:
    body = {
        "include": spec["include"],
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": spec["data_files"]},
        "num_fewshot": shots,
    }
    if "metric_list" in spec:
        body["metric_list"] = spec["metric_list"]
    (task_dir / f"{name}.yaml").write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")


def run_lm_eval(model_dir: Path, task_dir: Path, names: list[str], chat: bool) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},add_bos_token=True,dtype=float32,attn_implementation=eager",
        tasks=names,
        task_manager=TaskManager(include_path=str(task_dir)),
        batch_size=1,
        device="cpu",
        log_samples=True,
        apply_chat_template=chat,
    )


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The fixtures read through ingest's hf path: {source id: canonical table}."""
    from atlas_forge import ingest

    out = {}
    for src in SOURCES:
        cfg = ingest.parse_source(src)
        table, rejects, n = ingest.ingest_rows(cfg, ingest.read_rows(cfg))
        assert rejects.height == 0 and table.height == n > 0, (src["id"], rejects)
        out[src["id"]] = table
    return out


@pytest.fixture(scope="module")
def pipeline_model(default_build, tmp_path_factory):
    """The tiny model the default build ships (models/base of the session's one build), copied: the
    parity runs write their tables beside the model."""
    out = tmp_path_factory.mktemp("pipeline_model") / "base"
    shutil.copytree(default_build / "models" / "base", out)
    return out


@pytest.fixture(scope="module")
def gemma_style_model(pipeline_model, tmp_path_factory):
    """The same weights with a tokenizer whose post-processor adds BOS itself (as Gemma's does)."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("gemma_style") / "model"
    shutil.copytree(pipeline_model, out)
    tok = AutoTokenizer.from_pretrained(out)
    bos = tok.bos_token_id
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    tok.save_pretrained(out)
    reloaded = AutoTokenizer.from_pretrained(out)
    assert reloaded.encode("x")[0] == bos, "the Gemma-style tokenizer must add BOS on its own"
    return out


def _ours(task: dict, model_dir: Path, tables: dict, batch_size: int = 4):
    import polars as pl

    from atlas_forge.evaluate import evaluate

    data_dir = model_dir.parent / "tables"
    data_dir.mkdir(exist_ok=True)
    from atlas_forge import io

    def paths(ids):
        out = []
        for sid in ids:
            p = data_dir / f"{sid}.parquet"
            if not p.exists():
                io.write_table(tables[sid], p, "test")
            out.append(str(p))
        return out

    assert isinstance(tables[task["sources"][0]], pl.DataFrame)
    return evaluate(
        task,
        str(model_dir),
        "m",
        paths(task["sources"]),
        batch_size=batch_size,
        fewshot_data=paths(task.get("fewshot_sources", [])),
        device="cpu",
    )


def _context(sample: dict) -> str:
    """The context string lm-eval scored, from a logged sample (list or dict `arguments`)."""
    args = sample["arguments"]
    first = next(iter(args.values())) if isinstance(args, dict) else args[0]
    return first["arg_0"] if isinstance(first, dict) else first[0]


def _check_mc(ours, samples, ref, specs: dict, kind: str) -> float:
    """Compare one of our multiple-choice tasks with its lm-eval task(s); returns the max |Δ|."""
    worst = 0.0
    for name, spec in specs.items():
        theirs = sorted(ref["samples"][name], key=lambda s: s["doc_id"])
        if kind == "mmlu":
            mine = [s for s in samples if s["group"] == spec["group"]]
        elif kind == "sentiment":
            mine = [s for s in samples if s["source"] == spec["source"]]
        else:
            mine = samples
        assert len(mine) == len(theirs) > 0, name
        for s, t in zip(mine, theirs, strict=True):
            assert s["prompt"] == _context(t), (
                name,
                t["doc_id"],
            )  # byte-identical prompts, few-shot included
            lls = [float(r[0]) for r in t["filtered_resps"]]
            assert len(lls) == len(s["logliks"]), name
            for a, b in zip(s["logliks"], lls, strict=True):
                worst = max(worst, abs(a - b))
                assert abs(a - b) < TOL, (name, t["doc_id"], s["logliks"], lls)
        acc = sum(s["correct"] for s in mine) / len(mine)
        assert acc == pytest.approx(ref["results"][name]["acc,none"]), name
        if "acc_norm,none" in ref["results"][name]:
            acc_norm = sum(s["pred_norm"] == s["gold"] for s in mine) / len(mine)
            assert acc_norm == pytest.approx(ref["results"][name]["acc_norm,none"]), name
    return worst


@pytest.fixture(scope="module")
def unit_test_model(tmp_path_factory):
    """The tiny model of tests/test_evaluate.py (its own BPE with a BOS post-processor)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_evaluate import make_tiny_model

    path = tmp_path_factory.mktemp("unit_model") / "model"
    make_tiny_model(path)
    return path


@pytest.mark.parametrize("which", ["pipeline", "gemma_style", "unit_test"])
def test_multiple_choice_parity(which, tables, pipeline_model, gemma_style_model, unit_test_model, tmp_path):
    model_dir = {"pipeline": pipeline_model, "gemma_style": gemma_style_model, "unit_test": unit_test_model}[
        which
    ]
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    plan = []
    for task, kind, shots in MC_TASKS:
        specs = lm_eval_tasks(kind, shots)
        for name, spec in specs.items():
            write_yaml(task_dir, name, spec, shots)
        plan.append((task, kind, specs))
    ref = run_lm_eval(model_dir, task_dir, [n for _, _, specs in plan for n in specs], chat=False)
    report = {}
    for task, kind, specs in plan:
        result, samples = _ours(task, model_dir, tables)
        report[task["name"]] = _check_mc(result, samples, ref, specs, kind)
        if kind == "sentiment":  # the group: mean over items = size-weighted mean of the splits
            n = {name: len(ref["samples"][name]) for name in specs}
            weighted = sum(ref["results"][k]["acc,none"] * n[k] for k in specs) / sum(n.values())
            assert result["scores"]["acc"] == pytest.approx(weighted)
    print(f"[{which}] max |Δ loglik| per task: " + json.dumps({k: f"{v:.2e}" for k, v in report.items()}))


@pytest.mark.parametrize("which", ["pipeline", "gemma_style"])
def test_generation_parity(which, tables, pipeline_model, gemma_style_model, tmp_path):
    from atlas_forge.evaluate import metrics

    model_dir = pipeline_model if which == "pipeline" else gemma_style_model
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    specs = lm_eval_tasks("generation", 0)
    for name, spec in specs.items():
        write_yaml(task_dir, name, spec, 0)
    ref = run_lm_eval(model_dir, task_dir, list(specs), chat=True)
    n_outputs = 0
    for task in GEN_TASKS:
        result, samples = _ours(task, model_dir, tables, batch_size=3)
        again, samples_b1 = _ours(task, model_dir, tables, batch_size=1)
        assert [s["generation"] for s in samples] == [s["generation"] for s in samples_b1], (
            "batch size changed outputs"
        )
        for name, spec in specs.items():
            if spec["task"] != task["name"]:
                continue
            mine = [s for s in samples if s["direction"] == spec["direction"]]
            theirs = sorted(ref["samples"][name], key=lambda s: s["doc_id"])
            assert len(mine) == len(theirs) > 0, name
            for s, t in zip(mine, theirs, strict=True):  # the harness's doc_to_text, before the chat template
                assert _context(t).endswith(s["prompt"] + "<end_of_turn>\n<start_of_turn>model\n"), name
            gens = [t["filtered_resps"][0] for t in theirs]
            assert [s["generation"] for s in mine] == gens, name
            assert sum(bool(g) for g in gens) >= len(gens) // 2, "too many empty outputs to prove anything"
            n_outputs += len(gens)
            res = ref["results"][name]
            refs = [s["gold"] for s in mine]
            if task["name"] == "summarization":
                assert result["scores"]["chrf"] == pytest.approx(res["chrf,STRIP_ANSWER"], abs=1e-9)
                # ROUGE as the harness's `evaluate` rouge computes it: rouge_score's default tokenizer
                assert result["scores"]["rougeL"] == pytest.approx(metrics.rouge(gens, refs)["rougeL"])
            else:
                d = spec["direction"]
                for m in ("bleu", "chrf", "ter"):
                    assert result["scores"][f"{m}/{d}"] == pytest.approx(
                        res[f"{m},STRIP_ANSWER"], abs=1e-9
                    ), (name, m)
    assert n_outputs == sum(len(ref["samples"][n]) for n in specs)
    print(f"[{which}] {n_outputs} generations identical to lm-eval's")
