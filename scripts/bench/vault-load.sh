#!/usr/bin/env bash
# Reproduces the vault load figures in BENCHMARKS.md: `citadel vault serve
# --dev` on loopback with an audit device on (group commit), driven by wrk
# (Debian package, installed when missing) with 64 connections:
# sys/health (the trivial endpoint, for the ratio), KV v2 reads, and
# transit encrypt of 1 KiB.
#
#   scripts/bench/vault-load.sh            # DURATION=10 CONNECTIONS=64 THREADS=2
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
cargo build --release -q -p citadel-cli
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
W=$(mktemp -d /tmp/citadel-vault-bench.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$W"' EXIT
./target/release/citadel vault serve --dev --listen 127.0.0.1:0 > "$W/out" &
PID=$!
for _ in $(seq 100); do grep -q "Root Token" "$W/out" 2>/dev/null && break; sleep 0.05; done
ADDR=$(sed -n 's|^Api Address: ||p' "$W/out")
TOKEN=$(sed -n 's|^Root Token: ||p' "$W/out")
H=(-H "X-Vault-Token: $TOKEN")
curl -sf "${H[@]}" -X PUT -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$W/audit\"}}" "$ADDR/v1/sys/audit/file"
curl -sf "${H[@]}" -X POST -d '{"type":"transit"}' "$ADDR/v1/sys/mounts/transit"
curl -sf "${H[@]}" -X POST -d '{"type":"aes256-gcm96"}' "$ADDR/v1/transit/keys/bench" >/dev/null
curl -sf "${H[@]}" -X POST -d '{"data":{"user":"app","password":"0123456789abcdef"}}' "$ADDR/v1/secret/data/bench" >/dev/null
PLAIN=$(head -c 1024 /dev/urandom | base64 -w0)
cat > "$W/encrypt.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"plaintext":"$PLAIN"}'
wrk.headers["X-Vault-Token"] = "$TOKEN"
wrk.headers["Content-Type"] = "application/json"
LUA
run() { # id, label, wrk args…
  local id=$1 label=$2; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" > "$W/$id.txt"
  local rps p99 errors
  rps=$(awk '/^Requests\/sec:/{print $2}' "$W/$id.txt")
  p99=$(awk '$1=="99%"{print $2}' "$W/$id.txt")
  errors=$(awk '/Non-2xx/{print $NF}' "$W/$id.txt"); errors=${errors:-0}
  printf '| %s | %s | %s | %s |\n' "$label" "$rps" "$p99" "$errors"
  echo "$rps" > "$W/$id.rps"
}
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s against citadel vault serve --dev (audit device on), $(nproc) cores shared by server and wrk"
echo
echo "| endpoint | requests/s | p99 latency | non-2xx |"
echo "| --- | ---: | ---: | ---: |"
run health "GET sys/health" "$ADDR/v1/sys/health"
run kv "GET secret/data/bench (KV v2 read)" "${H[@]}" "$ADDR/v1/secret/data/bench"
run transit "POST transit/encrypt/bench (1 KiB)" -s "$W/encrypt.lua" "$ADDR/v1/transit/encrypt/bench"
echo
awk -v h="$(cat "$W/health.rps")" -v k="$(cat "$W/kv.rps")" -v t="$(cat "$W/transit.rps")" \
  'BEGIN{printf "ratio to sys/health: KV read %.2f, transit encrypt %.2f\n", k/h, t/h}'
echo "audit log after the run: $(./target/release/citadel audit verify --dir "$W/audit" 2>&1)"
