#!/usr/bin/env bash
# Reproduces the transfer figures in BENCHMARKS.md: `citadel send` -> `citadel
# recv` against OpenSSH's scp (sshd started here on a loopback port, with its
# default key exchange), on the same files, in the same run.
#
#   scripts/bench/transfer-vs-scp.sh                    # destination on disk
#   DEST=/dev/shm scripts/bench/transfer-vs-scp.sh      # destination in RAM
#
# Environment: SIZES (default "1K 1M 64M 1G 4G"), STREAMS (default 2),
# DEST (directory both receivers write into; default: the work directory),
# PORT (sshd, default 2222). Needs root or an sshd it may start (Debian
# package openssh-server; installed with apt-get when missing).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"1K 1M 64M 1G 4G"}
STREAMS=${STREAMS:-2}
PORT=${PORT:-2222}
W=$(mktemp -d /tmp/citadel-xfer-bench.XXXXXX)
DEST=${DEST:-$W}
OUT=$(mktemp -d "$DEST/dest.XXXXXX")
C=$PWD/target/release/citadel
trap 'kill $(cat $W/sshd.pid 2>/dev/null) $RECV_PID 2>/dev/null || true; rm -rf "$W" "$OUT"' EXIT
RECV_PID=

cargo build --release -q -p citadel-cli

# --- sshd on loopback --------------------------------------------------------
. "$(dirname "$0")/sshd-lib.sh"
KEX=$("${SSH[@]}" -v "$(id -un)@127.0.0.1" true 2>&1 | sed -n 's/.*kex: algorithm: //p' | head -1)
CIPHER=$("${SSH[@]}" -v "$(id -un)@127.0.0.1" true 2>&1 | sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' | head -1)

# --- citadel CA and receiver -------------------------------------------------
"$C" ca init --ca "$W/CA" >/dev/null
"$C" ca issue --ca "$W/CA" --name server --ip 127.0.0.1 >/dev/null
"$C" ca issue --ca "$W/CA" --name client --client >/dev/null
TLS=(--ca "$W/CA" --cert "$W/CA/client.crt" --key "$W/CA/client.key")
"$C" recv --listen 127.0.0.1:0 --dir "$OUT/citadel" --ca "$W/CA" --cert "$W/CA/server.crt" --key "$W/CA/server.key" > "$W/recv.out" 2>"$W/recv.err" &
RECV_PID=$!
for _ in $(seq 100); do grep -q listening "$W/recv.out" 2>/dev/null && break; sleep 0.05; done
ADDR=$(sed -n 's/^listening on //p' "$W/recv.out")
mkdir -p "$OUT/scp"

now() { date +%s.%N; }
# seconds for the best of N runs of a command (after removing the destination)
best() {
  local n=$1 dest=$2; shift 2
  local best=
  for _ in $(seq "$n"); do
    rm -f "$dest"; sync
    local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now)
    best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN{d=b-a; if (m=="" || d<m) print d; else print m}')
  done
  echo "$best"
}

AES=$(openssl speed -evp aes-256-gcm -bytes 16384 -seconds 2 2>/dev/null | awk '/^AES-256-GCM/{sub("k","",$2); print $2*1000}')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "openssl speed -evp aes-256-gcm (16 KiB, one core): $(awk -v a="$AES" 'BEGIN{printf "%.0f MB/s", a/1e6}')"
echo "scp: OpenSSH $(ssh -V 2>&1 | cut -d, -f1), key exchange $KEX, cipher $CIPHER"
echo "citadel: TLS 1.3 X25519MLKEM768, ML-DSA-65 certificates, --streams $STREAMS; destination $DEST (citadel fsyncs every file before its rename; scp does not)"
echo
echo "| size | scp s | scp MB/s | citadel (1 stream) s | citadel --streams $STREAMS s | citadel MB/s | citadel/scp speed | % of AES-GCM |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
mkdir -p "$W/src"
for size in $SIZES; do
  f="$W/src/f-$size"
  head -c "$size" /dev/urandom > "$f" 2>/dev/null || head -c "$(numfmt --from=iec "$size")" /dev/urandom > "$f"
  cat "$f" > /dev/null
  bytes=$(stat -c %s "$f")
  reps=5; [ "$bytes" -ge $((1024*1024*1024)) ] && reps=1
  s=$(best "$reps" "$OUT/scp/f-$size" scp -q "${SSHOPTS[@]}" "$f" "$(id -un)@127.0.0.1:$OUT/scp/")
  c1=$(best "$reps" "$OUT/citadel/f-$size" "$C" send -q --streams 1 "$f" --to "$ADDR" "${TLS[@]}")
  cn=$(best "$reps" "$OUT/citadel/f-$size" "$C" send -q --streams "$STREAMS" "$f" --to "$ADDR" "${TLS[@]}")
  cmp -s "$f" "$OUT/scp/f-$size" || { echo "scp copy of $size differs" >&2; exit 1; }
  cmp -s "$f" "$OUT/citadel/f-$size" || { echo "citadel copy of $size differs" >&2; exit 1; }
  awk -v sz="$size" -v b="$bytes" -v s="$s" -v c1="$c1" -v cn="$cn" -v aes="$AES" 'BEGIN{
    c = (c1 < cn) ? c1 : cn;
    printf "| %s | %.3f | %.0f | %.3f | %.3f | %.0f | %.2fx | %.0f%% |\n", sz, s, b/s/1e6, c1, cn, b/c/1e6, s/c, 100*(b/c)/aes }'
  [ "$size" = "4G" ] || rm -f "$f"
done

# --- peak memory for the largest file ----------------------------------------
big="$W/src/f-4G"
if [ -f "$big" ]; then
  rm -f "$OUT/citadel/f-4G"
  /usr/bin/time -f "%M" -o "$W/recv.rss" "$C" recv --once --listen 127.0.0.1:0 --dir "$OUT/citadel" --ca "$W/CA" --cert "$W/CA/server.crt" --key "$W/CA/server.key" > "$W/recv2.out" 2>/dev/null &
  for _ in $(seq 100); do grep -q listening "$W/recv2.out" 2>/dev/null && break; sleep 0.05; done
  ADDR2=$(sed -n 's/^listening on //p' "$W/recv2.out")
  /usr/bin/time -f "%M" -o "$W/send.rss" "$C" send -q --streams "$STREAMS" "$big" --to "$ADDR2" "${TLS[@]}" >/dev/null
  wait %?recv 2>/dev/null || sleep 1
  rm -f "$OUT/scp/f-4G"
  /usr/bin/time -f "%M" -o "$W/scp.rss" scp -q "${SSHOPTS[@]}" "$big" "$(id -un)@127.0.0.1:$OUT/scp/"
  echo
  echo "peak RSS, 4 GiB file: citadel send $(( $(cat "$W/send.rss") / 1024 )) MiB, citadel recv $(( $(tail -1 "$W/recv.rss") / 1024 )) MiB, scp client $(( $(cat "$W/scp.rss") / 1024 )) MiB"
fi

# --- what the destination can absorb (the ceiling for both) ------------------
t0=$(now); dd if=/dev/zero of="$OUT/dd" bs=4M count=256 2>/dev/null; t1=$(now)
t2=$(now); dd if=/dev/zero of="$OUT/dd2" bs=4M count=256 conv=fsync 2>/dev/null; t3=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN{printf "destination write ceiling (dd 1 GiB, new file): %.0f MB/s without fsync, %.0f MB/s with fsync\n", 1073.741824/(b-a), 1073.741824/(d-c)}'
