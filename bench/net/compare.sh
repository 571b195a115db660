#!/usr/bin/env bash
# The network issue's benchmarks: warren-net-echo (the supervised listener with the
# echo protocol) against warren-baseline-echo (single-threaded epoll + OpenSSL) and
# an Erlang/OTP echo server built the Owsla way (bench/erlang/owsla_echo.erl, one
# scheduler), the server pinned to one core and warren-loadgen to the other. Server
# `gateway` is the whole warren-gateway path with the echo backend (session, registry
# lookup, producer), to compare with the bare network layer (`warren`).
#
#   bench/net/compare.sh [case...]      cases: churn-tls churn-tls-1k churn-plain
#                                              stream-tls stream-plain stream-frame
#                                              idle-tls idle-plain flood   (default: all)
#
# Environment: BUILD (build/release), SECONDS_PER_RUN (15), BASE_PORT (from the PID), SERVER_CPU (0), LG_CPU (1),
# SERVERS ("baseline warren erlang"; erlang needs erl/erlc, installed with rabbitmq-server), OUT (/tmp/warren-bench),
# SCHED_BATCH (1; 0: warren's threads keep SCHED_OTHER, net/scheduler.hpp). Prints one Markdown table
# row per run; the loadgen JSON of each run is kept in $OUT.
#
# Server CPU per connection = (utime + stime of the server process over the run) /
# completed connections, read from /proc/<pid>/stat before and after the loadgen.
# Memory per idle connection = (server VmRSS with N connections open - VmRSS before)
# / N, sampled while the loadgen holds them.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/net/gateway-conf.sh
B=${BUILD:-build/release}
LG=$B/apps/loadgen/warren-loadgen
BASE=$B/bench/baseline/warren-baseline-echo
WECHO=$B/actors/net/warren-net-echo
GW=$B/apps/gateway/warren-gateway
T=${SECONDS_PER_RUN:-15}
SCPU=${SERVER_CPU:-0}
LCPU=${LG_CPU:-1}
OUT=${OUT:-/tmp/warren-bench}
SERVERS=${SERVERS:-baseline warren erlang}
CERT=$OUT/cert
mkdir -p "$OUT"
[ -f "$CERT/cert.pem" ] || scripts/make-test-cert "$CERT"
for f in "$LG" "$BASE" "$WECHO" $([[ " $SERVERS " == *" gateway "* ]] && echo "$GW"); do
  [ -x "$f" ] || { echo "missing $f: cmake --build $B" >&2; exit 2; }
done
HZ=$(getconf CLK_TCK)
PORT=${BASE_PORT:-$((10000 + $$ % 20000))} # per run, so two runs at once do not meet; below the ephemeral range

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

if [[ " $SERVERS " == *" erlang "* ]]; then
  erlc -o "$OUT" bench/erlang/owsla_echo.erl
fi

# start_server <baseline|warren|erlang|gateway> <tls|plain> <line|frame> [slow-us]: sets SPID.
start_server() {
  local kind=$1 sec=$2 codec=$3 slow=${4:-0}
  PORT=$((PORT + 1))
  if [ "$kind" = baseline ]; then
    local args=(--port "$PORT" --bind 127.0.0.1)
    if [ "$sec" = tls ]; then args+=(--tls --cert "$CERT/cert.pem" --key "$CERT/key.pem"); else args+=(--plain); fi
    taskset -c "$SCPU" "$BASE" "${args[@]}" >"$OUT/server.log" 2>&1 &
  elif [ "$kind" = gateway ]; then
    local conf=$OUT/gateway.toml
    gateway_conf "$conf" "$PORT" "$sec" "$codec" "$OUT" "$CERT"
    taskset -c "$SCPU" "$GW" -c "$conf" >"$OUT/server.log" 2>&1 &
  elif [ "$kind" = erlang ]; then
    local args=("$PORT" "$sec")
    [ "$sec" = tls ] && args+=("$CERT/cert.pem" "$CERT/key.pem")
    taskset -c "$SCPU" erl +S 1 -noshell -pa "$OUT" -s owsla_echo start "${args[@]}" >"$OUT/server.log" 2>&1 &
  else
    local args=("$PORT")
    [ "$sec" = tls ] && args+=("$CERT/cert.pem" "$CERT/key.pem")
    WARREN_IO_THREADS=1 WARREN_SCHED_THREADS=1 WARREN_CODEC=$codec WARREN_ECHO_DELAY_US=$slow WARREN_SCHED_BATCH=${SCHED_BATCH:-1} \
      taskset -c "$SCPU" "$WECHO" "${args[@]}" >"$OUT/server.log" 2>&1 &
  fi
  SPID=$!
  for _ in $(seq 100); do
    kill -0 "$SPID" 2>/dev/null || break # died (port taken?): see its log
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && kill -0 "$SPID" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server $kind did not start" >&2
  cat "$OUT/server.log" >&2
  exit 1
}

stop_server() {
  kill -TERM "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
}

jq_py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# run <case> <server> <tls|plain> <codec> <loadgen args...>
run() {
  local name=$1 kind=$2 sec=$3 codec=$4
  shift 4
  start_server "$kind" "$sec" "$codec"
  local tls=()
  [ "$sec" = tls ] && tls=(--tls --tls-version 1.3)
  local c0
  c0=$(cpu_ticks "$SPID")
  local json=$OUT/$name.$kind.json
  taskset -c "$LCPU" "$LG" "$@" -p "$PORT" "${tls[@]}" --codec "$codec" -q >"$json" 2>"$OUT/$name.$kind.err" || true
  local c1
  c1=$(cpu_ticks "$SPID")
  stop_server
  local completed rate p99 msgs
  completed=$(jq_py "$json" "d['completed']")
  rate=$(jq_py "$json" "round(d['connections_per_s'])")
  msgs=$(jq_py "$json" "round(d['messages_per_s'])")
  p99=$(jq_py "$json" "d['latency_ms']['p99']")
  local cpu_ms
  if [ "$name" = "${name#stream}" ]; then # churn: ms per connection
    cpu_ms="$(python3 -c "print(round(($c1 - $c0) / $HZ * 1000 / max($completed, 1), 3))") ms/conn"
  else # stream: microseconds per echoed message
    cpu_ms="$(python3 -c "print(round(($c1 - $c0) / $HZ * 1e6 / max($(jq_py "$json" "d['messages_received']"), 1), 2))") us/msg"
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$kind" "$completed" "$rate" "$msgs" \
    "$p99" "$cpu_ms" "$(jq_py "$json" "d['failed']")"
}

# idle <case> <server> <tls|plain> <n>
idle() {
  local name=$1 kind=$2 sec=$3 n=$4
  start_server "$kind" "$sec" line
  local tls=()
  [ "$sec" = tls ] && tls=(--tls --tls-version 1.3)
  sleep 1
  local r0
  r0=$(rss_kb "$SPID")
  local json=$OUT/$name.$kind.json
  local hold=$((n / ${IDLE_RATE:-500} + 15)) # the loadgen opens ~600 TLS connections/s on one core
  taskset -c "$LCPU" "$LG" idle -p "$PORT" "${tls[@]}" -n "$n" --max-inflight 200 -d "$hold" -q \
    >"$json" 2>"$OUT/$name.$kind.err" &
  local lg=$!
  sleep $((hold - 3))
  local r1
  r1=$(rss_kb "$SPID")
  wait "$lg" || true
  stop_server
  local open
  open=$(jq_py "$json" "d['open_at_end']")
  printf '| %s | %s | %s open | rss %s -> %s KiB | %s bytes/conn |\n' "$name" "$kind" "$open" "$r0" "$r1" \
    "$(python3 -c "print(round(($r1 - $r0) * 1024 / max($open, 1)))")"
}

# flood: a slow protocol (sleeps per batch) against stream clients with a huge window;
# server RSS sampled every 2 s must stay flat.
flood() {
  start_server warren plain line 2000
  local json=$OUT/flood.warren.json
  taskset -c "$LCPU" "$LG" stream -p "$PORT" -n 20 -w 100000 -s 1024 -d "$T" -t 30 -q >"$json" \
    2>"$OUT/flood.warren.err" &
  local lg=$! samples=()
  for _ in $(seq $((T / 2))); do
    sleep 2
    samples+=("$(rss_kb "$SPID")")
  done
  wait "$lg" || true
  stop_server
  printf '| flood | warren | rss KiB every 2 s: %s |\n' "${samples[*]}"
}

cases=${*:-churn-tls churn-tls-1k churn-plain stream-tls stream-plain stream-frame idle-tls idle-plain flood}
echo "| case | server | completed | conn/s | msg/s | p99 ms | server cpu | failed |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for c in $cases; do
  for s in $SERVERS; do
    case $c in
      churn-tls) run "$c" "$s" tls line churn --max-inflight 100 -d "$T" ;;
      churn-tls-1k) run "$c" "$s" tls line churn --rate 1000 --max-inflight 500 -d "$T" ;;
      churn-plain) run "$c" "$s" plain line churn --max-inflight 100 -d "$T" ;;
      stream-tls) run "$c" "$s" tls line stream -n 100 -w 10 -s 64 -d "$T" ;;
      stream-plain) run "$c" "$s" plain line stream -n 100 -w 10 -s 64 -d "$T" ;;
      stream-frame) [ "$s" = warren ] || [ "$s" = gateway ] && run "$c" "$s" tls frame stream -n 100 -w 10 -s 64 -d "$T" ;;
      idle-tls) idle "$c" "$s" tls "${IDLE_N:-19000}" ;;
      idle-plain) idle "$c" "$s" plain "${IDLE_N:-19000}" ;;
      flood) [ "$s" = warren ] && flood ;;
      *) echo "unknown case $c" >&2; exit 2 ;;
    esac
  done
done
