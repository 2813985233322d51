"""One subcommand per pipeline phase. Snakemake rules call these; so can people.

Each phase takes its parameters as one JSON blob (`--params`), the exact section its rule passes,
so a changed parameter reruns exactly the jobs that use it. Heavy libraries (torch, transformers,
trl) are imported inside the phase that needs them, so `--help` and light phases stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from atlas_forge import __version__

# phase -> (module, help, [(flag, kwargs)])
PATH = {"metavar": "PATH"}
PATHS = {"metavar": "PATH", "nargs": "*", "default": []}
PHASES: dict[str, tuple[str, str, list[tuple[str, dict]]]] = {
    "ingest": (
        "atlas_forge.ingest",
        "read one source, map its columns to the canonical record, reject bad rows with a reason",
        [("--source", {"required": True, "help": "the source's params entry as JSON"}),
         ("--out", {"required": True, **PATH}), ("--rejects", {"required": True, **PATH})],
    ),
    "split": (
        "atlas_forge.split",
        "hold out a deterministic, text-keyed share of a source as its benchmark set",
        [("--input", {"required": True, **PATH}), ("--train", {"required": True, **PATH}),
         ("--bench", {"required": True, **PATH})],
    ),
    "instruct": (
        "atlas_forge.instruct",
        "turn native rows into Darija chat instructions (zero-shot, few-shot, multi-turn)",
        [("--input", {"required": True, **PATH}), ("--out", {"required": True, **PATH}),
         ("--rejects", {"required": True, **PATH})],
    ),
    "translate": (
        "atlas_forge.translate",
        "translate English chat data into Darija (pre-filters, backend, cache, post-filters)",
        [("--input", {"required": True, **PATH}), ("--out", {"required": True, **PATH}),
         ("--rejects", {"required": True, **PATH}),
         ("--threads", {"type": int, "default": 1, "help": "torch threads of the seq2seq backend"})],
    ),
    "generate": (
        "atlas_forge.generate",
        "documents/posts -> LLM-generated Darija rows (cache, checks, 80/10/10 assembly); stories -> "
        "completions; identity pairs -> repeated rows",
        [("--role", {"choices": ["generate_docs", "story", "identity"], "default": "generate_docs",
                     "help": "the source's role: which set to build"}),
         ("--input", {"required": True, **PATH}), ("--out", {"required": True, **PATH}),
         ("--rejects", {"required": True, **PATH}),
         ("--stats", {"help": "counts for the mixture card (JSON)", **PATH}),
         ("--tokenizer", {"help": "story: the base model folder whose tokenizer measures segments", **PATH})],
    ),
    "filter": (
        "atlas_forge.filters",
        "run the configured quality steps; every dropped row gets a reason",
        [("--input", {"required": True, **PATH}),
         ("--bench", {"help": "benchmark sets to decontaminate against", **PATHS}),
         ("--bench-index", {"help": "their index from `filter-index` (faster than --bench)", **PATH}),
         ("--out", {"required": True, **PATH}), ("--rejects", {"required": True, **PATH}),
         ("--report", {"help": "per-step, per-reason counts as JSON", **PATH})],
    ),
    "filter-index": (
        "atlas_forge.filters.decontaminate",
        "index the benchmark sets once for every filter job's decontamination step",
        [("--bench", {"help": "benchmark sets (canonical tables)", **PATHS}),
         ("--out", {"required": True, "help": "the index (.npz)", **PATH})],
    ),
    "mixture": (
        "atlas_forge.mixture",
        "weighted, seeded assembly of the SFT mixture, train/test split and mixture card",
        [("--inputs", {"required": True, **PATHS}), ("--rejects", PATHS),
         ("--train", {"required": True, **PATH}), ("--test", {"required": True, **PATH}),
         ("--card-json", {"required": True, **PATH}), ("--card-md", {"required": True, **PATH}),
         ("--tokenizer", {"help": "base model folder: reject rows sft.max_length cuts to nothing", **PATH}),
         ("--max-length", {"type": int, "default": 0, "help": "sft.max_length (with --tokenizer)"}),
         ("--mixture-rejects", {"help": "this phase's own rejects (truncation, split conflicts)", **PATH}),
         ("--set-stats", {"help": "the generate phase's per-set counts, for the card", **PATHS})],
    ),
    "base_model": (
        "atlas_forge.modeling.base_model",
        "build (tiny default) or fetch (Hugging Face id/path) the base model and tokenizer",
        [("--text", {"help": "canonical tables whose text trains the tiny model", **PATHS}),
         ("--out", {"required": True, **PATH}), ("--threads", {"type": int, "default": 1})],
    ),
    "sft": (
        "atlas_forge.modeling.sft",
        "LoRA supervised fine-tuning with TRL, resumable from checkpoints",
        [("--base", {"required": True, **PATH}), ("--train", {"required": True, **PATH}),
         ("--test", {"required": True, **PATH}), ("--adapter", {"required": True, **PATH}),
         ("--merged", {"required": True, **PATH}), ("--card", {"required": True, **PATH}),
         ("--checkpoints", {"required": True, **PATH}), ("--metrics", {"required": True, **PATH}),
         ("--loss", {"required": True, **PATH}), ("--plot", {"required": True, **PATH}),
         ("--threads", {"type": int, "default": 1})],
    ),
    "evaluate": (
        "atlas_forge.evaluate",
        "score one model on one benchmark task; write scores and per-item samples",
        [("--task", {"required": True, "help": "the task's params entry as JSON"}),
         ("--batch-size", {"type": int, "default": 8}),
         ("--device", {"default": "auto", "help": "auto (GPU when present), cpu, cuda, cuda:1, ..."}),
         ("--dtype", {"default": "auto",
                      "help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16"}),
         ("--model", {"required": True, **PATH}), ("--model-name", {"required": True}),
         ("--data", {"required": True, **PATHS}),
         ("--fewshot-data", {"nargs": "*", "default": [], "help": "tables of the task's fewshot_sources"}),
         ("--out", {"required": True, **PATH}),
         ("--samples", {"required": True, **PATH}), ("--threads", {"type": int, "default": 1})],
    ),
    "report": (
        "atlas_forge.report",
        "collect task scores into scores.json, a Table-2 style report and a plot",
        [("--results", {"required": True, **PATHS}), ("--scores", {"required": True, **PATH}),
         ("--report", {"required": True, **PATH}), ("--plot", {"required": True, **PATH})],
    ),
}
TAKES_PARAMS = {"split", "instruct", "translate", "generate", "filter", "filter-index", "mixture",
                "base_model", "sft", "report"}


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at char {e.pos})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atlas-forge",
        description="Atlas-Chat as a build: Darija data -> SFT mixture -> LoRA Gemma 2 -> scores. "
        "Snakemake runs these phases; `snakemake --cores all <phase>` builds up to one.",
    )
    parser.add_argument("--version", action="version", version=f"atlas-forge {__version__}")
    sub = parser.add_subparsers(dest="phase", required=True, metavar="PHASE")
    for name, (_, help_text, args) in PHASES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in TAKES_PARAMS:
            p.add_argument("--params", type=_json_arg, default={},
                           help=f"the '{name}' section of params.yaml as JSON")
        for flag, kwargs in args:
            kwargs = dict(kwargs)
            if flag in ("--source", "--task"):
                kwargs["type"] = _json_arg
            p.add_argument(flag, **kwargs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(PHASES[args.phase][0])
    try:
        module.run_cli(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        # bad input or config: one clear line naming what is wrong, no traceback to dig through
        print(f"atlas-forge {args.phase}: error: {e}", file=sys.stderr)
        return 2
    return 0
