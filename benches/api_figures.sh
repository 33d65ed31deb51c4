#!/usr/bin/env bash
# API figures (docs/api.md): durable POST /v1/callbacks per second and p99,
# then GET /v1/callbacks?limit=100 per second over a filled book.
# Needs: cargo build --release --bins; wrk (apt-get install -y wrk).
# Usage: benches/api_figures.sh [DURATION_S] [CONNECTIONS] [FILL]
# ONLY=post measures the POST section alone (for before/after runs of two
# binaries in the same minute: BIN=old ONLY=post …; BIN=new ONLY=post …).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-64}
FILL=${3:-1000000}
BIN=${BIN:-target/release/redial}
BENCH=${BENCH:-target/release/sched_bench}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

serve() { # $1 = storage path
  local http sip
  http=$(port); sip=$(port)
  mkdir -p "$TMP/profiles"
  cat > "$TMP/redial.toml" <<TOML
[sip]
listen = "127.0.0.1:$sip"
[http]
listen = "127.0.0.1:$http"
[storage]
path = "$1"
[profiles]
dir = "$TMP/profiles"
[[tokens]]
name = "bench"
secret = "bench-secret-0001"
scopes = ["admin"]
[[queues]]
name = "q"
TOML
  REDIAL_API_RATE=0 RUST_LOG=warn "$BIN" serve --config "$TMP/redial.toml" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
  URL="http://127.0.0.1:$http"
}

export REDIAL_TOKEN=bench-secret-0001 RUN=1
serve "$TMP/post.redb"
echo "== POST /v1/callbacks, $CONN connections, ${DUR}s (each 201 after the group commit)"
wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s benches/api_post.lua "$URL/v1/callbacks" | grep -E "requests|Non-2xx|Socket errors" || true
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
[ "${ONLY:-}" = post ] && exit 0

echo "== filling $FILL callbacks with sched_bench"
"$BENCH" fill "$TMP/fill.redb" "$FILL" | tail -3
serve "$TMP/fill.redb"
curl -sf -H "Authorization: Bearer $REDIAL_TOKEN" "$URL/v1/stats" ; echo
echo "== GET /v1/callbacks?limit=100, $CONN connections, ${DUR}s"
wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s benches/api_get.lua "$URL/v1/callbacks?limit=100" | grep -E "requests|Non-2xx|Socket errors" || true
