"""The phase contract: what one phase declares, in one place, and what the front ends derive from it.

Each phase module declares `CONTRACT = Phase(...)`: its name, the params section it owns (parsed into
its typed config), the other params keys it reads (named, dotted: `sft.max_length`), its inputs and
outputs (CLI flags), and the view one job gets of its section. From that come:

- the CLI subcommand (`atlas_forge.cli`): `--params` and the declared flags, nothing else;
- the rule's params (`rules/common.smk: phase_params`): one JSON, `{section: view, other: {key: v}}`,
  the only route by which a parameter reaches a phase;
- the DVC stage's `params:` (scripts/dvc_yaml.py writes them; tests check them);
- validation when the graph is built: every job's params are parsed with the typed config before
  Snakemake plans anything, so a misspelt key fails `snakemake -n` and names the key;
- the defaults test (tests/test_defaults.py): the typed config's defaults are params.yaml's.

Stdlib only, and nothing here imports a phase: rules/common.smk and the CLI import phases by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from atlas_forge.config import ConfigError, parse

PATH = {"metavar": "PATH"}
PATHS = {"metavar": "PATH", "nargs": "*", "default": []}


def _get(params: Mapping, dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{dotted}: required key is missing")
        node = node[part]
    return node


def _put(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


@dataclass(frozen=True)
class Job:
    """What one job of a phase was given: its typed config and the other keys it reads."""

    config: Any
    reads: dict[str, Any]

    def __getitem__(self, dotted: str) -> Any:
        return self.reads[dotted]


@dataclass(frozen=True)
class Phase:
    # the CLI subcommand, rules/<name>.smk and the DVC stage ("filter-index" runs in the filter stage)
    name: str
    # the module whose `run_cli(args, job)` runs it
    module: str
    help: str
    # the typed config of the section as one job sees it (view below)
    config: type
    # the params section it owns; default: its name
    section: str | None = None
    # the keys of that section a job reads, dotted, when not the whole section (the tokenizer reads
    # base_model's kind, name_or_path, revision, tokenizer and pretrain.parallel_texts): a change to
    # any other key reruns nothing of this phase
    keys: tuple[str, ...] = ()
    # other params keys it reads, dotted; passed beside the section in the one JSON
    reads: tuple[str, ...] = ()
    # read keys that are fields of its typed config (read key -> field path), validated with it:
    # instruct's `sides` is the mixture's draw, {"mixture.seed": "sides.seed", ...}
    into: tuple[tuple[str, str], ...] = ()
    # CLI flags: its inputs and outputs (paths), and how a job runs (--threads: the profile's)
    args: tuple[tuple[str, dict], ...] = ()
    # the section as one job sees it: (params, **wildcards) -> dict. Default: the whole section.
    # Per-entry phases (ingest: one source, evaluate: one task) pick their entry here.
    view: Callable[..., dict] | None = None
    # the wildcard values of its jobs in a build: params -> [{wildcard: value}] (default: one job)
    jobs: Callable[[Mapping], list[dict]] | None = None
    # the DVC stage the phase's jobs run in, when it is another phase's (filter-index: filter)
    stage: str | None = None

    @property
    def own_section(self) -> str:
        return self.section or self.name

    def params(self, params: Mapping, **wildcards: str) -> dict:
        """The one JSON blob a job of this phase gets: its section's view and the keys it reads."""
        section = self.own_section
        if section not in params:
            raise ConfigError(f"{section}: section is missing")
        if self.view:
            view = self.view(params, **wildcards)
        elif self.keys:
            view = {}
            for key in self.keys:
                if _has(params[section], key):
                    _put(view, key, _get(params[section], key))
        else:
            view = params[section]
        blob: dict = {section: view}
        for key in self.reads:
            _put(blob, key, _get(params, key))
        return blob

    def params_json(self, params: Mapping, **wildcards: str) -> str:
        # key order is kept: it carries meaning (a source's label order becomes its A/B/C order)
        return json.dumps(self.params(params, **wildcards), ensure_ascii=False)

    def parse(self, blob: Mapping) -> Job:
        """Validate a job's blob: the section with the typed config, the reads present; nothing else."""
        if not isinstance(blob, Mapping):
            raise ConfigError(f"{self.name}: --params must be a JSON object, got {type(blob).__name__}")
        section = self.own_section
        allowed = {section} | {key.split(".")[0] for key in self.reads}
        unknown = sorted(set(blob) - allowed)
        if unknown:
            raise ConfigError(
                f"{unknown[0]}: phase {self.name} does not read this section "
                f"(it reads {', '.join(sorted(allowed))}: declare other keys in its contract's `reads`)"
            )
        reads = {key: _get(blob, key) for key in self.reads if _has(blob, key)}
        own = blob.get(section, {})
        if self.into and isinstance(own, Mapping):
            own = json.loads(json.dumps(own))  # a copy: the caller's blob stays as given
            for key, path in self.into:
                if key in reads:
                    _put(own, path, reads[key])
        return Job(parse(self.config, own, section), reads)

    def job_wildcards(self, params: Mapping) -> list[dict]:
        return self.jobs(params) if self.jobs else [{}]

    def validate(self, params: Mapping) -> int:
        """Parse every job's params of a build (graph-build time); returns how many were checked."""
        checked = 0
        for wildcards in self.job_wildcards(params):
            try:
                self.parse(json.loads(self.params_json(params, **wildcards)))
            except ConfigError as e:
                where = ", ".join(f"{k}={v}" for k, v in wildcards.items())
                raise ConfigError(f"{e} (phase {self.name}{f', {where}' if where else ''})") from None
            checked += 1
        return checked

    def dvc_params(self) -> list[str]:
        """The DVC stage's `params:`: its section (or the keys of it that it reads) and each other key."""
        own = [f"{self.own_section}.{k}" for k in self.keys] if self.keys else [self.own_section]
        return [*own, *self.reads]


def _has(blob: Mapping, dotted: str) -> bool:
    try:
        _get(blob, dotted)
    except ConfigError:
        return False
    return True


def entries(params: Mapping, section: str, key: str, extra: str) -> list[dict]:
    """A section's list of entries with an overlay's additions (`extra_sources`, `extra_tasks`)."""
    sec = params.get(section) or {}
    return list(sec.get(key, [])) + list(sec.get(extra, []) or [])


def by_id(items: Iterable[dict], value: str, field_name: str = "id") -> dict:
    for item in items:
        if item.get(field_name) == value:
            return item
    raise ConfigError(f"no entry with {field_name} {value!r}")
