#!/bin/sh
# The cluster_names example as two processes against a private nats-server on a free
# port from 20000-29999 (below the ephemeral range, as the other NATS tests pick them).
# Fails unless the client saw every answer it expects and both processes exit 0.
# usage: run_test.sh <warren-example-cluster-names binary>
set -u
bin=$1
nats=${WARREN_NATS_SERVER:-/usr/sbin/nats-server}
[ -x "$nats" ] || nats=$(command -v nats-server) || { echo "nats-server not found"; exit 1; }
dir=$(mktemp -d /tmp/warren-example-cluster-XXXXXX)
npid= spid=
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null
  [ -n "$npid" ] && kill "$npid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# A port the server can bind: retry with another one when it exits (taken).
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 10000))
  log="$dir/nats-$attempt.log"
  "$nats" -a 127.0.0.1 -p "$port" -l "$log" &
  npid=$!
  i=0
  while [ $i -lt 100 ] && kill -0 "$npid" 2>/dev/null && ! grep -q "Server is ready" "$log" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
  done
  grep -q "Server is ready" "$log" 2>/dev/null && break
  kill "$npid" 2>/dev/null
  wait "$npid" 2>/dev/null
  npid=
done
[ -n "$npid" ] || { echo "nats-server did not start"; cat "$dir"/nats-*.log; exit 1; }

url="nats://127.0.0.1:$port"
"$bin" --role server --nats "$url" --node server-node >"$dir/server.out" 2>&1 &
spid=$!
"$bin" --role client --nats "$url" --node client-node >"$dir/client.out" 2>&1
crc=$?
# The client's stop cast ends the server; a bounded wait, then the test fails.
i=0
while [ $i -lt 100 ] && kill -0 "$spid" 2>/dev/null; do
  sleep 0.1
  i=$((i + 1))
done
if kill -0 "$spid" 2>/dev/null; then
  src=124
else
  wait "$spid"
  src=$?
fi
spid=
echo "--- client (exit $crc)"; cat "$dir/client.out"
echo "--- server (exit $src)"; cat "$dir/server.out"

fail=0
expect() { grep -qx "$2" "$dir/$1.out" || { echo "missing in $1: $2"; fail=1; }; }
expect client "client: total 1 from server-node"
expect client "client: total 3 from server-node"
expect client "client: total 6 from server-node"
expect client "client: nobody: no_such_name"
expect client "client: the server saw 1 event(s)"
expect server "server: registered counter"
expect server "server: event hello from client-node"
expect server "server: stop"
[ "$crc" -eq 0 ] || { echo "client exit $crc"; fail=1; }
[ "$src" -eq 0 ] || { echo "server exit $src"; fail=1; }
exit $fail
