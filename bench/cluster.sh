#!/usr/bin/env bash
# Cluster throughput and latency: `kiln server` plus one local `kiln agent` on loopback.
#
# Starts a server (free loopback port, fresh data directory) and one agent named bench-agent in
# compute environment `pool` with $(nproc) slots, waits until the agent is RUNNING, then:
#   1. throughput: one job, one task of N instances of `true` in `pool`; wall time from just
#      before the submit (POST /v1/jobs) to the first poll (every 50 ms) that sees the job
#      SUCCEED, against the floor `seq N | xargs -P$(nproc) -n1 true`; prints the ratio;
#   2. latency: LATENCY_RUNS (default 100) times, a one-instance job (`sleep 1`) on the idle
#      agent; time from just before the submit to the first poll (back to back, one keep-alive
#      connection) that sees the instance RUNNING; the next run starts once the job SUCCEEDed
#      and the agent runs nothing. Prints the median, p90, max and min.
# The measuring client is bench/cluster.py (Python 3, standard library only).
# Exits non-zero on errors only, not on missed goals (ratio <= 1.5, median latency <= 20 ms).
#
# Usage: bench/cluster.sh [N]          N instances for the throughput run (default 10000)
#        LATENCY_RUNS=10 bench/cluster.sh 500   (a quick smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-10000}
runs=${LATENCY_RUNS:-100}
procs=$(nproc)
here="$PWD"

cargo build --release --locked -p kiln >&2
kiln="$here/target/release/kiln"
work=$(mktemp -d)
pids=()
cleanup() {
  local p="" i
  # SIGTERM (the agent stops what it runs), SIGKILL whatever is still there after 10 s.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for i in $(seq 100); do
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && break; done
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
data="$work/server"

"$kiln" server --listen "127.0.0.1:$port" --data-dir "$data" \
  < /dev/null > /dev/null 2> "$work/server.log" &
pids+=($!)
for _ in $(seq 300); do
  grep -q "listening on" "$work/server.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
grep -q "listening on" "$work/server.log" || {
  echo "error: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

"$kiln" agent --server "$url" --token-file "$data/agent-token" --name bench-agent \
  --compute-env pool --slots "$procs" --work-dir "$work/agent" \
  < /dev/null > /dev/null 2> "$work/agent.log" &
pids+=($!)

client() { python3 "$here/bench/cluster.py" --url "$url" --token-file "$data/admin-token" "$@"; }
fail() { echo "error: $1; server and agent logs:" >&2; tail -n 20 "$work/server.log" "$work/agent.log" >&2; exit 1; }

client wait-node bench-agent || fail "the agent did not register"

echo "throughput: $n instances through the agent ..." >&2
kiln_s=$(client throughput "$n") || fail "the throughput run failed"
s=$EPOCHREALTIME
seq "$n" | xargs -P"$procs" -n1 true
e=$EPOCHREALTIME
xargs_s=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }')
ratio=$(awk -v a="$kiln_s" -v b="$xargs_s" 'BEGIN { printf "%.2f", a / b }')
echo "throughput: kiln $kiln_s s, xargs $xargs_s s, ratio $ratio" >&2

echo "latency: $runs one-instance jobs on the idle agent ..." >&2
lat=$(client latency "$runs" --node bench-agent) ||
  fail "the latency run failed"
read -r median p90 max min <<< "$lat"

echo
printf '%-9s %8s %10s %10s %8s\n' instances slots kiln_s xargs_s ratio
printf '%-9s %8s %10s %10s %8s\n' "$n" "$procs" "$kiln_s" "$xargs_s" "$ratio"
echo
printf '%-9s %10s %10s %10s %10s\n' runs median_ms p90_ms max_ms min_ms
printf '%-9s %10s %10s %10s %10s\n' "$runs" "$median" "$p90" "$max" "$min"
echo
awk -v r="$ratio" -v m="$median" 'BEGIN {
  printf "goals: ratio <= 1.5: %s; median latency <= 20 ms: %s\n",
    (r <= 1.5 ? "met" : "NOT met"), (m <= 20 ? "met" : "NOT met") }'
