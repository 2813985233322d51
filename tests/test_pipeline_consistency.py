"""dvc.yaml and the Snakemake workflow describe the same phases (fast: nothing runs).

Snakemake is read through its API in a subprocess (rule names, the .smk file each rule comes from and
its output patterns); dvc.yaml and params.yaml are read as YAML. Checks:
- every phase (rules/<phase>.smk, and the Snakefile's "Phase targets" header) has a DVC stage of
  that name, and every stage is a phase whose command runs that phase's Snakemake target;
- every DVC out/metric/plot of a stage is produced by a rule of that phase (an output path, or a
  folder holding outputs), and every output of the phase's rules lies under one of the stage's outs;
- every input of the phase's jobs (code, raw data, upstream files; also what input functions
  return, read from a forced dry run) lies under a DVC dep, and every code dep of a stage
  (src/atlas_forge/...) is an input of one of the phase's jobs;
- every stage's params sections exist in params.yaml; every dep exists or is an upstream stage's out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, copy_project

INTROSPECT = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ResourceSettings
root = Path(sys.argv[1]).resolve()
with SnakemakeApi() as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=root / "Snakefile", workdir=root)
    rules = [
        {"name": r.name, "file": Path(r.snakefile).resolve().relative_to(root).as_posix(),
         "output": [str(o) for o in r.output],
         "input": [str(i) for i in r.input if isinstance(i, str)],
         "shell": r.shellcmd or ""}
        for r in wf._workflow.rules
    ]
print("@@RULES@@" + json.dumps(rules))
"""

WILDCARD = re.compile(r"\{\s*(\w+)\s*(?:,\s*((?:[^{}]|\{[^{}]*\})*))?\}")


@cache
def snakemake_rules(root: Path) -> tuple[dict, ...]:
    proc = subprocess.run(
        [sys.executable, "-c", INTROSPECT, str(root)], cwd=root, capture_output=True, text=True, timeout=120
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RULES@@")]
    assert proc.returncode == 0 and marker, f"Snakemake could not parse the workflow:\n{proc.stderr[-3000:]}"
    rules = json.loads(marker[0][len("@@RULES@@") :])
    # input functions (eval_table, judge_model, base_model_text, ...) are only known per job: a forced
    # dry run lists every job's inputs, function results included
    for rule in rules:
        rule["input"] = sorted(set(rule["input"]) | job_inputs(root).get(rule["name"], set()))
    return tuple(rules)


@cache
def job_inputs(root: Path) -> dict[str, set[str]]:
    """Rule name -> every input path of its jobs in a forced dry run of the whole workflow."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"dry run failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    found: dict[str, set[str]] = {}
    rule = None
    for line in proc.stdout.splitlines():
        if m := re.match(r"(?:local)?rule (\w+):$", line.strip()):
            rule = m.group(1)
        elif rule and line.strip().startswith("input: "):
            found.setdefault(rule, set()).update(p.strip() for p in line.strip()[len("input: "):].split(", "))
    return found


def component_regex(component: str) -> re.Pattern:
    """One path component of an output pattern as a regex; wildcards match their constraint."""
    out, pos = "", 0
    for m in WILDCARD.finditer(component):
        out += re.escape(component[pos : m.start()]) + f"(?:{m.group(2) or '[^/]+'})"
        pos = m.end()
    return re.compile(out + re.escape(component[pos:]))


def alternatives(component: str) -> list[str] | None:
    """Values a pure-wildcard component can take when its constraint is a plain `a|b|c` list."""
    m = WILDCARD.fullmatch(component)
    if m and m.group(2) and re.fullmatch(r"[\w.-]+(\|[\w.-]+)*", m.group(2)):
        return m.group(2).split("|")
    return None


def produced_by(out: str, pattern: str) -> bool:
    """`out` is the pattern's path, or a folder that holds the pattern's files."""
    o, p = out.strip("/").split("/"), pattern.strip("/").split("/")
    return len(o) <= len(p) and all(component_regex(pc).fullmatch(oc) for oc, pc in zip(o, p, strict=False))


def covered(pattern: str, outs: list[str]) -> bool:
    """Every path the pattern can produce lies under (or is) one of `outs`."""
    p = pattern.strip("/").split("/")
    for out in outs:
        o = out.strip("/").split("/")
        if len(o) > len(p):
            continue
        if all(oc == pc for oc, pc in zip(o, p, strict=False)):
            return True
    # a wildcard component with listed alternatives (results/{model,base|sft}/...): every value covered
    for i, pc in enumerate(p):
        values = alternatives(pc)
        if values and WILDCARD.search("/".join(p[:i])) is None:
            return all(covered("/".join(p[:i] + [v] + p[i + 1 :]), outs) for v in values)
    return False


def entry_path(entry) -> str:
    return next(iter(entry)) if isinstance(entry, dict) else entry


def stage_outputs(stage: dict) -> list[str]:
    return [entry_path(e) for key in ("outs", "metrics", "plots") for e in stage.get(key, [])]


def phases_of(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "rules").glob("*.smk") if p.stem != "common")


def header_phases(root: Path) -> list[str]:
    text = (root / "Snakefile").read_text(encoding="utf-8")
    m = re.search(r"Phase targets:[^(]*\(([^)]*)\)", text)
    assert m, "the Snakefile header must list its phase targets: Phase targets: ... (ingest split ...)"
    return m.group(1).replace("#", " ").split()


def problems(root: Path) -> list[str]:
    """Every disagreement between dvc.yaml, the Snakemake rules and params.yaml under `root`."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    stages: dict = dvc.get("stages", {})
    rules = snakemake_rules(root)
    phases = phases_of(root)
    found: list[str] = []

    for phase in sorted(set(phases) | set(header_phases(root))):
        if phase not in stages:
            found.append(f"phase {phase!r} has no DVC stage in dvc.yaml")
    for phase in header_phases(root):
        if phase not in phases:
            found.append(f"Snakefile header names phase {phase!r} but rules/{phase}.smk does not exist")

    all_outs = {o: name for name, st in stages.items() for o in stage_outputs(st)}
    for name, stage in stages.items():
        if name not in phases:
            found.append(f"DVC stage {name!r} has no rules/{name}.smk")
            continue
        phase_rules = [r for r in rules if r["file"] == f"rules/{name}.smk"]
        if name not in {r["name"] for r in phase_rules}:
            found.append(f"rules/{name}.smk has no rule named {name!r} (the phase target)")
        if not re.search(rf"python -m snakemake --cores all {re.escape(name)}\s*$", stage.get("cmd", "")):
            found.append(f"stage {name!r}: cmd must end with `python -m snakemake --cores all {name}`")
        patterns = [o for r in phase_rules for o in r["output"]]
        outs = stage_outputs(stage)
        for out in outs:
            if not any(produced_by(out, p) for p in patterns):
                found.append(f"stage {name!r}: out {out!r} is produced by no rule of rules/{name}.smk")
        for entry in stage.get("outs", []):
            if not (isinstance(entry, dict) and entry[entry_path(entry)].get("persist") is True):
                found.append(f"stage {name!r}: out {entry_path(entry)!r} needs persist: true")
        for pattern in patterns:
            if not covered(pattern, outs):
                found.append(f"stage {name!r}: Snakemake output {pattern!r} is not under any DVC out")
        deps = stage.get("deps", [])
        for rule in phase_rules:
            for path in rule["input"]:
                inside = any(produced_by(path, p) or path == p for p in patterns)
                if not inside and not any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps):
                    found.append(f"stage {name!r}: input {path!r} ({rule['name']}) is not under any DVC dep")
        # the other way round for code: a module DVC reruns the stage for is one the phase's jobs read
        inputs = [path for rule in phase_rules for path in rule["input"]]
        for dep in deps:
            read = any(i == dep or i.startswith(dep.rstrip("/") + "/") for i in inputs)
            if dep.startswith("src/") and not read:
                found.append(f"stage {name!r}: dep {dep!r} is an input of no rule of rules/{name}.smk")
        for section in stage.get("params", []):
            keys = [section] if isinstance(section, str) else [k for v in section.values() for k in v]
            for key in keys:
                node = params
                for part in str(key).split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if node is None:
                    found.append(f"stage {name!r}: params section {key!r} is not in params.yaml")
        if not stage.get("params"):
            found.append(f"stage {name!r}: no params (expected its params.yaml section {name!r})")
        for dep in stage.get("deps", []):
            upstream = [o for o in all_outs if dep == o or dep.startswith(o.rstrip("/") + "/")]
            if not upstream and not (root / dep).exists():
                found.append(f"stage {name!r}: dep {dep!r} neither exists nor is a stage's out")
            if any(all_outs[o] == name for o in upstream):
                found.append(f"stage {name!r}: dep {dep!r} is its own out")
    return found


def test_dvc_yaml_agrees_with_snakemake():
    assert problems(ROOT) == []


def test_header_lists_every_phase():
    assert sorted(header_phases(ROOT)) == phases_of(ROOT)


def test_stage_params_exist_in_params_yaml():
    """Every key of a stage's params: names a real entry of params.yaml (DVC would fail on a typo);
    that they are what the contracts read is scripts/dvc_code_deps.py --check's test (test_code_deps)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for name, stage in stages.items():
        assert stage["params"], f"stage {name} reads no params"
        for key in stage["params"]:
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"stage {name}: {key} is not in params.yaml"
                node = node[part]
    assert "sft.max_length" in stages["mixture"]["params"]


@pytest.mark.parametrize(
    "out,pattern,expected",
    [
        ("data/interim/ingested", "data/interim/ingested/{source,[A-Za-z0-9_.-]+}.parquet", True),
        ("results/base", "results/{model,base|sft}/{task,[A-Za-z0-9_.-]+}.json", True),
        ("results/other", "results/{model,base|sft}/{task}.json", False),
        ("models/sft/adapter", "models/sft/adapter", True),
        ("models/sft/checkpoints", "models/sft/adapter", False),
    ],
)
def test_produced_by(out, pattern, expected):
    assert produced_by(out, pattern) is expected


def test_covered_by_alternatives():
    pattern = "results/{model,base|sft}/{task,[A-Za-z0-9_.-]+}.json"
    assert covered(pattern, ["results/base", "results/sft"])
    assert not covered(pattern, ["results/base"])


def test_new_phase_without_stage_fails(tmp_path):
    """A new rules/<x>.smk (included in the Snakefile) without a DVC stage is caught."""
    root = copy_project(tmp_path)
    (root / "rules" / "dedupe.smk").write_text(
        'rule dedupe:\n    input:\n        "data/processed/mixture/train.parquet",\n'
        '    output:\n        "data/processed/dedupe/train.parquet",\n'
        '    shell:\n        "cp {input} {output}"\n',
        encoding="utf-8",
    )
    snakefile = root / "Snakefile"
    text = snakefile.read_text(encoding="utf-8") + 'include: "rules/dedupe.smk"\n'
    snakefile.write_text(text, encoding="utf-8")
    found = problems(root)
    assert any("'dedupe' has no DVC stage" in p for p in found), found


def test_function_input_without_dep_fails(tmp_path):
    """An input that only an input function returns (the judge task's translated chats) is seen."""
    root = copy_project(tmp_path)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    dvc["stages"]["evaluate"]["deps"].remove("data/interim/translated")
    dvc["stages"]["split"]["deps"].append("src/atlas_forge/mixture.py")
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False), encoding="utf-8")
    found = problems(root)
    assert any("'data/interim/translated/sample_alpaca.parquet' (evaluate_task)" in p for p in found), found
    unread = "'src/atlas_forge/mixture.py' is an input of no rule of rules/split.smk"
    assert any(unread in p for p in found), found


def test_out_without_rule_fails(tmp_path):
    root = copy_project(tmp_path)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    dvc["stages"]["mixture"]["deps"].remove("src/atlas_forge/mixture.py")
    dvc["stages"]["sft"]["outs"].append({"models/sft/checkpoints": {"persist": True}})
    dvc["stages"]["ingest"]["params"].append("no_such_section")
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False), encoding="utf-8")
    found = problems(root)
    assert any("models/sft/checkpoints" in p and "produced by no rule" in p for p in found), found
    assert any("no_such_section" in p for p in found), found
    assert any("'src/atlas_forge/mixture.py' (mixture) is not under any DVC dep" in p for p in found), found


def test_rules_pass_exactly_their_contracts_flags():
    """A rule binds paths to the input and output slots its phase's contract declares (`args`): every
    required flag is passed, none the contract does not know, and params only through --params."""
    from atlas_forge import phases

    seen = set()
    for rule in snakemake_rules(ROOT):
        m = re.search(r"-m atlas_forge ([\w-]+) (.*)", rule["shell"], re.S)
        if not m:
            continue
        contract = phases.contract(m.group(1))
        seen.add(contract.name)
        passed = set(re.findall(r"(?<!\S)(--[\w-]+)", m.group(2)))
        declared = {flag for flag, _ in contract.args}
        required = {flag for flag, opts in contract.args if opts.get("required")}
        assert "--params" in passed, rule["name"]
        assert required <= passed, f"rule {rule['name']}: misses {sorted(required - passed)}"
        unknown = passed - declared - {"--params"}
        assert not unknown, f"rule {rule['name']}: flags its contract does not declare: {sorted(unknown)}"
    assert seen == set(phases.MODULES), set(phases.MODULES) - seen
