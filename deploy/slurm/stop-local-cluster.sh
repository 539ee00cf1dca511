#!/usr/bin/env bash
# Stop the cluster that start-local-cluster.sh started in DIR: slurmd, slurmctld, then munged, each by the pid
# in DIR/run. SIGTERM first, SIGKILL after 15 s; jobs still running are ended with slurmd. Safe to run twice.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR="$(cd "$1" 2>/dev/null && pwd)" || { echo "$0: no such folder: $1" >&2; exit 1; }

# job steps and batch scripts are children of slurmstepd, not of slurmd: end them first
if [ -e "$DIR/slurm.conf" ] && [ -e "$DIR/run/slurmctld.pid" ] && command -v scancel >/dev/null; then
    SLURM_CONF="$DIR/slurm.conf" timeout 10 scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
    sleep 1
fi

stop() {  # stop NAME: the daemon whose pid is in DIR/run/NAME.pid
    local pidfile="$DIR/run/$1.pid" pid
    [ -s "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$0: $1 (pid $pid) ignored SIGTERM for 15 s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}
stop slurmd
stop slurmctld
stop munged
# slurmstepd processes of this cluster's jobs, if any survived (they carry the spool dir on their command line
# only as children of slurmd; match them by their parent being gone and their conf being ours)
for pid in $(pgrep -x slurmstepd 2>/dev/null); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_CONF=$DIR/slurm.conf"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
exit 0
