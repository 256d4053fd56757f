#!/usr/bin/env bash
# Regenerates kiln_client/ from the OpenAPI document of the kiln binary, with the pinned
# openapi-python-client (scripts/services/python-tools.sh):
#   KILN=target/debug/kiln KILN_TEST_PYTHON_TOOLS=.../bin clients/python/regenerate.sh [OUT_DIR]
# OUT_DIR defaults to clients/python/kiln_client; the tests generate into a temporary
# directory and compare, so a stale client fails them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kiln=${KILN:-$here/../../target/debug/kiln}
tools=$(cd "${KILN_TEST_PYTHON_TOOLS:?set KILN_TEST_PYTHON_TOOLS to the bin directory of the Python tools}" && pwd)
out=${1:-$here/kiln_client}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$kiln" openapi >"$tmp/openapi.json"
# The generator formats its output with ruff, found on PATH (without a cache in the output).
RUFF_NO_CACHE=true PATH="$tools:$PATH" "$tools/openapi-python-client" generate --path "$tmp/openapi.json" \
  --meta none --output-path "$tmp/kiln_client" --config "$here/openapi-python-client.yaml" \
  >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
rm -rf "$tmp/kiln_client/.ruff_cache" "$out"
mv "$tmp/kiln_client" "$out"
