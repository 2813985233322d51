#!/usr/bin/env bash
# Issue 20: time the README's commands on a fresh clone, install included, so the next change that
# slows them is seen. Each command gets its own fresh clone (and so its own install, with a cold uv
# cache, as CI starts); the clone sits beside a `shared` link so ../shared/corpora resolves as here.
#
#   bash bench/readme_commands.sh [pipeline] [test] [check]     (default: pipeline test)
#
# Writes bench/results/readme_commands.txt (wall time and peak RSS per command, appended) and, for
# test/check, the `pytest --durations=25` table to bench/results/test_durations.txt (per tier).
# Targets (issue 20): make pipeline < 3 min, make test < 8 min, make check < 30 min on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
results="$here/bench/results"
cmds=("$@"); [ ${#cmds[@]} -gt 0 ] || cmds=(pipeline test)
commit="$(git -C "$here" rev-parse --short HEAD)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -e "$here/../shared" ] && ln -s "$(realpath "$here/../shared")" "$work/shared"

for cmd in "${cmds[@]}"; do
  clone="$work/$cmd/atlas-forge"
  mkdir -p "$work/$cmd"
  [ -e "$work/shared" ] && ln -s "$work/shared" "$work/$cmd/shared"
  git clone -q "$here" "$clone"
  log="$work/$cmd.log"
  start=$(date +%s)
  rc=0
  ( cd "$clone" && UV_CACHE_DIR="$work/uv-cache-$cmd" /usr/bin/time -v make "$cmd" ) > "$log" 2>&1 || rc=$?
  secs=$(( $(date +%s) - start ))
  cp "$log" "${TMPDIR:-/tmp}/readme_commands_$cmd.log"  # the clone is removed on exit; the log stays
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log" | tail -1)
  line=$(printf "%s  commit %s  make %-8s %4d s (%d min %02d s)  exit %d  peak RSS of make %s MB" \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$commit" "$cmd" "$secs" $((secs / 60)) $((secs % 60)) "$rc" \
    "$(( ${rss:-0} / 1024 ))")
  echo "$line" | tee -a "$results/readme_commands.txt"
  if [ "$cmd" = test ] || [ "$cmd" = check ]; then
    tier=$([ "$cmd" = test ] && echo 'make test (-n 2 -m "not slow")' || echo "make check (whole suite)")
    {
      echo "## $tier: $(date -u +%Y-%m-%d), commit $commit, fresh clone, ${secs} s with the install"
      sed -n '/slowest 25 durations/,/passed\|failed/p' "$log"
      echo
    } > "$work/$cmd.durations"
    # keep the other tier's section, replace this one's
    python3 - "$results/test_durations.txt" "$work/$cmd.durations" "$cmd" <<'PY'
import re, sys
from pathlib import Path
path, new, cmd = Path(sys.argv[1]), Path(sys.argv[2]).read_text(), sys.argv[3]
head = "# pytest --durations=25 of both tiers (bench/readme_commands.sh test check)\n\n"
old = path.read_text() if path.exists() else head
parts = {m.group(1): m.group(0) for m in re.finditer(r"(?ms)^## make (\w+).*?(?=^## make |\Z)", old)}
parts[cmd] = new
path.write_text(head + "".join(parts[k] for k in ("test", "check") if k in parts))
PY
  fi
  [ "$rc" = 0 ] || { tail -40 "$log"; exit "$rc"; }
done
