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

from atlas_forge.config import parse
from atlas_forge.filters import FilterConfig
from atlas_forge.generate import GenerateConfig
from atlas_forge.instruct import InstructConfig
from atlas_forge.mixture import MixtureConfig
from atlas_forge.modeling.base_model import BaseModelParams
from atlas_forge.modeling.sft import SftParams
from atlas_forge.report import ReportConfig
from atlas_forge.split import SplitConfig
from atlas_forge.translate import TranslateConfig

from .conftest import ROOT

PHASES = {
    "split": SplitConfig,
    "instruct": InstructConfig,
    "translate": TranslateConfig,
    "generate": GenerateConfig,
    "filter": FilterConfig,
    "mixture": MixtureConfig,
    "base_model": BaseModelParams,
    "sft": SftParams,
    "report": ReportConfig,
}
# keys a rule adds to the blob from another section (instruct gets mixture's train/test draw)
SET_BY_RULE = {"instruct.sides", "generate.sides"}
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


@pytest.fixture(scope="module")
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_dataclass_defaults_are_params_yaml(params, phase):
    assert disagreements(PHASES[phase], params[phase], phase) == []


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_params_yaml_section_parses(params, phase):
    """The section as the rule hands it over (instruct: plus the mixture's draw) is a valid config."""
    section = dict(params[phase])
    if phase == "instruct":
        mix = params["mixture"]
        section["sides"] = {"seed": mix["seed"], "test_fraction": mix["test_fraction"]}
    parse(PHASES[phase], section, phase)


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
