# Shared by scripts/bench/vault-load.sh and openbao-load.sh (sourced):
# the transit request body and one wrk run printed as a Markdown table row.
# Expects W (work dir), TOKEN, THREADS, CONNECTIONS and DURATION.

# write_encrypt_lua [TOKEN [FILE]]: FILE (default $W/encrypt.lua) POSTs a
# random 1 KiB plaintext with TOKEN (default $TOKEN).
write_encrypt_lua() {
  local token=${1:-$TOKEN} file=${2:-$W/encrypt.lua} plain
  plain=$(head -c 1024 /dev/urandom | base64 -w0)
  cat > "$file" <<LUA
wrk.method = "POST"
wrk.body = '{"plaintext":"$plain"}'
wrk.headers["X-Vault-Token"] = "$token"
wrk.headers["Content-Type"] = "application/json"
LUA
}

# limited_token ADDR ROOT: writes the policy both servers are measured with
# (KV read under secret/data/, transit encrypt with the bench key) and
# prints a token that has only it.
limited_token() {
  local addr=$1 root=$2
  curl -sf -H "X-Vault-Token: $root" -X PUT \
    -d '{"policy":"path \"secret/data/*\" { capabilities = [\"read\"] }\npath \"transit/encrypt/bench\" { capabilities = [\"update\"] }"}' \
    "$addr/v1/sys/policies/acl/bench"
  curl -sf -H "X-Vault-Token: $root" -X POST -d '{"policies":["bench"],"ttl":"1h"}' "$addr/v1/auth/token/create" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth"]["client_token"])'
}

# run ID LABEL WRK-ARGS…: one wrk run; prints a table row, keeps $W/ID.rps.
run() {
  local id=$1 label=$2; shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" > "$W/$id.txt"
  local rps p99 errors
  rps=$(awk '/^Requests\/sec:/{print $2}' "$W/$id.txt")
  p99=$(awk '$1=="99%"{print $2}' "$W/$id.txt")
  errors=$(awk '/Non-2xx/{print $NF}' "$W/$id.txt"); errors=${errors:-0}
  printf '| %s | %s | %s | %s |\n' "$label" "$rps" "$p99" "$errors"
  echo "$rps" > "$W/$id.rps"
}
