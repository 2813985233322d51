"""One subcommand per pipeline phase, built from the phases' contracts (atlas_forge.phase).

Every phase takes its parameters by one route: `--params`, one JSON object holding the params
section it owns (as one job sees it) and the other keys its contract says it reads, exactly what its
Snakemake rule passes. The other flags are its inputs and outputs, and how the job runs (--threads).
Heavy libraries (torch, transformers, trl) are imported inside the phase that needs them, so `--help`
and light phases stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import resource
import sys
import time

from atlas_forge import __version__, phases
from atlas_forge.config import ConfigError


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at char {e.pos})") from None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that phase's subcommand (one phase module imported, not all)."""
    parser = argparse.ArgumentParser(
        prog="atlas-forge",
        description="Atlas-Chat as a build: Darija data -> SFT mixture -> LoRA Gemma 2 -> scores. "
        "Snakemake runs these phases; `snakemake --cores all <phase>` builds up to one.",
    )
    parser.add_argument("--version", action="version", version=f"atlas-forge {__version__}")
    sub = parser.add_subparsers(dest="phase", required=True, metavar="PHASE")
    for name in [only] if only else phases.MODULES:
        c = phases.contract(name)
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        shape = ", ".join([f'"{c.own_section}": {{...}}', *(f'"{k}": ...' for k in c.reads)])
        p.add_argument(
            "--params", type=_json_arg, default={}, metavar="JSON",
            help=f"{{{shape}}}: the '{c.own_section}' section of params.yaml as this job sees it"
            + (f", and {', '.join(c.reads)} nested under their sections" if c.reads else "")
            + ". A key left out takes params.yaml's value (the typed config's default).",
        )
        for flag, kwargs in c.args:
            p.add_argument(flag, **kwargs)
    return parser


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB), children included: what a
    profile's mem_mb must cover."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * 1024 / 10**6


def log_job_resources(phase: str, wall_s: float) -> None:
    """One line per job in its log, read by bench/paper_shape.py against the profile's requests."""
    logging.getLogger("atlas_forge.cli").info("job resources: phase=%s wall_s=%.1f peak_rss_mb=%.0f", phase,
                                              wall_s, peak_rss_mb())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(only=named if named in phases.MODULES else None).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    contract = phases.contract(args.phase)
    t0 = time.perf_counter()
    try:
        job = contract.parse(args.params)
        importlib.import_module(contract.module).run_cli(args, job)
        log_job_resources(args.phase, time.perf_counter() - t0)
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as e:
        # bad input or config: one clear line naming what is wrong, no traceback to dig through
        print(f"atlas-forge {args.phase}: error: {e}", file=sys.stderr)
        return 2
    return 0
