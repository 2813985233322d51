"""Code dependencies derived from imports (issue 19, item 2): a phase's code inputs are its module's
static import closure inside atlas_forge (function-level imports included) plus the CLI; Snakemake's
inputs, dvc.yaml's deps and evaluate's resume fingerprint all come from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from atlas_forge import imports, phases

from .conftest import ROOT, SNAKEMAKE, copy_build, sh

SRC = ROOT / "src" / "atlas_forge"


def test_closure_follows_function_level_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "atlas_forge"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("from atlas_forge import leaf\n")
    (pkg / "leaf.py").write_text("import json\n")
    (pkg / "unused.py").write_text("")
    monkeypatch.setattr(imports, "SRC", pkg)
    imports.direct_imports.cache_clear()
    imports.closure.cache_clear()
    try:
        got = {p.relative_to(pkg).as_posix() for p in imports.closure("atlas_forge.sub.a")}
    finally:
        imports.direct_imports.cache_clear()
        imports.closure.cache_clear()
    assert got == {"__init__.py", "sub/__init__.py", "sub/a.py", "sub/b.py", "leaf.py"}


def test_every_phase_runs_through_the_cli():
    for module in ("atlas_forge.ingest", "atlas_forge.report"):
        code = imports.phase_code(module)
        assert {"src/atlas_forge/cli.py", "src/atlas_forge/__main__.py"} <= set(code)
    # what the issue found missing from the hand-kept lists is in the derived ones
    assert "src/atlas_forge/filters/exact_dedup.py" in imports.phase_code("atlas_forge.filters")
    generate = imports.phase_code("atlas_forge.generate")
    assert {"src/atlas_forge/chat_client.py", "src/atlas_forge/store.py"} <= set(generate)
    # the chat client and the cache floor are shared modules now, not translate's
    assert not [p for p in generate if p.startswith("src/atlas_forge/translate/")]
    translate = imports.phase_code("atlas_forge.translate")
    assert {"src/atlas_forge/translate/backends.py", "src/atlas_forge/language.py"} <= set(translate)
    # language ID is a floor now: the filter package is not translate's code
    assert not [p for p in translate if p.startswith("src/atlas_forge/filters/")]
    assert "src/atlas_forge/textnorm.py" in imports.phase_code("atlas_forge.filters")


def test_dvc_yaml_code_deps_are_the_rules_closures():
    run = subprocess.run([sys.executable, "scripts/dvc_code_deps.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]


def test_resume_fingerprint_is_the_evaluate_closure():
    from atlas_forge.evaluate import resume

    assert resume.code_sha256() == imports.code_sha256("atlas_forge.evaluate")
    assert resume.code_sha256() != imports.code_sha256("atlas_forge.report")


def planned_rules(out: str) -> set[str]:
    """The rules with jobs in a dry run's job stats table."""
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0] if "Job stats:" in out else ""
    rules = set(re.findall(r"^(\w+)\s+\d+$", table, re.M))
    return rules - {"total", "all"}


def downstream(root: Path) -> dict[str, set[str]]:
    """Rule -> the rules that consume its outputs, transitively (Snakemake's rule graph)."""
    dot = sh([*SNAKEMAKE, "--rulegraph", "--cores", "1"], root).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    edges = [(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)$", dot, re.M)]
    out = {}
    for rule in names.values():
        seen, todo = set(), [rule]
        while todo:
            here = todo.pop()
            for a, b in edges:
                if a == here and b not in seen:
                    seen.add(b)
                    todo.append(b)
        out[rule] = seen - {"all"}
    return out


def rule_closures(root: Path) -> dict[str, tuple[str, set[str]]]:
    """Rule -> (its rule file's stem, which is its DVC stage; the code closure its code() names)."""
    found = {}
    for rule_file in sorted((root / "rules").glob("*.smk")):
        for rule, module in re.findall(r'^rule (\w+):.*?code=code\("([\w.]+)"\)', rule_file.read_text(),
                                       re.M | re.S):
            found[rule] = (rule_file.stem, set(imports.phase_code(module)))
    return found


def test_editing_any_module_replans_exactly_its_importers(default_build, tmp_path):
    """Every module under src/atlas_forge, edited in turn in a copy of the built default: Snakemake
    plans the rules whose code closure holds the module and their dependants, and no other rule; and
    the DVC stages whose deps hold it are those rules' stages."""
    root = copy_build(default_build, tmp_path / "repo")
    closures = rule_closures(root)
    after = downstream(root)
    # a rule with no job in the default build (answers: only a task judged against a baseline has one)
    # is in no plan; its code is still in its DVC stage's deps
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    idle = {rule for rule in closures
            if rule in phases.MODULES and not phases.contract(rule).job_wildcards(params)}
    assert set(closures) - idle == set(after) - {"all"}, "every rule names its code closure"
    variant_rules = (root / "rules" / "variants.smk").read_text()
    varied = set(re.findall(r"^use rule (\w+) as \w+ with:", variant_rules, re.M))
    assert varied >= {"sft", "evaluate_task", "mixture"}, varied
    stage_deps = {name: set(stage.get("deps", [])) for name, stage in
                  yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"].items()}
    modules = sorted(p.relative_to(root).as_posix() for p in (root / "src" / "atlas_forge").rglob("*.py"))
    assert len(modules) > 60
    run = sh([sys.executable, str(Path(__file__).with_name("replan_each_module.py")), str(root), *modules],
             root, timeout=1200)
    plans = json.loads(run.stdout.split("@@PLANS@@", 1)[1])
    assert plans.pop("") == [], "the copied build is not up to date before any edit"
    wrong = []
    for rel in modules:
        importers = {rule for rule, (_, code) in closures.items() if rel in code}
        expected = (importers - idle) | {d for rule in importers - idle for d in after[rule]}
        if set(plans[rel]) != expected:
            wrong.append(f"{rel}: planned {plans[rel]}, importers and dependants {sorted(expected)}")
        stages = {stage for stage, deps in stage_deps.items() if rel in deps}
        # the variants stage runs the variant copies of its rules (`use rule X as X_variant`): it holds
        # the module exactly when one of those rules' closures does
        want = {closures[rule][0] for rule in importers} | ({"variants"} if importers & varied else set())
        if stages != want:
            wrong.append(f"{rel}: dvc.yaml stages {sorted(stages)}, importers' {sorted(want)}")
    assert wrong == [], "\n".join(wrong)
    # the in-process plans are the command line's: one edit through `snakemake -n` itself
    rel = "src/atlas_forge/report.py"
    path = root / rel
    original = path.read_text()
    path.write_text(original + "\n# an edit\n")
    out = sh([*SNAKEMAKE, "-n", "--cores", "1"], root).stdout
    path.write_text(original)
    assert planned_rules(out) == set(plans[rel]) == {"report"}
