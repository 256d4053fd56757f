#!/usr/bin/env bash
# Runs a command with the test services up (scripts/services/*.sh), then stops them:
#   scripts/with-services.sh cargo test -p kiln-store
# KILN_SERVICES="postgres registry" starts only the services named.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services/lib.sh
trap stop_services EXIT
for service in scripts/services/*.sh; do
  name=$(basename "$service" .sh)
  [[ $name == lib ]] && continue
  [[ -z ${KILN_SERVICES:-} || " $KILN_SERVICES " == *" $name "* ]] || continue
  source "$service"
done
"$@"
