#!/usr/bin/env bash
# Remote storage throughput: Kiln's input downloads and output uploads against a plain client
# (Python boto3) doing the same copies, against the same S3-compatible server, in this run.
#
# One server process (kiln-storage's s3s-fs test server, built as the example `storage-bench`)
# serves a temporary directory on a free loopback port. Four cases:
#   small download   SMALL_FILES objects of SMALL_MIN_KIB..SMALL_MAX_KIB KiB under a prefix
#   small upload     the same files from a local directory to a prefix
#   big download     one object of BIG_MIB MiB
#   big upload       the same file
# Three ways to do each copy:
#   kiln   the user path: `kiln run` of a one-instance job whose task maps the data in
#          (`inputs`) or out (`outputs`; the command links the data into its working
#          directory), fresh state directory; also timed: the same job without a mapping
#   lib    `Storage::download` / `upload` called directly (`storage-bench download|upload`)
#   boto3  bench/storage.py: small files from a pool of THREADS workers (Kiln's default
#          concurrency, 8), the big file with boto3's TransferManager
# Each copy is timed REPEAT times (default 3, the order of the three rotating), every one
# checked (file count, bytes, content) before its time counts; the tables show medians of
# whole-process wall times. ratio = kiln / boto3 (goal: <= 1.0).
#
# Usage: bench/storage.sh
#        SMALL_FILES=100 BIG_MIB=64 REPEAT=1 bench/storage.sh     # a quick run
#        CASES="big-download big-upload" bench/storage.sh         # some of the cases
# TMPDIR chooses where the data goes (server directory and local copies: about 3 × BIG_MIB).
# Needs: python3 with boto3, GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."

small_files=${SMALL_FILES:-1000}
small_min=${SMALL_MIN_KIB:-4}
small_max=${SMALL_MAX_KIB:-16}
big_mib=${BIG_MIB:-1024}
repeat=${REPEAT:-3}
export THREADS=${THREADS:-8}
read -r -a cases <<< "${CASES:-small-download small-upload big-download big-upload}"
for c in "${cases[@]}"; do
  case $c in small-download | small-upload | big-download | big-upload) ;;
    *) echo "unknown case $c (CASES: small-download small-upload big-download big-upload)" >&2; exit 2 ;;
  esac
done

python3 -c 'import boto3' 2>/dev/null || { echo "needs boto3 for python3 (pip install boto3)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian package 'time')" >&2; exit 1; }

cargo build --release --locked -p kiln >&2
cargo build --release --locked -p kiln-storage --example storage-bench >&2
kiln="$PWD/target/release/kiln"
helper="$PWD/target/release/examples/storage-bench"
py=(python3 "$PWD/bench/storage.py")

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Nothing of this machine's AWS setup may take part.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION
export AWS_CONFIG_FILE="$work/none" AWS_SHARED_CREDENTIALS_FILE="$work/none"

# ---- the server ----
s3="$work/s3"
mkdir -p "$s3/bench"
"$helper" serve "$s3" "$work/server.env" 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  [ -f "$work/server.env" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$work/server.env" ] || { echo "the server did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/server.env"
echo "server: $AWS_ENDPOINT_URL (pid $server_pid), data in $work" >&2

# ---- the data, put on the server once (not measured) ----
data="$work/data"
read -r _ small_bytes < <("${py[@]}" gen "$data/small" "$small_files" "$small_min" "$small_max")
head -c $((big_mib * 1048576)) /dev/urandom > "$data/big.bin"
big_bytes=$((big_mib * 1048576))
"$helper" upload "$data/small" s3://bench/src/small/ > /dev/null
"$helper" upload "$data/big.bin" s3://bench/src/big.bin > /dev/null

# "FILES BYTES" below a directory (or of one file).
count() { find "$1" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { print n + 0, s + 0 }'; }

# check WHAT GOT SRC: the copy GOT must equal the source SRC (count, bytes, content).
check() {
  local what=$1 got=$2 src=$3 want have
  want=$(count "$src")
  have=$( [ -e "$got" ] && count "$got" || echo "0 0")
  if [ "$have" != "$want" ]; then
    echo "$what: expected $want (files bytes), found $have in $got" >&2; exit 1
  fi
  if [ -d "$src" ]; then diff -rq "$src" "$got" >&2; else cmp "$src" "$got" >&2; fi || {
    echo "$what: content differs" >&2; exit 1; }
}

# timed NAME CMD...: runs CMD after a sync; "wall_seconds peak_KiB" appended to
# $work/NAME.times, the copy time the tool measured itself (its output's third field, if
# any) to $work/NAME.inner.
timed() {
  local name=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$work/last.time" "$@" > "$work/last.out" 2> "$work/last.err" || {
    echo "$name failed:" >&2; cat "$work/last.err" "$work/last.out" >&2; exit 1; }
  cat "$work/last.time" >> "$work/$name.times"
  awk 'NF >= 3 { print $3 }' "$work/last.out" >> "$work/$name.inner"
}
# Median of a column of numbers (lower median for even counts).
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }
wall() { cut -d' ' -f1 "$work/$1.times" | median; }
peak() { cut -d' ' -f2 "$work/$1.times" | median | awk '{ printf "%.0f", $1 / 1024 }'; }
inner() { [ -s "$work/$1.inner" ] && median < "$work/$1.inner" || echo 0; }

# kiln_job NAME COMMAND MAPPINGS: times a one-instance job through `kiln run` (fresh state
# directory $work/job.state, working directory kept for the check).
kiln_job() {
  local name=$1 command=$2 mappings=$3
  rm -rf "$work/job.state"
  cat > "$work/job.yaml" <<YAML
name: $name
tasks:
  t:
    command: $command
$mappings
YAML
  timed "$name" "$kiln" run "$work/job.yaml" --state-dir "$work/job.state" --keep-work-dirs --quiet
}
workdir() { echo "$work/job.state/work/"*/t/0.1; }

# copy TOOL CASE N: one timed copy (the N-th), checked, then its result removed.
copy() {
  local tool=$1 c=$2 n=$3 name="$1-$2" dst
  case "$tool/$c" in
    kiln/small-download)
      kiln_job "$name" '["true"]' '    inputs: [{source: "s3://bench/src/small/", target: in}]'
      check "$name" "$(workdir)/in" "$data/small" ;;
    lib/small-download)
      timed "$name" "$helper" download s3://bench/src/small/ "$work/copy"
      check "$name" "$work/copy" "$data/small" ;;
    boto3/small-download)
      timed "$name" "${py[@]}" download-prefix bench src/small/ "$work/copy"
      check "$name" "$work/copy" "$data/small" ;;
    kiln/big-download)
      kiln_job "$name" '["true"]' '    inputs: [{source: "s3://bench/src/big.bin", target: big.bin}]'
      check "$name" "$(workdir)/big.bin" "$data/big.bin" ;;
    lib/big-download)
      timed "$name" "$helper" download s3://bench/src/big.bin "$work/copy"
      check "$name" "$work/copy" "$data/big.bin" ;;
    boto3/big-download)
      timed "$name" "${py[@]}" download-file bench src/big.bin "$work/copy"
      check "$name" "$work/copy" "$data/big.bin" ;;
    kiln/small-upload)
      dst="$name-$n"
      kiln_job "$name" "[\"ln\", \"-s\", \"$data/small\", \"out\"]" "    outputs: [{source: out, target: \"s3://bench/$dst/\"}]"
      check "$name" "$s3/bench/$dst" "$data/small" ;;
    lib/small-upload)
      dst="$name-$n"
      timed "$name" "$helper" upload "$data/small" "s3://bench/$dst/"
      check "$name" "$s3/bench/$dst" "$data/small" ;;
    boto3/small-upload)
      dst="$name-$n"
      timed "$name" "${py[@]}" upload-dir "$data/small" bench "$dst/"
      check "$name" "$s3/bench/$dst" "$data/small" ;;
    kiln/big-upload)
      dst="$name-$n.bin"
      kiln_job "$name" "[\"ln\", \"-s\", \"$data/big.bin\", \"big.bin\"]" "    outputs: [{source: big.bin, target: \"s3://bench/$dst\"}]"
      check "$name" "$s3/bench/$dst" "$data/big.bin" ;;
    lib/big-upload)
      dst="$name-$n.bin"
      timed "$name" "$helper" upload "$data/big.bin" "s3://bench/$dst"
      check "$name" "$s3/bench/$dst" "$data/big.bin" ;;
    boto3/big-upload)
      dst="$name-$n.bin"
      timed "$name" "${py[@]}" upload-file "$data/big.bin" bench "$dst"
      check "$name" "$s3/bench/$dst" "$data/big.bin" ;;
  esac
  # Every copy goes to a fresh key (an upload never replaces an object: no server-side
  # overwrite costs), and is removed once checked.
  rm -rf "$work/copy" "$work/job.state"
  [ -z "${dst:-}" ] || rm -rf "${s3:?}/bench/$dst"
}

# ---- fixed costs ----
for n in $(seq "$repeat"); do
  kiln_job kiln-nothing '["true"]' ''
  timed boto3-nothing "${py[@]}" startup
done

# ---- the four cases, each tool REPEAT times, the order rotating ----
tools=(kiln lib boto3)
for c in "${cases[@]}"; do
  for n in $(seq "$repeat"); do
    for k in 0 1 2; do
      copy "${tools[$(((n - 1 + k) % 3))]}" "$c" "$n"
    done
  done
  echo "$c done" >&2
done

# ---- report ----
kiln_fixed=$(wall kiln-nothing)
boto_fixed=$(wall boto3-nothing)
echo
echo "small: $small_files files, $small_min-$small_max KiB each ($((small_bytes / 1024)) KiB); big: one file of $big_mib MiB"
echo "medians of $repeat; fixed costs: kiln run of the job without mappings ${kiln_fixed} s, python3 + boto3 start-up ${boto_fixed} s"
echo
printf '%-15s %8s %10s %8s %11s %6s\n' case kiln_s kiln_MiB/s boto3_s boto3_MiB/s ratio
for c in "${cases[@]}"; do
  case $c in small-*) bytes=$small_bytes ;; *) bytes=$big_bytes ;; esac
  awk -v c="$c" -v b="$bytes" -v k="$(wall "kiln-$c")" -v p="$(wall "boto3-$c")" 'BEGIN {
    m = b / 1048576
    printf "%-15s %8.2f %10.1f %8.2f %11.1f %6.2f\n", c, k, m / k, p, m / p, k / p }'
done
echo
echo "without fixed costs: kiln_net = kiln_s - the job without mappings; lib_s = Storage called"
echo "directly (process wall), lib_copy_s = its copy alone; boto3_copy_s = boto3's copy alone;"
echo "copy_ratio = lib_copy_s / boto3_copy_s. peak: maximum resident set size (MiB)."
printf '%-15s %10s %7s %10s %12s %10s %10s %10s\n' case kiln_net_s lib_s lib_copy_s boto3_copy_s copy_ratio kiln_peak boto3_peak
for c in "${cases[@]}"; do
  awk -v c="$c" -v k="$(wall "kiln-$c")" -v o="$kiln_fixed" -v l="$(wall "lib-$c")" \
      -v li="$(inner "lib-$c")" -v bi="$(inner "boto3-$c")" -v kp="$(peak "kiln-$c")" -v bp="$(peak "boto3-$c")" 'BEGIN {
    printf "%-15s %10.2f %7.2f %10.2f %12.2f %10.2f %10d %10d\n", c, k - o, l, li, bi, li / bi, kp, bp }'
done
