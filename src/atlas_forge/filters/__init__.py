"""The filter phase: composable quality steps over canonical tables; every dropped row has a reason.

A step is `step(df, cfg, ctx) -> (kept, rejected)`, one per module in this package, run in the order
`filter.steps` names them. Reasons read "<step>: <what> (<row detail>)"; the report counts reasons with
the parenthesized detail removed, so it stays small however many rows fail.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections import Counter

import polars as pl

from atlas_forge import records
from atlas_forge.filters.base import (  # noqa: F401 (the package's API: steps and configs)
    PHASE,
    STEPS,
    Context,
    DecontaminateConfig,
    FilterConfig,
    LangidConfig,
    NearDedupConfig,
    all_contents,
    contents,
    split,
)
from atlas_forge.phase import PATH, PATHS, Phase, by_id, entries

log = logging.getLogger(__name__)
def _reason_key(reason: str) -> str:
    return re.sub(r"\s*\(.*\)$", "", reason)


def run_steps(
    df: pl.DataFrame, steps: list[str], cfg: FilterConfig, bench_df: pl.DataFrame | None = None,
    bench_index=None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Run `steps` in order. Decontamination reads `bench_index` (decontaminate.BenchIndex) when
    given, else builds one from `bench_df`."""
    ctx = Context(bench=bench_df if bench_df is not None else records.empty())
    if bench_index is not None:
        ctx.cache["decontamination_index"] = bench_index
    kept, rejected_parts, report_steps = df, [], []
    for name in steps:
        step = importlib.import_module(f"atlas_forge.filters.{name}").step
        n_in = kept.height
        kept, rejected = step(kept, cfg, ctx)
        if kept.height + rejected.height != n_in:
            raise RuntimeError(
                f"filter step {name}: {n_in} rows in, {kept.height} kept + {rejected.height} rejected"
            )
        reasons = Counter(_reason_key(r) for r in rejected["reason"])
        report_steps.append({"step": name, "in": n_in, "kept": kept.height, "dropped": rejected.height,
                             "reasons": dict(sorted(reasons.items()))})
        log.info("%s: %d in, %d kept, %d dropped %s", name, n_in, kept.height, rejected.height, dict(reasons))
        rejected_parts.append(rejected)
    rejected = pl.concat(rejected_parts) if rejected_parts else records.empty(rejects=True)
    if kept.height + rejected.height != df.height:
        raise RuntimeError(f"filter: {df.height} rows in, {kept.height} kept + {rejected.height} rejected")
    report = {"rows_in": df.height, "rows_out": kept.height, "rows_rejected": rejected.height,
              "steps": report_steps}
    return kept, rejected, report


# the roles whose rows are trained on, so filtered (rules/common.smk: TRAIN_SOURCES)
TRAINED_ROLES = ("native", "chat", "darija_chat", "generate_docs", "story", "identity")


def _view(params, source: str) -> dict:
    """The filter section, with the steps a source lists as its own `filter_steps` (an overlay
    decides which of the project's filters already-curated rows pass through)."""
    steps = by_id(entries(params, "ingest", "sources", "extra_sources"), source).get("filter_steps")
    return {**params["filter"], **({"steps": steps} if steps is not None else {})}


CONTRACT = Phase(
    name="filter",
    module=__name__,
    help="run the configured quality steps; every dropped row gets a reason",
    config=FilterConfig,
    view=_view,
    jobs=lambda params: [{"source": s["id"]} for s in entries(params, "ingest", "sources", "extra_sources")
                         if s["role"] in TRAINED_ROLES],
    args=(("--input", {"required": True, **PATH}),
          ("--bench", {"help": "benchmark sets to decontaminate against", **PATHS}),
          ("--bench-index", {"help": "their index from `filter-index` (faster than --bench)", **PATH}),
          ("--out", {"required": True, **PATH}), ("--rejects", {"required": True, **PATH}),
          ("--report", {"help": "per-step, per-reason counts as JSON", **PATH})),
)


def run_cli(args, job) -> None:
    import json

    from atlas_forge import io

    cfg = job.config
    df = io.read_table(args.input, PHASE)
    index = None
    if getattr(args, "bench_index", None):
        from atlas_forge.filters.decontaminate import load_index

        index = load_index(args.bench_index)
    bench = io.read_tables(args.bench or [], PHASE)
    kept, rejected, report = run_steps(df, cfg.steps, cfg, bench, index)
    io.write_table(kept, args.out, PHASE)
    io.write_table(rejected, args.rejects, PHASE, rejects=True)
    log.info("report %s", json.dumps(report, ensure_ascii=False, sort_keys=True))
    if getattr(args, "report", None):
        io.write_json(report, args.report)
