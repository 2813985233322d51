"""The trivial baselines of a recorded build's tasks, from its bench split files (run by hand; no model).

A result written before the evaluate phase recorded its trivial baselines (majority class and uniform
chance for multiple choice, copy-the-source for generation) lacks them. They depend on the scored items
only, so this recomputes them with the evaluate phase's own code (families.task_rows, task_docs,
multiple_choice_baselines, copy_source_baselines) from a build's held-out rows
(data/interim/split/<source>/bench.parquet) and the overlay's task entries, adds them to a scores.json
of that build and prints the report's trivial-baselines section (report.render_baselines) for it:

    PYTHONPATH=src .venv/bin/python bench/corpora_baselines.py --build <corpora build root> \\
        --overlay configs/corpora.yaml --scores bench/results/corpora_run/scores.json

The build root is a checkout that ran `snakemake --configfile configs/corpora.yaml` at least to the
split phase (`snakemake --cores 2 --configfile configs/corpora.yaml split`: ingest and split only, a
few minutes on 2 CPUs), on the same corpora and split params as the recorded build.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from atlas_forge import config, io, report
from atlas_forge.evaluate import families
from atlas_forge.evaluate.task_config import TaskConfig


def task_baselines(build: Path, entry: dict) -> tuple[dict[str, float], int]:
    """(baselines, items) of one task entry on the build's bench rows, as run_task selects its items."""
    cfg = config.parse(TaskConfig, dict(entry), f"evaluate.tasks[{entry['name']}]")
    paths = [build / "data/interim/split" / s / "bench.parquet" for s in cfg.sources]
    rows, _ = families.task_rows(cfg, io.read_tables(paths, "evaluate"))
    docs = families.task_docs(cfg, rows)
    if cfg.max_items is not None:
        docs = docs[: cfg.max_items]
    if cfg.spec.output == "multiple_choice":
        return families.multiple_choice_baselines(cfg, docs), len(docs)
    refs = [str(cfg.spec.target(d.doc)) for d in docs]
    return families.copy_source_baselines(cfg, docs, refs), len(docs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, type=Path)
    ap.add_argument("--overlay", default="configs/corpora.yaml")
    ap.add_argument("--scores", required=True, help="the build's results/scores.json")
    ap.add_argument("--out", help="write the scores with the baselines added here")
    args = ap.parse_args()
    entries = yaml.safe_load(Path(args.overlay).read_text(encoding="utf-8"))["evaluate"]["tasks"]
    scores = json.loads(Path(args.scores).read_text(encoding="utf-8"))
    tasks: dict[str, report.TaskInfo] = {}
    for entry in entries:
        if entry.get("family") == "judge" or not any(entry["name"] in s for s in scores.values()):
            continue
        baselines, n = task_baselines(args.build, entry)
        cfg = config.parse(TaskConfig, dict(entry), "task")
        for by_task in scores.values():
            if entry["name"] in by_task:
                by_task[entry["name"]].update(baselines)
        recorded = next(s[entry["name"]] for s in scores.values() if entry["name"] in s)
        main = families.main_metric(cfg, recorded)
        tasks[entry["name"]] = report.TaskInfo(main=main, family=cfg.family, column=cfg.column, n=n)
    print("\n".join(report.render_baselines(scores, tasks, report.ReportConfig(paper=""))))
    if args.out:
        io.write_json(scores, args.out)


if __name__ == "__main__":
    main()
