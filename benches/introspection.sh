#!/usr/bin/env bash
# Load benchmark of token introspection (RFC 7662, issue 11 item 3): builds the release binary,
# starts it on each backend, and measures `POST /introspect` with wrk (on the same machine) for
#   - a user's JWT access token: signature check + the grant's revocation state (one read), and
#   - a client-credentials JWT access token: signature check + its jti's revocation state.
# Usage: benches/introspection.sh [seconds-per-run=10] [connections=8]
# BENCH_BACKENDS=sqlite narrows a run; BENCH_PERF=1 also records a CPU profile of the server
# (perf, call graphs) during the user-token run and prints its top entries.
# Bounded: each wrk run lasts the given seconds; the server is stopped at the end.
# Figures go to stdout and benches/results/introspection-<date>.txt; docs/benchmarks.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-8}"
THREADS="${WRK_THREADS:-1}"
PORT="${BENCH_PORT:-18097}"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
PG_DB=latchkey_introspection_bench

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey"

mkdir -p benches/results
OUT="benches/results/introspection-$(date +%Y%m%d-%H%M%S).txt"
WORK=$(mktemp -d)
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

export LATCHKEY_MASTER_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
export LATCHKEY_BIND="127.0.0.1:$PORT"
export LATCHKEY_ISSUER="http://127.0.0.1:$PORT"
export LATCHKEY_LOG_LEVEL=warn
BASE="http://127.0.0.1:$PORT"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

report() { # name, wrk output file
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$2")
  p99=$(awk '/ 99%/ {print $2}' "$2")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$2")
  printf '%-10s %-34s %12s req/s   p99 %8s   non-2xx %s\n' "$BACKEND" "$1" "$rps" "$p99" "${non2xx:-0}" | tee -a "$OUT"
}

# A user's access token through the real pages: authorize → login → code → token (python's
# standard library; a first-party app, so no consent page).
user_token() { # app id, app secret, email
  python3 - "$BASE" "$1" "$2" "$3" <<'PY'
import base64, hashlib, http.cookiejar, json, re, secrets, sys, urllib.parse, urllib.request
base, cid, secret, email = sys.argv[1:5]
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))
def go(url, data=None, headers={}):
    req = urllib.request.Request(url if url.startswith("http") else base + url, data=data, headers=headers)
    try:
        r = opener.open(req); return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()
verifier = secrets.token_urlsafe(32)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
redirect = "http://127.0.0.1:9/callback"
q = urllib.parse.urlencode({"response_type": "code", "client_id": cid, "redirect_uri": redirect,
    "scope": "openid offline_access", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
s, h, _ = go("/authorize?" + q)
s, h, page = go(h["Location"])
field = lambda n: re.search(r'name="%s" value="([^"]*)"' % n, page).group(1)
form = urllib.parse.urlencode({"csrf": field("csrf"), "rid": field("rid"), "email": email,
    "password": "correct horse battery staple"}).encode()
s, h, _ = go("/login", form)
s, h, _ = go(h["Location"])
code = urllib.parse.parse_qs(urllib.parse.urlparse(h["Location"]).query)["code"][0]
auth = base64.b64encode(f"{cid}:{secret}".encode()).decode()
form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
    "code_verifier": verifier}).encode()
s, h, body = go("/token", form, {"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
print(json.loads(body)["access_token"])
PY
}

for BACKEND in ${BENCH_BACKENDS:-sqlite postgres}; do
  if [ "$BACKEND" = sqlite ]; then
    export LATCHKEY_DATABASE_URL="sqlite:$WORK/bench.db"
  else
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" >/dev/null
    export LATCHKEY_DATABASE_URL="${PG_ADMIN_URL%/*}/$PG_DB"
  fi
  "$BIN" migrate
  API=$("$BIN" client create --name "bench api" --introspect --audience "$LATCHKEY_ISSUER")
  API_AUTH=$(printf '%s:%s' "$(json client_id <<<"$API")" "$(json client_secret <<<"$API")" | base64 -w0)
  APP=$("$BIN" client create --name "bench app" --redirect-uri http://127.0.0.1:9/callback --first-party)
  SVC=$("$BIN" client create --name "bench service" --scope read)
  echo "correct horse battery staple" | "$BIN" user create --email ann@bench.example --password-stdin >/dev/null

  "$BIN" serve 2>"$WORK/server-$BACKEND.log" &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.2; done

  USER_TOKEN=$(user_token "$(json client_id <<<"$APP")" "$(json client_secret <<<"$APP")" ann@bench.example)
  CC_TOKEN=$(curl -sf -u "$(json client_id <<<"$SVC"):$(json client_secret <<<"$SVC")" \
    -d grant_type=client_credentials "$BASE/token" | json access_token)
  for KIND in user cc; do
    TOKEN=$USER_TOKEN; [ "$KIND" = cc ] && TOKEN=$CC_TOKEN
    ACTIVE=$(curl -sf -H "Authorization: Basic $API_AUTH" --data-urlencode "token=$TOKEN" "$BASE/introspect" | json active)
    [ "$ACTIVE" = True ] || { echo "the $KIND token does not introspect active ($ACTIVE)" >&2; exit 1; }
    cat >"$WORK/$KIND.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=$TOKEN"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $API_AUTH"
LUA
  done
  # Warm up, then measure.
  wrk -t1 -c8 -d2s -s "$WORK/user.lua" "$BASE/introspect" >/dev/null
  PERF=""
  if [ "${BENCH_PERF:-0}" = 1 ]; then
    perf record -q -F 999 -g -p "$SERVER" -o "$WORK/perf-$BACKEND.data" -- sleep "$DURATION" 2>/dev/null &
    PERF=$!
  fi
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/user.lua" "$BASE/introspect" >"$WORK/user.txt"
  report "introspect user access token" "$WORK/user.txt"
  if [ -n "$PERF" ]; then
    wait "$PERF" || true
    perf report -q -i "$WORK/perf-$BACKEND.data" --no-children -g none --sort dso,symbol --percent-limit 1 \
      2>/dev/null | awk 'NF >= 4 {printf "    %8s  %-18s %s %s\n", $1, $2, $3, $4}' | head -30 | tee -a "$OUT"
  fi
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/cc.lua" "$BASE/introspect" >"$WORK/cc.txt"
  report "introspect client-credentials token" "$WORK/cc.txt"

  RSS=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$SERVER/status")
  echo "$BACKEND peak RSS: $RSS" | tee -a "$OUT"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  [ "$BACKEND" = postgres ] && psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on the same machine" | tee -a "$OUT"
