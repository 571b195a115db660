#!/usr/bin/env bash
# Cluster measurement 3: kill -9 of a gateway node holding devices. 10 kills; kill k takes node
# ((k-1) mod 3) + 1, which first gets N_KILL idle TLS devices. A prober on a surviving node's NATS
# server (bench/cluster/probe.cpp gone) asks 500 random devices of the victim until each is delivered,
# sends SIGKILL itself, and asks each again (1 ms after every reply, again after 20 ms without one)
# until the server answers "no responders". Reported: per kill, p50/p99/max of kill -> no responders
# over the 500 devices; over all kills, p50/p99 of the 5,000 values. The victim is restarted after
# each kill.
#
#   flock /tmp/warren-cpu.lock bench/cluster/kill.sh       # about 1.5 minutes
#
# Environment: N_KILL (2000 devices on the victim), KILLS (10), SAMPLE (500 devices asked), OBSERVER (next: the next node's server,
# a survivor; self: the victim's own server, which survives the gateway: no route hop).
source "$(dirname "$0")/lib.sh"
N=${N_KILL:-2000}
KILLS=${KILLS:-10}
start_cluster local
: >"$OUT/gone.txt"
for k in $(seq 1 "$KILLS"); do
  v=$(((k - 1) % 3 + 1))
  obs=$((v % 3 + 1))
  [ "${OBSERVER:-next}" = self ] && obs=$v
  loadgen_idle "$v" "k$k-" "$N" 60 tls --max-inflight 200
  lg=$LG_PID
  for _ in $(seq 300); do
    c=$(curl -s "http://127.0.0.1:$(gw_admin "$v")/healthz" | python3 -c "import json,sys; print(json.load(sys.stdin)['connections'])")
    [ "$c" -ge "$N" ] && break
    sleep 0.2
  done
  sleep 0.5 # claim_settle
  ids=$(ids_file "k$k-" "$N")
  line=$(taskset -c "$LCPU" "$PROBE" gone "nats://127.0.0.1:$(nats_port "$obs")" "$ids" "${SAMPLE:-500}" "$k" "${GW_PID[$v]}")
  echo "kill $k: node-$v (held $c devices), seen from s$obs: $(python3 -c "
import sys
v = sorted(float(x) for x in sys.argv[1].split()[1:])
p = lambda q: v[min(len(v) - 1, int(q / 100 * (len(v) - 1) + 0.5))]
print(f'n={len(v)} p50 {p(50):.2f} ms, p99 {p(99):.2f} ms, max {v[-1]:.2f} ms, min {v[0]:.2f} ms' + (' (some never gone: -1)' if v[0] < 0 else ''))
" "$line")"
  echo "$line" >>"$OUT/gone.txt"
  wait "${GW_PID[$v]}" 2>/dev/null || true
  wait "$lg" 2>/dev/null || true
  start_gateway "$v" local 1
  sleep 2 # heartbeats: the others see it back
done
python3 - "$OUT/gone.txt" <<'PY'
import sys
v = sorted(float(x) for line in open(sys.argv[1]) for x in line.split()[1:])
p = lambda q: v[min(len(v) - 1, int(q / 100 * (len(v) - 1) + 0.5))]
print(f"all {len(v)} devices over the kills: kill -> no responders p50 {p(50):.2f} ms, p99 {p(99):.2f} ms, max {v[-1]:.2f} ms")
PY
