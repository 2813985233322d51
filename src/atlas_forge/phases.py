"""Where the phases are: each module declares its contract (`CONTRACT = Phase(...)`, atlas_forge.phase).

Modules are named here, not imported: an import would put every phase into every phase's code
closure (atlas_forge.imports), and editing one phase would rerun them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from atlas_forge.phase import Phase

# name -> module, in the order data flows (the CLI's --help lists them so)
MODULES = {
    "ingest": "atlas_forge.ingest",
    "split": "atlas_forge.split",
    "instruct": "atlas_forge.instruct",
    "translate": "atlas_forge.translate",
    "generate": "atlas_forge.generate",
    "filter-index": "atlas_forge.filters.decontaminate",
    "filter": "atlas_forge.filters",
    "mixture": "atlas_forge.mixture",
    "tokenizer": "atlas_forge.modeling.tokenizer",
    "base_model": "atlas_forge.modeling.base_model",
    "sft": "atlas_forge.modeling.sft",
    "answers": "atlas_forge.evaluate.answers",
    "evaluate": "atlas_forge.evaluate",
    "report": "atlas_forge.report",
}


def contract(name: str) -> Phase:
    """One phase's contract (imports that phase's module only)."""
    if name not in MODULES:
        raise KeyError(f"no phase {name!r} (phases: {', '.join(MODULES)})")
    module = MODULES[name]
    found = getattr(importlib.import_module(module), "CONTRACT", None)
    if not isinstance(found, Phase) or found.name != name or found.module != module:
        raise TypeError(f"{module}: declares CONTRACT = Phase(name={name!r}, module={module!r}, ...)")
    return found


def contracts() -> dict[str, Phase]:
    """Every phase's contract, by name."""
    return {name: contract(name) for name in MODULES}


def validate(params: Mapping) -> int:
    """Parse every job's params of a build with its phase's typed config (when the graph is built,
    before anything runs); raises ConfigError naming the key. Returns the number of jobs checked."""
    return sum(c.validate(params) for c in contracts().values())
