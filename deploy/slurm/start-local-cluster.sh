#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine: munged, slurmctld and slurmd, everything inside DIR.
#
#   deploy/slurm/start-local-cluster.sh DIR        # starts it, prints the line to paste
#   export SLURM_CONF=DIR/slurm.conf               # then sinfo, sbatch, srun, hydra/launcher=slurm work
#   deploy/slurm/stop-local-cluster.sh DIR         # stops the three daemons
#
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge); the tests marked `cluster` start it
# the same way (tests/cluster_engines.py). The node gets this machine's CPUs and 90% of its memory; processes
# are tracked through /proc (proctrack/linuxproc), so no cgroup tree is needed: it runs in containers too.
# Ports are free ones picked at start (SLURMCTLD_PORT / SLURMD_PORT to choose them). Tested as root; the
# daemons and jobs run as the user who starts it. On any failure the daemons already started are stopped
# and the last lines of their logs are printed.
set -euo pipefail

usage() { echo "usage: $0 DIR  (an empty or new folder that will hold the cluster's config, state and logs)" >&2; }
[ $# -eq 1 ] || { usage; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live there; a user's PATH may lack it
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
for tool in munged mungekey slurmctld slurmd sinfo python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found: apt-get install slurm-wlm munge" >&2; exit 1; }
done
if [ -e "$DIR/run/slurmctld.pid" ]; then
    echo "$0: $DIR already holds a cluster (run/slurmctld.pid); stop it first: $HERE/stop-local-cluster.sh $DIR" >&2
    exit 1
fi
mkdir -p "$DIR"/{munge,state,spool,run,log}
chmod 700 "$DIR/munge"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT="${SLURMCTLD_PORT:-$(free_port)}"
SLURMD_PORT="${SLURMD_PORT:-$(free_port)}"
CPUS="$(nproc)"
MEMORY_MB="$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)"

sed -e "s|@DIR@|$DIR|g" -e "s|@USER@|$(id -un)|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" \
    -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEMORY_MB@|$MEMORY_MB|g" \
    "$HERE/slurm.conf.in" > "$DIR/slurm.conf"
export SLURM_CONF="$DIR/slurm.conf"
printf 'export SLURM_CONF=%s\n' "$SLURM_CONF" > "$DIR/env.sh"

fail() {
    echo "$0: $1" >&2
    for log in munged slurmctld slurmd; do
        [ -s "$DIR/log/$log.log" ] && { echo "--- $DIR/log/$log.log" >&2; tail -n 15 "$DIR/log/$log.log" >&2; }
    done
    "$HERE/stop-local-cluster.sh" "$DIR" >&2 || true
    exit 1
}
trap 'fail "a command failed (line $LINENO)"' ERR

# munge: the authentication every SLURM message carries; its own key and socket, not the system's
mungekey --create --keyfile="$DIR/munge/munge.key" --force
munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed" \
    || fail "munged did not start"

slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"

# ready when the node is idle (ReturnToService=2 brings it up as soon as slurmd registers)
for _ in $(seq 1 120); do
    state="$(sinfo -h -N -o %T 2>/dev/null || true)"
    [ "$state" = "idle" ] && break
    sleep 0.5
done
[ "${state:-}" = "idle" ] || fail "the node did not become idle within 60 s (sinfo says: '${state:-nothing}')"
trap - ERR
echo "SLURM is up: 1 node, $CPUS CPUs, ${MEMORY_MB} MB, partition 'local', slurmctld on port $CTLD_PORT"
echo "export SLURM_CONF=$SLURM_CONF"
