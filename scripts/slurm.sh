#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for testing `ncood study run --executor slurm`
# (tests/slurm.rs runs when SLURM_CONF is set). Needs root (Debian).
#   scripts/slurm.sh start DIR   install slurm-wlm and munge if missing, start munged, slurmctld and
#                                slurmd with their config, state, logs and pid files in DIR, wait
#                                for the node to be idle, print `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm.sh stop DIR    stop what `start DIR` started, by the pids it recorded in DIR
# Starting twice is harmless: what runs already is left as it is.
set -euo pipefail
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# = 2 ] || usage
mkdir -p "$2"
dir=$(cd "$2" && pwd)
conf=$dir/slurm.conf

# Whether the pid in file $1 is a live process named $2 (a stale file may hold a reused pid).
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[1-9][0-9]*$ ]] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]
}

# Stops the process named $2 whose pid file is $1 (a positive pid, never a group), waiting up to
# 10 s for it to exit.
stop() {
  if alive "$1" "$2"; then
    local pid
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "slurm.sh: stopped $2 ($pid)" >&2
  fi
  rm -f "$1"
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
  fi

  # munge: one key per machine; a munged already running (ours or not) is used as it is and only
  # one started here is recorded, so `stop` ends only what `start` began.
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    head -c 1024 /dev/urandom >/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge
  chown munge:munge /run/munge
  if ! munge -n >/dev/null 2>&1; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --force
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
    cp /run/munge/munged.pid "$dir/munged.pid"
  fi

  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # RealMemory a little below the total, as slurmd refuses a node with less than it claims.
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool"
  # DefMemPerCPU: without a memory request per CPU, each job takes the whole node's memory and
  # array tasks run one after another.
  cat >"$conf" <<EOF
ClusterName=ncood
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
ReturnToService=2
DefMemPerCPU=1000
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$conf
  alive "$dir/slurmctld.pid" slurmctld || slurmctld -f "$conf"
  alive "$dir/slurmd.pid" slurmd || slurmd -f "$conf"
  for _ in $(seq 60); do
    [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && { echo "export SLURM_CONF=$conf"; return; }
    sleep 0.5
  done
  echo "slurm.sh: the node is not idle after 30 s; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  sinfo >&2 || true
  exit 1
}

case $1 in
  start) start ;;
  stop)
    stop "$dir/slurmd.pid" slurmd
    stop "$dir/slurmctld.pid" slurmctld
    stop "$dir/munged.pid" munged
    ;;
  *) usage ;;
esac
