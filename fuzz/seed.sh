#!/usr/bin/env bash
# Seeds the corpus from the shared sops vectors (read in place, not copied into the repository's
# history: corpus/ is git-ignored) and runs the target for $1 seconds (default 600).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
shared="${SEALWRIGHT_SHARED:-../../shared}"
mkdir -p corpus/parse_decrypt
for f in "$shared"/sops-vectors/{inputs,encrypted,decrypted,ops}/*; do
  cp "$f" "corpus/parse_decrypt/$(basename "$f")"
done
RUSTC_BOOTSTRAP=1 cargo fuzz run parse_decrypt corpus/parse_decrypt -- -max_total_time="${1:-600}" -rss_limit_mb=4096 -max_len=65536
