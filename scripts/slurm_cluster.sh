#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, for `snakemake --profile profiles/slurm`
# and tests/test_slurm.py. Debian's slurmctld/slurmd/slurm-client/munge, no slurmdbd, no systemd
# (the daemons run detached, as root). Recipe and pitfalls: ../shared/slurm/README.md.
#
#   scripts/slurm_cluster.sh start    install when missing, write /etc/slurm/slurm.conf, start daemons
#   scripts/slurm_cluster.sh stop     cancel the jobs, stop only the daemons `start` started (by pid)
#   scripts/slurm_cluster.sh status
#
# State, logs and pid files live in $ATLAS_FORGE_SLURM_DIR (default /tmp/atlas-forge-slurm).
# It changes the system (packages, /etc/slurm), hence root only. One cluster per host: the ports
# (6817/6818) and /etc/slurm/slurm.conf are global, and the jobstep plugin's nested srun ignores
# SLURM_CONF, so the config cannot live anywhere else.
set -euo pipefail

D=${ATLAS_FORGE_SLURM_DIR:-/tmp/atlas-forge-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by atlas-forge scripts/slurm_cluster.sh"

die() { echo "slurm_cluster: $*" >&2; exit 1; }

alive() { [ -s "$D/$1.pid" ] && kill -0 "$(cat "$D/$1.pid")" 2>/dev/null; }

ready() { [ "$(sinfo -h -o %T 2>/dev/null | head -n1)" = idle ] || [ "$(sinfo -h -o %T 2>/dev/null | head -n1)" = mixed ]; }

start() {
  [ "$(id -u)" = 0 ] || die "needs root (installs packages, writes $CONF, starts daemons)"
  mkdir -p "$D"/{state,spool,log}

  if alive slurmctld && alive slurmd; then
    echo "slurm_cluster: already running (started from $D)"; sinfo; return 0
  fi
  # a cluster this script did not start is someone else's: never reconfigure or stop it
  if command -v scontrol >/dev/null && timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
    die "a SLURM controller not started by this script answers on this host; leaving it alone"
  fi

  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sinfo >/dev/null \
     || ! command -v munged >/dev/null; then
    echo "slurm_cluster: installing slurmctld slurmd slurm-client munge (log: $D/log/apt.log)"
    apt-get update -qq >"$D/log/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >>"$D/log/apt.log" 2>&1 || { tail -20 "$D/log/apt.log"; die "apt-get failed"; }
  fi

  # munge: the package's postinst creates the key; make sure, and start munged only when none answers
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged   # daemonises and writes /run/munge/munged.pid
    cp /run/munge/munged.pid "$D/munged.pid"
  fi

  # keep a config that is not ours, and put it back on stop
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF" && [ ! -f "$D/slurm.conf.orig" ]; then
    cp -p "$CONF" "$D/slurm.conf.orig"
  fi
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # RealMemory above what slurmd detects makes the node unusable: stay at 80% of it
  mem=$(( $(free -m | awk '/^Mem:/{print $2}') * 80 / 100 ))
  mkdir -p /etc/slurm
  cat >"$CONF" <<EOF
$MARK (state in $D)
ClusterName=atlasforge
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# no accounting database: the Snakemake plugin must ask squeue (profiles/slurm), sacct would hang it
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# finished jobs stay visible to squeue this long; must be >= 3x the plugin's first status delay
MinJobAge=300
KillWait=5
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

  # -i: no saved state on a first start; the daemons write their own pid files (above)
  setsid slurmctld -D -i >"$D/log/slurmctld.out" 2>&1 </dev/null &
  for _ in $(seq 60); do timeout 5 scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
  setsid slurmd -D >"$D/log/slurmd.out" 2>&1 </dev/null &
  for _ in $(seq 120); do ready && break; sleep 0.5; done
  if ! ready; then
    tail -20 "$D/log/slurmctld.log" "$D/log/slurmd.log" 2>/dev/null || true
    stop
    die "the node never became idle (logs in $D/log)"
  fi
  sinfo
}

stop() {
  # jobs first, while the controller can still cancel them
  if alive slurmctld; then scancel --user="$(id -un)" 2>/dev/null || true; fi
  local f p
  for f in slurmd slurmctld munged; do
    [ -s "$D/$f.pid" ] || continue
    p=$(cat "$D/$f.pid")
    if kill "$p" 2>/dev/null; then
      for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    fi
    rm -f "$D/$f.pid"
  done
  if [ -f "$D/slurm.conf.orig" ]; then
    mv -f "$D/slurm.conf.orig" "$CONF"
  elif [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then
    rm -f "$CONF"
  fi
}

status() {
  if alive slurmctld && alive slurmd; then sinfo; squeue; else echo "slurm_cluster: not running"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
