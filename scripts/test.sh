#!/usr/bin/env bash
# The whole test suite: installs what the tests need (scripts/test-deps.sh), then runs every unit,
# integration and interop test with nextest. The benchmark and the fuzz target are run separately
# (see README "Testing").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/test-deps.sh
cargo nextest run --lib --bins --tests --no-fail-fast "$@"
