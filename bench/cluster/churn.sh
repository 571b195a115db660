#!/usr/bin/env bash
# Cluster measurement 5: TLS churn (connect, TLS 1.3 handshake, id line, one message, its echo,
# close) at 1,000 new devices/s, every connection a new device id (identify = "first_message", so
# each one is claimed, subscribed and unsubscribed on the cluster), `echo` backend. Same run:
#   on   node 1 of the 3-node cluster (3 gateways + 3 nats-server on core $SCPU), 1,000/s to node 1
#   off  one gateway with the same configuration without [cluster], alone on core $SCPU, 1,000/s
#   on3  the cluster, 333/s to each of the 3 nodes (3 loadgens), 1,000/s in total
# The loadgens on core $LCPU. p99 of connect start -> first echo, from the loadgen.
#
#   flock /tmp/warren-cpu.lock bench/cluster/churn.sh       # about 2 minutes; OFF_FIRST=1: the "off" run first
source "$(dirname "$0")/lib.sh"
T=${SECS:-15}
churn() { # churn label node rate prefix
  taskset -c "$LCPU" "$LG" churn -p "$(gw_tls "$2")" --tls --tls-version 1.3 --rate "$3" --max-inflight 500 -d "$T" \
    --device-id-prefix "$4" -q >"$OUT/churn-$1.json" 2>"$OUT/churn-$1.err"
}
report() {
  jq_py "$OUT/churn-$1.json" "'$1: completed', d['completed'], 'conn/s', round(d['connections_per_s']), 'failed', d['failed'], d['failed_by_reason'], 'skipped', d['skipped_launches'], 'latency p50/p99/max ms', d['latency_ms']['p50'], d['latency_ms']['p99'], d['latency_ms']['max'], 'violations', d['protocol_violations']"
}
on_runs() {
  echo "== cluster on, 1,000/s to node 1 ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  start_cluster echo
  c0=$(cpu_ticks "${GW_PID[1]}")
  churn on 1 1000 "con-"
  echo "node-1 CPU: $(python3 -c "print(round(($(cpu_ticks "${GW_PID[1]}") - $c0) / $(getconf CLK_TCK) * 1000 / max(1, $(jq_py "$OUT/churn-on.json" "d['completed']")), 3))") ms/connection"
  report on
  echo "node-1: $(curl -s "http://127.0.0.1:$(gw_admin 1)/metrics" | grep -E '^warren_cluster_(no_responders|request_timeouts|claims_lost)_total' | tr '\n' ' ')"
  echo "== cluster on, 333/s to each node ($(date -u +%H:%M:%S))"
  lgs=()
  for i in 1 2 3; do
    churn "on3-$i" "$i" 333 "c3$i-" &
    lgs+=($!)
  done
  wait "${lgs[@]}"
  for i in 1 2 3; do report "on3-$i"; done
  stop_all
}
off_run() {
  echo "== cluster off, 1,000/s to one gateway ($(date -u +%H:%M:%S))"
  start_gateway 1 echo 0
  c0=$(cpu_ticks "${GW_PID[1]}")
  churn off 1 1000 "coff-"
  echo "gateway CPU: $(python3 -c "print(round(($(cpu_ticks "${GW_PID[1]}") - $c0) / $(getconf CLK_TCK) * 1000 / max(1, $(jq_py "$OUT/churn-off.json" "d['completed']")), 3))") ms/connection"
  report off
  stop_all
}
if [ "${OFF_FIRST:-0}" = 1 ]; then
  off_run
  on_runs
else
  on_runs
  off_run
fi
