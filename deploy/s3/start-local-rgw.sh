#!/usr/bin/env bash
# Start a real S3 server on this machine: Ceph's RADOS Gateway over a one-node Ceph cluster (one monitor, one
# in-memory OSD), everything inside DIR, listening on 127.0.0.1 only.
#
#   deploy/s3/start-local-rgw.sh DIR               # starts it, prints the endpoint
#   radosgw-admin -c DIR/ceph.conf user create --uid=me --display-name=me   # prints an access and a secret key
#   export AWS_ENDPOINT_URL=https://127.0.0.1:PORT AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
#   export AWS_CA_BUNDLE=DIR/ca.crt SSL_CERT_FILE=DIR/ca.crt       # trust its certificate (boto3; obstore)
#   export AWS_REQUEST_CHECKSUM_CALCULATION=when_required         # boto3 >= 1.36 uploads: this RGW lacks trailers
#   deploy/s3/stop-local-rgw.sh DIR                # stops the three daemons (the objects go with the OSD)
#
# Needs Debian's ceph-mon, ceph-osd and radosgw (apt-get install ceph-mon ceph-osd radosgw); the tests marked
# `cluster` start it the same way (tests/s3_engine.py). For tests and trying `data.uri=s3://...` out: no cephx
# authentication between the daemons (they listen on 127.0.0.1 only), one replica, objects in memory (memstore,
# at most 1 GiB). S3 requests are still signed with the user's keys, over HTTPS with a certificate made for
# 127.0.0.1 at start (LitData's chunk downloader, obstore, refuses a plain-http endpoint). Ports are free ones picked at start
# (MON_PORT / RGW_PORT to choose them). Starts in a few seconds.
set -euo pipefail

usage() { echo "usage: $0 DIR  (an empty or new folder that will hold the cluster's config, data and logs)" >&2; }
[ $# -eq 1 ] || { usage; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
for tool in monmaptool ceph-mon ceph-osd radosgw ceph python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found: apt-get install ceph-mon ceph-osd radosgw" >&2; exit 1; }
done
if [ -e "$DIR/run/mon.a.pid" ]; then
    echo "$0: $DIR already holds a gateway (run/mon.a.pid); stop it first: $HERE/stop-local-rgw.sh $DIR" >&2
    exit 1
fi
mkdir -p "$DIR"/{mon,osd,rgw,run,log}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MON_PORT="${MON_PORT:-$(free_port)}"
RGW_PORT="${RGW_PORT:-$(free_port)}"
FSID="$(python3 -c 'import uuid; print(uuid.uuid4())')"
# HTTPS: LitData's chunk downloads (obstore) refuse plain http. A throwaway CA (ca.crt: what clients trust) signs
# the gateway's certificate for 127.0.0.1 (rustls refuses a self-signed CA certificate as the server's own).
tls() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=deepfake_lightning local S3 CA" \
        -keyout "$DIR/ca.key" -out "$DIR/ca.crt" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$DIR/tls.key" -out "$DIR/tls.csr" &&
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$DIR/tls.ext" &&
    openssl x509 -req -in "$DIR/tls.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial -days 30 \
        -extfile "$DIR/tls.ext" -out "$DIR/tls.crt"
}
tls 2>/dev/null >/dev/null || { echo "$0: openssl could not make the certificates" >&2; exit 1; }
cat > "$DIR/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = [v1:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
# a throwaway monitor holds a few MB: its default refusal to start below 5% free disk (mon data avail crit) stopped
# it on a 252 GB disk with 7.8 GB free, so the guard is off here
mon data avail crit = 0
mon data avail warn = 0
osd pool default pg autoscale mode = off
osd objectstore = memstore
memstore device bytes = 1073741824
osd crush chooseleaf type = 0
run dir = $DIR/run
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
[mon.a]
mon data = $DIR/mon
[osd.0]
osd data = $DIR/osd
[client.rgw.a]
rgw frontends = beast ssl_endpoint=127.0.0.1:$RGW_PORT ssl_certificate=$DIR/tls.crt ssl_private_key=$DIR/tls.key
rgw data = $DIR/rgw
CONF
C=(-c "$DIR/ceph.conf")
fail() {
    echo "$0: $1; last log lines:" >&2
    tail -n 5 "$DIR"/log/*.log >&2 || true
    "$HERE/stop-local-rgw.sh" "$DIR" >/dev/null 2>&1 || true
    exit 1
}
monmaptool --create --addv a "[v1:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$DIR/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap" || fail "ceph-mon --mkfs failed"
timeout 60 ceph-mon "${C[@]}" -i a || fail "ceph-mon did not start"
OSD_UUID="$(python3 -c 'import uuid; print(uuid.uuid4())')"
# a new monitor refuses commands ("wrong fsid", EPERM) for a moment after it starts: each step is tried again
retry() {  # retry WHAT COMMAND...: up to 30 tries, 2 s apart
    local what="$1" try
    shift
    for try in $(seq 30); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 2
    done
    fail "$what"
}
retry "the monitor did not answer in 60 s" timeout 20 ceph "${C[@]}" health
retry "the monitor did not take the OSD" timeout 20 ceph "${C[@]}" osd new "$OSD_UUID" 0
ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" >/dev/null 2>&1 || fail "ceph-osd --mkfs failed"
retry "ceph-osd did not start" timeout 60 ceph-osd "${C[@]}" -i 0
timeout 90 radosgw "${C[@]}" -n client.rgw.a || fail "radosgw did not start in 90 s"
for _ in $(seq 120); do  # the gateway creates its pools, then listens
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $RGW_PORT), 1)" 2>/dev/null; then
        echo "S3 endpoint: https://127.0.0.1:$RGW_PORT  CA certificate: $DIR/ca.crt"
        exit 0
    fi
    sleep 0.5
done
fail "radosgw did not listen on 127.0.0.1:$RGW_PORT within 60 s"
