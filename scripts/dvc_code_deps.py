"""dvc.yaml's code deps and params, derived from the same declarations as the Snakemake rules (issue 19).

    python scripts/dvc_code_deps.py           rewrite each stage's src/atlas_forge deps and its params
                                              (comments kept)
    python scripts/dvc_code_deps.py --check   exit 1, naming each stage whose deps or params differ

A stage's code deps are the code inputs of its phase's rules (rules/<stage>.smk), which
rules/common.smk's `code(module)` computes from the phase module's imports. Its params are what its
phases' contracts read (atlas_forge.phase: the section, or its keys, and the other keys named in
`reads`). Nothing is listed by hand; tests/test_code_deps.py runs the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = "src/atlas_forge/"


def rule_code(root: Path) -> dict[str, list[str]]:
    """Stage (rules/<stage>.smk) -> the code files its rules take as inputs."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ResourceSettings

    out: dict[str, set[str]] = {}
    with SnakemakeApi() as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=root / "Snakefile",
                          workdir=root)
        for rule in wf._workflow.rules:
            stage = Path(rule.snakefile).stem
            files = {str(f) for f in rule.input if isinstance(f, str) and str(f).startswith(CODE)}
            if files:
                out.setdefault(stage, set()).update(files)
    return {stage: sorted(files) for stage, files in out.items()}


def stage_phases(root: Path) -> dict[str, list[str]]:
    """Stage -> the phases its rules run: a phase's rule takes the phase module's file as a code input."""
    sys.path.insert(0, str(root / "src"))
    from atlas_forge import imports, phases

    files = {str(imports.module_file(m).relative_to(root)): name for name, m in phases.MODULES.items()}
    found: dict[str, list[str]] = {}
    for stage, code in rule_code(root).items():
        found[stage] = [files[f] for f in code if f in files]
    return found


def stage_params(root: Path) -> dict[str, list[str]]:
    """Stage -> the params its phases' contracts read: a whole section once, keys of a section only
    when the section itself is not listed."""
    sys.path.insert(0, str(root / "src"))
    from atlas_forge import phases

    keys: dict[str, list[str]] = {}
    for contract in phases.contracts().values():
        keys.setdefault(contract.stage or contract.name, []).extend(contract.dvc_params())
    # the variants stage (rules/variants.smk) runs the main build's phases on each variant's params:
    # it reads `variants` and whatever those phases read
    keys["variants"] = ["variants", *[k for name in stage_phases(root).get("variants", [])
                                      for k in phases.contract(name).dvc_params()]]
    out = {}
    for stage, listed in keys.items():
        whole = {k for k in listed if "." not in k}
        kept = [k for k in dict.fromkeys(listed) if k in whole or k.split(".")[0] not in whole]
        out[stage] = kept
    return out


def differences(root: Path) -> list[str]:
    import yaml

    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    found = []
    for stage, params in stage_params(root).items():
        have = stages.get(stage, {}).get("params")
        if have != params:
            found.append(f"dvc.yaml stage {stage!r}: params {have}, its contracts read {params}")
    for stage, code in rule_code(root).items():
        have = sorted(d for d in stages.get(stage, {}).get("deps", []) if d.startswith(CODE))
        if have != code:
            extra, missing = sorted(set(have) - set(code)), sorted(set(code) - set(have))
            found.append(f"dvc.yaml stage {stage!r}: missing {missing}, not imported {extra}")
    return found


def rewrite(root: Path) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)  # the file's own style
    path = root / "dvc.yaml"
    doc = yaml.load(path.read_text(encoding="utf-8"))
    for stage, params in stage_params(root).items():
        listed = doc["stages"][stage]["params"]
        listed.clear()
        listed.extend(params)
    for stage, code in rule_code(root).items():
        deps = doc["stages"][stage]["deps"]
        keep = [d for d in deps if not str(d).startswith(CODE)]
        deps.clear()
        deps.extend(keep + code)
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(doc, f)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="report differences instead of rewriting")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    if args.check:
        found = differences(args.root)
        print("\n".join(found) or "dvc.yaml's code deps and params are the rules' closures and contracts")
        return 1 if found else 0
    rewrite(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
