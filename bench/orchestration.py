"""No-op orchestration cost on a built pipeline (run by hand, after `make pipeline` or `dvc repro`).

    python bench/orchestration.py [DIR] [--repeat N]

Times, in DIR (default: this repository), the commands a user runs when nothing changed:
`dvc status`, `dvc repro` and `snakemake --cores all`. Each is run N times (default 3); the
median wall time is printed next to its target, with the CPU time (user + sys) of the same runs:
on a busy machine wall time grows, CPU time much less. Peers: DVC's no-op checks against Snakemake's.
The command must find a built pipeline: a no-op that runs a job is reported as such.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"dvc status": 2.0, "dvc repro": 3.0, "snakemake --cores all": 5.0}
COMMANDS = {
    "dvc status": [sys.executable, "-m", "dvc", "status"],
    "dvc repro": [sys.executable, "-m", "dvc", "repro"],
    "snakemake --cores all": [sys.executable, "-m", "snakemake", "--cores", "all"],
}
NO_OP = {
    "dvc status": "up to date",
    "dvc repro": "up to date",
    "snakemake --cores all": "Nothing to be done",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default=str(ROOT), help="a built atlas-forge checkout")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    cwd = Path(args.dir).resolve()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    print(f"no-op orchestration in {cwd} (median of {args.repeat})")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'command':<24}{'median s':>10}{'min s':>8}{'cpu s':>8}{'target s':>10}  verdict")
    failed = False
    for name, cmd in COMMANDS.items():
        times, cpu, noop = [], [], True
        for _ in range(args.repeat):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
            out = proc.stdout + proc.stderr
            if proc.returncode != 0:
                print(f"{name}: exit {proc.returncode}\n{out[-2000:]}")
                return 2
            noop = noop and NO_OP[name] in out
        med = statistics.median(times)
        ok = med <= TARGETS[name]
        failed |= not ok or not noop
        verdict = ("ok" if ok else "SLOW") + ("" if noop else " (not a no-op: was the pipeline built?)")
        row = f"{name:<24}{med:>10.2f}{min(times):>8.2f}{statistics.median(cpu):>8.2f}"
        print(f"{row}{TARGETS[name]:>10.1f}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
