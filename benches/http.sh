#!/usr/bin/env bash
# Load benchmark: builds the release binary, starts it on each backend, and measures with wrk
# (on the same machine) client-credentials token issuance, the JWKS and discovery.
# Usage: benches/http.sh [seconds-per-run] [connections]
# Figures go to stdout and benches/results/http-<date>.txt; docs/benchmarks.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-64}"
THREADS="${WRK_THREADS:-2}"
PORT="${BENCH_PORT:-18099}"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
BIN="$PWD/target/release/latchkey"

mkdir -p benches/results
OUT="benches/results/http-$(date +%Y%m%d-%H%M%S).txt"
WORK=$(mktemp -d)
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

export LATCHKEY_MASTER_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
export LATCHKEY_BIND="127.0.0.1:$PORT"
export LATCHKEY_ISSUER="http://127.0.0.1:$PORT"
export LATCHKEY_LOG_LEVEL=warn

report() { # name, wrk output file
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$2")
  p99=$(awk '/ 99%/ {print $2}' "$2")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$2")
  printf '%-10s %-24s %12s req/s   p99 %8s   non-2xx %s\n' "$BACKEND" "$1" "$rps" "$p99" "${non2xx:-0}" | tee -a "$OUT"
}

for BACKEND in ${BENCH_BACKENDS:-sqlite postgres}; do
  if [ "$BACKEND" = sqlite ]; then
    export LATCHKEY_DATABASE_URL="sqlite:$WORK/bench.db"
  else
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS latchkey_bench WITH (FORCE)" -c "CREATE DATABASE latchkey_bench" >/dev/null
    export LATCHKEY_DATABASE_URL="${PG_ADMIN_URL%/*}/latchkey_bench"
  fi
  CLIENT=$("$BIN" client create --name bench --scope read --scope write --role bench)
  ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$CLIENT")
  SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$CLIENT")
  AUTH=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)

  "$BIN" serve 2>"$WORK/server-$BACKEND.log" &
  SERVER=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done

  cat >"$WORK/token.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $AUTH"
LUA
  # Warm up, then measure.
  wrk -t1 -c8 -d2s -s "$WORK/token.lua" "http://127.0.0.1:$PORT/token" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/token.lua" "http://127.0.0.1:$PORT/token" >"$WORK/token.txt"
  report "client_credentials" "$WORK/token.txt"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/.well-known/jwks.json" >"$WORK/jwks.txt"
  report "jwks" "$WORK/jwks.txt"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/.well-known/openid-configuration" >"$WORK/disc.txt"
  report "discovery" "$WORK/disc.txt"

  RSS=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$SERVER/status")
  echo "$BACKEND peak RSS: $RSS" | tee -a "$OUT"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on the same machine" | tee -a "$OUT"
