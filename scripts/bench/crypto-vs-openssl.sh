#!/usr/bin/env bash
# ML-KEM and ML-DSA rates of `citadel bench crypto` beside OpenSSL 3.5
# through Python `cryptography` >= 50 (installed when missing), measured in
# one run on this machine, printed as a Markdown table with the ratio
# (issue 16's table).
#
#   scripts/bench/crypto-vs-openssl.sh               # SECONDS_PER=1
#   BIN=/path/to/citadel scripts/bench/crypto-vs-openssl.sh   # another build
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
SECONDS_PER=${SECONDS_PER:-1}
python3 -c 'import sys, cryptography; sys.exit(int(cryptography.__version__.split(".")[0]) < 50)' 2>/dev/null ||
  python3 -m pip install -q "cryptography>=50"
if [[ -z "${BIN:-}" ]]; then cargo build --release -q -p citadel-cli; fi
C=${BIN:-./target/release/citadel}
W=$(mktemp -d /tmp/citadel-crypto-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
for alg in ml-kem-768 ml-kem-1024 ml-dsa-44 ml-dsa-65 ml-dsa-87; do
  "$C" bench crypto --seconds "$SECONDS_PER" --filter "$alg" --json -q > "$W/$alg.json"
done
echo "$("$C" --version | head -1), $(nproc) cores"
python3 scripts/bench/crypto_vs_openssl.py "$W" "$SECONDS_PER"
