#!/usr/bin/env bash
# The whole test suite: unit, property, store conformance and end-to-end tests of the binary,
# including the container tests on this machine's Docker Engine (their image is built here,
# with no registry, by scripts/test-images.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

kiln_objects() {
  docker ps -aq --filter label=kiln.managed=true
  docker network ls -q --filter label=kiln.managed=true
}

cargo build --locked -p kiln
scripts/test-images.sh target/debug/kiln

# Every service the tests need, started once for the whole run (scripts/services/*.sh).
source scripts/services/lib.sh
trap stop_services EXIT
for service in scripts/services/*.sh; do
  [[ $service == */lib.sh ]] || source "$service"
done

before=$(kiln_objects | sort)
cargo test --workspace --locked --no-fail-fast "$@"

# Nothing the suite created and labelled as Kiln's may outlive it.
left=$(comm -13 <(echo "$before") <(kiln_objects | sort) | grep . || true)
if [[ -n "$left" ]]; then
  echo "error: the tests left containers or networks labelled kiln.managed=true:" >&2
  docker ps -a --filter label=kiln.managed=true >&2
  docker network ls --filter label=kiln.managed=true >&2
  exit 1
fi
