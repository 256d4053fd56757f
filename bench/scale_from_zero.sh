#!/usr/bin/env bash
# Time from submit to the first instance RUNNING on a compute environment scaled to zero, for
# the local, docker and slurm providers, each against its provider's own start (see
# bench/scale_from_zero.py). The docker part needs the test image (scripts/test-images.sh);
# the slurm part a Slurm (SLURM_CONF), e.g. the tests' one-host Slurm:
#   KILN_SERVICES=slurm scripts/with-services.sh bench/scale_from_zero.sh
# Without SLURM_CONF the slurm part is left out (said so on stderr).
#
# Usage: bench/scale_from_zero.sh [PROVIDER ...]     (default: local docker slurm)
#        RUNS=3 KILN_BIN=target/debug/kiln bench/scale_from_zero.sh local
set -euo pipefail
cd "$(dirname "$0")/.."

providers=("$@")
[ ${#providers[@]} -gt 0 ] || providers=(local docker slurm)
if [[ -z ${SLURM_CONF:-} && " ${providers[*]} " == *" slurm "* ]]; then
  echo "note: no SLURM_CONF: the slurm part is left out" >&2
  providers=("${providers[@]/slurm/}")
fi
if [[ -z ${KILN_BIN:-} ]]; then
  cargo build --release --locked -p kiln >&2
  KILN_BIN="$PWD/target/release/kiln"
fi
if [[ " ${providers[*]} " == *" docker "* ]]; then
  scripts/test-images.sh "$KILN_BIN" >&2
fi
exec python3 bench/scale_from_zero.py --kiln "$KILN_BIN" --runs "${RUNS:-5}" \
  ${KILN_TEST_SLURM_PARTITION:+--partition "$KILN_TEST_SLURM_PARTITION"} ${providers[*]}
