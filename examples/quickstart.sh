#!/usr/bin/env bash
# The main job on the embedded default: start `sealwright serve --config examples/quickstart.yaml`
# (local bare Git repos, local key store, API and dashboard on 127.0.0.1), register nothing by hand (the
# registrations directory already declares app "shop"), write a secret through the API with
# curl, and show the result: the commit in the platform repo, the Flux repo's files, and the
# secret decrypted the way the cluster would (cluster key -> app key -> secret). Everything lives
# in a temp data dir; the server is stopped at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --bin sealwright
sw="$here/target/release/sealwright"
data="$(mktemp -d)"
port="${PORT:-18080}"
export SEALWRIGHT_ADMIN_TOKEN="quickstart-admin-token-0123456789abc"
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
cat "$data/server.log"
echo

echo "== GET /v1/apps/shop (registered from examples/quickstart.d/shop.yaml)"
curl -fsS -H "$auth" "$api/v1/apps/shop"; echo
echo
echo "== PUT /v1/apps/shop/secrets/database (answers once the commit is pushed)"
curl -fsS -X PUT -H "$auth" "$api/v1/apps/shop/secrets/database" \
  -d '{"targetNamespaces": ["shop-staging", "shop-production"], "data": {"username": "shop", "password": "not-a-real-password"}}'
echo
echo "== PATCH it: a new password, one more key"
curl -fsS -X PATCH -H "$auth" "$api/v1/apps/shop/secrets/database" \
  -d '{"data": {"password": "rotated-not-real", "host": "db.shop.svc"}}'
echo
echo "== GET /v1/apps/shop/secrets (names, namespaces, keys, commits: never values)"
curl -fsS -H "$auth" "$api/v1/apps/shop/secrets"; echo
echo
platform="$data/repos/platform/shop-platform.git"
flux="$data/repos/platform/flux.git"
echo "== git log of the platform repo"
git --git-dir "$platform" log --stat --format='%h %s%n%b'
echo "== files of the Flux repo"
git --git-dir "$flux" ls-tree -r --name-only main
echo
echo "== as the cluster: open shop's app key with the cluster key ($data/keys/cluster.agekey)"
git --git-dir "$flux" show main:apps/shop-platform/age-secret.sops.yaml > "$data/age-secret.sops.yaml"
SOPS_AGE_KEY_FILE="$data/keys/cluster.agekey" "$sw" sops decrypt --extract '["data"]["age.agekey"]' \
  "$data/age-secret.sops.yaml" | base64 -d > "$data/shop-from-cluster.agekey"
grep '^# public key' "$data/shop-from-cluster.agekey"
echo
echo "== ...and with it, the committed secret (sops -d, or sealwright sops decrypt without sops)"
git --git-dir "$platform" show main:secrets/shop-production/database.sops.yaml > "$data/database.sops.yaml"
decrypt=("$sw" sops decrypt)
command -v sops > /dev/null && decrypt=(sops -d)
[ -x "$here/.tools/bin/sops" ] && decrypt=("$here/.tools/bin/sops" -d)
SOPS_AGE_KEY_FILE="$data/shop-from-cluster.agekey" "${decrypt[@]}" "$data/database.sops.yaml"
echo
echo "== GET /v1/events (the audit trail: who, what, which keys, which commit; no values)"
curl -fsS -H "$auth" "$api/v1/events"; echo
echo
echo "== the dashboard at $api/ui/ (sign in with the admin token): shop's secrets, as its page lists them"
jar="$data/dashboard.cookies"
curl -fsS -c "$jar" -o /dev/null -d "token=$SEALWRIGHT_ADMIN_TOKEN" "$api/ui/login"
curl -fsS -b "$jar" "$api/ui/apps/shop/rows" | sed -e 's/<[^>]*>/ /g' \
  | grep -v -e '^ *$' -e '^ *\(Edit\|Delete\|Reveal\) *$' | tr -s ' \n' ' '; echo
if [ -n "${KEEP:-}" ]; then
  echo "KEEP is set: serving $api/ui/ until Ctrl-C (token: $SEALWRIGHT_ADMIN_TOKEN)"
  wait $server
fi
