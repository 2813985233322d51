#!/usr/bin/env bash
# Issue 20: the install step, pip against uv, in one run on a fresh clone, same pins, cold caches.
#
#   bash bench/install_time.sh [OUT]      (default OUT: bench/results/install_time.txt)
#
# Routes, each into a new venv of a fresh clone, timed from `python -m venv` to a working install:
#   pip        the old route: pip install -e ".[dev,slurm]" (pip resolves; this machine's pip config:
#              PyPI plus its local find-links/extra indexes, where torch's CPU build lies)
#   pip-lock   pip with the same pins as uv: pip install torch==2.13.0, then --no-deps -r requirements.lock -e .
#   uv-lock    the Makefile's route: pip install torch==2.13.0 uv, then uv pip install --no-deps -r requirements.lock -e .
# pip runs with --no-cache-dir and uv with an empty UV_CACHE_DIR, so every route downloads what it
# installs (CI starts cold). The installed versions of the routes are compared (pip freeze).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$here/bench/results/install_time.txt}")"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
UV_VERSION="$(sed -n 's/^UV_VERSION := //p' "$here/Makefile")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$here" "$work/clone"
cd "$work/clone"

secs() { local t0=$1; echo "$(( $(date +%s%N) / 1000000 - t0 ))" | awk '{printf "%.1f", $1/1000}'; }
now() { echo $(( $(date +%s%N) / 1000000 )); }

declare -A took
t=$(now); "$PYTHON" -m venv "$work/pip"
"$work/pip/bin/pip" install -q --no-cache-dir -e ".[dev,slurm]" 2>&1 | grep -v "is ignored" || true
took[pip]=$(secs "$t")

t=$(now); "$PYTHON" -m venv "$work/piplock"
"$work/piplock/bin/pip" install -q --no-cache-dir torch==2.13.0 2>&1 | grep -v "is ignored" || true
"$work/piplock/bin/pip" install -q --no-cache-dir --no-deps -r requirements.lock -e . 2>&1 | grep -v "is ignored" || true
took[pip-lock]=$(secs "$t")

export UV_CACHE_DIR="$work/uv-cache"
t=$(now); "$PYTHON" -m venv "$work/uv"
"$work/uv/bin/pip" install -q --no-cache-dir torch==2.13.0 "uv==$UV_VERSION" 2>&1 | grep -v "is ignored" || true
"$work/uv/bin/uv" pip install -q --python "$work/uv/bin/python" --no-deps -r requirements.lock -e .
took[uv-lock]=$(secs "$t")

freeze() { "$1/bin/python" -m pip freeze --exclude-editable 2>/dev/null | grep -v -E "^(uv|pip|setuptools|wheel)==" | sort; }
freeze "$work/pip" > "$work/pip.txt"; freeze "$work/piplock" > "$work/piplock.txt"; freeze "$work/uv" > "$work/uv.txt"
{
  echo "# bench/install_time.sh: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$here" rev-parse --short HEAD), $(nproc) cores"
  echo "# fresh clone, new venv per route, cold caches (pip --no-cache-dir, empty UV_CACHE_DIR), uv $UV_VERSION"
  printf "%-10s %8s\n" route seconds
  for r in pip pip-lock uv-lock; do printf "%-10s %8s\n" "$r" "${took[$r]}"; done
  awk -v a="${took[pip]}" -v b="${took[uv-lock]}" 'BEGIN{printf "speed-up of uv-lock over pip: %.1fx\n", a/b}'
  echo "packages installed: pip $(wc -l < "$work/pip.txt"), pip-lock $(wc -l < "$work/piplock.txt"), uv-lock $(wc -l < "$work/uv.txt")"
  if diff -q "$work/pip.txt" "$work/uv.txt" >/dev/null; then echo "pip and uv-lock installed the same versions"
  else echo "pip and uv-lock differ:"; diff "$work/pip.txt" "$work/uv.txt" || true; fi
  if diff -q "$work/piplock.txt" "$work/uv.txt" >/dev/null; then echo "pip-lock and uv-lock installed the same versions"
  else echo "pip-lock and uv-lock differ:"; diff "$work/piplock.txt" "$work/uv.txt" || true; fi
} | tee "$out"
