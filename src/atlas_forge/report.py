"""report phase: results/<model>/<task>.json -> scores.json, a Table-2 style report and a plot.

report.md follows the layout of Atlas-Chat Table 2 turned on its side: one row per task and metric,
columns baseline, candidate and the difference. Accuracies are shown in percent (as the paper);
BLEU, chrF, TER and ROUGE are already on 0-100. For TER lower is better.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from atlas_forge import config, io

log = logging.getLogger(__name__)
LOWER_IS_BETTER = ("ter",)


@dataclass
class ReportConfig:
    baseline: str = "base"
    candidate: str = "sft"


def collect(paths) -> tuple[dict, dict, dict]:
    """scores {model: {task: {metric: value}}}, main metric per task, family per task."""
    scores: dict[str, dict[str, dict[str, float]]] = {}
    main: dict[str, str] = {}
    family: dict[str, str] = {}
    for p in paths:
        r = io.read_json(p)
        for key in ("task", "model", "scores"):
            if key not in r:
                raise ValueError(f"{p}: missing '{key}'")
        scores.setdefault(r["model"], {})[r["task"]] = {k: float(v) for k, v in r["scores"].items()}
        main.setdefault(r["task"], r.get("main_metric") or sorted(r["scores"])[0])
        family.setdefault(r["task"], r.get("family", ""))
    return scores, main, family


def _display(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if metric.split("/")[0].startswith("acc"):
        value *= 100.0
    return f"{value:.2f}"


def _delta(metric: str, a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "–"
    scale = 100.0 if metric.split("/")[0].startswith("acc") else 1.0
    d = (b - a) * scale
    better = d < 0 if metric.split("/")[0] in LOWER_IS_BETTER else d > 0
    return f"{d:+.2f}" + (" ▲" if better and d else (" ▼" if d else ""))


def render(scores: dict, main: dict, family: dict, cfg: ReportConfig) -> str:
    base, cand = scores.get(cfg.baseline, {}), scores.get(cfg.candidate, {})
    lines = [
        "# Benchmark scores",
        "",
        f"Baseline: `{cfg.baseline}`, candidate: `{cfg.candidate}`. Layout of Atlas-Chat Table 2 "
        "(arXiv 2409.17912), transposed: rows are tasks and metrics. Accuracies in %; BLEU, chrF, "
        "TER (lower is better) and ROUGE on 0-100. **Bold**: the task's main metric.",
        "",
        f"| task | metric | {cfg.baseline} | {cfg.candidate} | Δ |",
        "|---|---|---:|---:|---:|",
    ]
    for task in sorted(main):
        metrics = sorted(
            set(base.get(task, {})) | set(cand.get(task, {})), key=lambda m: (m != main[task], "/" in m, m)
        )
        for i, m in enumerate(metrics):
            a, b = base.get(task, {}).get(m), cand.get(task, {}).get(m)
            name = f"**{m}**" if m == main[task] else m
            label = f"{task} ({family[task]})" if i == 0 and family.get(task) else (task if i == 0 else "")
            lines.append(f"| {label} | {name} | {_display(m, a)} | {_display(m, b)} | {_delta(m, a, b)} |")
    others = sorted(set(scores) - {cfg.baseline, cfg.candidate})
    if others:
        lines += ["", f"Other models scored (in scores.json): {', '.join(others)}."]
    return "\n".join(lines) + "\n"


def plot(scores: dict, main: dict, cfg: ReportConfig, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(main)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(tasks) + 2), 4))
    width = 0.38
    for k, (model, color) in enumerate(((cfg.baseline, "#9aa5b1"), (cfg.candidate, "#1f77b4"))):
        vals = []
        for t in tasks:
            v = scores.get(model, {}).get(t, {}).get(main[t])
            vals.append(0.0 if v is None else v * (100.0 if main[t].startswith("acc") else 1.0))
        xs = [i + (k - 0.5) * width for i in range(len(tasks))]
        bars = ax.bar(xs, vals, width, label=model, color=color)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(tasks)), [f"{t}\n{main[t]}" for t in tasks], fontsize=8)
    ax.set_ylabel("score (0-100)")
    ax.set_title("Main metric per task")
    ax.legend()
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)


def run_cli(args) -> None:
    cfg = config.parse(ReportConfig, args.params or {}, "report")
    if not args.results:
        raise ValueError("report: no --results files")
    scores, main, family = collect(args.results)
    for name in (cfg.baseline, cfg.candidate):
        if name not in scores:
            raise ValueError(f"report: no results for model '{name}' (have: {', '.join(sorted(scores))})")
    io.write_json(scores, args.scores)
    io.write_text(render(scores, main, family, cfg), args.report)
    plot(scores, main, cfg, args.plot)
    log.info("report: %d models, %d tasks", len(scores), len(main))
