#!/usr/bin/env bash
# One server, one workload, one line: for A/B loops that alternate builds or servers
# (bench/net/compare.sh runs the whole matrix). The server is pinned to core 0 and
# warren-loadgen to core 1, as in compare.sh.
#
#   bench/net/run-one.sh <warren|gateway> <tls|plain> <loadgen workload and args...>
#   e.g. for b in old new; do BUILD=$b bench/net/run-one.sh gateway plain stream -n 100 -w 10 -s 64; done
#
# Environment: BUILD (build/release: the server's build), LOADGEN (the loadgen binary;
# default: $BUILD's), SECONDS_PER_RUN (8), PORT (from the PID), RENICE (renice the
# server's CAF threads to this value after start; default: as the server sets them),
# OUT (/tmp/warren-bench), SCHED_BATCH (1; 0: the server's threads keep SCHED_OTHER),
# CODEC (line, or frame).
# Prints rate and server CPU per connection and per message.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/net/gateway-conf.sh
kind=$1 sec=$2
shift 2
B=${BUILD:-build/release}
LG=${LOADGEN:-$B/apps/loadgen/warren-loadgen}
OUT=${OUT:-/tmp/warren-bench}
T=${SECONDS_PER_RUN:-8}
PORT=${PORT:-$((30000 + $$ % 2000))}
CODEC=${CODEC:-line}
CERT=$OUT/cert
mkdir -p "$OUT"
[ -f "$CERT/cert.pem" ] || scripts/make-test-cert "$CERT"
if [ "$kind" = gateway ]; then
  conf=$OUT/run-one-$PORT.toml
  gateway_conf "$conf" "$PORT" "$sec" "$CODEC" "$OUT" "$CERT"
  taskset -c 0 "$B/apps/gateway/warren-gateway" -c "$conf" >"$OUT/run-one.log" 2>&1 &
else
  args=("$PORT")
  [ "$sec" = tls ] && args+=("$CERT/cert.pem" "$CERT/key.pem")
  WARREN_IO_THREADS=1 WARREN_SCHED_THREADS=1 WARREN_CODEC=$CODEC WARREN_SCHED_BATCH=${SCHED_BATCH:-1} \
    taskset -c 0 "$B/actors/net/warren-net-echo" "${args[@]}" >"$OUT/run-one.log" 2>&1 &
fi
SPID=$!
trap 'kill "$SPID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  kill -0 "$SPID" 2>/dev/null || { cat "$OUT/run-one.log" >&2; exit 1; }
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
if [ -n "${RENICE:-}" ]; then
  main_comm=$(cat "/proc/$SPID/comm")
  for t in /proc/"$SPID"/task/*; do
    [ "$(cat "$t/comm")" != "$main_comm" ] && renice -n "$RENICE" -p "$(basename "$t")" >/dev/null
  done
fi
tls=()
[ "$sec" = tls ] && tls=(--tls --tls-version 1.3)
c0=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
json=$OUT/run-one-$PORT.json
taskset -c 1 "$LG" "$@" -p "$PORT" "${tls[@]}" -d "$T" --codec "$CODEC" -q >"$json" 2>/dev/null || true
c1=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
python3 - "$json" "$((c1 - c0))" "$(getconf CLK_TCK)" "$kind $sec $CODEC $1 (${RENICE:+nice $RENICE, }$B)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cpu = int(sys.argv[2]) / int(sys.argv[3])
print(f"{sys.argv[4]}: {d['connections_per_s']:.0f} conn/s {d['messages_per_s']:.0f} msg/s "
      f"cpu {cpu * 1e3 / max(d['completed'], 1):.3f} ms/conn {cpu * 1e6 / max(d['messages_received'], 1):.2f} us/msg "
      f"p99 {d['latency_ms']['p99']:.2f} ms")
PY
