"""One default per setting (issue 13 item 4): params.yaml is each phase's whole contract.

A phase run by hand (`atlas-forge sft --params '{}'`) must train the recipe the pipeline trains, so
every default a phase's config dataclass carries must be the value params.yaml gives that key, and
params.yaml must document it. A field without a default is fine: leaving it out is an error that
names the key. How a job runs (threads) is never a param: it is a CLI flag fed by the profile.
"""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from atlas_forge import phases
from atlas_forge.config import parse

from .conftest import ROOT

# every phase's contract: its typed config and the view its jobs get (issue 19: the test comes from
# the declarations, so a new phase is checked without being listed here)
CONTRACTS = phases.contracts()
# keys a job gets from another section (instruct's and generate's `sides`: the mixture's draw)
SET_BY_RULE = {f"{c.own_section}.{path.split('.')[0]}" for c in CONTRACTS.values() for _, path in c.into}
# per-job speed settings: CLI flags from the profile, never part of a config
HOW_A_JOB_RUNS = {"threads", "resources", "launcher"}


def disagreements(cls, section: dict, where: str) -> list[str]:
    """Every default of `cls` that params.yaml's `section` does not give, or gives another value."""
    found = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}"
        if f.name in HOW_A_JOB_RUNS:
            found.append(f"{key}: how a job runs is a CLI flag (profile), not a config field")
            continue
        if key in SET_BY_RULE:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if f.name not in section:
                found.append(f"{key}: required, but params.yaml does not set it")
            elif dataclasses.is_dataclass(hints[f.name]):
                found += disagreements(hints[f.name], section[f.name], key)
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.name not in section:
            found.append(f"{key}: default {default!r} is not documented in params.yaml")
        elif dataclasses.is_dataclass(default):
            found += disagreements(type(default), section[f.name], key)
        else:
            # coerced as parse() does (an int where a float is declared)
            given = parse(_Holder[hints[f.name]], {"v": section[f.name]}, key).v
            if given != default:
                found.append(f"{key}: dataclass default {default!r}, params.yaml {section[f.name]!r}")
    return found


class _Holder:
    """A one-field dataclass of a given type, so a single value is coerced exactly as parse() does."""

    def __class_getitem__(cls, tp):
        return dataclasses.make_dataclass("Holder", [("v", tp)])


# phases with no job in the embedded default are checked on the overlay that gives them one (answers: the
# paper's DarijaAlpacaEval judged against a baseline model's answers)
OVERLAY_FOR = {"answers": "configs/darija-benchmarks-hf.yaml"}


def merged(base: dict, overlay: dict) -> dict:
    """Snakemake's --configfile merge: mappings deep-merged, everything else replaced."""
    out = dict(base)
    for k, v in overlay.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def default_params():
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def params(default_params, request):
    phase = getattr(request, "param", None) or request.node.callspec.params.get("phase")
    if phase in OVERLAY_FOR:
        overlay = yaml.safe_load((ROOT / OVERLAY_FOR[phase]).read_text(encoding="utf-8"))
        return merged(default_params, overlay)
    return default_params


def test_every_phase_has_a_job_in_the_default_or_its_overlay(default_params):
    for name, c in CONTRACTS.items():
        if name in OVERLAY_FOR:
            assert not c.job_wildcards(default_params), f"{name}: jobs in params.yaml now (drop its overlay)"
        else:
            assert c.job_wildcards(default_params), f"{name}: no job in params.yaml (name an overlay)"


def job_view(params, contract) -> dict:
    """The section as the first job of the phase sees it (per-entry phases: one source, one task)."""
    wildcards = contract.job_wildcards(params)
    view = contract.params(params, **wildcards[0])[contract.own_section] if wildcards else {}
    # a view that keeps part of the section (filter-index, tokenizer) is checked against the section
    return {**params[contract.own_section], **view}


@pytest.mark.parametrize("phase", sorted(CONTRACTS))
def test_dataclass_defaults_are_params_yaml(params, phase):
    c = CONTRACTS[phase]
    assert disagreements(c.config, job_view(params, c), c.own_section) == []


@pytest.mark.parametrize("phase", sorted(CONTRACTS))
def test_params_yaml_section_parses(params, phase):
    """Every job's params as the rule hands them over (instruct: with the mixture's draw) are valid."""
    assert CONTRACTS[phase].validate(params) >= 1


@dataclasses.dataclass(frozen=True)
class _Inner:
    steps: int = 150


@dataclasses.dataclass(frozen=True)
class _Phase:
    epochs: float = 3.0
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    undocumented: int = 1
    threads: int = 1


def test_the_check_catches_a_second_default():
    """The comparison fails on a drifted default, a default params.yaml does not document, and a
    threads field (it can fail)."""
    found = disagreements(_Phase, {"epochs": 2, "inner": {"steps": 100}}, "x")
    assert any(p.startswith("x.epochs: dataclass default 3.0") for p in found), found
    assert any(p.startswith("x.inner.steps: dataclass default 150") for p in found), found
    assert any(p.startswith("x.undocumented: default 1 is not documented") for p in found), found
    assert any(p.startswith("x.threads: how a job runs") for p in found), found
    agreeing = {"epochs": 3, "inner": {"steps": 150}, "undocumented": 1}
    assert disagreements(_Phase, agreeing, "x") == [
        "x.threads: how a job runs is a CLI flag (profile), not a config field"
    ]


def test_sft_help_shows_no_other_default():
    """`atlas-forge sft --help` documents no value that disagrees with params.yaml (issue 13)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "atlas_forge", "sft", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("epochs", "learning_rate", "batch_size"):
        assert f"--{word}" not in out.stdout  # values come from the params blob only
