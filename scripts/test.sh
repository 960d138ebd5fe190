#!/usr/bin/env bash
# The whole test suite: installs what the tests need (scripts/test-deps.sh), then runs every unit,
# integration and interop test of every crate with nextest, and the crates' doc examples (which
# nextest does not run). The benchmark and the fuzz target are run separately (see README
# "Testing").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/test-deps.sh
cargo nextest run --workspace --lib --bins --tests --no-fail-fast "$@"
cargo test --workspace --doc --quiet
