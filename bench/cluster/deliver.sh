#!/usr/bin/env bash
# Cluster measurement 4: deliveries through node 1's admin API (POST /v1/devices/{id}/messages) to
# devices held by node 2 (cross-node: router -> cluster agent -> NATS -> node 2's session) and to
# devices held by node 1 itself (in-process), in the same run, alternating. Each phase uses its own
# 1,000 idle TLS devices (one loadgen each) so that the loadgen's push latency (the body carries the
# send time) is per phase. Max rate: bench/cluster/http_post.cpp with $CONNS keep-alive connections,
# $SECS s; offered rate: the same at $RATE/s and at 1,000/s.
#
#   flock /tmp/warren-cpu.lock bench/cluster/deliver.sh      # about 3 minutes
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-8}
SECS=${SECS:-10}
RATE=${RATE:-10000}
start_cluster local
phases="max1 max2 r10k r1k"
for ph in $phases; do
  loadgen_idle 1 "a$ph-" 1000 400 tls --max-inflight 200
  loadgen_idle 2 "b$ph-" 1000 400 tls --max-inflight 200
done
for _ in $(seq 300); do
  a=$(curl -s "http://127.0.0.1:$(gw_admin 1)/healthz" | python3 -c "import json,sys; print(json.load(sys.stdin)['connections'])")
  b=$(curl -s "http://127.0.0.1:$(gw_admin 2)/healthz" | python3 -c "import json,sys; print(json.load(sys.stdin)['connections'])")
  [ "$a" -ge 4000 ] && [ "$b" -ge 4000 ] && break
  sleep 0.5
done
sleep 1
echo "devices: node-1 $a, node-2 $b"
post() { # post label ids rate
  local c0=() c1=() p r
  for p in "${GW_PID[1]}" "${GW_PID[2]}" "${NATS_PID[1]}" "${NATS_PID[2]}" "${GW_PID[3]}" "${NATS_PID[3]}"; do c0+=("$(cpu_ticks "$p")"); done
  r=$(taskset -c "$LCPU" "$HTTP_POST" "$(gw_admin 1)" "$2" "$CONNS" "$SECS" ${3:+"$3"})
  for p in "${GW_PID[1]}" "${GW_PID[2]}" "${NATS_PID[1]}" "${NATS_PID[2]}" "${GW_PID[3]}" "${NATS_PID[3]}"; do c1+=("$(cpu_ticks "$p")"); done
  echo "$1: $r | core-0 CPU % over ${SECS} s: $(python3 -c "
import sys
hz, T = $(getconf CLK_TCK), $SECS
a, b = [int(x) for x in sys.argv[1].split()], [int(x) for x in sys.argv[2].split()]
p = [round((y - x) / hz / T * 100) for x, y in zip(a, b)]
print(f'node-1 {p[0]}, node-2 {p[1]}, s1 {p[2]}, s2 {p[3]}, node-3+s3 {p[4] + p[5]}, total {sum(p)}')" "${c0[*]}" "${c1[*]}")"
}
for ph in max1 max2; do
  post "$ph cross-node (node-1 API -> node-2 devices)" "$(ids_file "b$ph-" 1000)"
  post "$ph same-node  (node-1 API -> node-1 devices)" "$(ids_file "a$ph-" 1000)"
done
post "offered $RATE/s cross-node" "$(ids_file br10k- 1000)" "$RATE"
post "offered $RATE/s same-node " "$(ids_file ar10k- 1000)" "$RATE"
post "offered 1000/s cross-node" "$(ids_file br1k- 1000)" 1000
post "offered 1000/s same-node " "$(ids_file ar1k- 1000)" 1000
for i in 1 2; do
  echo "node-$i cluster counters: $(curl -s "http://127.0.0.1:$(gw_admin "$i")/metrics" | grep -E '^warren_cluster_(deliveries_out|delivered_out|deliveries_in|no_responders|request_timeouts)_total' | tr '\n' ' ')"
done
for p in "${PIDS[@]}"; do
  for i in 1 2 3; do [ "$p" = "${GW_PID[$i]}" ] || [ "$p" = "${NATS_PID[$i]}" ] && continue 2; done
  kill -INT "$p" 2>/dev/null || true
done
sleep 3
for ph in $phases; do
  for s in a b; do
    jq_py "$OUT/lg-$s$ph-.json" "'devices $s$ph- (node-$([ $s = a ] && echo 1 || echo 2)): pushes', d['pushes_received'], 'push latency p50/p99/max ms', d['push_latency_ms']['p50'], d['push_latency_ms']['p99'], d['push_latency_ms']['max'], 'failed', d['failed'], 'violations', d['protocol_violations']"
  done
done
