#!/usr/bin/env bash
# Instance throughput of `kiln run` against the process-spawning floor.
#
# For each count N (default: 10000 100000) it runs one task of N instances of `true` through
# `kiln run` (durable SQLite state, fresh state directory), then the same N `true` processes
# through `xargs -P$(nproc)`, and prints both wall times, their ratio, and kiln's peak memory.
#
# Usage: bench/throughput.sh [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."

counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 100000)
procs=$(nproc)

cargo build --release --locked -p kiln >&2
kiln="$PWD/target/release/kiln"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -x /usr/bin/time ]; then
  timed() { /usr/bin/time -f '%e %M' -o "$work/time" "$@"; }
else
  echo "note: GNU time (Debian package 'time') not found: peak memory is not measured" >&2
  timed() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f 0\n", e - s }' > "$work/time"; }
fi

printf '%-9s %12s %12s %8s %14s\n' instances kiln_s xargs_s ratio kiln_peak_MiB
for n in "${counts[@]}"; do
  cat > "$work/job.yaml" <<YAML
name: throughput-$n
tasks:
  t:
    instances: $n
    command: ["true"]
YAML
  rm -rf "$work/state"
  timed "$kiln" run "$work/job.yaml" --state-dir "$work/state" --quiet > "$work/kiln.out" 2>&1 || {
    cat "$work/kiln.out" >&2; exit 1; }
  read -r kiln_s kiln_kb < "$work/time"
  timed sh -c "seq $n | xargs -P$procs -n1 true"
  read -r xargs_s _ < "$work/time"
  ratio=$(awk -v a="$kiln_s" -v b="$xargs_s" 'BEGIN { printf "%.2f", a / b }')
  peak=$(awk -v k="$kiln_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  printf '%-9s %12s %12s %8s %14s\n' "$n" "$kiln_s" "$xargs_s" "$ratio" "$peak"
done
