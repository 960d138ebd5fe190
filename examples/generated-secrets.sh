#!/usr/bin/env bash
# Generated and derived secrets on the embedded default, shaped like the CrewAI platform chart's:
# start `sealwright serve --config examples/generated-secrets.yaml` (app "shop" of tenant "acme"
# comes from the registrations directory), write secrets whose values the server generates once
# (session keys, an OIDC RSA key with its kid and public half, a self-signed TLS pair) or derives
# (a connection string, an index URL), show what the API says (key names and kinds, never
# values), prove the keys with openssl, write the same secret again (no commit), rotate the
# database password with an overlap, and decrypt a committed file the way the cluster would.
# Everything lives in a temp data dir; the server is stopped at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --bin sealwright
sw="$here/target/release/sealwright"
data="$(mktemp -d)"
port="${PORT:-18082}"
export SEALWRIGHT_ADMIN_TOKEN="generated-secrets-demo-admin-token"
"$sw" serve --config "$here/examples/generated-secrets.yaml" --data-dir "$data" --listen "127.0.0.1:$port" \
  > "$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
api="http://127.0.0.1:$port"
auth="Authorization: Bearer $SEALWRIGHT_ADMIN_TOKEN"
for _ in $(seq 1 100); do
  curl -fs "$api/readyz" > /dev/null 2>&1 && break
  sleep 0.1
done
platform="$data/repos/platform/shop-platform.git"

echo "== PUT /v1/apps/shop/secrets/crewai (generated once, then kept in Git)"
crewai='{"targetNamespaces": ["shop-production"],
  "data": {"OIDC_ISSUER": "https://crewai.example.com"},
  "generate": {
    "SECRET_KEY_BASE": {"kind": "alphanumeric", "length": 64},
    "ENCRYPTION_KEY": {"kind": "hex", "length": 64},
    "OIDC_KID": {"kind": "alphanumeric", "length": 12, "idPrefix": "crewai-oidc-"},
    "OIDC_PRIVATE_KEY": {"kind": "rsa", "bits": 2048, "format": "pkcs1", "publicKey": "OIDC_PUBLIC_KEY"}},
  "validate": {"OIDC_PRIVATE_KEY": {"pem": "rsa-private-key-pkcs1"}, "OIDC_ISSUER": {"url": {"scheme": "https"}}}}'
curl -fsS -X PUT -H "$auth" "$api/v1/apps/shop/secrets/crewai" -d "$crewai"; echo
echo "== PUT /v1/apps/shop/secrets/crewai-tls (a self-signed pair: tls.crt and tls.key)"
curl -fsS -X PUT -H "$auth" "$api/v1/apps/shop/secrets/crewai-tls" -d '{"targetNamespaces": ["shop-production"],
  "type": "kubernetes.io/tls",
  "generate": {"tls.crt": {"kind": "self-signed-tls", "commonName": "crewai.example.com", "dnsNames": ["crewai.example.com"], "days": 90}}}'
echo
echo "== PUT /v1/apps/shop/secrets/db with the postgres preset (password generated, URL derived)"
curl -fsS -X PUT -H "$auth" "$api/v1/apps/shop/secrets/db" \
  -d '{"targetNamespaces": ["shop-production"], "preset": "postgres", "data": {"username": "crew@ai"}}'
echo
echo "== the CLI: an index URL derived from a generated password"
SEALWRIGHT_SERVER="$api" SEALWRIGHT_TOKEN="$SEALWRIGHT_ADMIN_TOKEN" "$sw" secret put shop pip \
  --namespace shop-production --generate password=alphanumeric:24 \
  --derive 'PIP_INDEX_URL=https://ci:{{ password | urlencode }}@pypi.internal/simple/' \
  --validate 'PIP_INDEX_URL={"url": {"scheme": "https", "userinfo": true, "pathSuffix": "/simple/"}}' > /dev/null
echo "== GET /v1/apps/shop/secrets/db (key kinds and rules: never values)"
curl -fsS -H "$auth" "$api/v1/apps/shop/secrets/db"; echo
echo
echo "== refused: a derived key set by hand, a forbidden key, a key that is not an RSA key"
curl -sS -X PATCH -H "$auth" "$api/v1/apps/shop/secrets/db" -d '{"data": {"DATABASE_URL": "postgres://x"}}'; echo
curl -sS -X PUT -H "$auth" "$api/v1/apps/shop/secrets/rails" \
  -d '{"targetNamespaces": ["shop-production"], "data": {"RAILS_MASTER_KEY": "0123456789abcdef"}}'; echo
curl -sS -X PATCH -H "$auth" "$api/v1/apps/shop/secrets/crewai" -d '{"data": {"OIDC_PRIVATE_KEY": "not a key"}}'; echo
echo
echo "== openssl checks what was generated (values revealed to the admin, audited)"
reveal() { curl -fsS -H "$auth" "$api/v1/apps/shop/secrets/$1?reveal=true"; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][sys.argv[1]], end="")' "$1"; }
reveal crewai | field OIDC_PRIVATE_KEY > "$data/oidc.pem"
openssl rsa -check -noout -in "$data/oidc.pem"
reveal crewai-tls | field tls.crt > "$data/tls.crt"
openssl x509 -noout -subject -ext subjectAltName -enddate -in "$data/tls.crt"
echo
echo "== the same PUT again: no commit (the generated values are kept)"
before=$(git --git-dir "$platform" rev-parse main)
curl -fsS -X PUT -H "$auth" "$api/v1/apps/shop/secrets/crewai" -d "$crewai" > /dev/null
[ "$(git --git-dir "$platform" rev-parse main)" = "$before" ] && echo "main is still $before"
echo
echo "== POST /v1/apps/shop/secrets/db/rotate (keepPrevious: the old password stays for the overlap)"
curl -fsS -X POST -H "$auth" "$api/v1/apps/shop/secrets/db/rotate" -d '{"keys": ["password"], "keepPrevious": true}'; echo
curl -fsS -H "$auth" "$api/v1/apps/shop/secrets/db" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keyKinds"])'
echo
echo "== git log of the platform repo (key names only; DATABASE_URL followed the password)"
git --git-dir "$platform" log --stat --format='%h %s%n%b' -2
echo "== the committed db file: the spec is plain metadata, the values are encrypted"
git --git-dir "$platform" show main:secrets/shop-production/db.sops.yaml | sed -n '1,14p'
echo "..."
echo "== as the cluster: open shop's app key with the cluster key, then the Secret"
git --git-dir "$data/repos/platform/flux.git" show main:apps/shop-platform/age-secret.sops.yaml > "$data/age-secret.sops.yaml"
SOPS_AGE_KEY_FILE="$data/keys/cluster.agekey" "$sw" sops decrypt --extract '["data"]["age.agekey"]' \
  "$data/age-secret.sops.yaml" | base64 -d > "$data/shop-from-cluster.agekey"
git --git-dir "$platform" show main:secrets/shop-production/db.sops.yaml > "$data/db.sops.yaml"
decrypt=("$sw" sops decrypt)
command -v sops > /dev/null && decrypt=(sops -d)
[ -x "$here/.tools/bin/sops" ] && decrypt=("$here/.tools/bin/sops" -d)
SOPS_AGE_KEY_FILE="$data/shop-from-cluster.agekey" "${decrypt[@]}" "$data/db.sops.yaml" | grep -A8 '^data:' \
  | sed 's/^\( *[A-Za-z_.]*\): .*/\1: <base64 value>/'
echo
echo "== GET /v1/events (secret.generated, secret.rotated: key names only)"
curl -fsS -H "$auth" "$api/v1/events" | tr '{' '\n' | grep -E 'secret\.(generated|rotated)'
