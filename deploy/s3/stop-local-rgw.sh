#!/usr/bin/env bash
# Stop the gateway, OSD and monitor that start-local-rgw.sh started in DIR (by their pid files), and wait for them.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR="$1"
for name in client.rgw.a osd.0 mon.a; do
    pidfile="$DIR/run/$name.pid"
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || { rm -f "$pidfile"; continue; }
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
done
