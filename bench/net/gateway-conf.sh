# Sourced by compare.sh and run-one.sh: the gateway configuration both benchmark.
#
#   gateway_conf <file> <port> <tls|plain> <line|frame> <out-dir> <cert-dir>
#
# One listener on 127.0.0.1, the echo backend, one io thread and one CAF scheduler
# thread (as warren-net-echo gets), no admin API, no connection cap. SCHED_BATCH=0:
# io loops and CAF workers keep SCHED_OTHER (for A/B runs; warren-net-echo reads
# WARREN_SCHED_BATCH).
gateway_conf() {
  local file=$1 port=$2 sec=$3 codec=$4 out=$5 cert=$6
  cat >"$file" <<TOML
[gateway]
data_dir = "$out/gwdata"
log_level = "warn"
io_threads = 1
scheduler_threads = 1
sched_batch = $([ "${SCHED_BATCH:-1}" = 0 ] && echo false || echo true)
[[listener]]
name = "bench"
bind = "127.0.0.1"
port = $port
tls = $([ "$sec" = tls ] && echo true || echo false)
cert = "$cert/cert.pem"
key = "$cert/key.pem"
codec = "$codec"
identify = "none"
max_connections = 1000000
[admin]
enabled = false
[backend]
kind = "echo"
TOML
}
