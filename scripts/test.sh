#!/usr/bin/env bash
# The whole test suite: unit, property, store conformance and end-to-end tests of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
