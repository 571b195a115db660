#!/usr/bin/env bash
# Cluster measurement 2: registration. A connect storm of N_REG devices per node (3 loadgens at
# once, as fast as they go, --max-inflight 200 each) against 3 gateway nodes; a prober
# (bench/cluster/probe.cpp watch) asks each device from ANOTHER node's NATS server (node 1's devices
# from s2, node 2's from s3, node 3's from s1) until `delivered`. Reported: devices reachable
# cluster-wide per second (all devices / (last reachable - first connect start)), and p50/p99 from
# connect start (loadgen --connect-log) and from connection ready (TLS done, id line queued) to first
# delivered reply. Then the same over plain TCP (N_PLAIN per node), then Erlang's `global` and `pg`
# on 3 local nodes (bench/erlang/registry_bench.erl), in the same run.
#
#   flock /tmp/warren-cpu.lock bench/cluster/register.sh       # about 4 minutes
#
# Servers on core $SCPU; loadgens and the prober on $LCPU; the Erlang nodes unpinned (both cores).
source "$(dirname "$0")/lib.sh"
N=${N_REG:-6000}
NP=${N_PLAIN:-10000}

analyse() { # analyse label n
  python3 - "$OUT" "$1" "$2" <<'PY'
import sys
out, label, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = {}
for i in (1, 2, 3):
    for line in open(f"{out}/connect-r{label}{i}-.log"):
        id_, t0, ready = line.split()
        conn[id_] = (int(t0), int(ready))
reach = {}
for line in open(f"{out}/reach-{label}.txt"):
    id_, t = line.split()
    reach[id_] = int(t)
both = [k for k in reach if k in conn]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * (len(v) - 1) + 0.5))]
from_start = [(reach[k] - conn[k][0]) / 1e6 for k in both]
from_ready = [(reach[k] - conn[k][1]) / 1e6 for k in both]
t_first = min(c[0] for c in conn.values())
t_last = max(reach.values())
connected_span = (max(c[1] for c in conn.values()) - t_first) / 1e9
span = (t_last - t_first) / 1e9
print(f"{label}: {len(conn)} of {3 * n} connected, {len(reach)} reachable; "
      f"{len(reach) / span:.0f} devices/s reachable cluster-wide ({span:.2f} s from the first connect to the last reachable; "
      f"connections alone: {len(conn) / connected_span:.0f}/s over {connected_span:.2f} s)")
print(f"{label}: connect start -> reachable from another node: p50 {pct(from_start, 50):.2f} ms, p99 {pct(from_start, 99):.2f} ms, max {max(from_start):.2f} ms")
print(f"{label}: connection ready -> reachable from another node: p50 {pct(from_ready, 50):.2f} ms, p99 {pct(from_ready, 99):.2f} ms, max {max(from_ready):.2f} ms")
PY
}

storm() { # storm tls|plain n [rate per node]
  local sec=$1 n=$2 rate=${3:-}
  local pace=(--max-inflight 200)
  [ -n "$rate" ] && pace+=(-r "$rate")
  start_cluster local
  local files=()
  for i in 1 2 3; do ids_file "r$sec$i-" "$n" >/dev/null; done
  # node i's devices watched from server i+1; paced: id k not asked before its launch time
  local sched=() start
  start=$(($(mono_ns) + 1000000000))
  [ -n "$rate" ] && sched=(--sched "$start" "$rate")
  taskset -c "$LCPU" "$PROBE" watch "$OUT/reach-$sec.txt" 90 "${sched[@]}" \
    "nats://127.0.0.1:$(nats_port 2)=$OUT/ids-r${sec}1-$n.txt" \
    "nats://127.0.0.1:$(nats_port 3)=$OUT/ids-r${sec}2-$n.txt" \
    "nats://127.0.0.1:$(nats_port 1)=$OUT/ids-r${sec}3-$n.txt" >"$OUT/watch-$sec.out" &
  local probe=$!
  PIDS+=($probe)
  local lgs=() c0=() c1=() p t0 t1
  for p in "${GW_PID[@]}" "${NATS_PID[@]}"; do c0+=("$(cpu_ticks "$p")"); done
  python3 -c "import time; time.sleep(max(0, ($start - time.clock_gettime_ns(time.CLOCK_MONOTONIC)) / 1e9))"
  t0=$(date +%s.%N)
  for i in 1 2 3; do
    loadgen_idle "$i" "r$sec$i-" "$n" 100 "$sec" "${pace[@]}"
    lgs+=("$LG_PID")
  done
  wait "$probe" || true
  t1=$(date +%s.%N)
  for p in "${GW_PID[@]}" "${NATS_PID[@]}"; do c1+=("$(cpu_ticks "$p")"); done
  cat "$OUT/watch-$sec.out"
  python3 - "$t0" "$t1" "$(getconf CLK_TCK)" "${c0[*]}" "${c1[*]}" <<'PY'
import sys
t0, t1, hz = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
c0, c1 = [int(x) for x in sys.argv[4].split()], [int(x) for x in sys.argv[5].split()]
pct = [round((b - a) / hz / (t1 - t0) * 100) for a, b in zip(c0, c1)]
print(f"core-0 CPU from the storm's start to the last device reachable ({t1 - t0:.1f} s): gateways {pct[:3]} %, "
      f"nats-servers {pct[3:]} %, total {sum(pct)} % of one core")
PY
  for i in 1 2 3; do
    echo "  gateway node-$i: $(curl -s "http://127.0.0.1:$(gw_admin "$i")/metrics" | grep -E '^warren_cluster_(no_responders|request_timeouts|claims_lost|takeovers_in|takeovers_out)_total' | tr '\n' ' ')"
  done
  for p in "${lgs[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${lgs[@]}"; do wait "$p" 2>/dev/null || true; done
  for i in 1 2 3; do
    jq_py "$OUT/lg-r$sec$i-.json" "'loadgen r$sec$i-:', d['completed'], 'opened, failed', d['failed'], d['failed_by_reason'], 'connect p50/p99 ms', d['connect_ms']['p50'], d['connect_ms']['p99']"
  done
  analyse "$sec" "$n"
  stop_all
}

echo "== storm: TLS, 3 x $N devices, as fast as the loadgens go ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
storm tls "$N"
echo "== paced: TLS, 3 x 3000 devices at 150/s per node ($(date -u +%H:%M:%S))"
storm tls 3000 150
echo "== storm: plain TCP, 3 x $NP devices, as fast as the loadgens go ($(date -u +%H:%M:%S))"
storm plain "$NP"
echo "== paced: plain TCP, 3 x 6000 devices at 1000/s per node ($(date -u +%H:%M:%S))"
storm plain 6000 1000
echo "== Erlang/OTP global and pg, 3 local nodes ($(date -u +%H:%M:%S))"
erlc -o "$OUT" bench/erlang/registry_bench.erl
erl -noshell -pa "$OUT" -s registry_bench main
