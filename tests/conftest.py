"""Shared test fixtures. The expensive artifacts (the default build, the corpora build, the tiny models)
are built once per test session and shared read-only by the tests that read them (issue 20: build once,
assert many times). A test that changes something works on its own copy (`copy_build`)."""

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Nothing in the suite may reach a hub; set before any library reads them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"

# the venv first on PATH: the rules call `python -m atlas_forge`, the DVC stages `python -m snakemake`
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "atlas-forge tests",
    "GIT_AUTHOR_EMAIL": "tests@atlas-forge.invalid",
    "GIT_COMMITTER_NAME": "atlas-forge tests",
    "GIT_COMMITTER_EMAIL": "tests@atlas-forge.invalid",
}
DVC = [sys.executable, "-m", "dvc"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def sh(cmd: list[str], cwd: Path, timeout: int = 3600, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return proc


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def make_server():
    """A local OpenAI-compatible stand-in (tests/fake_openai.py) per call: `make(respond)`, where
    `respond(prompt, n)` returns (status, headers, content); closed when the test ends."""
    from tests.fake_openai import FakeChatServer

    servers = []

    def make(respond):
        servers.append(FakeChatServer(respond))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def copy_project(dest: Path) -> Path:
    """A working copy of the tracked project (what a fresh clone has), without built artifacts."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def copy_build(built: Path, dest: Path) -> Path:
    """A private copy of a shared build for a test that changes it. copy2 keeps file times and
    symlinks stay links, so Snakemake and DVC see the copy exactly as up to date as the original."""
    shutil.copytree(built, dest, symlinks=True)
    return dest


def _shared_dir(tmp_path_factory) -> Path:
    """One folder per test session, the same for every pytest-xdist worker of that session."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-builds"
    root.mkdir(parents=True, exist_ok=True)
    return root


def build_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(dest)` runs once per session, whichever test (or xdist worker) asks first; the others
    wait on the lock and get the same folder. A failed build fails every test that needs it, with the
    first failure's message, instead of being retried once per test."""
    root = _shared_dir(tmp_path_factory)
    dest, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists():
            pytest.fail(f"the shared build {name!r} failed earlier in this session:\n{failed.read_text()}")
        if not done.exists():
            start = time.monotonic()
            try:
                build(dest)
            except BaseException as err:
                failed.write_text(str(err)[-8000:])
                raise
            done.write_text(json.dumps({"seconds": round(time.monotonic() - start, 1)}))
    return dest


def _dvc_repro_default(dest: Path) -> None:
    """The embedded default as CI builds it: a git repo of the project, then `dvc repro` (every stage
    runs its phase's Snakemake target), then a second `dvc repro` that must do nothing. Their outputs
    are kept beside the tree for tests/test_dvc.py."""
    dest.mkdir(parents=True)
    copy_project(dest)
    sh(["git", "init", "-q", "-b", "main"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-qm", "project"], dest)
    first = sh([*DVC, "repro"], dest)
    second = sh([*DVC, "repro"], dest)
    logs = dest.parent / f"{dest.name}.logs"
    logs.mkdir(exist_ok=True)
    (logs / "first_repro.stdout").write_text(first.stdout)
    (logs / "second_repro.stdout").write_text(second.stdout)


@pytest.fixture(scope="session")
def default_build(tmp_path_factory) -> Path:
    """The embedded default, built once per session through `dvc repro` in a git repo (so the DVC,
    recovery and Snakemake tests all read the one build). Read-only: tests that change files work on
    `copy_build(default_build, tmp_path / ...)`."""
    return build_once(tmp_path_factory, "default", _dvc_repro_default)


def repro_logs(built: Path) -> dict[str, str]:
    logs = built.parent / f"{built.name}.logs"
    return {p.stem: p.read_text() for p in logs.glob("*.stdout")}


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> dict[str, str]:
    """Learnable Darija chat rows (tests/test_modeling.py): pre-training text, sft train and test."""
    from .test_modeling import chat_rows, write_rows

    d = tmp_path_factory.mktemp("data")
    return {
        "text": write_rows(d / "text.parquet", chat_rows(120, seed=1)),
        "train": write_rows(d / "train.parquet", chat_rows(40, seed=2)),
        "test": write_rows(d / "test.parquet", chat_rows(16, seed=3)),
    }


@pytest.fixture(scope="session")
def tiny_base(data, tmp_path_factory) -> Path:
    """The tiny base model of the modeling, resume and distributed tests, trained once per session."""
    from .test_modeling import TINY_BASE, build_base

    out = tmp_path_factory.mktemp("models") / "base"
    build_base(TINY_BASE, [data["text"]], out)
    return out


# --- builds that run in the background of the session ---------------------------------------------
# The corpora build takes most of the whole suite's time (about 12-20 min on 2 cores) but needs no
# test to finish first. Its tests are marked `background_build(<name>)`: their build starts as soon as
# the session knows it will run them, those tests run last, and everything else runs meanwhile.

_BACKGROUND: dict[str, Callable[[Path], tuple[list[str], Path]]] = {}
_STARTED: dict[str, tuple[subprocess.Popen, Path]] = {}


def background_build(name: str, prepare: Callable[[Path], tuple[list[str], Path]]) -> None:
    """Register a build: `prepare(dest)` lays out `dest` and returns (command, cwd) to run there."""
    _BACKGROUND[name] = prepare


def _wanted(items) -> set[str]:
    return {m.args[0] for item in items for m in item.iter_markers("background_build")}


def pytest_configure(config):
    config.addinivalue_line("markers", "background_build(name): the test reads a build started in the "
                            "background at the start of the session (tests/conftest.py); it runs last")


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: a deselected build never starts
def pytest_collection_modifyitems(config, items):
    wanted = _wanted(items)
    if not wanted:
        return
    items.sort(key=lambda item: bool(_wanted([item])))  # stable: the background builds' tests last
    if config.option.collectonly or os.environ.get("PYTEST_XDIST_WORKER"):
        return  # under xdist a worker builds in the foreground, once, under build_once's lock
    root = _shared_dir(config._tmp_path_factory)
    for name in sorted(wanted & set(_BACKGROUND)):
        cmd, cwd = _BACKGROUND[name](root / name)
        log = open(root / f"{name}.log", "w")  # the build writes it until it ends
        proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        _STARTED[name] = (proc, root / f"{name}.log")


def pytest_sessionfinish(session):
    for proc, _ in _STARTED.values():  # a session cut short (-x, ^C) leaves no build running
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_build(tmp_path_factory, name: str, timeout: float = 3600) -> Path:
    """The folder of background build `name`, once it has finished (built here, once, if it was not
    started in the background: under xdist or when the hook did not see its tests)."""
    if name in _STARTED:
        proc, log = _STARTED[name]

        def finish(dest: Path) -> None:
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as err:
                os.killpg(proc.pid, signal.SIGKILL)
                tail = log.read_text()[-4000:]
                raise AssertionError(f"the {name} build ran past {timeout:.0f} s:\n{tail}") from err
            assert rc == 0, f"the {name} build failed ({rc}):\n{log.read_text()[-6000:]}"

        return build_once(tmp_path_factory, name, finish)

    def foreground(dest: Path) -> None:
        cmd, cwd = _BACKGROUND[name](dest)
        run = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
        assert run.returncode == 0, f"the {name} build failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"

    return build_once(tmp_path_factory, name, foreground)
