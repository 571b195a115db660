#!/usr/bin/env bash
# Cluster measurement 1: 3 gateway nodes + 3 NATS servers hold N_PER_NODE idle TLS devices each
# (identify = "first_message", ids n<node>-<k>). Reports each process's RSS before/after, the NATS
# subscription counts, and reachability: from each node's admin API, 1,000 random devices held by the
# other nodes get a POST (202 = delivered to the owning session), and from each NATS server 1,000 random
# devices of all get a `Warren-Op: deliver` request (bench/cluster/probe.cpp).
#
#   flock /tmp/warren-cpu.lock bench/cluster/idle.sh        # N_PER_NODE=18000, about 3 minutes
#
# Servers (3 nats-server + 3 warren-gateway) on core $SCPU, the 3 loadgens and the probes on $LCPU.
source "$(dirname "$0")/lib.sh"
N=${N_PER_NODE:-18000}
start_cluster local
sleep 2
declare -A R0 R1 S0 S1
for i in 1 2 3; do
  R0[gw$i]=$(rss_kb "${GW_PID[$i]}")
  R0[nats$i]=$(rss_kb "${NATS_PID[$i]}")
  S0[$i]=$(subs "$i")
done
t0=$(date +%s.%N)
for i in 1 2 3; do loadgen_idle "$i" "n$i-" "$N" 600 tls --max-inflight 200; done
for _ in $(seq 600); do
  done_n=0
  for i in 1 2 3; do
    c=$(curl -s "http://127.0.0.1:$(gw_admin "$i")/healthz" | python3 -c "import json,sys; print(json.load(sys.stdin)['connections'])")
    [ "$c" -ge "$N" ] && done_n=$((done_n + 1))
  done
  [ $done_n = 3 ] && break
  sleep 1
done
t1=$(date +%s.%N)
sleep 10 # claims settle (claim_settle 100 ms), subscriptions propagate
for i in 1 2 3; do
  R1[gw$i]=$(rss_kb "${GW_PID[$i]}")
  R1[nats$i]=$(rss_kb "${NATS_PID[$i]}")
  S1[$i]=$(subs "$i")
done
echo "connected 3 x $N TLS devices in $(python3 -c "print(round($t1 - $t0, 1))") s"
for i in 1 2 3; do
  curl -s "http://127.0.0.1:$(gw_admin "$i")/v1/cluster" | python3 -c "
import json,sys; d=json.load(sys.stdin); n=d['node']
print(n['node'], 'devices', n['devices'], 'sessions', n['sessions'], 'peers', [p['node']+':'+p['state'] for p in d['peers']], 'answering', [(a['node'], a['devices']) for a in d['answering']])"
done
echo "| process | RSS before KiB | RSS with devices KiB | delta | per device / per subscription |"
echo "| --- | --- | --- | --- | --- |"
for i in 1 2 3; do
  d=$((R1[gw$i] - R0[gw$i]))
  echo "| gateway node-$i | ${R0[gw$i]} | ${R1[gw$i]} | $d | $(python3 -c "print(round($d * 1024 / $N))") B/device |"
done
for i in 1 2 3; do
  d=$((R1[nats$i] - R0[nats$i]))
  ds=$((S1[$i] - S0[$i]))
  echo "| nats-server s$i | ${R0[nats$i]} | ${R1[nats$i]} | $d | $(python3 -c "print(round($d * 1024 / max($ds, 1)))") B/subscription ($ds subscriptions: ${S0[$i]} -> ${S1[$i]}) |"
done
for i in 1 2 3; do ids_file "n$i-" "$N" >/dev/null; done
cat "$OUT"/ids-n{1,2,3}-"$N".txt >"$OUT/ids-all.txt"
echo "reachability:"
for i in 1 2 3; do
  others=$(for j in 1 2 3; do if [ "$j" != "$i" ]; then echo "$OUT/ids-n$j-$N.txt"; fi; done)
  # shellcheck disable=SC2086
  cat $others | shuf -n 1000 --random-source=<(yes "$i") >"$OUT/sample-$i.txt"
  echo "node-$i admin API, 1000 random devices of the other nodes: $(taskset -c "$LCPU" "$HTTP_POST" "$(gw_admin "$i")" "$OUT/sample-$i.txt" 4 2 500)"
  echo "NATS s$i: $(taskset -c "$LCPU" "$PROBE" reach "nats://127.0.0.1:$(nats_port "$i")" "$OUT/ids-all.txt" 1000 "$i")"
done
echo "still connected: $(for i in 1 2 3; do curl -s "http://127.0.0.1:$(gw_admin "$i")/healthz"; done)"
for p in "${PIDS[@]}"; do
  for i in 1 2 3; do [ "$p" = "${GW_PID[$i]}" ] || [ "$p" = "${NATS_PID[$i]}" ] && continue 2; done
  kill -INT "$p" 2>/dev/null || true
done
sleep 3
for i in 1 2 3; do
  jq_py "$OUT/lg-n$i-.json" "'loadgen n$i-: open_at_end', d['open_at_end'], 'failed', d['failed'], d['failed_by_reason'], 'violations', d['protocol_violations'], 'pushes', d['pushes_received'], 'connect p50/p99 ms', d['connect_ms']['p50'], d['connect_ms']['p99']"
done
