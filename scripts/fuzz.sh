#!/usr/bin/env bash
# Runs every fuzz target for a while (default 60 s each).
#
# Usage: scripts/fuzz.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The targets use libFuzzer's
# sanitizer flags, which need a nightly compiler; on the stable toolchain
# RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-60}
# Seed the age target with the CCTV vectors' age files.
mkdir -p corpus/age_decrypt
python3 - <<'PY'
import os, zlib
src = '../crates/citadel-age/tests/data/cctv'
for n in os.listdir(src):
    head, body = open(os.path.join(src, n), 'rb').read().split(b'\n\n', 1)
    if b'compressed: zlib' in head:
        body = zlib.decompress(body)
    if len(body) < 200_000:
        open(f'corpus/age_decrypt/{n}', 'wb').write(body)
PY
# Seed the vault target with a few real requests.
mkdir -p corpus/vault_api
printf '\x01transit/encrypt/aes\n{"plaintext":"aGk="}' > corpus/vault_api/encrypt
printf '\x01transit/decrypt/pq\n{"ciphertext":"vault:v1:AAAA"}' > corpus/vault_api/decrypt
printf '\x01secret/data/a\n{"data":{"k":"v"},"options":{"cas":0}}' > corpus/vault_api/kv
printf '\x85secret/data/a\n{"data":{"k":null}}' > corpus/vault_api/patch
printf '\x02sys/policies/acl/p\n{"policy":"path \\"a/*\\" { capabilities = [\\"read\\"] }"}' > corpus/vault_api/policy
printf '\x01transit/sign/ec/sha2-256\n{"input":"aGk=","marshaling_algorithm":"jws"}' > corpus/vault_api/sign
for t in key_files age_decrypt age_strings manifest audit_text transfer_receiver vault_api; do
  echo "== $t"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" -- -max_total_time="$SECS" -max_len=100000
done
