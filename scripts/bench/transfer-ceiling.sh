#!/usr/bin/env bash
# The transfer's own ceiling, side by side in one run: raw loopback TCP
# (iperf3), `dd` writing the same destination (tmpfs, and disk with fsync),
# OpenSSH's scp, and `citadel send` -> `citadel recv` on the same file
# (tmpfs -> tmpfs, and tmpfs -> disk), with the receiver's CPU time (user
# and system) per run.
#
#   scripts/bench/transfer-ceiling.sh            # SIZE=2G STREAMS=2 RUNS=3
#
# Environment: SIZE (dd-style, default 2G), STREAMS (default 2), RUNS (best
# of, default 3), DISK (a directory on disk, default /tmp), PORT (sshd,
# default 2223). Needs iperf3 and an sshd it may start (Debian packages
# iperf3, openssh-server; installed with apt-get when missing).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
SIZE=${SIZE:-2G}
STREAMS=${STREAMS:-2}
RUNS=${RUNS:-3}
DISK=${DISK:-/tmp}
C=$PWD/target/release/citadel
W=$(mktemp -d /dev/shm/citadel-ceiling.XXXXXX)
D=$(mktemp -d "$DISK/citadel-ceiling.XXXXXX")
PORT=${PORT:-2223}
RECV_PID=
IPERF_PID=
trap 'kill $RECV_PID $IPERF_PID $(cat "$W/sshd.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$W" "$D"' EXIT

cargo build --release -q -p citadel-cli
command -v iperf3 >/dev/null || apt-get install -y -q iperf3 >/dev/null

bytes=$(numfmt --from=iec "$SIZE")
mb() { awk -v b="$bytes" -v s="$1" 'BEGIN{printf "%.0f", b/1e6/s}'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN{print (a=="" || b<a) ? b : a}'; }
# user+system seconds of a process so far (from /proc, clock ticks)
cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f %.2f", $14/t, $15/t}' "/proc/$1/stat"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); size $SIZE ($bytes bytes), best of $RUNS"

# --- raw loopback TCP ---------------------------------------------------------
iperf3 -s -1 -p 5399 >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.5
TCP=$(iperf3 -c 127.0.0.1 -p 5399 -t 5 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e6))')
IPERF_PID=
echo "iperf3 loopback TCP: $TCP MB/s"

# --- dd: what the destination absorbs -------------------------------------------
best_dd() {
  local dest=$1; shift
  local b=
  for _ in $(seq "$RUNS"); do
    rm -f "$dest"; sync
    local t0 t1; t0=$(now)
    dd if=/dev/zero of="$dest" bs=4M count=$((bytes / 4194304)) "$@" status=none
    t1=$(now)
    b=$(min "$b" "$(elapsed "$t0" "$t1")")
  done
  rm -f "$dest"
  echo "$b"
}
DD_TMPFS=$(best_dd "$W/dd.bin")
DD_DISK=$(best_dd "$D/dd.bin" conv=fsync)
echo "dd to tmpfs: $(mb "$DD_TMPFS") MB/s; dd to disk with fsync: $(mb "$DD_DISK") MB/s"

# --- citadel ----------------------------------------------------------------------
"$C" ca init --ca "$W/CA" >/dev/null
"$C" ca issue --ca "$W/CA" --name server --ip 127.0.0.1 >/dev/null
"$C" ca issue --ca "$W/CA" --name client --client >/dev/null
head -c "$bytes" /dev/urandom > "$W/src.bin"

run_citadel() {
  local out=$1
  mkdir -p "$out"
  "$C" recv --listen 127.0.0.1:0 --dir "$out" --ca "$W/CA" --cert "$W/CA/server.crt" --key "$W/CA/server.key" > "$W/recv.out" 2>"$W/recv.err" &
  RECV_PID=$!
  for _ in $(seq 100); do grep -q listening "$W/recv.out" 2>/dev/null && break; sleep 0.05; done
  local addr; addr=$(sed -n 's/^listening on //p' "$W/recv.out")
  local b= cpu0 cpu1
  for _ in $(seq "$RUNS"); do
    rm -f "$out/src.bin"; sync
    cpu0=$(cpu "$RECV_PID")
    local t0 t1; t0=$(now)
    "$C" send "$W/src.bin" --to "$addr" --ca "$W/CA" --cert "$W/CA/client.crt" --key "$W/CA/client.key" --streams "$STREAMS" -q >/dev/null
    t1=$(now)
    cpu1=$(cpu "$RECV_PID")
    cmp -s "$W/src.bin" "$out/src.bin" || { echo "the copy differs" >&2; exit 1; }
    b=$(min "$b" "$(elapsed "$t0" "$t1")")
  done
  local rss; rss=$(awk '/VmHWM/{print $2}' "/proc/$RECV_PID/status")
  kill "$RECV_PID"; wait "$RECV_PID" 2>/dev/null || true; RECV_PID=
  rm -f "$out/src.bin"
  # user and system seconds of the receiver in the last run, peak RSS (KiB)
  echo "$b $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{split(a,x," "); split(b,y," "); printf "%.2f %.2f", y[1]-x[1], y[2]-x[2]}') $rss"
}
read -r T_TMPFS U_TMPFS S_TMPFS_SYS R_TMPFS <<<"$(run_citadel "$W/in")"
read -r T_DISK U_DISK S_DISK_SYS R_DISK <<<"$(run_citadel "$D/in")"

# --- scp, same file, same destinations -------------------------------------------
. "$(dirname "$0")/sshd-lib.sh"
best_scp() {
  local out=$1 b=
  mkdir -p "$out"
  for _ in $(seq "$RUNS"); do
    rm -f "$out/src.bin"; sync
    local t0 t1; t0=$(now)
    scp -q "${SSHOPTS[@]}" "$W/src.bin" "$(id -un)@127.0.0.1:$out/"
    t1=$(now)
    b=$(min "$b" "$(elapsed "$t0" "$t1")")
  done
  cmp -s "$W/src.bin" "$out/src.bin" || { echo "the scp copy differs" >&2; exit 1; }
  rm -f "$out/src.bin"
  echo "$b"
}
S_TMPFS=$(best_scp "$W/scp")
S_DISK=$(best_scp "$D/scp")

pct() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f%%", 100*a/b}'; }
echo
echo "| path | citadel send -> recv (--streams $STREAMS) | ceiling | citadel / ceiling | scp | citadel / scp | receiver CPU (user / system, last run) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
echo "| tmpfs -> tmpfs | $(mb "$T_TMPFS") MB/s ($T_TMPFS s) | $TCP MB/s (iperf3 loopback TCP) | $(pct "$(mb "$T_TMPFS")" "$TCP") | $(mb "$S_TMPFS") MB/s | $(awk -v a="$S_TMPFS" -v b="$T_TMPFS" 'BEGIN{printf "%.2fx", a/b}') | $U_TMPFS s / $S_TMPFS_SYS s |"
echo "| tmpfs -> disk, fsync | $(mb "$T_DISK") MB/s ($T_DISK s) | $(mb "$DD_DISK") MB/s (dd conv=fsync) | $(pct "$(mb "$T_DISK")" "$(mb "$DD_DISK")") | $(mb "$S_DISK") MB/s (no fsync) | $(awk -v a="$S_DISK" -v b="$T_DISK" 'BEGIN{printf "%.2fx", a/b}') | $U_DISK s / $S_DISK_SYS s |"
echo
echo "dd to tmpfs: $(mb "$DD_TMPFS") MB/s. Receiver peak RSS: $R_TMPFS KiB (tmpfs run), $R_DISK KiB (disk run)."
echo "Each citadel time includes process start, both handshakes, and hashing the file into the signed manifest."
