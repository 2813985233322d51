"""Phases stand on a shared floor, never on each other (issue 19 item 4), read from the imports.

- No phase module imports another phase's module, and no floor module imports a phase: what two
  phases share lives on a floor below them (atlas_forge.phase, store, chat_client, encoding, ...).
- No import cycles among the package's modules. A package `__init__` that imports its submodules
  while they import it back counts.

Imports are read statically (atlas_forge.imports), function-level ones included: the same reading that
derives each rule's code inputs.
"""

from __future__ import annotations

from atlas_forge import imports, phases


def owners() -> dict[str, str]:
    """Each phase module's unit, module -> phase name. A phase that is a package owns its submodules
    (filter-index, in atlas_forge.filters, is the filter package's)."""
    units = {}
    for name, module in phases.MODULES.items():
        path = imports.module_file(module)
        if path is not None and path.name == "__init__.py":
            units[module] = name
    for name, module in phases.MODULES.items():
        if not any(module == u or module.startswith(u + ".") for u in units):
            units[module] = name
    return units


def owner(module: str, units: dict[str, str]) -> str | None:
    found = [u for u in units if module == u or module.startswith(u + ".")]
    return units[max(found, key=len)] if found else None


def edges() -> dict[str, set[str]]:
    """module -> the package's modules it names in an import (not the parents Python runs first)."""
    return {m: set(imports.direct_imports(p, parents=False)) - {m} for m, p in imports.modules().items()}


def crossings(graph: dict[str, set[str]], units: dict[str, str]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        mine = owner(module, units)
        for target in sorted(targets):
            theirs = owner(target, units)
            if theirs is None or theirs == mine:
                continue
            where = f"phase {mine}" if mine else "a floor"
            found.append(f"{module} ({where}) imports {target} (phase {theirs})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_phase_imports_another_phase():
    assert crossings(edges(), owners()) == []


def test_no_import_cycles():
    assert cycles(edges()) == []


def test_the_checks_can_fail():
    """A phase importing another, a floor importing a phase, and an __init__ importing a submodule
    that imports it back are all found."""
    units = {"p.a": "a", "p.b": "b"}
    graph = {"p.a": {"p.b.x"}, "p.b.x": {"p.floor"}, "p.floor": {"p.a"}, "p.b": {"p.b.x"}}
    assert crossings(graph, units) == [
        "p.a (phase a) imports p.b.x (phase b)",
        "p.floor (a floor) imports p.a (phase a)",
    ]
    assert cycles({"p.b": {"p.b.x"}, "p.b.x": {"p.b"}, "p.c": {"p.b"}}) == [["p.b", "p.b.x"]]


def test_every_phase_module_declares_its_contract():
    for name, contract in phases.contracts().items():
        assert contract.name == name and contract.module == phases.MODULES[name]
