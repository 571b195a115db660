# Sourced by the cluster benchmark scripts (bench/cluster/*.sh): three nats-server processes with
# routes (server i dials servers 1..i-1 only, as tests/support/warren_test/nats_cluster.hpp does) and
# up to three warren-gateway nodes, each on its own server, all on 127.0.0.1 and pinned to $SCPU.
#
# Ports: NATS client 14221-14223, routes 16221-16223, monitoring 18221-18223; gateway i: TLS 18880+i,
# plain TCP 18890+i, admin 18080+i. Everything started is remembered and stopped by stop_all (also on
# EXIT).
#
# Environment: BUILD (build/release), OUT (/tmp/warren-cluster-bench), SCPU (0: servers), LCPU (1: load),
# GW_IO_THREADS and GW_SCHED_THREADS (1 each), ADMIN_THREADS (8), CLUSTER_EXTRA (lines added to [cluster],
# e.g. $'agents = 8').
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
B=${BUILD:-build/release}
GW=$B/apps/gateway/warren-gateway
LG=$B/apps/loadgen/warren-loadgen
OUT=${OUT:-/tmp/warren-cluster-bench}
SCPU=${SCPU:-0}
LCPU=${LCPU:-1}
PROBE=${PROBE:-/tmp/wc-probe}
HTTP_POST=${HTTP_POST:-/tmp/wc-http-post}
mkdir -p "$OUT"
CERT=$OUT/cert
[ -f "$CERT/cert.pem" ] || scripts/make-test-cert "$CERT" >/dev/null
ulimit -n "$(ulimit -Hn)"
declare -a NATS_PID GW_PID
PIDS=()

nats_port() { echo $((14220 + $1)); }
nats_mon() { echo $((18220 + $1)); }
gw_tls() { echo $((18880 + $1)); }
gw_plain() { echo $((18890 + $1)); }
gw_admin() { echo $((18080 + $1)); }

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mono_ns() { python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC))'; }
varz() { curl -s "http://127.0.0.1:$(nats_mon "$1")/varz" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d$2)"; }
subs() { curl -s "http://127.0.0.1:$(nats_mon "$1")/subsz" | python3 -c "import json,sys; print(json.load(sys.stdin)['num_subscriptions'])"; }

start_nats() { # start_nats i (1..3)
  local i=$1 d=$OUT/nats-$i routes=""
  mkdir -p "$d"
  for j in $(seq 1 $((i - 1))); do routes+="${routes:+, }nats-route://127.0.0.1:$((16220 + j))"; done
  cat >"$d/nats.conf" <<EOF
server_name: s$i
host: 127.0.0.1
port: $(nats_port "$i")
http_port: $(nats_mon "$i")
ping_interval: "1s"
ping_max: 2
max_payload: 1048576
cluster {
  name: warren-bench
  listen: 127.0.0.1:$((16220 + i))
  ${routes:+routes: [$routes]}
}
EOF
  taskset -c "$SCPU" nats-server -c "$d/nats.conf" -l "$d/server.log" &
  NATS_PID[$i]=$!
  PIDS+=($!)
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$(nats_mon "$i")/varz" >/dev/null && return 0
    sleep 0.1
  done
  echo "nats-server $i did not start" >&2
  tail "$d/server.log" >&2
  exit 1
}

wait_routes() { # every server has a route to each other one
  for _ in $(seq 100); do
    local ok=1
    for i in 1 2 3; do
      local n
      n=$(curl -s "http://127.0.0.1:$(nats_mon "$i")/routez" | python3 -c "import json,sys; print(json.load(sys.stdin)['num_routes'])")
      [ "$n" -ge 2 ] || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  echo "routes not formed" >&2
  exit 1
}

# gateway_conf i backend cluster(1|0)
gateway_conf() {
  local i=$1 backend=$2 cluster=$3 f=$OUT/gw-$1.toml
  cat >"$f" <<EOF
[gateway]
data_dir = "$OUT/gw-$i"
log_level = "warn"
io_threads = ${GW_IO_THREADS:-1}
scheduler_threads = ${GW_SCHED_THREADS:-1}
[[listener]]
name = "tls"
bind = "127.0.0.1"
port = $(gw_tls "$i")
tls = true
cert = "$CERT/cert.pem"
key = "$CERT/key.pem"
identify = "first_message"
max_connections = 1000000
[[listener]]
name = "plain"
bind = "127.0.0.1"
port = $(gw_plain "$i")
tls = false
identify = "first_message"
max_connections = 1000000
[admin]
bind = "127.0.0.1"
port = $(gw_admin "$i")
threads = ${ADMIN_THREADS:-8}
[backend]
kind = "$backend"
EOF
  if [ "$backend" = local ]; then printf '[backend.local]\nsink = "none"\n' >>"$f"; fi
  if [ "$cluster" = 1 ]; then
    printf '[cluster]\nnode_name = "node-%s"\nnats = "nats://127.0.0.1:%s"\n' "$i" "$(nats_port "$i")" >>"$f"
    [ -n "${CLUSTER_EXTRA:-}" ] && printf '%s\n' "$CLUSTER_EXTRA" >>"$f"
  fi
  echo "$f"
}

start_gateway() { # start_gateway i backend cluster(1|0)
  local i=$1 conf
  conf=$(gateway_conf "$1" "$2" "$3")
  taskset -c "$SCPU" "$GW" -c "$conf" >"$OUT/gw-$i.log" 2>&1 &
  GW_PID[$i]=$!
  PIDS+=($!)
  for _ in $(seq 150); do
    kill -0 "${GW_PID[$i]}" 2>/dev/null || { cat "$OUT/gw-$i.log" >&2; exit 1; }
    curl -sf "http://127.0.0.1:$(gw_admin "$i")/v1/tree" >/dev/null && return 0
    sleep 0.1
  done
  echo "gateway $i did not start" >&2
  exit 1
}

start_cluster() { # start_cluster backend [nodes=3]
  local n=${2:-3}
  for i in 1 2 3; do start_nats "$i"; done
  wait_routes
  for i in $(seq 1 "$n"); do start_gateway "$i" "$1" 1; done
  # every node sees the others (heartbeats, 1 s)
  for _ in $(seq 50); do
    local seen
    seen=$(curl -s "http://127.0.0.1:$(gw_admin 1)/v1/cluster" | python3 -c "import json,sys; d=json.load(sys.stdin); print(len([p for p in d.get('peers', []) if p.get('state', 'up') != 'lost']))" 2>/dev/null || echo 0)
    [ "$seen" -ge $((n - 1)) ] && return 0
    sleep 0.2
  done
  echo "warning: node 1 does not see $((n - 1)) peers: $(curl -s "http://127.0.0.1:$(gw_admin 1)/v1/cluster")" >&2
}

stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap stop_all EXIT

ids_file() { # ids_file prefix n -> file of ids prefix0..prefix(n-1)
  local f=$OUT/ids-$1$2.txt
  seq 0 $(($2 - 1)) | sed "s/^/$1/" >"$f"
  echo "$f"
}

# loadgen_idle i prefix n hold_s [tls|plain] [extra...]: background; sets LG_PID; JSON in $OUT/lg-<prefix>.json
loadgen_idle() {
  local i=$1 prefix=$2 n=$3 hold=$4 sec=${5:-tls}
  shift 5 || shift $#
  local port tls=()
  if [ "$sec" = tls ]; then port=$(gw_tls "$i"); tls=(--tls --tls-version 1.3); else port=$(gw_plain "$i"); fi
  taskset -c "$LCPU" "$LG" idle -p "$port" "${tls[@]}" -n "$n" --device-id-prefix "$prefix" -d "$hold" -q \
    --connect-log "$OUT/connect-$prefix.log" "$@" >"$OUT/lg-$prefix.json" 2>"$OUT/lg-$prefix.err" &
  LG_PID=$!
  PIDS+=($!)
}

jq_py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
