#!/usr/bin/env bash
# The control plane on SQLite and on PostgreSQL, measured in one script:
#   1. memory: a fresh server (one local agent, `pool`, $(nproc) slots) runs 1,000 one-instance
#      jobs, then JOBS more (default 99,000: 100,000 in all), 4 submitters at a time; the
#      server's RSS after each (6 s after the last job ended, so that finished jobs have left
#      the scheduler) and their ratio (goal <= 1.2);
#   2. throughput: one job of N (default 10,000) instances of `true` through the agent, the
#      PostgreSQL time over the SQLite time (goal <= 1.3);
#   3. reads under load: while one job of READ_N (default 100,000) instances runs at full
#      speed, GET /v1/jobs/ID and an instance page (100 items) back to back for READ_SECONDS
#      (default 60); p50 and p99 of each (goal p99 <= 20 ms);
#   4. failover (PostgreSQL): two servers, one agent given both URLs, a long job; the leader
#      is `kill -9`ed KILLS times (default 5), restarted as a standby each time; the time from
#      each kill to the first dispatch under the next epoch, by the database's clock (goal:
#      median <= 3 s).
# PostgreSQL is started as scripts/services/postgres.sh starts it for the tests. Ratios only
# mean something on a quiet machine: other work on the same cores skews both sides.
#
# Usage: bench/control-plane.sh              (JOBS=99000 N=10000 READ_N=100000 KILLS=5)
#        JOBS=4000 N=2000 READ_N=20000 READ_SECONDS=15 KILLS=2 bench/control-plane.sh
#        (a quick smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."

jobs_more=${JOBS:-99000}
n=${N:-10000}
read_n=${READ_N:-100000}
kills=${KILLS:-5}
read_s=${READ_SECONDS:-60}
procs=$(nproc)
here="$PWD"

cargo build --release --locked -p kiln >&2
kiln="$here/target/release/kiln"

source scripts/services/lib.sh
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; stop_services' EXIT
trap 'exit 130' INT TERM
source scripts/services/postgres.sh
work="$KILN_SERVICES_DIR/bench"
mkdir -p "$work"

new_db() {
  psql -q "$KILN_TEST_PG_URL" -c "CREATE DATABASE $1" >/dev/null
  echo "${KILN_TEST_PG_URL%/*}/$1"
}

# start_server NAME PORT [ARGS...]: a server with data dir $work/NAME; waits until it answers.
start_server() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$work/$name"
  "$kiln" server --listen "127.0.0.1:$port" --data-dir "$work/$name" --cpus 1 "$@" \
    </dev/null >/dev/null 2>>"$work/$name.log" &
  pids+=($!)
  last_pid=$!
  wait_until "curl -sf http://127.0.0.1:$port/v1/health" 120
}

start_agent() {
  "$kiln" agent --server "$1" --token-file "$2" --name "bench-$3" --compute-env pool \
    --slots "$procs" --work-dir "$work/agent-$3" </dev/null >/dev/null 2>"$work/agent-$3.log" &
  pids+=($!)
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

declare -A result
for backend in sqlite postgres; do
  port=$(free_port)
  url="http://127.0.0.1:$port"
  args=()
  [[ $backend == postgres ]] && args=(--db "$(new_db "bench_$backend")")
  start_server "$backend" "$port" "${args[@]}"
  server_pid=$last_pid
  token="$work/$backend/admin-token"
  start_agent "$url" "$work/$backend/agent-token" "$backend"
  client() { python3 "$here/bench/control_plane.py" --url "$url" --token-file "$token" "$@"; }
  python3 "$here/bench/cluster.py" --url "$url" --token-file "$token" wait-node "bench-$backend"

  echo "$backend: memory over 1,000 then $jobs_more more one-instance jobs ..." >&2
  client jobs 1000 >/dev/null
  sleep 6
  rss_1k=$(rss_kib "$server_pid")
  t=$(client jobs "$jobs_more")
  sleep 6
  rss_all=$(rss_kib "$server_pid")
  result[$backend.rss]="$rss_1k $rss_all $(awk -v a="$rss_1k" -v b="$rss_all" 'BEGIN { printf "%.2f", b / a }') $t"
  echo "$backend: rss_1k_KiB rss_all_KiB ratio submit_s: ${result[$backend.rss]}" >&2

  echo "$backend: throughput of $n instances ..." >&2
  result[$backend.tput]=$(python3 "$here/bench/cluster.py" --url "$url" --token-file "$token" throughput "$n")
  echo "$backend: throughput $n instances: ${result[$backend.tput]} s" >&2

  echo "$backend: reads while $read_n instances run ..." >&2
  result[$backend.reads]=$(client reads "$read_n" --seconds "$read_s")
  echo "$backend: requests p50_job_ms p99_job_ms p50_page_ms p99_page_ms: ${result[$backend.reads]}" >&2
  stop_all
done

echo "postgres: failover, $kills kills of the leader ..." >&2
db=$(new_db bench_failover)
ports=("$(free_port)" "$(free_port)")
start_server fo0 "${ports[0]}" --db "$db" --lease-ttl 2
mkdir -p "$work/fo1"
cp "$work/fo0/admin-token" "$work/fo0/agent-token" "$work/fo1/"
declare -A server_pid_of
server_pid_of[0]=$last_pid
start_server fo1 "${ports[1]}" --db "$db" --lease-ttl 2
server_pid_of[1]=$last_pid
urls="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]}"
start_agent "$urls" "$work/fo0/agent-token" failover
cat >"$work/failover.yaml" <<EOF
name: failover
tasks:
  work:
    instances: $((kills * 2000 + 20000))
    compute_env: pool
    command: sleep 0.01
EOF
"$kiln" submit --server "$urls" --token-file "$work/fo0/admin-token" "$work/failover.yaml" >/dev/null
q() { psql -qtA "$db" -c "$1"; }
failovers=()
for k in $(seq "$kills"); do
  wait_until "[[ \$(q 'SELECT count(*) FROM attempts') -gt $((k * 200)) ]]" 120
  leader_url=$(q "SELECT url FROM leader")
  epoch=$(q "SELECT epoch FROM leader")
  i=0
  [[ $leader_url == "http://127.0.0.1:${ports[1]}" ]] && i=1
  kill -KILL "${server_pid_of[$i]}"
  killed=$(q "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
  start_server "fo$i" "${ports[$i]}" --db "$db" --lease-ttl 2
  server_pid_of[$i]=$last_pid
  wait_until "[[ -n \$(q 'SELECT min(recorded_at) FROM attempts WHERE epoch > $epoch') ]]" 60
  next=$(q "SELECT min(recorded_at) FROM attempts WHERE epoch > $epoch")
  failovers+=($((next - killed)))
  echo "failover $k: $((next - killed)) ms" >&2
done
stop_all
median=$(printf '%s\n' "${failovers[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')

echo
printf '%-9s %10s %12s %8s %12s\n' backend rss_1k_KiB rss_all_KiB ratio submit_s
for b in sqlite postgres; do
  read -r r1 r2 ratio ts <<<"${result[$b.rss]}"
  printf '%-9s %10s %12s %8s %12s\n' "$b" "$r1" "$r2" "$ratio" "$ts"
done
echo
tput_ratio=$(awk -v p="${result[postgres.tput]}" -v s="${result[sqlite.tput]}" 'BEGIN { printf "%.2f", p / s }')
printf 'throughput of %s instances: sqlite %s s, postgres %s s, ratio %s\n' \
  "$n" "${result[sqlite.tput]}" "${result[postgres.tput]}" "$tput_ratio"
echo
printf '%-9s %9s %12s %12s %13s %13s\n' backend requests p50_job_ms p99_job_ms p50_page_ms p99_page_ms
for b in sqlite postgres; do
  read -r reqs j50 j99 p50 p99 <<<"${result[$b.reads]}"
  printf '%-9s %9s %12s %12s %13s %13s\n' "$b" "$reqs" "$j50" "$j99" "$p50" "$p99"
done
echo
echo "failover (ms): ${failovers[*]}; median $median ms"
