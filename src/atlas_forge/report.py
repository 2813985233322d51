"""report phase: results/<model>/<task>.json -> scores.json, a Table-2 style report and a plot.

report.md has two tables:

- Table 2 columns: the columns of Atlas-Chat Table 2 (arXiv 2409.17912v2, Section 9) in the
  paper's order. A task joins it through its `column` (task config key, copied into its result);
  tasks that share a column with different `num_fewshot` become sub-columns ("0-shot", "3-shot").
  Rows: the baseline, the candidate, their difference, then the paper's published figures
  (`report.paper`, data/paper/atlas_chat_table2.yaml, each figure cited there).
- Other tasks: tasks without a `column`, one row per task and metric (baseline, candidate, Δ).
- Trivial baselines (render_baselines): each task's majority class and uniform chance (multiple
  choice) or copy-the-source score (generation), whole task and per set, beside both models; a score
  that does not beat the baseline on a set is flagged, and the text says per set whether the candidate
  beats the majority class. The baselines are keys of each result's scores (majority, chance/<set>,
  copy_source_<metric>[/<subset>]), kept out of the other tables.

Then, when the results' per-item samples are given (--samples, results/<model>/<task>.samples.jsonl):
"Comparison with significance", every model of every task with score ± stderr and an interval, and each
against the reference (`report.baseline`): Δ with its paired-bootstrap interval, p (accuracy: exact
McNemar; other metrics: paired bootstrap over items; atlas_forge.stats), significant at `report.alpha`,
two-sided, after Holm's adjustment over the model's tests (`report.correction`). Items pair by id,
source and direction; models that do not score the same items fail. "Seeds": mean ± sd across each
`report.seed_groups` group's models. Both also go to scores.json (keys `significance`, `seed_groups`,
beside the models').

Labels, directions and units come from the metric registry (atlas_forge.metric_registry): fractions
are shown in percent, as the paper prints them. A null score (e.g. a judge win rate when no pair
could be judged) is "–". A column the paper file does not have (e.g. one translation set scored on
its own) comes after Table 2's, labelled "(not in Table 2)".

ROUGE: every ROUGE sub-column names the tokenizer of its figures. The paper's (its column key
`rouge_tokenizer`: the harness's, rouge_score's default) keeps only [a-z0-9]; a task scored with ours
(`rouge_tokenizer: arabic`, recorded in its result's settings) also reports the harness tokenizer's
figures (rouge1_harness, ...), and the paper's ROUGE figures sit under those, like for like.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from atlas_forge import io, stats
from atlas_forge.metric_registry import (
    HARNESS_SUFFIX,
    METRICS,
    ROUGE,
    copy_source,
    harness_rouge,
    is_baseline,
)
from atlas_forge.metric_registry import metric as metric_info
from atlas_forge.phase import PATH, PATHS, Phase
from atlas_forge.rouge import rouge_items

log = logging.getLogger(__name__)
MISSING = "–"
ROUGE_NOTE = (
    "ROUGE tokenizers: `harness` is rouge_score's default tokenizer, as the harness's "
    "`evaluate.load(\"rouge\")` uses it and as the paper's ROUGE figures were computed; it keeps only "
    "[a-z0-9], so Arabic words count for nothing. `arabic` is ours (every Unicode word, diacritics "
    "removed). A task scored with `arabic` reports the harness tokenizer's figures too, and the "
    "paper's ROUGE figures stand under those."
)


@dataclass
class ReportConfig:
    baseline: str = "base"
    candidate: str = "sft"
    # YAML of the paper's published figures; "" leaves the paper rows out
    paper: str = "data/paper/atlas_chat_table2.yaml"
    # comparison with significance: every model against `baseline`, paired over items (their samples)
    alpha: float = 0.05  # two-sided level; intervals at 1 - alpha; significant when (adjusted) p < alpha
    correction: Literal["holm", "none"] = "holm"  # Holm over each model's tests against the baseline
    resamples: int = 1000  # bootstrap resamples (paired tests, corpus-metric stderr and intervals)
    seed: int = 0  # the bootstrap's numpy seed
    # seed variants: {group: [model, ...]}; the report gives each task metric's mean ± sd across them
    seed_groups: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class TaskInfo:
    main: str
    family: str = ""
    column: str | None = None
    num_fewshot: int = 0
    n: int | None = None  # items scored (first result seen; base and candidate score the same items)
    rouge_tokenizer: str | None = None  # settings.rouge_tokenizer of a task that scores ROUGE


@dataclass
class SubColumn:
    column: str  # Table 2 column id
    label: str
    shot: int
    metric: str
    task: str | None  # the run's task shown here; None: a column only the paper fills
    paper: bool  # the paper's figure for (column, shot, paper_metric) is shown here
    group: str = ""  # the column's own label, without shot and metric
    paper_metric: str | None = None  # the paper's metric shown here (None: metric, when paper)
    tokenizer: str | None = None  # ROUGE tokenizer of the task (or the paper) behind the figures here


# --- inputs ---------------------------------------------------------------------------------
def collect(paths) -> tuple[dict, dict[str, TaskInfo]]:
    """scores {model: {task: {metric: value or None}}} and what each task is (from its results)."""
    scores: dict[str, dict[str, dict[str, float | None]]] = {}
    tasks: dict[str, TaskInfo] = {}
    for p in paths:
        r = io.read_json(p)
        for key in ("task", "model", "scores"):
            if key not in r:
                raise ValueError(f"{p}: missing '{key}'")
        scores.setdefault(r["model"], {})[r["task"]] = {
            k: None if v is None else float(v) for k, v in r["scores"].items()
        }
        if r["task"] not in tasks:
            settings = r.get("settings") or {}
            tasks[r["task"]] = TaskInfo(
                main=r.get("main_metric") or sorted(r["scores"])[0],
                family=r.get("family", ""),
                column=r.get("column") or None,
                num_fewshot=int(settings.get("num_fewshot") or 0),
                n=r.get("n"),
                rouge_tokenizer=settings.get("rouge_tokenizer"),
            )
    return scores, tasks


def load_paper(path) -> dict:
    """The paper data file, checked: every figure sits in a declared column, shot and metric."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for key in ("sources", "columns", "models"):
        if key not in data:
            raise ValueError(f"{path}: missing '{key}'")
    cols = {}
    for c in data["columns"]:
        missing = {"id", "label", "shots", "metrics", "source"} - set(c)
        if missing:
            raise ValueError(f"{path}: column {c.get('id', '?')} lacks {sorted(missing)}")
        if c["source"] not in data["sources"]:
            raise ValueError(f"{path}: column {c['id']}: unknown source {c['source']!r}")
        cols[c["id"]] = c
    for model, figures in data["models"].items():
        for col, by_shot in figures.items():
            if col not in cols:
                raise ValueError(f"{path}: {model}: unknown column {col!r}")
            for shot, by_metric in by_shot.items():
                if shot not in cols[col]["shots"]:
                    raise ValueError(f"{path}: {model}.{col}: shot {shot!r} not in {cols[col]['shots']}")
                for metric, value in by_metric.items():
                    if metric not in cols[col]["metrics"]:
                        raise ValueError(f"{path}: {model}.{col}.{shot}: unknown metric {metric!r}")
                    if value is not None and not isinstance(value, (int, float)):
                        raise ValueError(f"{path}: {model}.{col}.{shot}.{metric}: not a number: {value!r}")
    return data


# --- formatting -------------------------------------------------------------------------------
def _display(name: str, value: float | None) -> str:
    return MISSING if value is None else f"{value * metric_info(name).scale:.2f}"


def _delta(name: str, a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return MISSING
    d = (b - a) * metric_info(name).scale
    better = d > 0 if metric_info(name).higher_is_better else d < 0
    return f"{d:+.2f}" + (" ▲" if better and d else (" ▼" if d else ""))


def _metric_label(metric: str, tokenizer: str | None) -> str:
    """A metric's label; a ROUGE one names its tokenizer when known (rouge1_harness: in its label)."""
    label = metric_info(metric).label
    return f"{label} ({tokenizer} tokenizer)" if metric in ROUGE and tokenizer else label


def _like_for_like(paper_metric: str, run_tokenizer: str | None, paper_tokenizer: str | None) -> str:
    """The run's metric that measures what the paper's figure measures: a ROUGE figure of the
    harness's tokenizer beside a task scored with another sits under the task's rouge*_harness."""
    if paper_metric in ROUGE and paper_tokenizer == "harness" and run_tokenizer not in (None, "harness"):
        return harness_rouge(paper_metric)
    return paper_metric


def _shown(metric: str, main: str) -> bool:
    """Metrics in the Table 2 columns: the headline ones, not per-subset (acc/<source>) or counts."""
    if is_baseline(metric):  # trivial baselines have their own section (render_baselines)
        return False
    return metric == main or not ("/" in metric or metric.startswith("n_") or metric.endswith("_stderr"))


def _metric_order(metrics, paper_metrics) -> list[str]:
    canon = list(METRICS)
    rest = sorted(
        set(metrics) - set(paper_metrics),
        key=lambda m: (m not in canon, canon.index(m) if m in canon else 0, m),
    )
    return [m for m in paper_metrics if m in metrics] + rest


# --- the Table 2 layout ---------------------------------------------------------------------------
def layout(
    scores: dict, tasks: dict[str, TaskInfo], paper: dict | None, cfg: ReportConfig
) -> list[SubColumn]:
    """Sub-columns in the paper's column order, then columns only the run has (first seen first).

    Within a column: shots ascending; within a shot: the paper's metrics in its order, then the
    run's other metrics. Run tasks that share a column and a shot but report different metrics (a
    generation task and its judge) share its sub-columns, each metric from the task that reports it.
    When two report the same metric (e.g. one task per source), each gets its own sub-columns and the
    paper's figures get theirs, since they match neither alone. A ROUGE figure of the paper (its
    column's `rouge_tokenizer`) stands under the run's figure of the same tokenizer (_like_for_like).
    """
    models = (cfg.baseline, cfg.candidate)
    paper_cols = {c["id"]: c for c in (paper or {}).get("columns", [])}
    run_cols: dict[str, dict[int, list[str]]] = {}
    for name in sorted(tasks):
        info = tasks[name]
        if info.column:
            run_cols.setdefault(info.column, {}).setdefault(info.num_fewshot, []).append(name)
    order = list(paper_cols) + [c for c in run_cols if c not in paper_cols]
    out: list[SubColumn] = []
    for col in order:
        pc = paper_cols.get(col, {})
        label = pc.get("label", col if col in paper_cols or not paper_cols else f"{col} (not in Table 2)")
        paper_tok = pc.get("rouge_tokenizer")
        by_shot = run_cols.get(col, {})
        paper_shots = list(pc.get("shots", []))
        shots = sorted(set(paper_shots) | set(by_shot))
        subs: list[SubColumn] = []
        for shot in shots:
            names = by_shot.get(shot, [])
            paper_metrics = list(pc.get("metrics", [])) if shot in paper_shots else []

            def run_metrics(task):
                got = set()
                for m in models:
                    got |= set(scores.get(m, {}).get(task, {}))
                return {m for m in got if _shown(m, tasks[task].main)}

            # each metric's task: tasks that report different metrics (e.g. summarization's generation
            # task and its judge) share the column's sub-columns; two reporting one metric (e.g. one
            # task per source) each get their own, and the paper's figures theirs
            owner: dict[str, str] = {}
            shared = False
            for task in names:
                for m in run_metrics(task):
                    shared |= m in owner
                    owner.setdefault(m, task)
            if not shared:
                toks = [tasks[t].rouge_tokenizer for t in names if tasks[t].rouge_tokenizer]
                run_tok = toks[0] if toks else None
                paper_of = {_like_for_like(pm, run_tok, paper_tok): pm for pm in paper_metrics}
                # a metric no task reports (e.g. the paper's summarization judge, not run) is the
                # paper's alone: no task behind it
                subs += [
                    SubColumn(col, label, shot, m, owner.get(m), m in paper_of, paper_metric=paper_of.get(m),
                              tokenizer=tasks[owner[m]].rouge_tokenizer if m in owner else paper_tok
                              if m in paper_of else None)
                    for m in _metric_order(set(owner) | set(paper_of), list(paper_of))
                ]
            else:
                for task in names:
                    subs += [
                        SubColumn(col, f"{label} [{task}]", shot, m, task, False,
                                  tokenizer=tasks[task].rouge_tokenizer)
                        for m in _metric_order(run_metrics(task), paper_metrics)
                    ]
                subs += [SubColumn(col, f"{label} [paper]", shot, m, None, True, paper_metric=m,
                                   tokenizer=paper_tok) for m in paper_metrics]
        # a shot is named when the column has several or a non-zero one; a metric when it has several
        many_shots = len({s.shot for s in subs}) > 1 or any(s.shot for s in subs)
        many_metrics = len({s.metric for s in subs}) > 1
        for s in subs:
            s.group = label
            parts = [s.label]
            if many_shots:
                parts.append(f"{s.shot}-shot")
            if many_metrics:
                parts.append(_metric_label(s.metric, s.tokenizer))
            s.label = " ".join(parts)
        out += subs
    return out


def _paper_value(paper: dict, model: str, sub: SubColumn) -> float | None:
    metric = sub.paper_metric or sub.metric
    return paper["models"][model].get(sub.column, {}).get(sub.shot, {}).get(metric)


def render_table2(
    scores: dict, tasks: dict[str, TaskInfo], paper: dict | None, cfg: ReportConfig
) -> list[str]:
    subs = layout(scores, tasks, paper, cfg)
    base, cand = scores.get(cfg.baseline, {}), scores.get(cfg.candidate, {})

    def run(side, s):
        return side.get(s.task, {}).get(s.metric) if s.task else None

    lines = [
        "| model | " + " | ".join(s.label for s in subs) + " |",
        "|---|" + "---:|" * len(subs),
        f"| {cfg.baseline} | " + " | ".join(_display(s.metric, run(base, s)) for s in subs) + " |",
        f"| {cfg.candidate} | " + " | ".join(_display(s.metric, run(cand, s)) for s in subs) + " |",
        f"| Δ ({cfg.candidate} − {cfg.baseline}) | "
        + " | ".join(_delta(s.metric, run(base, s), run(cand, s)) for s in subs)
        + " |",
    ]
    if paper:
        source_of = {c["id"]: c["source"] for c in paper["columns"]}
        marks = {src: "" if i == 0 else "†" * i for i, src in enumerate(paper["sources"])}
        for model in paper["models"]:
            cells = []
            for s in subs:
                v = _paper_value(paper, model, s) if s.paper else None
                # paper figures are printed in percent already: no scaling
                cells.append(MISSING if v is None else f"{float(v):.2f}{marks[source_of[s.column]]}")
            lines.append(f"| paper: {model} | " + " | ".join(cells) + " |")
    lines += ["", "Δ: ▲ better, ▼ worse (for TER, lower is better). The run's tasks behind the columns:", ""]
    run_tasks = list(dict.fromkeys(s.task for s in subs if s.task))
    for t in run_tasks:
        info = tasks[t]
        where = ", ".join(dict.fromkeys(s.label for s in subs if s.task == t))
        about = f"{info.family}, {info.num_fewshot}-shot, n = {info.n}, main metric `{info.main}`"
        if info.rouge_tokenizer:
            about += f", ROUGE tokenizer `{info.rouge_tokenizer}`"
        lines.append(f"- `{t}` ({about}): {where}")
    not_run = [
        c for c in dict.fromkeys(s.column for s in subs) if not any(s.task for s in subs if s.column == c)
    ]
    if not_run:
        labels = {s.column: s.group for s in subs}
        lines.append(f"- not run here (paper figures only): {', '.join(labels[c] for c in not_run)}")
    if any(s.tokenizer for s in subs):
        lines += ["", ROUGE_NOTE]
    return lines


def _metric_rows(scores: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig, names, keep) -> list[str]:
    """`| task | metric | baseline | candidate | Δ |` rows: each task of `names`, its metrics `keep` accepts
    (main metric first, then headline, then per-subset ones)."""
    base, cand = scores.get(cfg.baseline, {}), scores.get(cfg.candidate, {})
    lines = [f"| task | metric | {cfg.baseline} | {cfg.candidate} | Δ |", "|---|---|---:|---:|---:|"]
    for task in names:
        main = tasks[task].main
        metrics = sorted(
            (m for m in set(base.get(task, {})) | set(cand.get(task, {})) if keep(m, main)),
            key=lambda m: (m != main, "/" in m, m),
        )
        for i, m in enumerate(metrics):
            a, b = base.get(task, {}).get(m), cand.get(task, {}).get(m)
            name = f"**{m}**" if m == main else m
            fam, tok = tasks[task].family, tasks[task].rouge_tokenizer
            about = "; ".join(x for x in (fam, tok and f"ROUGE tokenizer {tok}") if x)
            label = (f"{task} ({about})" if about else task) if i == 0 else ""
            lines.append(f"| {label} | {name} | {_display(m, a)} | {_display(m, b)} | {_delta(m, a, b)} |")
    return lines


def render_other(scores: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig) -> list[str]:
    names = sorted(t for t in tasks if not tasks[t].column)
    return _metric_rows(scores, tasks, cfg, names, lambda m, main: not is_baseline(m))


def render_subsets(scores: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig,
                   paper: dict | None) -> list[str]:
    """The Table 2 tasks' per-subset scores (acc/<source set>, chrf/<direction>), which the table leaves
    out: where a column's headline averages what a user trains for apart (a direction, one set)."""
    names = [t for t in _task_order(tasks, paper) if tasks[t].column]
    def keep(m, main):
        return "/" in m and not m.endswith("_stderr") and not is_baseline(m)

    return _metric_rows(scores, tasks, cfg, names, keep)


# --- trivial baselines ------------------------------------------------------------------------------
BASELINES_NOTE = (
    "What a score is compared with first. They depend on the scored items only, not on a model "
    "(evaluate: `families.multiple_choice_baselines`, `families.copy_source_baselines`). **Majority "
    "class**: the accuracy of answering each set's most frequent gold label, counted on the scored items "
    "themselves: the best a constant guesser could score there (an oracle; overall, each source answered "
    "by its own majority label). **Uniform chance**: the mean over items of 1 / (number of choices). "
    "**Copy source**: the metric of returning the text to translate, transliterate or summarize unchanged. "
    "`≤ majority`, `≤ copy source`: a model's score that does not beat that baseline on that set."
)


@dataclass
class BaselineRow:
    task: str
    kind: str  # "majority" (multiple choice: majority class and chance) or "copy" (generation: copy source)
    subset: str  # "" for the whole task
    metric: str  # the models' metric compared
    baselines: dict[str, float | None]  # baseline key (majority, chance, copy_source_chrf) -> its value
    models: dict[str, float | None]  # model -> its score


def _first(side_scores: list[dict], key: str) -> float | None:
    return next((s[key] for s in side_scores if s.get(key) is not None), None)


def baseline_rows(scores: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig,
                  paper: dict | None = None) -> list[BaselineRow]:
    """For each task whose results carry trivial baselines: the whole task (its main metric) and each
    subset (acc/<set>, <main>/<subset>), the baselines beside the baseline's and the candidate's score.
    Multiple choice: majority class and uniform chance; generation: copy source (of the main metric)."""
    models = (cfg.baseline, cfg.candidate)
    rows: list[BaselineRow] = []
    for task in _task_order(tasks, paper):
        main = tasks[task].main
        sides = [scores.get(m, {}).get(task, {}) for m in models]
        keys = set().union(*sides)
        if "majority" in keys:
            kinds = {"majority": "majority", "chance": "chance"}
            per_subset = "acc"  # run_multiple_choice reports acc/<set> (not acc_norm) per set
        elif copy_source(main) in keys:
            kinds = {"copy": copy_source(main)}
            per_subset = main
        else:
            continue
        subsets = sorted({k.split("/", 1)[1] for k in keys if "/" in k and k.split("/")[0] == per_subset})
        for subset, metric in [("", main)] + [(v, f"{per_subset}/{v}") for v in subsets]:
            suffix = f"/{subset}" if subset else ""
            rows.append(BaselineRow(
                task, "majority" if "majority" in kinds else "copy", subset, metric,
                {kinds[k] + suffix: _first(sides, kinds[k] + suffix) for k in kinds},
                {m: side.get(metric) for m, side in zip(models, sides, strict=True)},
            ))
    return rows


def _beats(metric: str, score: float | None, baseline: float | None) -> bool | None:
    """Whether a score beats a baseline (strictly, in the metric's direction); None when either is missing."""
    if score is None or baseline is None:
        return None
    return score > baseline if metric_info(metric).higher_is_better else score < baseline


def render_baselines(scores: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig,
                     paper: dict | None = None) -> list[str]:
    """The trivial-baselines section: one table per kind of task, then, per multiple-choice task,
    which sets the candidate beats the majority class on and which not (a gain that does not is
    named as such). [] when no result carries baselines."""
    rows = baseline_rows(scores, tasks, cfg, paper)
    if not rows:
        return []
    models = (cfg.baseline, cfg.candidate)
    lines = ["", "## Trivial baselines", "", BASELINES_NOTE]

    def cell(row: BaselineRow, model: str, key: str, flag: str) -> str:
        v = row.models[model]
        shown = _display(row.metric, v)
        return shown + (f" {flag}" if _beats(row.metric, v, row.baselines.get(key)) is False else "")

    mc = [r for r in rows if r.kind == "majority"]
    gen = [r for r in rows if r.kind == "copy"]
    if mc:
        head = f"| task | set | metric | majority class | uniform chance | {models[0]} | {models[1]} |"
        lines += ["", head, "|---|---|---|---:|---:|---:|---:|"]
        for r in mc:
            suffix = f"/{r.subset}" if r.subset else ""
            maj, chance = "majority" + suffix, "chance" + suffix
            lines.append(
                f"| {r.task} | {r.subset or 'all'} | {r.metric} | {_display('majority', r.baselines[maj])} | "
                f"{_display('chance', r.baselines[chance])} | "
                + " | ".join(cell(r, m, maj, "≤ majority") for m in models) + " |"
            )
    if gen:
        lines += ["", f"| task | subset | metric | copy source | {models[0]} | {models[1]} |",
                  "|---|---|---|---:|---:|---:|"]
        for r in gen:
            key = next(iter(r.baselines))
            lines.append(
                f"| {r.task} | {r.subset or 'all'} | {_metric_label(r.metric.split('/')[0], None)} | "
                f"{_display(key, r.baselines[key])} | "
                + " | ".join(cell(r, m, key, "≤ copy source") for m in models) + " |"
            )
    if mc:
        lines += ["", f"Does `{cfg.candidate}` beat the majority class? Per set:", ""]
        for task in dict.fromkeys(r.task for r in mc):
            lines.append(f"- `{task}`: " + "; ".join(
                _majority_verdict(r, cfg) for r in mc if r.task == task
            ) + ".")
    return lines


def _majority_verdict(r: BaselineRow, cfg: ReportConfig) -> str:
    """One set's verdict: 'mac: **no**, 56.65 % ≤ majority 56.65 %, a gain of +27.75 over `base` that
    does not beat it'."""
    maj = r.baselines["majority" + (f"/{r.subset}" if r.subset else "")]
    cand, base = r.models[cfg.candidate], r.models[cfg.baseline]
    name = r.subset or "all sets"
    beats = _beats(r.metric, cand, maj)
    if beats is None:
        return f"{name}: {MISSING}"
    versus = f"{_display(r.metric, cand)} % {'>' if beats else '≤'} majority {_display('majority', maj)} %"
    if beats:
        return f"{name}: yes, {versus}"
    gain = "" if base is None or cand <= base else (
        f", a gain of {_delta(r.metric, base, cand).split()[0]} over `{cfg.baseline}` that does not beat it")
    return f"{name}: **no**, {versus}{gain}"


def render(scores: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig, paper: dict | None = None) -> str:
    lines = [
        "# Benchmark scores",
        "",
        f"Baseline `{cfg.baseline}`, candidate `{cfg.candidate}`. Accuracies and win rates in %; BLEU, "
        "chrF, TER (lower is better), ROUGE and BERTScore on 0-100. "
        f"{MISSING}: no score (not run, or nothing could be scored, e.g. a judge with no consistent "
        "verdict).",
        "",
        "## Atlas-Chat Table 2 columns",
        "",
        "Columns in the order of Table 2 of the Atlas-Chat paper (arXiv 2409.17912v2, Section 9); a task "
        "joins a column through its `column` key.",
        "",
    ]
    lines += render_table2(scores, tasks, paper, cfg)
    if paper:
        lines += ["", "Paper rows: figures as published, in percent, not measured here. Sources:", ""]
        for i, (key, src) in enumerate(paper["sources"].items()):
            mark = "" if i == 0 else "†" * i + " "
            cols = ", ".join(c["label"] for c in paper["columns"] if c["source"] == key)
            lines.append(
                f"- {mark}`{key}` ({cols}): {' '.join(src['cite'].split())} {src.get('url', '')}".rstrip()
            )
            if src.get("settings"):
                lines.append(f"  Settings: {' '.join(src['settings'].split())}")
        lines += [
            "",
            "The paper scores instruction-tuned 2B-27B models on the full benchmarks; a run with other "
            "models, other data or a subset of items is comparable in layout only.",
        ]
    subsets = render_subsets(scores, tasks, cfg, paper)
    if len(subsets) > 2:
        lines += ["", "## Per subset", "", "The Table 2 tasks' scores per direction and per source set "
                  "(`metric/<subset>`; the columns above show the whole task).", ""]
        lines += subsets
    lines += render_baselines(scores, tasks, cfg, paper)
    if any(not t.column for t in tasks.values()):
        lines += ["", "## Other tasks", "", "**Bold**: the task's main metric.", ""]
        lines += render_other(scores, tasks, cfg)
    others = sorted(set(scores) - {cfg.baseline, cfg.candidate})
    if others:
        lines += ["", f"Other models scored (in scores.json): {', '.join(others)}."]
    return "\n".join(lines) + "\n"


def _task_order(tasks: dict[str, TaskInfo], paper: dict | None) -> list[str]:
    col_rank = {c["id"]: i for i, c in enumerate((paper or {}).get("columns", []))}
    return sorted(
        tasks,
        key=lambda t: (
            tasks[t].column is None,
            col_rank.get(tasks[t].column, len(col_rank)),
            tasks[t].column or "",
            tasks[t].num_fewshot,
            t,
        ),
    )


def plot(
    scores: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig, path, paper: dict | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _task_order(tasks, paper)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(names) + 2), 4))
    width = 0.38
    for k, (model, color) in enumerate(((cfg.baseline, "#9aa5b1"), (cfg.candidate, "#1f77b4"))):
        vals = []
        for t in names:
            v = scores.get(model, {}).get(t, {}).get(tasks[t].main)
            vals.append(0.0 if v is None else v * metric_info(tasks[t].main).scale)  # no score: an empty bar
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        bars = ax.bar(xs, vals, width, label=model, color=color)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(names)), [f"{t}\n{tasks[t].main}" for t in names], fontsize=8)
    ax.set_ylabel("score (0-100)")
    ax.set_title("Main metric per task")
    ax.legend()
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)


# --- comparison with significance ---------------------------------------------------------------
# scores.json keys beside the models' (no model may take these names)
SIGNIFICANCE, SEED_GROUPS = "significance", "seed_groups"
ACCURACY = ("acc", "acc_norm")


def _item_key(sample: dict) -> tuple[str, str, str]:
    """An item's identity across models: its id, plus source and direction (an id may repeat across
    sources, and a translation item is scored once per direction)."""
    return (str(sample["id"]), str(sample.get("source") or ""), str(sample.get("direction") or ""))


def samples_of(results: list[str], samples: list[str]) -> dict[tuple[str, str], list[dict]]:
    """{(model, task): samples} for each samples file, matched to the result beside it
    (results/<model>/<task>.samples.jsonl beside results/<model>/<task>.json)."""
    owner = {}
    for p in results:
        r = io.read_json(p)
        owner[Path(p).resolve()] = (r["model"], r["task"])
    out = {}
    for p in samples:
        path = Path(p)
        if not path.name.endswith(".samples.jsonl"):
            raise ValueError(f"report: {p}: a samples file is named <task>.samples.jsonl")
        result = (path.parent / (path.name.removesuffix(".samples.jsonl") + ".json")).resolve()
        if result not in owner:
            raise ValueError(f"report: {p}: no result {result.name} beside it among --results")
        rows = io.read_jsonl(p)
        seen: dict[tuple, int] = {}
        for i, s in enumerate(rows):
            if "id" not in s:
                raise ValueError(f"report: {p}: line {i + 1} has no 'id'")
            k = _item_key(s)
            if k in seen:
                raise ValueError(f"report: {p}: item {k} on lines {seen[k] + 1} and {i + 1}")
            seen[k] = i
        out[owner[result]] = rows
    return out


def _aligned(ref: list[dict], other: list[dict], ref_name: str, other_name: str, task: str) -> list[dict]:
    """`other`'s samples in `ref`'s item order; both must score the same items."""
    by_key = {_item_key(s): s for s in other}
    ref_keys = [_item_key(s) for s in ref]
    missing, extra = set(ref_keys) - set(by_key), set(by_key) - set(ref_keys)
    if missing or extra:
        example = sorted(missing or extra)[0]
        raise ValueError(
            f"report: task {task}: models {ref_name} and {other_name} do not score the same items "
            f"({len(missing)} only {ref_name}'s, {len(extra)} only {other_name}'s, e.g. {example}); "
            "paired tests need the same items")
    return [by_key[k] for k in ref_keys]


def _kind(metric: str) -> str | None:
    """How a metric is tested: a mean of right/wrong, a corpus metric, a mean of per-item ROUGE, a
    judge's win rate; None: not from the samples (BERTScore: no per-item scores; counts; subsets)."""
    if metric in ACCURACY:
        return "accuracy"
    if metric in stats.CORPUS:
        return "corpus"
    if metric in ROUGE or metric.removesuffix(HARNESS_SUFFIX) in ROUGE and metric.endswith(HARNESS_SUFFIX):
        return "rouge"
    if metric == "win_rate":
        return "judge"
    return None


def _per_item(kind: str, metric: str, rows: list[dict], info: TaskInfo) -> list[float]:
    if kind == "accuracy":
        if metric == "acc":
            return [float(bool(s["correct"])) for s in rows]
        return [float(s["pred_norm"] == s["gold"]) for s in rows]
    if kind == "rouge":
        base = metric.removesuffix(HARNESS_SUFFIX)
        tok = "harness" if metric.endswith(HARNESS_SUFFIX) else (info.rouge_tokenizer or "harness")
        got = rouge_items([s["generation"] for s in rows], [s["gold"] for s in rows], tok)[base]
        return [100.0 * v for v in got]
    raise ValueError(kind)


def _check_score(model: str, task: str, metric: str, recomputed: float | None, stored: float | None) -> None:
    if stored is None or recomputed is None:
        if stored is not recomputed:
            raise ValueError(f"report: {model}/{task}: {metric} is {stored} in the result but {recomputed} "
                             "from its samples")
        return
    if abs(recomputed - stored) > 1e-6 * max(1.0, abs(stored)):
        raise ValueError(f"report: {model}/{task}: {metric} from the samples is {recomputed!r}, the result "
                         f"says {stored!r}: the samples are not the items behind the score")


def _estimate_dict(e: stats.Estimate | None) -> dict:
    if e is None:
        return {"score": None, "stderr": None, "ci_low": None, "ci_high": None, "n": 0, "stderr_method": None}
    d = asdict(e)
    d["stderr_method"] = d.pop("method")
    return d


def _comparison_dict(c: stats.Comparison | None) -> dict:
    if c is None:
        return {"diff": None, "diff_ci_low": None, "diff_ci_high": None, "p": None, "test": None,
                "n_paired": 0}
    d = {"diff": c.diff, "diff_ci_low": c.ci_low, "diff_ci_high": c.ci_high, "p": c.p, "test": c.test,
         "n_paired": c.n}
    if c.discordant is not None:
        d["discordant_reference"], d["discordant_other"] = c.discordant
    return d


def _task_significance(task: str, info: TaskInfo, scores: dict, by_model: dict[str, list[dict]],
                       ref: str, cfg: ReportConfig) -> dict:
    """{metric: {model: estimate (+ comparison with `ref` for the others)}} of one task."""
    level = 1 - cfg.alpha
    models = [ref] + sorted(m for m in by_model if m != ref)
    rows = {m: _aligned(by_model[ref], by_model[m], ref, m, task) for m in models}
    n = len(rows[ref])
    metrics = sorted({k for m in models for k in scores[m][task] if _kind(k)},
                     key=lambda k: (k != info.main, list(METRICS).index(k) if k in METRICS else 99, k))
    out: dict[str, dict] = {}
    idx = stats.indices(n, cfg.resamples, cfg.seed) if n else None
    for metric in metrics:
        kind = _kind(metric)
        per: dict[str, dict] = {}
        if kind == "corpus":
            refs = [s["gold"] for s in rows[ref]]
            corpus = {m: stats.CorpusMetric(metric, [s["generation"] for s in rows[m]], refs) for m in models}
            boots = {}
            for m in models:
                est, boots[m] = stats.corpus_estimate(corpus[m], idx, level)
                _check_score(m, task, metric, est.score, scores[m][task].get(metric))
                per[m] = _estimate_dict(est)
                if m != ref:
                    per[m].update(_comparison_dict(stats.paired_corpus(
                        corpus[ref], corpus[m], idx, level, boots[ref], boots[m])))
        elif kind == "judge":
            won = {m: {_item_key(s): float(s["outcome"] == "win") for s in rows[m]
                       if s.get("outcome") in ("win", "loss")} for m in models}
            for m in models:
                vals = list(won[m].values())
                est = stats.mean_estimate(vals, level) if vals else None
                _check_score(m, task, metric, est.score if est else None, scores[m][task].get(metric))
                per[m] = _estimate_dict(est)
                if m != ref:
                    both = [k for k in won[ref] if k in won[m]]
                    cmp = stats.paired_bootstrap_mean([won[ref][k] for k in both], [won[m][k] for k in both],
                                                      cfg.resamples, cfg.seed, level) if both else None
                    per[m].update(_comparison_dict(cmp))
        else:
            values = {m: _per_item(kind, metric, rows[m], info) for m in models}
            for m in models:
                est = stats.mean_estimate(values[m], level)
                _check_score(m, task, metric, est.score, scores[m][task].get(metric))
                per[m] = _estimate_dict(est)
                if m == ref:
                    continue
                cmp = stats.paired_bootstrap_mean(values[ref], values[m], cfg.resamples, cfg.seed, level)
                if kind == "accuracy":  # the exact McNemar test's p; the bootstrap's interval of Δ
                    b, c, p = stats.mcnemar(values[ref], values[m])
                    cmp = stats.Comparison(cmp.diff, cmp.ci_low, cmp.ci_high, p, "McNemar (exact)", cmp.n,
                                           (b, c))
                per[m].update(_comparison_dict(cmp))
        out[metric] = per
    return out


def significance(scores: dict, tasks: dict[str, TaskInfo], samples: dict[tuple[str, str], list[dict]],
                 cfg: ReportConfig) -> dict:
    """scores.json's `significance`: each task's metrics per model with stderr and interval, and each
    model against the reference (`report.baseline`): Δ, its interval, p, the test, significant or not
    (after Holm's adjustment over the model's tests when `report.correction` is holm)."""
    ref = cfg.baseline
    out_tasks: dict[str, dict] = {}
    skipped = []
    for task in sorted(tasks):
        models = sorted(m for m in scores if task in scores[m])
        have = [m for m in models if (m, task) in samples]
        if not have:
            skipped.append(task)
            continue
        if len(have) != len(models) or ref not in have:
            lacking = sorted(set(models) - set(have)) or [ref]
            raise ValueError(f"report: task {task}: no samples for {', '.join(lacking)} (have them for "
                             f"{', '.join(have)}); every model's or none")
        out_tasks[task] = _task_significance(task, tasks[task], scores, {m: samples[(m, task)] for m in have},
                                             ref, cfg)
    # significance per model, over all its tests against the reference
    for model in sorted(scores):
        cells = [c[model] for t in out_tasks.values() for c in t.values()
                 if model != ref and model in c and c[model].get("p") is not None]
        raw = [c["p"] for c in cells]
        adjusted = stats.holm(raw) if cfg.correction == "holm" else raw
        for c, pa in zip(cells, adjusted, strict=True):
            c["p_adjusted"] = pa
            c["significant"] = pa < cfg.alpha
    return {
        "reference": ref, "alpha": cfg.alpha, "level": 1 - cfg.alpha, "correction": cfg.correction,
        "resamples": cfg.resamples, "seed": cfg.seed, "tasks": out_tasks, "no_samples": skipped,
    }


def seed_groups(scores: dict, cfg: ReportConfig) -> dict:
    """scores.json's `seed_groups`: {group: {task: {metric: {mean, sd, n_seeds}}}}, sd the sample standard
    deviation (ddof 1) across the group's models; a metric any of them lacks (or has null) is left out."""
    out: dict[str, dict] = {}
    for group, members in cfg.seed_groups.items():
        missing = [m for m in members if m not in scores]
        if missing:
            raise ValueError(f"report: seed group {group}: no results for {', '.join(missing)}")
        if not members:
            raise ValueError(f"report: seed group {group} has no models")
        common = set.intersection(*(set(scores[m]) for m in members))
        by_task = {}
        for task in sorted(common):
            metrics = set.intersection(*(set(scores[m][task]) for m in members))
            cells = {}
            for metric in sorted(metrics):
                values = [scores[m][task][metric] for m in members]
                # the trivial baselines depend on the items, not the seed: nothing to average
                if metric.startswith("n_") or is_baseline(metric) or any(v is None for v in values):
                    continue
                mean, sd = stats.mean_sd(values)
                cells[metric] = {"mean": mean, "sd": sd, "n_seeds": len(values)}
            by_task[task] = cells
        out[group] = by_task
    return out


def _num(metric: str, v: float | None) -> str:
    return MISSING if v is None else f"{v * metric_info(metric).scale:.2f}"


def _p(v: float | None) -> str:
    return MISSING if v is None else (f"{v:.3g}" if v >= 1e-3 else f"{v:.1e}")


def render_significance(sig: dict, tasks: dict[str, TaskInfo], cfg: ReportConfig) -> list[str]:
    ref, level = sig["reference"], round(100 * sig["level"])
    adjust = ("Holm-adjusted over each model's tests against the reference" if sig["correction"] == "holm"
              else "not adjusted for multiple tests")
    lines = [
        "## Comparison with significance",
        "",
        f"Each model against the reference `{ref}`, on the same items (paired by item id, source and "
        f"direction). Score ± standard error and its {level}% interval: for accuracies and other means of "
        "per-item scores (ROUGE per item, a judge's wins over its judged pairs) the standard error as "
        "lm-eval computes it for a mean (sample sd / √n) and the normal interval; for BLEU, chrF and TER "
        f"(corpus metrics) the bootstrap over items ({sig['resamples']} resamples of sacrebleu's per-item "
        "statistics, seed "
        f"{sig['seed']}: lm-eval's bootstrap stderr) and its percentile interval. Δ = model − {ref}, with "
        f"its {level}% paired-bootstrap interval (the same {sig['resamples']} resamples of items for both "
        "models). p, two-sided: accuracy by the exact McNemar test (binomial test on the discordant items, "
        "scipy); every other metric by the paired bootstrap (its smallest p is 1 / (resamples + 1)). "
        f"**Significant** (✓) when p < {sig['alpha']:g}, two-sided, p {adjust}. A judge's Δ is over the "
        "pairs judged for both models. BERTScore and per-subset scores are not tested (no per-item "
        "scores in the samples).",
    ]
    by_family: dict[str, list[str]] = {}
    for task in sig["tasks"]:
        by_family.setdefault(tasks[task].family or "other", []).append(task)
    for family in sorted(by_family):
        lines += ["", f"### {family}", "",
                  f"| task | metric | model | score ± se | {level}% CI | Δ vs {ref} [{level}% CI] | p | "
                  f"p ({'Holm' if sig['correction'] == 'holm' else 'adj.'}) | test | significant |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|:---:|"]
        for task in by_family[family]:
            first_task = True
            for metric, per in sig["tasks"][task].items():
                first_metric = True
                for model in [ref] + sorted(m for m in per if m != ref):
                    c = per[model]
                    se = "" if c["stderr"] is None else f" ± {_num(metric, c['stderr'])}"
                    ci = MISSING if c["ci_low"] is None else f"[{_num(metric, c['ci_low'])}, " \
                        f"{_num(metric, c['ci_high'])}]"
                    if model == ref:
                        delta, p, pa, test, mark = "reference", "", "", "", ""
                    elif c.get("diff") is None:
                        delta, p, pa, test, mark = MISSING, MISSING, MISSING, "no paired items", ""
                    else:
                        delta = (f"{c['diff'] * metric_info(metric).scale:+.2f} "
                                 f"[{_num(metric, c['diff_ci_low'])}, {_num(metric, c['diff_ci_high'])}]")
                        p, pa, test = _p(c["p"]), _p(c.get("p_adjusted")), c["test"]
                        if c.get("discordant_reference") is not None:
                            test += f", {c['discordant_reference']}/{c['discordant_other']} discordant"
                        test += f", n = {c['n_paired']}"
                        mark = "✓" if c.get("significant") else "–"
                    name = f"**{metric}**" if metric == tasks[task].main else metric
                    lines.append(f"| {task if first_task else ''} | {name if first_metric else ''} | "
                                 f"{model} | {_num(metric, c['score'])}{se} | {ci} | {delta} | {p} | {pa} | "
                                 f"{test} | {mark} |")
                    first_task = first_metric = False
    if sig["no_samples"]:
        lines += ["", f"No per-item samples given for: {', '.join(sig['no_samples'])} (not tested)."]
    return lines


def render_seed_groups(groups: dict, cfg: ReportConfig) -> list[str]:
    lines = ["## Seeds", "",
             "Mean ± sample standard deviation (ddof 1) across each seed group's models "
             "(`report.seed_groups`), per task and metric.", "",
             "| group | task | metric | mean ± sd | seeds |", "|---|---|---|---:|---:|"]
    for group, by_task in groups.items():
        members = ", ".join(cfg.seed_groups[group])
        for task, cells in by_task.items():
            for metric, c in cells.items():
                sd = "" if c["sd"] is None else f" ± {_num(metric, c['sd'])}"
                lines.append(f"| {group} ({members}) | {task} | {metric} | {_num(metric, c['mean'])}{sd} | "
                             f"{c['n_seeds']} |")
    return lines


CONTRACT = Phase(
    name="report",
    module=__name__,
    help="collect task scores into scores.json, a Table-2 style report and a plot",
    config=ReportConfig,
    # a variant declared with `seeds` is a seed group of its own (variant_seed_groups)
    reads=("variants",),
    args=(("--results", {"required": True, **PATHS}), ("--samples", PATHS),
          ("--scores", {"required": True, **PATH}),
          ("--report", {"required": True, **PATH}), ("--plot", {"required": True, **PATH})),
)


def variant_seed_groups(variants: dict) -> dict[str, list[str]]:
    """The seed groups the variants declare: `name: {seeds: [1, 2]}` builds name_seed1, name_seed2
    (rules/common.smk), one group `name`."""
    return {name: [f"{name}_seed{s}" for s in over["seeds"]]
            for name, over in (variants or {}).items() if isinstance(over, dict) and over.get("seeds")}


def run_cli(args, job) -> None:
    cfg = job.config
    cfg = ReportConfig(**{**asdict(cfg), "seed_groups": {**variant_seed_groups(job.reads.get("variants")),
                                                          **cfg.seed_groups}})
    if not args.results:
        raise ValueError("report: no --results files")
    scores, tasks = collect(args.results)
    for name in (cfg.baseline, cfg.candidate):
        if name not in scores:
            raise ValueError(f"report: no results for model '{name}' (have: {', '.join(sorted(scores))})")
    paper = load_paper(cfg.paper) if cfg.paper else None
    clash = {SIGNIFICANCE, SEED_GROUPS} & set(scores)
    if clash:
        raise ValueError(f"report: a model may not be named {', '.join(sorted(clash))} (a scores.json key)")
    sig = significance(scores, tasks, samples_of(args.results, args.samples), cfg)
    seeds = seed_groups(scores, cfg)
    io.write_json({**scores, SIGNIFICANCE: sig, **({SEED_GROUPS: seeds} if seeds else {})}, args.scores)
    extra = render_significance(sig, tasks, cfg) if sig["tasks"] else []
    if seeds:
        extra += ["", *render_seed_groups(seeds, cfg)]
    text = render(scores, tasks, cfg, paper)
    io.write_text(text + ("\n" + "\n".join(extra) + "\n" if extra else ""), args.report)
    plot(scores, tasks, cfg, args.plot, paper)
    log.info(
        "report: %d models, %d tasks%s",
        len(scores),
        len(tasks),
        f", paper rows from {cfg.paper}" if paper else "",
    )
