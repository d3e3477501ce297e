#!/usr/bin/env bash
# age encryption throughput: citadel vs typage vs the raw cipher, side by side.
#
# Usage: scripts/bench/age-throughput.sh [SIZE_MIB]   (default 2048)
# Needs: a release build, openssl, node with scripts/interop installed
# (cd scripts/interop && npm ci), GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${1:-2048}
RUNS=${RUNS:-5}
cargo build --release -q -p citadel-cli
C=$PWD/target/release/citadel
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$W/plain"
"$C" key gen --alg mlkem768x25519 --output "$W/id" > /dev/null
R=$(cat "$W/id.pub"); I=$(grep AGE-SECRET "$W/id.key")
bytes=$((SIZE_MIB * 1024 * 1024))

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
secs() { /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1; }

echo "# $SIZE_MIB MiB, $RUNS runs each, median; $(nproc) cores; $(date -u +%F)"
ossl=$(for i in $(seq "$RUNS"); do openssl speed -evp chacha20-poly1305 -bytes 16384 -seconds 2 2>/dev/null | awk '/^ChaCha20-Poly1305/ {sub("k","",$2); print $2*1000/1e6}'; done | median)
echo "openssl speed -evp chacha20-poly1305 (16 KiB blocks, 1 core): $ossl MB/s"

"$C" encrypt -R "$W/id.pub" -o "$W/c.age" "$W/plain"
enc=$(for i in $(seq "$RUNS"); do secs "$C" encrypt -R "$W/id.pub" -o /dev/stdout "$W/plain"; done | median)
dec=$(for i in $(seq "$RUNS"); do secs "$C" decrypt -i "$W/id.key" -o /dev/stdout "$W/c.age"; done | median)
awk -v b=$bytes -v e=$enc -v d=$dec -v o=$ossl 'BEGIN {
  printf "citadel encrypt (file -> /dev/null): %.2f s, %.0f MB/s, %.0f%% of openssl\n", e, b/1e6/e, 100*b/1e6/e/o;
  printf "citadel decrypt (file -> /dev/null): %.2f s, %.0f MB/s, %.0f%% of openssl\n", d, b/1e6/d, 100*b/1e6/d/o;
  printf "citadel encrypt+decrypt: %.0f MB/s, %.0f%% of openssl\n", 2*b/1e6/(e+d), 100*2*b/1e6/(e+d)/o }'

# To and from real files on this disk (includes fsync), with peak RSS.
/usr/bin/time -f "citadel encrypt (file -> file, fsync): %e s, peak RSS %M KiB" "$C" encrypt -R "$W/id.pub" -o "$W/c2.age" "$W/plain"
/usr/bin/time -f "citadel decrypt (file -> file, fsync): %e s, peak RSS %M KiB" "$C" decrypt -i "$W/id.key" -o "$W/p2" "$W/c2.age"
cmp "$W/plain" "$W/p2"

if [ -d scripts/interop/node_modules/age-encryption ]; then
  te=$(secs node scripts/bench/typage_stream.mjs encrypt "$R" "$W/plain" /dev/null)
  node scripts/bench/typage_stream.mjs encrypt "$R" "$W/plain" "$W/t.age"
  td=$(secs node scripts/bench/typage_stream.mjs decrypt "$I" "$W/t.age" /dev/null)
  awk -v b=$bytes -v e=$te -v d=$td -v ce=$enc -v cd=$dec 'BEGIN {
    printf "typage encrypt (file -> /dev/null): %.2f s, %.0f MB/s (citadel is %.1fx)\n", e, b/1e6/e, e/ce;
    printf "typage decrypt (file -> /dev/null): %.2f s, %.0f MB/s (citadel is %.1fx)\n", d, b/1e6/d, d/cd }'
  /usr/bin/time -f "typage encrypt peak RSS %M KiB" node scripts/bench/typage_stream.mjs encrypt "$R" "$W/plain" /dev/null
else
  echo "typage not installed (cd scripts/interop && npm ci): skipped"
fi
