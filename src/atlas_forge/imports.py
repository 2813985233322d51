"""The code a phase runs, derived from its imports (issue 19): a phase's code inputs are the static
import closure of its module inside atlas_forge, function-level imports included, plus the CLI every
job runs through. Snakemake's rule inputs, dvc.yaml's deps and evaluate's resume fingerprint all come
from here, so no list of modules is kept by hand.

Standard library only: the Snakefile imports it when it builds the DAG.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "atlas_forge"
SRC = Path(__file__).resolve().parent  # src/atlas_forge
# every job runs `python -m atlas_forge <phase>`: __main__ -> cli -> importlib of the phase's module
ENTRY = ("atlas_forge.__main__", "atlas_forge.cli")


def module_file(module: str) -> Path | None:
    """The file of a module of the package (a package's __init__.py), or None outside it."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    rel = Path(*module.split(".")[1:])
    for path in (SRC / rel / "__init__.py", (SRC / rel).with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def direct_imports(path: Path, parents: bool = True) -> frozenset[str]:
    """Modules of the package that `path` imports anywhere in its body (functions included), with the
    package __init__s that importing them runs first (parents=False: only the modules it names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            # `from atlas_forge.x import y`: y may be a submodule (its file) or a name in x; x itself
            # is named only when a name comes from it (Python runs its __init__ either way: parents)
            subs = {f"{root}.{alias.name}" for alias in node.names}
            found.update(subs)
            if parents or any(module_file(sub) is None for sub in subs):
                found.add(root)
    out = set()
    for name in found:
        if module_file(name) is not None:
            out.add(name)
            if parents:
                out.update(p for p in _parents(name) if module_file(p) is not None)
    return frozenset(out)


def modules() -> dict[str, Path]:
    """Every module of the package, by name."""
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


@cache
def closure(*modules: str) -> tuple[Path, ...]:
    """Every file of the package that running `modules` can import, the modules' own included."""
    todo = [m for m in modules]
    todo += [p for m in modules for p in _parents(m)]
    seen: set[Path] = set()
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(direct_imports(path))
    return tuple(sorted(seen))


def phase_code(module: str) -> list[str]:
    """A phase's code inputs, as paths relative to the repository root (src/atlas_forge/...)."""
    root = SRC.parent.parent
    return [p.relative_to(root).as_posix() for p in closure(*ENTRY, module)]


def code_sha256(module: str) -> str:
    """One fingerprint of the code a phase runs (its import closure): names and contents."""
    h = hashlib.sha256()
    for path in closure(*ENTRY, module):
        h.update(path.relative_to(SRC).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
