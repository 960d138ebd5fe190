#!/usr/bin/env bash
# Quickstart: encrypt examples/secret.yaml with the demo age key, show the encrypted file, decrypt
# it back, change one value in place and show that only that value (plus lastmodified and mac)
# changed. Works on a fresh machine with cargo; touches nothing outside a temp directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --bin sealwright
sw="$here/target/release/sealwright"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export SOPS_AGE_KEY_FILE="$here/examples/demo.agekey"
recipient="$(grep -o 'age1[0-9a-z]*' "$SOPS_AGE_KEY_FILE" | head -n1)"

cp "$here/examples/secret.yaml" "$work/billing-db.sops.yaml"
echo "== sealwright sops encrypt --age $recipient --encrypted-regex '^(data|stringData)\$' -i billing-db.sops.yaml"
"$sw" sops encrypt --age "$recipient" --encrypted-regex '^(data|stringData)$' -i "$work/billing-db.sops.yaml"
cat "$work/billing-db.sops.yaml"
echo
echo "== sealwright sops decrypt billing-db.sops.yaml"
"$sw" sops decrypt "$work/billing-db.sops.yaml"
echo
echo "== sealwright sops decrypt --extract '[\"stringData\"][\"username\"]'"
"$sw" sops decrypt --extract '["stringData"]["username"]' "$work/billing-db.sops.yaml"
echo
echo
cp "$work/billing-db.sops.yaml" "$work/before.yaml"
sleep 1 # lastmodified has one-second resolution
echo "== sealwright sops set billing-db.sops.yaml '[\"stringData\"][\"password\"]' '\"rotated-demo-value\"'  (diff: one value + lastmodified + mac)"
"$sw" sops set "$work/billing-db.sops.yaml" '["stringData"]["password"]' '"rotated-demo-value"'
diff "$work/before.yaml" "$work/billing-db.sops.yaml" || true
if command -v sops >/dev/null 2>&1 || [ -x "$here/.tools/bin/sops" ]; then
  sops_bin="$(command -v sops || echo "$here/.tools/bin/sops")"
  echo
  echo "== the real sops reads it: $sops_bin decrypt billing-db.sops.yaml"
  SOPS_DISABLE_VERSION_CHECK=1 "$sops_bin" decrypt "$work/billing-db.sops.yaml"
fi
