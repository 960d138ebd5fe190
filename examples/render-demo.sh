#!/usr/bin/env bash
# Quickstart for the main job so far: render examples/render.yaml into the Flux repo and the two
# platform repos, then play the cluster the way Flux does: open the app key with the cluster key,
# open the app's secrets with the app key. Keys live in a temp directory (embedded default: a
# local key store; the cluster key is generated there too). Touches nothing outside it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --bin sealwright
sw="$here/target/release/sealwright"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== sealwright flux render --config examples/render.yaml --out out --keys-dir keys"
"$sw" flux render --config "$here/examples/render.yaml" --out out --keys-dir keys
echo
echo "== the files (out/flux is the Flux repo, out/platform/<app>-platform the platform repos)"
find out -type f | sort
echo
echo "== out/flux/apps/shop-platform/sync.yaml"
cat out/flux/apps/shop-platform/sync.yaml
echo
echo "== out/platform/shop-platform/secrets/shop-production/database.sops.yaml"
cat out/platform/shop-platform/secrets/shop-production/database.sops.yaml
echo
echo "== as the cluster: open shop's app key with the cluster key (keys/_cluster.agekey)"
SOPS_AGE_KEY_FILE=keys/_cluster.agekey "$sw" sops decrypt --extract '["data"]["age.agekey"]' \
  out/flux/apps/shop-platform/age-secret.sops.yaml | base64 -d > shop-from-cluster.agekey
grep '^# public key' shop-from-cluster.agekey
echo
echo "== with that key: decrypt shop's database Secret"
SOPS_AGE_KEY_FILE=shop-from-cluster.agekey "$sw" sops decrypt \
  out/platform/shop-platform/secrets/shop-production/database.sops.yaml
echo
echo "== and the values, base64-decoded"
for k in username password; do
  printf '%s: ' "$k"
  SOPS_AGE_KEY_FILE=shop-from-cluster.agekey "$sw" sops decrypt --extract "[\"data\"][\"$k\"]" \
    out/platform/shop-platform/secrets/shop-production/database.sops.yaml | base64 -d
  echo
done
echo
echo "== billing's key cannot open shop's secrets"
SOPS_AGE_KEY_FILE=keys/billing.agekey "$sw" sops decrypt \
  out/platform/shop-platform/secrets/shop-production/database.sops.yaml 2>&1 | head -n1 || true
echo
echo "== rendering again changes nothing (noise-free: same bytes, ciphertext included)"
"$sw" flux render --config "$here/examples/render.yaml" --out out --keys-dir keys
