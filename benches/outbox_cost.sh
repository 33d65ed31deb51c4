#!/usr/bin/env bash
# The durable outbox's cost on POST /v1/callbacks: the same wrk run against a
# build without the outbox (BEFORE) and with it (AFTER), alternated ROUNDS
# times in one session so both see the same machine.
# Needs: two redial binaries; wrk (apt-get install -y wrk).
# Usage: BEFORE=/path/redial AFTER=/path/redial benches/outbox_cost.sh [DURATION_S] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-64}
ROUNDS=${3:-2}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # $1 = label, $2 = binary
  local http sip dir
  http=$(port); sip=$(port); dir=$(mktemp -d -p "$TMP")
  mkdir -p "$dir/profiles"
  cat > "$dir/redial.toml" <<TOML
[sip]
listen = "127.0.0.1:$sip"
[http]
listen = "127.0.0.1:$http"
[storage]
path = "$dir/post.redb"
[profiles]
dir = "$dir/profiles"
[[tokens]]
name = "bench"
secret = "bench-secret-0001"
scopes = ["admin"]
[[queues]]
name = "q"
TOML
  REDIAL_API_RATE=0 RUST_LOG=warn "$2" serve --config "$dir/redial.toml" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
  echo "== $1: POST /v1/callbacks, $CONN connections, ${DUR}s"
  REDIAL_TOKEN=bench-secret-0001 RUN=1 wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s benches/api_post.lua "http://127.0.0.1:$http/v1/callbacks" \
    | grep -E "Requests/sec| 50%| 99%|Non-2xx|Socket errors" || true
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}

for r in $(seq "$ROUNDS"); do
  run "before (round $r)" "${BEFORE:?set BEFORE}"
  run "after (round $r)" "${AFTER:?set AFTER}"
done
