"""Write requirements.lock: the exact versions pip resolves for the project with every extra.

    python scripts/lock.py            (make lock)

pip resolves, not uv: on the same pins uv picked other versions for a few packages (python-dateutil
4.0.0 against pip's 2.9.0.post0, pytablewriter 0.38.0 against 1.2.1), and issue 20 asks for the
versions the project installed before uv. `make install` then installs these pins with uv, 3.4x
faster than pip (bench/results/install_time.txt). torch is left out: the Makefile installs its CPU
build with pip, and a lock naming `torch==2.13.0+cpu` would not resolve from PyPI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = "dev,slurm"
LEFT_OUT = {"torch", "atlas-forge"}


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def resolve() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
             "--report", str(report), "-e", f".[{EXTRAS}]"],
            cwd=ROOT, check=True,
        )
        installs = json.loads(report.read_text())["install"]
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}


def main() -> int:
    pins = {n: v for n, v in resolve().items() if n not in LEFT_OUT}
    text = "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))
    header = f"# pinned by scripts/lock.py (make lock): pip's resolution of .[{EXTRAS}], torch left out\n"
    (ROOT / "requirements.lock").write_text(header + text)
    print(f"requirements.lock: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
