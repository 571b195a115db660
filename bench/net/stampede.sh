#!/usr/bin/env bash
# Issue 13 item 3: a reconnect stampede and a slowloris against warren-gateway (TLS 1.3,
# echo backend, one io thread, one CAF thread), before and after a change.
#
#   bench/net/stampede.sh GATEWAY_BINARY...      e.g. /tmp/before/warren-gateway build/release/apps/gateway/warren-gateway
#
# stampede: PARTS warren-loadgen processes (2,500 connections each, 10,000 in all) open
#   every TLS connection at once (--rate 0, in-flight = all; connect and handshake
#   timeouts 30 s) and hold them; meanwhile one device connected before sends a line
#   every 20 ms (tls_probe.py echo): its echo p99. Prints connections served, failed
#   (by reason), the time until the last one was served, the probe's p50/p99/max.
# slowloris: 3,000 connections trickle a ClientHello (tls_probe.py slowloris) while an
#   honest device connects 5 times a second (warren-loadgen churn): connect+handshake
#   latency (p50/p99/max).
#
# The accept queue is capped by net.core.somaxconn; to size it without touching the
# machine, run the script in its own network namespace (as root):
#   unshare -n bash -c 'ip link set lo up; sysctl -qw net.core.somaxconn=16384; bench/net/stampede.sh ...'
# Environment: LOADGEN (build/release/apps/loadgen/warren-loadgen), OUT (/tmp/warren-bench),
# PARTS (4), PER_PART (2500), SLOW (3000), PORT (from the PID), BACKLOG (the gateway's default),
# CASES ("stampede slowloris").
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/net/gateway-conf.sh
LG=${LOADGEN:-build/release/apps/loadgen/warren-loadgen}
OUT=${OUT:-/tmp/warren-bench}
PARTS=${PARTS:-4}
PER_PART=${PER_PART:-2500}
SLOW=${SLOW:-3000}
PORT=${PORT:-$((20000 + $$ % 10000))}
CERT=$OUT/cert
mkdir -p "$OUT"
[ -f "$CERT/cert.pem" ] || scripts/make-test-cert "$CERT"
PY=bench/net/tls_probe.py

start_gateway() { # <binary>: sets GPID
  PORT=$((PORT + 1))
  local conf=$OUT/stampede-$PORT.toml
  gateway_conf "$conf" "$PORT" tls line "$OUT" "$CERT"
  sed -i 's/^max_connections = .*/max_connections = 0/' "$conf" # the default: the open-file budget
  [ -z "${BACKLOG:-}" ] || sed -i "s/^max_connections = 0/max_connections = 0\nbacklog = $BACKLOG/" "$conf"
  "$1" -c "$conf" >"$OUT/stampede-gw.log" 2>&1 &
  GPID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "gateway did not start" >&2
  cat "$OUT/stampede-gw.log" >&2
  exit 1
}
stop_gateway() {
  kill -TERM "$GPID" 2>/dev/null || true
  wait "$GPID" 2>/dev/null || true
}

sum_json() { # <key expression> files...: sum, or max with MAX=1
  local expr=$1
  shift
  python3 -c "
import json,sys
vals=[eval(sys.argv[1],{},{'d':json.load(open(f))}) for f in sys.argv[2:]]
print(round(max(vals),2) if '${MAX:-0}'=='1' else sum(vals))" "$expr" "$@"
}

stampede() {
  start_gateway "$1"
  python3 $PY echo "$PORT" 40 >"$OUT/probe.json" &
  local probe=$!
  sleep 2
  local pids=()
  for i in $(seq "$PARTS"); do
    "$LG" idle -p "$PORT" --tls --tls-version 1.3 -n "$PER_PART" --rate 0 --max-inflight "$PER_PART" \
      --connect-timeout 30 --handshake-timeout 30 -d 34 -q --tag "part$i" >"$OUT/stampede.$i.json" \
      2>"$OUT/stampede.$i.err" &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  wait "$probe" || true
  stop_gateway
  local files=("$OUT"/stampede.[0-9]*.json)
  printf '| stampede %s × %s | %s | served %s, failed %s %s | last served at %s s | probe echo p50 / p99 / max %s ms |\n' \
    "$PARTS" "$PER_PART" "$1" "$(sum_json "d['completed']" "${files[@]}")" "$(sum_json "d['failed']" "${files[@]}")" \
    "$(python3 -c "
import json,sys,collections
c=collections.Counter()
for f in sys.argv[1:]: c.update(json.load(open(f)).get('failed_by_reason',{}))
print(dict(c) if c else '')" "${files[@]}")" \
    "$(MAX=1 sum_json "d['active_s']" "${files[@]}")" \
    "$(python3 -c "import json; d=json.load(open('$OUT/probe.json')); print(d['p50_ms'], '/', d['p99_ms'], '/', d['max_ms'])")"
  rm -f "${files[@]}"
}

slowloris() {
  start_gateway "$1"
  python3 $PY slowloris "$PORT" "$SLOW" 22 >"$OUT/slowloris.json" &
  local slow=$!
  sleep 7 # all open, the first ones already timed out and reopened
  "$LG" churn -p "$PORT" --tls --tls-version 1.3 --rate 5 -d 12 --connect-timeout 30 --handshake-timeout 30 \
    -t 30 -q >"$OUT/honest.json" 2>"$OUT/honest.err" || true
  wait "$slow" || true
  stop_gateway
  python3 - "$1" "$OUT/honest.json" "$OUT/slowloris.json" <<'PYEOF'
import json, sys
h = json.load(open(sys.argv[2])); s = json.load(open(sys.argv[3])); c = h["connect_ms"]
print(f"| slowloris {s['opened']} opened ({s['closed_by_server']} closed by the server) | {sys.argv[1]} | "
      f"honest device: {h['completed']} of {h['attempted']} served | connect+handshake p50 {c['p50']} / "
      f"p99 {c['p99']} / max {c['max']} ms |")
PYEOF
}

for gw in "$@"; do
  for c in ${CASES:-stampede slowloris}; do
    "$c" "$gw"
  done
done
