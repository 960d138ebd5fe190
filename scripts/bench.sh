#!/usr/bin/env bash
# Benchmarks: the SOPS engine in process and per CLI process, against the real sops on the same
# files. Installs sops first (scripts/test-deps.sh) and builds the release binary the bench spawns.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/test-deps.sh >/dev/null
cargo build --release --bin sealwright
cargo bench --bench sops "$@"
cargo bench --bench render "$@"
cargo bench --bench git "$@"
cargo bench --bench reconcile "$@"
cargo bench --bench credentials "$@"
cargo bench --bench external "$@"
cargo bench --bench controller "$@"
cargo bench --bench recipes "$@"
