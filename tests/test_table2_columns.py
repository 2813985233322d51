"""Every column of data/paper/atlas_chat_table2.yaml maps to the metric and subset the run reports for it.

The configuration is the one the pipeline runs for the paper's benchmarks: params.yaml with
configs/darija-benchmarks-hf.yaml on top, combined as Snakemake combines `--configfile` overlays
(snakemake.utils.update_config), each phase's entries read as the phases read them (phase.entries).
For each (column, shots, metric) of the paper file, one configured task must report it: its `column`,
`num_fewshot` = shots, the family that column is scored with, the Hub subset the paper scored (e.g.
Translation (DODa-10K): DarijaBench's doda split alone) and, among the metrics the task produces,
the one the report puts the paper's figure beside (a renamed metric, a pooled subset or a missing task
fails here). Fast: nothing is built or downloaded.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from atlas_forge import config, metric_registry, report
from atlas_forge.phase import entries

from .conftest import ROOT

PAPER = ROOT / "data" / "paper" / "atlas_chat_table2.yaml"
OVERLAY = ROOT / "configs" / "darija-benchmarks-hf.yaml"
DARIJABENCH = "MBZUAI-Paris/DarijaBench"
SENTIMENT = ["mac", "myc", "msac", "msda", "electro_maroc"]

# column id -> the family it is scored with and the subset the paper scored: the task's sources,
# few-shot sources per shot, and what each source reads from the Hub (dataset, split)
EXPECTED = {
    "darijammlu": ("darijammlu", ["darijammlu"], {3: ["darijammlu_dev"]},
                   {"darijammlu": ("MBZUAI-Paris/DarijaMMLU", "test"),
                    "darijammlu_dev": ("MBZUAI-Paris/DarijaMMLU", "dev")}),
    "darijahellaswag": ("darijahellaswag", ["darijahellaswag"], {10: ["darijahellaswag_train"]},
                        {"darijahellaswag": ("MBZUAI-Paris/DarijaHellaSwag", "validation"),
                         "darijahellaswag_train": ("MBZUAI-Paris/DarijaHellaSwag", "train")}),
    # Belebele's few-shot examples come from the scored split itself (the harness's test split)
    "belebele_ary": ("belebele", ["belebele_ary"], {}, {"belebele_ary": ("facebook/belebele", "test")}),
    "alpaca_eval": ("judge", ["darija_alpacaeval"], {},
                    {"darija_alpacaeval": ("MBZUAI-Paris/DarijaAlpacaEval", "test")}),
    "sentiment": ("darija_sentiment", [f"darijabench_{s}" for s in SENTIMENT], {},
                  {f"darijabench_{s}": (DARIJABENCH, s) for s in SENTIMENT}),
    # DODa alone: FLORES+, MADAR and Seed are columns of their own, not Table 2's
    "translation": ("darija_translation", ["darijabench_doda"], {},
                    {"darijabench_doda": (DARIJABENCH, "doda")}),
    "transliteration": ("darija_transliteration", ["darijabench_transliteration"], {},
                        {"darijabench_transliteration": (DARIJABENCH, "transliteration")}),
    "summarization": ("darija_summarization", ["darijabench_marsum"], {},
                      {"darijabench_marsum": (DARIJABENCH, "marsum")}),
}  # fmt: skip
# metrics scored by another family than the column's: the summarization "LLM Judge" is a judge task
# on the same subset (win rate against the references), in the same column
FAMILY_OF_METRIC = {("summarization", "win_rate"): "judge"}
# the two judged columns as §9 and App. C measure them: what is judged, against what, with which of the
# paper's prompts; both decode by sampling ("the default sampling-based decoding")
JUDGED = {"alpaca_eval": ("chat", "baseline", "atlas-chat-fig6"),
          "summarization": ("summarization", "reference", "atlas-chat-fig7")}  # fmt: skip
# BERTScore's model per column: Section 9 ("DarijaBERT for summarization, bert-base-multilingual-cased
# for translation"), as lm-eval 0.4.13's DarijaBench utils call it (`darijabert`, `mbert`)
BERTSCORE = {"translation": ("mbert", "google-bert/bert-base-multilingual-cased"),
             "summarization": ("darijabert", "SI2M-Lab/DarijaBERT")}  # fmt: skip
# the translation sets Table 2 does not pool into its column: each its own task and column
OTHER_TRANSLATION = {"translation_flores_plus": "flores_plus", "translation_madar": "madar",
                     "translation_seed": "seed"}  # fmt: skip


@cache
def pipeline_params() -> dict:
    from snakemake.utils import update_config

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    update_config(params, yaml.safe_load(OVERLAY.read_text(encoding="utf-8")))
    return params


def tasks(params=None):
    from atlas_forge.evaluate.task_config import TaskConfig

    out = []
    for t in entries(params or pipeline_params(), "evaluate", "tasks", "extra_tasks"):
        out.append(config.parse(TaskConfig, copy.deepcopy(t), f"evaluate.tasks[{t['name']}]"))
    return out


def sources(params=None) -> dict[str, dict]:
    return {s["id"]: s for s in entries(params or pipeline_params(), "ingest", "sources", "extra_sources")}


def paper_cells():
    paper = report.load_paper(PAPER)
    return [(c["id"], shot, m) for c in paper["columns"] for shot in c["shots"] for m in c["metrics"]]


def produced(cfg, monkeypatch) -> set[str]:
    """The headline metrics a task's result holds: declared (families.metric_keys, which run_task checks
    against its scores) and, for generation, what the scoring code returns on two items (BERTScore's
    model call stubbed: the key comes from the real from_config)."""
    from atlas_forge.evaluate import bertscore, families

    keys = set(families.metric_keys(cfg))
    if cfg.family != "judge" and cfg.spec.output == "generate_until":
        monkeypatch.setattr(bertscore, "bertscore", lambda *a, **k: 50.0)
        got = families._generation_scores(cfg, ["salam labas", "واخا"], ["salam labas", "واخا"])
        assert keys <= set(got), (cfg.name, keys - set(got))
        keys = set(got)
    return {k for k in keys if "/" not in k}


def harness_bertscore(util: str) -> tuple[str, int]:
    """(model, num_layers) of a BERTScore aggregation in lm-eval's installed DarijaBench utils."""
    spec = importlib.util.find_spec("lm_eval")
    task = "darija_translation" if util == "mbert" else "darija_summarization"
    root = Path(next(iter(spec.submodule_search_locations)))
    text = (root / "tasks" / "darija_bench" / task / "utils.py").read_text(encoding="utf-8")
    body = re.search(rf"def {util}\(items\):(.*?)(?:\n\n|\Z)", text, re.S).group(1)
    model = re.search(r'bert_model = "([^"]+)"', body).group(1)
    return model, int(re.search(r"num_layers=(\d+)", body).group(1))


def check_cell(params, column, shot, metric, monkeypatch) -> str:
    """The task of `params` that reports the paper's (column, shot, metric); asserts what it must be."""
    family, want_sources, fewshot, hub = EXPECTED[column]
    family = FAMILY_OF_METRIC.get((column, metric), family)
    paper_column = next(c for c in report.load_paper(PAPER)["columns"] if c["id"] == column)
    in_column = [t for t in tasks(params) if t.column == column and t.num_fewshot == shot]
    found = [t for t in in_column if t.family == family and t.sources == want_sources]
    assert found, (
        f"{column} {shot}-shot {metric}: no task of family {family} on {want_sources} "
        f"(column {column}: {[(t.name, t.family, t.sources) for t in in_column]})"
    )
    assert len(found) == 1, [t.name for t in found]
    cfg = found[0]
    assert cfg.fewshot_sources == fewshot.get(shot, []), (cfg.name, cfg.fewshot_sources)
    # every source reads the Hub subset the paper scored
    known = sources(params)
    for src in [*cfg.sources, *cfg.fewshot_sources]:
        assert (known[src]["name"], known[src]["split"]) == hub[src], src
        assert known[src].get("revision"), f"{src}: no pinned revision"

    # the metric: the one the report puts the paper's figure beside, produced by the task and registered
    key = report._like_for_like(metric, cfg.rouge_tokenizer, paper_column.get("rouge_tokenizer"))
    assert key in metric_registry.METRICS, key
    assert key in produced(cfg, monkeypatch), (cfg.name, key, sorted(produced(cfg, monkeypatch)))
    if family == "judge":
        assert metric_registry.main_metric("judge", "", {}) == key
        assert (cfg.judged, cfg.opponent, cfg.judge.prompt) == JUDGED[column], cfg.name
        assert cfg.decoding.sample and (cfg.opponent != "baseline" or cfg.baseline.decoding.sample), cfg.name
    if metric == "bertscore":
        model, layers = harness_bertscore(BERTSCORE[column][0])
        assert model == BERTSCORE[column][1]
        assert cfg.bertscore is not None, f"{cfg.name}: no BERTScore configured"
        assert (cfg.bertscore.model, cfg.bertscore.num_layers) == (model, layers), cfg.name
    return cfg.name


@pytest.mark.parametrize("column, shot, metric", paper_cells(), ids=lambda x: str(x))
def test_every_paper_column_maps_to_a_task_metric_and_subset(column, shot, metric, monkeypatch):
    check_cell(pipeline_params(), column, shot, metric, monkeypatch)


def test_hellaswag_and_accuracy_columns_use_the_familys_metric():
    """The metric names of the paper file are the run's keys: acc_norm for DarijaHellaSwag, acc for
    the letter-choice benchmarks (acc_norm = acc there), one per family's main metric."""
    for column, _shot, metric in paper_cells():
        family = FAMILY_OF_METRIC.get((column, metric), EXPECTED[column][0])
        if metric in ("acc", "acc_norm"):
            assert metric == metric_registry.main_metric(family, "multiple_choice", {}), column


def test_translation_sets_outside_table2_are_columns_of_their_own(monkeypatch):
    """FLORES+, MADAR and Seed: one task each, in a column Table 2 does not have, scored as DODa."""
    paper_ids = {c["id"] for c in report.load_paper(PAPER)["columns"]}
    known = sources()
    for column, split in OTHER_TRANSLATION.items():
        assert column not in paper_ids
        (cfg,) = [t for t in tasks() if t.column == column]
        assert cfg.family == "darija_translation" and cfg.sources == [f"darijabench_{split}"]
        assert (known[cfg.sources[0]]["name"], known[cfg.sources[0]]["split"]) == (DARIJABENCH, split)
        assert {"chrf", "bleu", "bertscore"} <= produced(cfg, monkeypatch)
    # no task pools a translation set into the Table 2 column
    pooled = {f"darijabench_{s}" for s in OTHER_TRANSLATION.values()}
    assert not [t.name for t in tasks() if t.column == "translation" and pooled & set(t.sources)]


def _mutated(change) -> dict:
    params = copy.deepcopy(pipeline_params())
    change({t["name"]: t for t in params["evaluate"]["extra_tasks"]})
    return params


def test_the_map_fails_on_a_pooled_subset_a_renamed_metric_or_a_missing_bertscore(monkeypatch):
    """The checks can fail; and ROUGE scored with our tokenizer still maps (to rouge*_harness)."""
    from atlas_forge.evaluate import families

    def pool(t):
        t["darijabench_translation"]["sources"].append("darijabench_flores_plus")

    def no_bertscore(t):
        t["darijabench_translation"].pop("bertscore")

    def ours(t):
        t["darijabench_summarization"]["rouge_tokenizer"] = "arabic"

    with pytest.raises(AssertionError, match="no task of family darija_translation"):
        check_cell(_mutated(pool), "translation", 0, "chrf", monkeypatch)
    with pytest.raises(AssertionError):
        check_cell(_mutated(no_bertscore), "translation", 0, "bertscore", monkeypatch)
    for metric in ("rouge1", "rougeL"):
        check_cell(_mutated(ours), "summarization", 0, metric, monkeypatch)
    real = families.metrics.translation_scores
    monkeypatch.setattr(families.metrics, "translation_scores",
                        lambda p, r: {("chrF" if k == "chrf" else k): v for k, v in real(p, r).items()})
    with pytest.raises(AssertionError):
        check_cell(pipeline_params(), "translation", 0, "chrf", monkeypatch)  # the scoring says chrF
