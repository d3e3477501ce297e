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
# Seed every target with the corpus `cargo test` replays
# (crates/*/tests/data/fuzz/TARGET/); new crash inputs worth keeping go
# there too, so the replay catches a regression deterministically.
for d in ../crates/*/tests/data/fuzz/*/; do
  t=$(basename "$d")
  [ "$t" = vault_core ] && t=vault_api
  mkdir -p "corpus/$t"
  cp "$d"* "corpus/$t/"
done
# The age target also starts from the CCTV vectors' age files.
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
for t in key_files age_decrypt age_strings manifest audit_text transfer_receiver vault_api; do
  echo "== $t"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" -- -max_total_time="$SECS" -max_len=100000
done
