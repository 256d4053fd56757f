#!/usr/bin/env bash
# What the journal costs: `kiln run` and cluster throughput with the journal on and off.
#
# For N instances of `true` (default 10000) it measures, ROUNDS times (default 3) alternating
# on/off so that drift on a shared machine falls on both alike:
#   1. `kiln run` of one task of N instances (fresh SQLite state directory), wall time;
#   2. cluster throughput: `bench/cluster.sh N` (a server, one agent, submit to SUCCEED) with
#      LATENCY_RUNS=1, its kiln_s figure.
# `KILN_JOURNAL=off` is the knob that turns the journal off (the driver writes no events).
# Prints the median of each, and the ratio on/off; the goal is a ratio <= 1.10.
# Exits non-zero on errors only, not on a missed goal.
#
# Usage: bench/journal.sh [N]            (ROUNDS=1 bench/journal.sh 1000 for a quick smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-10000}
rounds=${ROUNDS:-3}

cargo build --release --locked -p kiln >&2
kiln="$PWD/target/release/kiln"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/job.yaml" <<YAML
name: journal-$n
tasks:
  t:
    instances: $n
    command: ["true"]
YAML

run_once() { # $1: on|off; prints seconds
  rm -rf "$work/state"
  local s e
  s=$EPOCHREALTIME
  KILN_JOURNAL=$1 "$kiln" run "$work/job.yaml" --state-dir "$work/state" --quiet \
    > "$work/run.out" 2>&1 || { cat "$work/run.out" >&2; exit 1; }
  e=$EPOCHREALTIME
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f\n", e - s }'
}

cluster_once() { # $1: on|off; prints seconds
  KILN_JOURNAL=$1 LATENCY_RUNS=1 bench/cluster.sh "$n" > "$work/cluster.out" 2> "$work/cluster.err" || {
    cat "$work/cluster.err" >&2; exit 1; }
  # The figures line: instances slots kiln_s xargs_s ratio.
  awk -v n="$n" '$1 == n && NF == 5 { print $3; exit }' "$work/cluster.out"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

: > "$work/run.on"; : > "$work/run.off"; : > "$work/cluster.on"; : > "$work/cluster.off"
for r in $(seq "$rounds"); do
  for mode in on off; do
    echo "round $r: kiln run, journal $mode ..." >&2
    run_once "$mode" >> "$work/run.$mode"
    echo "round $r: cluster, journal $mode ..." >&2
    cluster_once "$mode" >> "$work/cluster.$mode"
  done
done

run_on=$(median < "$work/run.on"); run_off=$(median < "$work/run.off")
cl_on=$(median < "$work/cluster.on"); cl_off=$(median < "$work/cluster.off")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

echo
printf '%-10s %9s %12s %12s %8s\n' what instances journal_on_s journal_off_s ratio
printf '%-10s %9s %12s %12s %8s\n' "kiln run" "$n" "$run_on" "$run_off" "$(ratio "$run_on" "$run_off")"
printf '%-10s %9s %12s %12s %8s\n' cluster "$n" "$cl_on" "$cl_off" "$(ratio "$cl_on" "$cl_off")"
echo
awk -v a="$(ratio "$run_on" "$run_off")" -v b="$(ratio "$cl_on" "$cl_off")" 'BEGIN {
  printf "goal: journal costs <= 10%%: kiln run %s, cluster %s\n",
    (a <= 1.10 ? "met" : "NOT met"), (b <= 1.10 ? "met" : "NOT met") }'
