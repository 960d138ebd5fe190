#!/usr/bin/env bash
# How long one process takes to start (README, "CLI start"): `perf stat` over interleaved rounds
# of `/bin/true`, `sealwright --version`, `sealwright sops encrypt` and the real `sops encrypt`
# on examples/secret.yaml, plus the floor of a Rust process on this machine (a hello world linked
# dynamically and statically). Prints the mean of each over the rounds.
#   ROUNDS (default 4), RUNS (processes per round, default 200; sops gets a fifth of them)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v perf >/dev/null || { echo "cli-start: needs perf (Debian: linux-perf)" >&2; exit 1; }
./scripts/test-deps.sh >/dev/null
cargo build --quiet --release --bin sealwright
rounds="${ROUNDS:-4}" runs="${RUNS:-200}"
sw="$PWD/target/release/sealwright" sops="$PWD/.tools/bin/sops" file="$PWD/examples/secret.yaml"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# A recipient only: encryption needs no private key.
recipient="$("$sw" keys generate --out "$tmp/key.txt")"
printf 'fn main() { println!("hello"); }\n' > "$tmp/hello.rs"
rustc -O "$tmp/hello.rs" -o "$tmp/hello-dynamic"
rustc -O -C target-feature=+crt-static -C relocation-model=static "$tmp/hello.rs" -o "$tmp/hello-static"
names=(true hello-dynamic hello-static version encrypt sops)
cmds=("/bin/true" "$tmp/hello-dynamic" "$tmp/hello-static" "$sw --version"
  "$sw sops encrypt --age $recipient $file" "$sops encrypt --age $recipient $file")
declare -A sum
for ((r = 0; r < rounds; r++)); do
  for i in "${!names[@]}"; do
    n="$runs"; [ "${names[$i]}" = sops ] && n=$((runs / 5))
    # shellcheck disable=SC2086 # the command is a word list on purpose
    ms="$(perf stat -r "$n" ${cmds[$i]} 2>&1 >/dev/null | awk '/seconds time elapsed/ {print $1 * 1000}')"
    sum[${names[$i]}]="$(awk -v a="${sum[${names[$i]}]:-0}" -v b="$ms" 'BEGIN {print a + b}')"
  done
done
for n in "${names[@]}"; do
  awk -v s="${sum[$n]}" -v r="$rounds" -v n="$n" 'BEGIN {printf "%-14s %7.2f ms\n", n, s / r}'
done
awk -v a="${sum[sops]}" -v b="${sum[encrypt]}" 'BEGIN {printf "sops / sealwright encrypt: %.1fx\n", a / b}'
