import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Nothing in the suite may reach a hub; set before any library reads them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"


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


@pytest.fixture(scope="session")
def default_build(tmp_path_factory) -> Path:
    """The embedded default built once in a fresh copy (about 4 min on 2 cores), shared by the
    end-to-end tests (test_pipeline, test_slurm). Tests that change files work on their own copy."""
    import sys

    work = copy_project(tmp_path_factory.mktemp("pipeline"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return work
