# Config validation (once, at the edge) and the helpers every rule file uses.
import glob
import importlib.util
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate


validate(config, "schemas/params.schema.yaml")

# The phases' contracts (atlas_forge.phase) come from this tree's own code, not an installed copy, so
# a copy of the project plans with its own declarations.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from atlas_forge import phases as _phases  # noqa: E402
from atlas_forge.config import ConfigError  # noqa: E402

# Every job's params are parsed with its phase's typed config now, when the graph is built: a misspelt
# key (`sft: {lora: {rr: 8}}`) fails `snakemake -n` at once and names the key, before anything runs.
try:
    _phases.validate(config)
except ConfigError as _e:
    raise ValueError(f"params: {_e}") from None

# How a job runs (threads, memory, runtime, GPUs, launcher) lives in a Snakemake profile
# (profiles/), never in params: a param change reruns the phase, and other hardware must not.
# An old overlay that still sets them would otherwise be ignored without a word.
for _section, _values in config.items():
    _moved = sorted({"threads", "resources", "launcher"} & set(_values)) if isinstance(_values, dict) else []
    if _moved:
        raise ValueError(
            f"{_section}.{_moved[0]}: how a job runs is set per rule in a workflow profile "
            f"(profiles/default/config.yaml: set-threads, set-resources), not in params"
        )

# torch picks its CPU kernels by the machine's vector ISA (AVX-512 here, AVX2 on older x86), and the
# floats differ with them: one corpora build gave three different base models on three set-ups, and
# the sft's transliteration gain over its base was +8.16 chrF with AVX-512 kernels, +11.07 with AVX2
# (session 18, bench/results/corpora_run/). Every job runs the AVX2 kernels on x86-64, which every
# x86-64 CPU since 2013 has, so a CPU build is the same on every machine; export ATEN_CPU_CAPABILITY
# to choose other kernels (GPU kernels do not read it).
_CPU_ISA = (
    'export ATEN_CPU_CAPABILITY="${{ATEN_CPU_CAPABILITY:-avx2}}"; '
    if platform.machine().lower() in ("x86_64", "amd64")
    else ""
)

# Rules run `python -m atlas_forge` (and sft's launcher, e.g. `accelerate`) from the environment of the
# interpreter that runs Snakemake, so `.venv/bin/snakemake --cores all` works without an activated venv
# (otherwise `python` is whatever comes first on PATH). A shell prefix rather than a path in each rule:
# the rules' commands, which Snakemake's rerun check compares, stay the same on every machine, and a
# cluster job puts its own interpreter's folder first. With --sdm conda a rule runs in the env it
# declares (envs/atlas-forge.yaml), whose `python` must win: no prefix then.
# shell.prefix replaces Snakemake's own bash prefix, so it is kept here
_strict = "set -euo pipefail; " if os.path.basename(shell.get_executable() or "") == "bash" else ""
# Libraries write sets in the order of Python's per-process string hash seed: TRL's model card tags,
# PEFT's target_modules in every checkpoint. Two identical runs then wrote different bytes (issue 19's
# before/after comparison found both); a fixed seed makes every job's output the same on every run.
_HASH_SEED = 'export PYTHONHASHSEED="${{PYTHONHASHSEED:-0}}"; '
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _bin = shlex.quote(os.path.dirname(sys.executable)).replace("{", "{{").replace("}", "}}")
    shell.prefix(f'{_strict}export PATH={_bin}:"$PATH"; {_HASH_SEED}{_CPU_ISA}')
else:
    shell.prefix(f"{_strict}{_HASH_SEED}{_CPU_ISA}")


def _stale_lock_holders():
    """Processes that may still hold or write this directory's build: Snakemake runs and phase jobs
    (`python -m atlas_forge`, e.g. orphans of a killed Snakemake) whose working directory is this one,
    other than this process and its parents. None when /proc cannot tell (not Linux)."""
    proc = Path(os.sep, "proc")  # Linux: every process's working directory and command line
    if not proc.is_dir():
        return None
    here, mine, pid = os.path.realpath("."), set(), os.getpid()
    while pid > 1 and pid not in mine:
        mine.add(pid)
        try:
            pid = int((proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    holders = []
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) in mine:
            continue
        try:
            cwd, cmd = os.readlink(d / "cwd"), (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone, or another user's (not readable)
            continue
        if os.path.realpath(cwd) == here and (b"snakemake" in cmd or b"atlas_forge" in cmd):
            holders.append(f"{d.name}: {cmd.decode(errors='replace')[:120]}")
    return holders


# A run killed with SIGKILL (or a lost node, a power cut) leaves .snakemake/locks behind, and every later
# run stops at "Directory cannot be locked". The lock is released here only when no Snakemake run and no
# phase job is alive in this directory: then nothing can hold it, and the incomplete jobs are rerun
# (rerun-incomplete in profiles/default). A live run keeps its lock; Snakemake then says so.
if workflow.is_main_process and glob.glob(".snakemake/locks/*.lock"):
    _holders = _stale_lock_holders()
    if _holders == []:
        for _lock in glob.glob(".snakemake/locks/*.lock"):
            os.remove(_lock)
        print("atlas-forge: removed the lock of a run that no longer exists (no Snakemake or phase process "
              "runs in this directory)", file=sys.stderr)
    elif _holders:
        print("atlas-forge: lock kept, still running here:\n  " + "\n  ".join(_holders), file=sys.stderr)

# extra_sources / extra_tasks let an overlay add to the lists instead of replacing them
SOURCES = {s["id"]: s for s in config["ingest"]["sources"] + config["ingest"].get("extra_sources", [])}
# benchmark sets come from native sources (DarijaBench way) and from eval-only sources
SPLIT_SOURCES = [s for s, c in SOURCES.items() if c["role"] in ("native", "eval")]
NATIVE = [s for s, c in SOURCES.items() if c["role"] == "native"]
CHAT = [s for s, c in SOURCES.items() if c["role"] == "chat"]
# English evaluation chats (AlpacaEval): translated like CHAT, then judged; never filtered into training
EVAL_CHAT = [s for s, c in SOURCES.items() if c["role"] == "eval_chat"]
RAW = [s for s, c in SOURCES.items() if c["role"] == "raw"]
# rows that are already Darija chat (e.g. the released Darija-SFT-Mixture): ingested, then straight
# to filter and mixture; no split, instruct or translate
DARIJA_CHAT = [s for s, c in SOURCES.items() if c["role"] == "darija_chat"]
# built from raw text by the generate phase (rules/generate.smk), then filter and mixture like the others:
# documents/posts -> LLM-generated rows, stories -> completions, identity pairs -> repeated rows
GENERATE_DOCS = [s for s, c in SOURCES.items() if c["role"] == "generate_docs"]
STORY = [s for s, c in SOURCES.items() if c["role"] == "story"]
IDENTITY = [s for s, c in SOURCES.items() if c["role"] == "identity"]
GENERATED = GENERATE_DOCS + STORY + IDENTITY
# mixture.sources (optional) trains on those sources only, e.g. the released mixture alone
_MIXTURE_ONLY = config["mixture"].get("sources") or []
_unknown = [s for s in _MIXTURE_ONLY if s not in NATIVE + CHAT + DARIJA_CHAT + GENERATED]
if _unknown:
    raise ValueError(f"mixture.sources: {_unknown[0]!r} is not a native, chat or darija_chat source")
TRAIN_SOURCES = [s for s in NATIVE + CHAT + DARIJA_CHAT + GENERATED if not _MIXTURE_ONLY or s in _MIXTURE_ONLY]
MODELS = list(config["evaluate"]["models"])
TASKS = {t["name"]: t for t in config["evaluate"]["tasks"] + config["evaluate"].get("extra_tasks", [])}
MODEL_DIRS = {"base": "models/base", "sft": "models/sft/merged"}


wildcard_constraints:
    source="[A-Za-z0-9_.-]+",
    model="|".join(MODELS) or "base",
    task="[A-Za-z0-9_.-]+",


# The code a phase runs is derived from its imports (src/atlas_forge/imports.py), never listed by hand:
# loaded from this tree's own file, not the installed package, so a copy of the project computes its
# own closures.
_spec = importlib.util.spec_from_file_location("_atlas_forge_imports", Path(workflow.basedir) / "src/atlas_forge/imports.py")
_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_imports)


def code(module):
    """The phase module's static import closure inside atlas_forge (function-level imports included)
    with the CLI every job runs through, as inputs: editing any of them reruns exactly that phase."""
    return _imports.phase_code(module)


def phase_params(name):
    """The one route by which params reach a phase: one JSON of the section its contract owns (as this
    job sees it) and the other keys it declares it reads. A changed value reruns exactly its readers."""
    contract = _phases.contract(name)
    return lambda wildcards: contract.params_json(config, **dict(wildcards.items()))


def every_output(wildcards=None):
    """Every file the workflow builds: the outputs of each rule without wildcards, and the files each
    phase target (a rule without outputs) gathers. Evaluated once all rules are defined."""
    files = []
    for r in workflow.rules:
        if r.name == "all":
            continue
        if r.output and not r.has_wildcards():
            files += [str(f) for f in r.output]
        elif not r.output:
            files += [str(f) for f in r.input if isinstance(f, str)]
    return sorted(set(files))


def source_files(wildcards):
    """A source's files (a path may be a glob); a Hub dataset has none."""
    src = SOURCES[wildcards.source]
    if src["kind"] == "hf":
        return []
    files = sorted(glob.glob(src["path"]))
    return files or [src["path"]]  # a missing path stays visible as a MissingInputException


def bench_sets(wildcards=None):
    """Every evaluation item, the translated AlpacaEval-style chats included: filter decontaminates
    training data against all of them."""
    return [eval_table(s) for s in SPLIT_SOURCES + EVAL_CHAT]


def eval_table(source):
    """Where an evaluation task reads a source's items."""
    if SOURCES[source]["role"] == "eval_chat":
        return f"data/interim/translated/{source}.parquet"
    return f"data/interim/split/{source}/bench.parquet"


def judge_model(wildcards):
    """A local judge's model folder is an input: the job waits for it and reruns when it changes."""
    judge = TASKS[wildcards.task].get("judge") or {}
    return [judge["model"]] if judge.get("backend") == "local" and judge.get("model") else []


def baseline_model(wildcards):
    """A baseline that is a folder of this build (models/base) is an input; a Hub name is read at run time."""
    model = (TASKS[wildcards.task].get("baseline") or {}).get("model", "")
    return [model] if model.startswith(("models/", "./", "/")) or os.path.isdir(model) else []


def baseline_answers(wildcards):
    """A judged task's baseline answers (rule answers), when its opponent is a baseline."""
    return [f"results/answers/{wildcards.task}.jsonl"] if TASKS[wildcards.task].get("opponent") == "baseline" else []


def training_table(wildcards):
    role = SOURCES[wildcards.source]["role"]
    if role == "chat":
        return f"data/interim/translated/{wildcards.source}.parquet"
    if role == "darija_chat":
        return f"data/interim/ingested/{wildcards.source}.parquet"
    if role in ("generate_docs", "story", "identity"):
        return f"data/interim/generated/{wildcards.source}.parquet"
    return f"data/interim/instructions/{wildcards.source}.parquet"


def base_model_text(wildcards=None):
    """Text the tiny model's tokenizer and pre-training read. A pretrained base reads none, so a data
    change must not re-fetch it nor rerun the base model's evaluations."""
    if config["base_model"]["kind"] != "tiny":
        return []
    return expand("data/interim/ingested/{source}.parquet", source=RAW) + expand(
        "data/interim/split/{source}/train.parquet", source=NATIVE
    )


def generate_extra_inputs(wildcards):
    """What a generate job reads besides its table: the seed caches (documents/posts), the tokenizer
    that measures segments (stories)."""
    role = SOURCES[wildcards.source]["role"]
    if role == "generate_docs":
        return config["generate"].get("seed_caches", [])
    if role == "story":
        return ["models/tokenizer"]
    return []


def subset_reference(wildcards=None):
    """The published per-subset counts the mixture card compares with (mixture.subset_reference)."""
    path = config["mixture"].get("subset_reference") or ""
    return [path] if path else []
