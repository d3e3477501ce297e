#!/usr/bin/env bash
# Issue 13's acceptance run: a 64 MiB file damaged at one byte must make
# `citadel decrypt` exit 1 within a second, 50 times in a row, to a file and
# to stdout, at the first, a middle and the last chunk (and in the header).
# Prints the slowest run per case; exits 1 if any run hangs, passes, or
# takes a second or more. (CI runs a shorter version: the CLI test
# `damaged_files_end_at_once_and_every_armored_length_decrypts`.)
#
# Usage: scripts/check/damaged-decrypt.sh [RUNS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-50}
cargo build --release -q -p citadel-cli
C=$PWD/target/release/citadel
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
head -c $((64 << 20)) /dev/urandom > "$W/plain"
"$C" key gen --alg mlkem768x25519 --output "$W/k" > /dev/null
"$C" encrypt -R "$W/k.pub" -o "$W/good.age" "$W/plain"
size=$(stat -c %s "$W/good.age")
fail=0
for at in 200 1000000 40000000 $((size - 5)); do
  cp "$W/good.age" "$W/bad.age"
  printf '\x55' | dd of="$W/bad.age" bs=1 seek="$at" conv=notrunc status=none
  for to in file stdout; do
    slowest=0
    for i in $(seq "$RUNS"); do
      rm -f "$W/out"
      start=$(date +%s%N)
      if [ $to = file ]; then
        set +e; timeout 30 "$C" decrypt -i "$W/k.key" -o "$W/out" "$W/bad.age" 2>/dev/null; rc=$?; set -e
      else
        set +e; timeout 30 "$C" decrypt -i "$W/k.key" "$W/bad.age" 2>/dev/null >/dev/null; rc=$?; set -e
      fi
      ms=$(( ($(date +%s%N) - start) / 1000000 ))
      [ "$ms" -gt "$slowest" ] && slowest=$ms
      if [ "$rc" -ne 1 ] || [ "$ms" -ge 1000 ] || [ -e "$W/out" ]; then
        echo "FAIL: damage at $at, to $to, run $i: exit $rc after $ms ms"; fail=1
      fi
    done
    echo "damage at byte $at, to $to: $RUNS runs, exit 1 each, slowest $slowest ms"
  done
done
exit $fail
