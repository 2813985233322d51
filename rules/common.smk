# Config validation (once, at the edge) and the helpers every rule file uses.
import glob
import importlib.util
import json
import os
import platform
import re
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


def train_sources(cfg):
    """The sources a mixture draws from: mixture.sources (optional) trains on those only, e.g. the
    released mixture alone; mixture.drop_roles leaves out every source of those roles (a variant's
    ablation: `drop_roles: [chat]` trains without the translated chats)."""
    mix = cfg["mixture"]
    only, drop = mix.get("sources") or [], set(mix.get("drop_roles") or [])
    unknown = [s for s in only if s not in NATIVE + CHAT + DARIJA_CHAT + GENERATED]
    if unknown:
        raise ValueError(f"mixture.sources: {unknown[0]!r} is not a native, chat or darija_chat source")
    return [s for s in NATIVE + CHAT + DARIJA_CHAT + GENERATED
            if (not only or s in only) and SOURCES[s]["role"] not in drop]


TRAIN_SOURCES = train_sources(config)
MODELS = list(config["evaluate"]["models"])
TASKS = {t["name"]: t for t in config["evaluate"]["tasks"] + config["evaluate"].get("extra_tasks", [])}
MODEL_DIRS = {"base": "models/base", "sft": "models/sft/merged"}


# Variants (issue 21): named parameter overrides, each built beside the main build as its own model
# (models/variants/<name>/, results/variants/<name>/), reusing every artifact its overrides do not
# touch. Which artifacts are its own is derived, never declared: a phase's artifact is the variant's
# own when the params its contract hands the phase differ under the overrides, or when one of its
# inputs is the variant's own (tokenizer -> mixture and base model -> sft). A seed rebuilds sft and
# evaluate; a mixture ablation mixture, sft and evaluate; another starting model its tokenizer, base,
# mixture (its truncation check reads the tokenizer), sft and evaluate.
VARIANT_SECTIONS = ("mixture", "base_model", "sft")


def merged_config(base, over):
    """An overlay on the params, as Snakemake merges --configfile: mappings deep, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged_config(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def expand_variants(declared):
    """name -> overrides; `seeds: [1, 2, 3]` makes name_seed1, name_seed2, ... (sft.seed each)."""
    out = {}
    for name, over in (declared or {}).items():
        where = f"variants.{name}"
        if not isinstance(over, dict):
            raise ValueError(f"{where}: expected a mapping of overrides, got {type(over).__name__}")
        over = dict(over)
        seeds = over.pop("seeds", None)
        bad = sorted(set(over) - set(VARIANT_SECTIONS))
        if bad:
            raise ValueError(f"{where}.{bad[0]}: a variant overrides {', '.join(VARIANT_SECTIONS)} and seeds "
                             "(the data phases before the mixture are the build's, shared by every variant)")
        if seeds is not None and (not isinstance(seeds, list) or not seeds
                                  or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
            raise ValueError(f"{where}.seeds: a non-empty list of integers (sft.seed of each), got {seeds!r}")
        for vname, vover in ([(name, over)] if seeds is None else
                             [(f"{name}_seed{x}", merged_config(over, {"sft": {"seed": x}})) for x in seeds]):
            if not re.fullmatch(r"[A-Za-z0-9_]+", vname) or vname in MODEL_DIRS or vname in out:
                raise ValueError(f"{where}: {vname!r} is not a free variant name (letters, digits, _; "
                                 f"not {', '.join(MODEL_DIRS)}, not twice)")
            out[vname] = vover
    return out


VARIANTS = {name: merged_config(config, over) for name, over in expand_variants(config.get("variants")).items()}


def _variant_own(name):
    """The phases whose artifacts the variant builds for itself (the others are the main build's)."""
    vcfg = VARIANTS[name]
    try:
        _phases.validate(vcfg)
    except ConfigError as e:
        raise ValueError(f"variants.{name}: {e}") from None

    def differs(phase):
        contract = _phases.contract(phase)
        return contract.params_json(config) != contract.params_json(vcfg)

    own = {"tokenizer"} if differs("tokenizer") else set()
    if own or differs("mixture") or train_sources(vcfg) != TRAIN_SOURCES:
        own.add("mixture")
    if "tokenizer" in own or differs("base_model"):
        own.add("base_model")
    if not own and not differs("sft"):
        raise ValueError(f"variants.{name}: its overrides change nothing the main build's sft does not have")
    return own | {"sft"}


VARIANT_OWN = {name: _variant_own(name) for name in VARIANTS}


def variant_params(name):
    """phase_params for a variant's job: the phase's contract applied to the variant's params."""
    contract = _phases.contract(name)
    return lambda w: contract.params_json(VARIANTS[w.variant], **{k: v for k, v in w.items() if k != "variant"})


def variant_tokenizer(w):
    return f"models/variants/{w.variant}/tokenizer" if "tokenizer" in VARIANT_OWN[w.variant] else "models/tokenizer"


def variant_base(w):
    return f"models/variants/{w.variant}/base" if "base_model" in VARIANT_OWN[w.variant] else "models/base"


def variant_mixture(split):
    def path(w):
        if "mixture" in VARIANT_OWN[w.variant]:
            return f"data/processed/variants/{w.variant}/mixture/{split}.parquet"
        return f"data/processed/mixture/{split}.parquet"

    return path


def variant_train_sources(w):
    return train_sources(VARIANTS[w.variant])


wildcard_constraints:
    source="[A-Za-z0-9_.-]+",
    model="|".join(MODELS) or "base",
    task="[A-Za-z0-9_.-]+",
    # no variant declared: a pattern nothing matches
    variant="|".join(VARIANTS) or "(?!)",


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


def mixture_inputs(sources):
    """A mixture's inputs for its sources: the filtered tables, every phase's rejects (for the card's
    counts) and the generate phase's per-set counts."""
    return {
        "tables": expand("data/interim/filtered/{source}.parquet", source=sources),
        "rejects": expand("data/reports/rejects/filter/{source}.parquet", source=sources)
        + expand("data/reports/rejects/ingest/{source}.parquet", source=SOURCES)
        + expand("data/reports/rejects/instruct/{source}.parquet", source=[s for s in NATIVE if s in sources])
        + expand("data/reports/rejects/translate/{source}.parquet", source=[s for s in CHAT if s in sources])
        + expand("data/reports/rejects/generate/{source}.parquet", source=[s for s in GENERATED if s in sources]),
        "sets": expand("data/reports/generate/{source}.json", source=[s for s in GENERATED if s in sources]),
    }


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
