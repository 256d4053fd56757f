#!/usr/bin/env bash
# Containerised instance throughput of `kiln run` against the `docker run` floor.
#
# Runs one task of N instances of `true` in a Docker image through `kiln run` (each instance a
# container created, started, waited for and removed through the Docker Engine API, with
# durable SQLite state), then the same N `docker run --rm IMAGE true` launched by a shell loop
# (`xargs -P`) with the same parallelism, and prints both wall times and their ratio
# (goal: <= 1.3). The image is the locally built test image (scripts/test-images.sh).
#
# Usage: bench/containers.sh [N] [PARALLELISM]    (defaults: 500, $(nproc))
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-500}
procs=${2:-$(nproc)}
image=kiln-test/busybox:1

cargo build --release --locked -p kiln >&2
kiln="$PWD/target/release/kiln"
scripts/test-images.sh "$kiln" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
cat > "$work/job.yaml" <<YAML
name: containers-$n
tasks:
  t:
    image: $image
    instances: $n
    command: ["true"]
YAML

# Warm the engine (image layers, network setup) once for both.
docker run --rm "$image" true

s=$(now)
"$kiln" run "$work/job.yaml" --state-dir "$work/state" --cpus "$procs" --quiet > "$work/kiln.out" 2>&1 || {
  cat "$work/kiln.out" >&2; exit 1; }
e=$(now)
kiln_s=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }')

s=$(now)
seq "$n" | xargs -P"$procs" -I{} docker run --rm "$image" true
e=$(now)
docker_s=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }')

left=$(docker ps -aq --filter label=kiln.role=instance | wc -l)
printf '%-9s %-11s %10s %12s %8s %18s\n' instances parallelism kiln_s docker_run_s ratio containers_left
printf '%-9s %-11s %10s %12s %8s %18s\n' "$n" "$procs" "$kiln_s" "$docker_s" \
  "$(awk -v a="$kiln_s" -v b="$docker_s" 'BEGIN { printf "%.2f", a / b }')" "$left"
