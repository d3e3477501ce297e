#!/usr/bin/env bash
# Reproduces the vault load figures in BENCHMARKS.md: `citadel vault serve`
# on loopback with an audit device on (group commit), driven by wrk (Debian
# package, installed when missing) with 64 connections: sys/health (the
# trivial endpoint, for the ratio), KV v2 reads with the root token and with
# a policy-limited token, and transit encrypt of 1 KiB.
#
#   scripts/bench/vault-load.sh                  # in-memory storage (--dev)
#   STORAGE=sqlite scripts/bench/vault-load.sh   # SQLite (WAL, synchronous=FULL), init + unseal
#   PEER=openbao scripts/bench/vault-load.sh     # then the same runs against OpenBao
#                                                # (scripts/bench/openbao-load.sh)
#   AUDIT=file scripts/bench/vault-load.sh       # Vault's JSON-lines file device, as
#                                                # OpenBao's, instead of the citadel log
#   BIN=/path/to/citadel scripts/bench/vault-load.sh   # another build (no cargo build)
#   DURATION=10 CONNECTIONS=64 THREADS=2
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
STORAGE=${STORAGE:-inmem}
AUDIT=${AUDIT:-citadel}
if [[ -z "${BIN:-}" ]]; then cargo build --release -q -p citadel-cli; fi
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
C=${BIN:-./target/release/citadel}
W=$(mktemp -d /tmp/citadel-vault-bench.XXXXXX)
PID=
trap '[[ -n "$PID" ]] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
case "$STORAGE" in
  inmem)
    $C vault serve --dev --listen 127.0.0.1:0 --audit-file-dir "$W" > "$W/out" 2> "$W/server.log" &
    PID=$!
    for _ in $(seq 100); do grep -q "Root Token" "$W/out" 2>/dev/null && break; sleep 0.05; done
    ADDR=$(sed -n 's|^Api Address: ||p' "$W/out")
    TOKEN=$(sed -n 's|^Root Token: ||p' "$W/out")
    ;;
  sqlite)
    printf 'listen = "127.0.0.1:0"\n[storage]\npath = "%s/vault.db"\n[audit]\nfile_directories = ["%s"]\n' "$W" "$W" > "$W/citadel.toml"
    $C vault serve --config "$W/citadel.toml" > "$W/out" 2> "$W/server.log" &
    PID=$!
    for _ in $(seq 100); do grep -q "Api Address" "$W/out" 2>/dev/null && break; sleep 0.05; done
    ADDR=$(sed -n 's|^Api Address: ||p' "$W/out")
    export CITADEL_ADDR=$ADDR
    $C vault init --key-shares 1 --key-threshold 1 --json > "$W/init.json"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys_base64"][0])' "$W/init.json" \
      | $C vault unseal > /dev/null
    TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_token"])' "$W/init.json")
    curl -sf -H "X-Vault-Token: $TOKEN" -X POST -d '{"type":"kv","options":{"version":"2"}}' "$ADDR/v1/sys/mounts/secret"
    ;;
  *) echo "STORAGE must be inmem or sqlite" >&2; exit 2 ;;
esac
H=(-H "X-Vault-Token: $TOKEN")
case "$AUDIT" in
  citadel) curl -sf "${H[@]}" -X PUT -d "{\"type\":\"citadel\",\"options\":{\"file_path\":\"$W/audit\"}}" "$ADDR/v1/sys/audit/citadel" ;;
  file) curl -sf "${H[@]}" -X PUT -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$W/audit.log\"}}" "$ADDR/v1/sys/audit/file" ;;
  *) echo "AUDIT must be citadel or file" >&2; exit 2 ;;
esac
curl -sf "${H[@]}" -X POST -d '{"type":"transit"}' "$ADDR/v1/sys/mounts/transit"
curl -sf "${H[@]}" -X POST -d '{"type":"aes256-gcm96"}' "$ADDR/v1/transit/keys/bench" >/dev/null
curl -sf "${H[@]}" -X POST -d '{"data":{"user":"app","password":"0123456789abcdef"}}' "$ADDR/v1/secret/data/bench" >/dev/null
source scripts/bench/wrk-lib.sh
# A token limited by an HCL policy, so the policy check is measured too.
APP=$(limited_token "$ADDR" "$TOKEN")
write_encrypt_lua
write_encrypt_lua "$APP" "$W/encrypt-limited.lua"
# An SLH-DSA key, for the health-under-heavy-load row.
curl -sf "${H[@]}" -X POST -d '{"type":"slh-dsa-sha2-128s"}' "$ADDR/v1/transit/keys/slow" >/dev/null
python3 -c 'import json; print(json.dumps({"batch_input": [{"input": "aGVsbG8="}] * 8}))' > "$W/slh-batch.json"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s against citadel vault serve ($STORAGE storage, $AUDIT audit device on), $(nproc) cores shared by server and wrk"
echo
echo "| endpoint | requests/s | p99 latency | non-2xx |"
echo "| --- | ---: | ---: | ---: |"
run health "GET sys/health" "$ADDR/v1/sys/health"
run kv "GET secret/data/bench (KV v2 read, root token)" "${H[@]}" "$ADDR/v1/secret/data/bench"
run kvp "GET secret/data/bench (KV v2 read, policy-limited token)" -H "X-Vault-Token: $APP" "$ADDR/v1/secret/data/bench"
run transit "POST transit/encrypt/bench (1 KiB, root token)" -s "$W/encrypt.lua" "$ADDR/v1/transit/encrypt/bench"
run transitp "POST transit/encrypt/bench (1 KiB, policy-limited token)" -s "$W/encrypt-limited.lua" "$ADDR/v1/transit/encrypt/bench"
# sys/health while two clients keep the heavy-work pool busy signing
# batches of 8 with SLH-DSA-SHA2-128s (about 5 s of CPU per batch).
LOADERS=()
for _ in 1 2; do
  ( while true; do
      curl -s -o /dev/null "${H[@]}" -X POST --data-binary @"$W/slh-batch.json" "$ADDR/v1/transit/sign/slow" || true
    done ) &
  LOADERS+=($!)
done
sleep 1
run healthload "GET sys/health while 2 clients sign SLH-DSA batches" "$ADDR/v1/sys/health"
kill "${LOADERS[@]}" 2>/dev/null; wait "${LOADERS[@]}" 2>/dev/null || true
echo
awk -v h="$(cat "$W/health.rps")" -v k="$(cat "$W/kv.rps")" -v p="$(cat "$W/kvp.rps")" -v t="$(cat "$W/transit.rps")" -v tp="$(cat "$W/transitp.rps")" \
  'BEGIN{printf "ratio to sys/health: KV read %.2f (policy-limited %.2f), transit encrypt %.2f (policy-limited %.2f)\n", k/h, p/h, t/h, tp/h}'
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
if [[ "$AUDIT" == citadel ]]; then
  echo "audit log after the run: $($C audit verify --dir "$W/audit" 2>&1)"
else
  echo "audit file after the run: $(wc -l < "$W/audit.log") lines, $(python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]; print("each one JSON")' "$W/audit.log")"
fi
if [[ "${PEER:-}" == openbao ]]; then
  echo
  scripts/bench/openbao-load.sh
fi
