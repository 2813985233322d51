#!/usr/bin/env bash
# Issue 20: does pytest-xdist help on this 2-core machine? The fast tier (make test's selection) run
# twice in one session, serial and with `-n 2`, each in a fresh basetemp (so each builds the default
# once: under xdist the two workers share it through tests/conftest.py's lock).
#
#   bash bench/xdist.sh [OUT]        (default OUT: bench/results/xdist.txt)
#
# Installs pytest-xdist into the venv if missing (it is not in requirements.lock unless it helps).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$here/bench/results/xdist.txt}")"
py="$here/.venv/bin/python"
"$py" -c "import xdist" 2>/dev/null || "$here/.venv/bin/uv" pip install -q --python "$py" pytest-xdist
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 DVC_NO_ANALYTICS=1 TOKENIZERS_PARALLELISM=false
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$here"
run() {  # name, pytest args...
  local name=$1; shift
  local t0=$(date +%s)
  "$py" -m pytest -q -m "not slow" -p no:cacheprovider --basetemp="$work/$name" "$@" > "$work/$name.log" 2>&1 || true
  echo "$name $(( $(date +%s) - t0 )) $(tail -1 "$work/$name.log")"
}
serial=$(run serial -p no:xdist)
xdist=$(run xdist2 -n 2)
{
  echo "# bench/xdist.sh: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores, xdist $("$py" -c 'import xdist; print(xdist.__version__)')"
  echo "# pytest -m 'not slow' (the make test tier), fresh basetemp each"
  echo "serial:  ${serial#serial }"
  echo "-n 2:    ${xdist#xdist2 }"
  s=$(echo "$serial" | cut -d' ' -f2); x=$(echo "$xdist" | cut -d' ' -f2)
  awk -v s="$s" -v x="$x" 'BEGIN{printf "ratio serial / -n 2: %.2f\n", s/x}'
} | tee "$out"
