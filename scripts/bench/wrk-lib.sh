# Shared by scripts/bench/vault-load.sh and openbao-load.sh (sourced):
# the transit request body and one wrk run printed as a Markdown table row.
# Expects W (work dir), TOKEN, THREADS, CONNECTIONS and DURATION.

# Writes $W/encrypt.lua: POST of a random 1 KiB plaintext with $TOKEN.
write_encrypt_lua() {
  local plain
  plain=$(head -c 1024 /dev/urandom | base64 -w0)
  cat > "$W/encrypt.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"plaintext":"$plain"}'
wrk.headers["X-Vault-Token"] = "$TOKEN"
wrk.headers["Content-Type"] = "application/json"
LUA
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
