#!/usr/bin/env bash
# External secrets on the embedded default: start `sealwright serve --config
# examples/quickstart.yaml` (app "shop" of tenant "acme" comes from the registrations directory),
# set tenant defaults and an app override with curl, deploy, and show the result: what the API
# says (key names and origins, never values), the commit in the platform repo, and the Secret
# app-shop-external-secrets decrypted the way the cluster would. The values are made up.
# Everything lives in a temp data dir; the server is stopped at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --bin sealwright
sw="$here/target/release/sealwright"
data="$(mktemp -d)"
port="${PORT:-18081}"
export SEALWRIGHT_ADMIN_TOKEN="external-secrets-demo-admin-token"
"$sw" serve --config "$here/examples/quickstart.yaml" --data-dir "$data" --listen "127.0.0.1:$port" \
  > "$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
api="http://127.0.0.1:$port"
auth="Authorization: Bearer $SEALWRIGHT_ADMIN_TOKEN"
for _ in $(seq 1 100); do
  curl -fs "$api/readyz" > /dev/null 2>&1 && break
  sleep 0.1
done

echo "== PUT /v1/tenants/acme/external-secrets/openai (tenant defaults: every app of acme gets them)"
curl -fsS -X PUT -H "$auth" "$api/v1/tenants/acme/external-secrets/openai" \
  -d '{"OPENAI_API_KEY": "sk-demo-tenant-not-real", "OPENAI_ORG": "org-demo-acme"}'
echo; echo
echo "== PUT /v1/apps/shop/external-secrets/openai (shop's own key wins; OPENAI_ORG stays the tenant's)"
curl -fsS -X PUT -H "$auth" "$api/v1/apps/shop/external-secrets/openai" \
  -d '{"OPENAI_API_KEY": "sk-demo-shop-not-real"}'
echo; echo
echo "== GET /v1/apps/shop/external-secrets (keys and where each comes from: never values)"
curl -fsS -H "$auth" "$api/v1/apps/shop/external-secrets"; echo
echo
echo "== POST /v1/apps/shop/deploys (resolves and commits them; returns the commit)"
curl -fsS -X POST -H "$auth" "$api/v1/apps/shop/deploys" \
  -d '{"tenant_id": "acme", "app_id": "shop", "image_ref": "ghcr.io/acme/shop:1.4.2"}'
echo; echo
echo "== POST /v1/apps/shop/deploys with another tenant: 409"
curl -sS -o /dev/stderr -w '%{http_code}\n' -X POST -H "$auth" "$api/v1/apps/shop/deploys" \
  -d '{"tenant_id": "globex"}' 2>&1
echo
platform="$data/repos/platform/shop-platform.git"
flux="$data/repos/platform/flux.git"
echo "== git log of the platform repo (key names and counts only)"
git --git-dir "$platform" log --stat --format='%h %s%n%b' -3
echo "== as the cluster: open shop's app key with the cluster key, then the Secret"
git --git-dir "$flux" show main:apps/shop-platform/age-secret.sops.yaml > "$data/age-secret.sops.yaml"
SOPS_AGE_KEY_FILE="$data/keys/cluster.agekey" "$sw" sops decrypt --extract '["data"]["age.agekey"]' \
  "$data/age-secret.sops.yaml" | base64 -d > "$data/shop-from-cluster.agekey"
git --git-dir "$platform" show main:secrets/shop-production/app-shop-external-secrets.sops.yaml \
  > "$data/external.sops.yaml"
decrypt=("$sw" sops decrypt)
command -v sops > /dev/null && decrypt=(sops -d)
[ -x "$here/.tools/bin/sops" ] && decrypt=("$here/.tools/bin/sops" -d)
SOPS_AGE_KEY_FILE="$data/shop-from-cluster.agekey" "${decrypt[@]}" "$data/external.sops.yaml"
echo
echo "== the pods read it with envFrom: examples/external-secrets/deployment.yaml"
grep -A3 'envFrom' "$here/examples/external-secrets/deployment.yaml"
echo
echo "== GET /v1/events (external_secret.updated, external_secret.injected: names and counts only)"
curl -fsS -H "$auth" "$api/v1/events" | tr '{' '\n' | grep external_secret
