"""The install route (issue 20): every fresh clone gets the versions in requirements.lock, through one
route (Makefile `install`) that make pipeline, make test, make check and CI share."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import ROOT


def _lock() -> dict[str, Version]:
    pins = {}
    for n, line in enumerate((ROOT / "requirements.lock").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"requirements.lock:{n}: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_lock_pins_exact_public_versions_and_no_cuda():
    pins = _lock()
    assert len(pins) > 100
    # a local version (torch 2.13.0+cpu) is not on PyPI, and torch comes from pip's CPU build
    assert not [n for n, v in pins.items() if v.local], "local versions are not on PyPI"
    assert "torch" not in pins and not [n for n in pins if n.startswith("nvidia-")]


def test_every_declared_requirement_is_pinned_in_the_lock():
    """A dependency added to pyproject.toml without `make lock` fails here, naming it."""
    pins = _lock()
    project = _project()
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    missing = []
    for spec in declared:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        if name not in pins or not req.specifier.contains(pins[name], prereleases=True):
            missing.append(f"{spec} (lock: {pins.get(name)})")
    assert missing == [], f"run `make lock`: {missing}"


def test_torch_pin_is_the_one_the_makefile_installs():
    torch = [Requirement(s) for s in _project()["dependencies"] if Requirement(s).name == "torch"]
    assert [str(r.specifier) for r in torch] == ["==2.13.0"]
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install -q torch==2\.13\.0 uv==\$\(UV_VERSION\)", make)
    assert "uv pip install -q --python $(PY) --no-deps -r requirements.lock -e ." in make


def test_installed_versions_are_the_locked_ones():
    """The environment running the suite is the lock's (what `make install` gives a fresh clone)."""
    differ = []
    for name, pin in _lock().items():
        try:
            have = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            differ.append(f"{name}: missing (lock {pin})")
            continue
        if have != pin:
            differ.append(f"{name}: {have} (lock {pin})")
    assert differ == []


def test_ci_and_readme_commands_share_the_install():
    make = (ROOT / "Makefile").read_text()
    for target in ("pipeline", "test", "check"):
        assert re.search(rf"^{target}: install\b", make, re.M), target
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make check$", ci, re.M)
