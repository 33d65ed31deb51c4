#!/usr/bin/env bash
# Cluster figures (docs/cluster.md), all in one run on this machine:
#  1. durable POST /v1/callbacks per second and p99 (wrk; each 201 after the
#     commit) on redb, on PostgreSQL with 1 node, and with 3 nodes (one wrk
#     per node, the connections split between them);
#  2. callbacks fired per second: a herd of HERD callbacks due at one
#     instant, from that instant until none is pending (the queue has no
#     trunk, so each hand-over ends its attempt at once);
#  3. take-over after a SIGKILL: one of 3 nodes (lease 10 s, the default)
#     killed; time until the live nodes hold every shard again.
# Everything shares these cores with PostgreSQL and wrk: the figures compare
# backends on one machine, they are not a deployment's capacity.
# Needs: cargo build --release --bin redial; wrk; PostgreSQL server binaries.
# Usage: benches/cluster_figures.sh [DURATION_S] [CONNECTIONS] [HERD]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-64}
HERD=${3:-5000}
BIN=${BIN:-target/release/redial}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
TMP=$(mktemp -d)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${PGPID:-}" ] && kill -QUIT "$PGPID" 2>/dev/null || true
  sleep 0.5
  rm -rf "$TMP"
}
trap cleanup EXIT
export REDIAL_TOKEN=bench-secret-0001

as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi; }
mkdir "$TMP/pg"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$TMP/pg"
as_pg "$PGBIN/initdb" -D "$TMP/pg/data" -U redial --auth=trust -E UTF8 --no-instructions >/dev/null
as_pg "$PGBIN/postgres" -D "$TMP/pg/data" -k "$TMP/pg" -c listen_addresses= -c max_connections=200 -c shared_buffers=128MB >"$TMP/pg.log" 2>&1 &
PGPID=$!
for _ in $(seq 200); do "$PGBIN/pg_isready" -q -h "$TMP/pg" && break; sleep 0.1; done
psql_() { "$PGBIN/psql" -q -h "$TMP/pg" -U redial -d postgres -c "$1" >/dev/null; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME STORAGE_TOML [CLUSTER_TOML]: a node; its URL is appended to URLS.
URLS=()
start() {
  local http sip dir="$TMP/$1"
  http=$(port); sip=$(port)
  mkdir -p "$dir/profiles"
  cat > "$dir/redial.toml" <<TOML
[sip]
listen = "127.0.0.1:$sip"
[http]
listen = "127.0.0.1:$http"
$2
[profiles]
dir = "$dir/profiles"
[[tokens]]
name = "bench"
secret = "bench-secret-0001"
scopes = ["admin"]
[[queues]]
name = "q"
${3:-}
TOML
  REDIAL_DEV_UNLIMITED_AGENTS=1 REDIAL_API_RATE=0 RUST_LOG=warn "$BIN" serve --config "$dir/redial.toml" >"$dir/out.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
  URLS+=("http://127.0.0.1:$http")
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); URLS=(); }
pg_storage() { printf '[storage]\nbackend = "postgres"\nurl = "host=%s user=redial dbname=%s"' "$TMP/pg" "$1"; }
cluster() { printf '[cluster]\nnode = "%s"\nshards = 64' "$1"; }
pending() { curl -sf -H "Authorization: Bearer $REDIAL_TOKEN" "$1/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])'; }

# post: wrk against every node in URLS at once, CONN connections split.
post() {
  local n=${#URLS[@]} i=0 out=()
  for u in "${URLS[@]}"; do
    i=$((i + 1))
    RUN=$i wrk -t1 -c$((CONN / n)) -d"${DUR}s" --latency -s benches/api_post.lua "$u/v1/callbacks" >"$TMP/wrk$i.txt" 2>&1 &
    out+=($!)
  done
  for p in "${out[@]}"; do wait "$p"; done
  for j in $(seq "$n"); do grep -E "^requests" "$TMP/wrk$j.txt" || cat "$TMP/wrk$j.txt"; done
  cat "$TMP"/wrk*.txt | python3 -c '
import re,sys
t=sum(float(m) for m in re.findall(r"requests \d+ in [\d.]+ s: ([\d.]+)/s", sys.stdin.read()))
print(f"  total {t:.0f} POST/s")'
  rm -f "$TMP"/wrk*.txt
}

# herd: HERD callbacks due at one instant (75 s and more ahead), spread over the
# nodes; prints fired/s from the due instant until none is pending.
herd() {
  local at n=${#URLS[@]}
  # Due after the 60 s minimum lead plus time to post the herd.
  at=$(python3 -c "import time; print(int(time.time()) + 75 + $HERD // 50)")
  python3 - "$at" "$HERD" "${URLS[@]}" <<'PY'
import json, sys, time, urllib.request, urllib.error, concurrent.futures as cf, datetime
at, herd, urls = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
iso = datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
def post(i):
    body = json.dumps({"phone": "+1888%07d" % i, "queue": "q", "scheduled_at": iso}).encode()
    r = urllib.request.Request(urls[i % len(urls)] + "/v1/callbacks", body, {"Content-Type": "application/json", "Authorization": "Bearer bench-secret-0001"})
    try:
        return urllib.request.urlopen(r).status
    except urllib.error.HTTPError as e:
        sys.exit(f"POST answered {e.code}: {e.read().decode()}")
with cf.ThreadPoolExecutor(32) as ex:
    assert all(s == 201 for s in ex.map(post, range(herd)))
def pending():
    r = urllib.request.Request(urls[0] + "/v1/stats", headers={"Authorization": "Bearer bench-secret-0001"})
    return json.load(urllib.request.urlopen(r))["pending"]
time.sleep(max(0, at - time.time()))
while pending() > 0:
    time.sleep(0.02)
took = time.time() - at
print(f"  {herd} due at once on {len(urls)} node(s): drained {took:.2f} s after due, {herd / took:.0f} fired/s")
PY
}

echo "== redb, 1 node"
start r1 "[storage]
path = \"$TMP/r1.redb\""
post
herd
stop_all

echo "== PostgreSQL, 1 node"
psql_ "CREATE DATABASE one"
start p1 "$(pg_storage one)" "$(cluster p1)"
post
herd
stop_all

echo "== PostgreSQL, 3 nodes"
psql_ "CREATE DATABASE three"
for n in a b c; do start "$n" "$(pg_storage three)" "$(cluster "$n")"; done
sleep 4 # the leases settle into thirds
post
herd

echo "== take-over after SIGKILL (lease 10 s)"
victim=${PIDS[2]}
kill -9 "$victim"
t0=$(date +%s.%N)
while true; do
  held=$(curl -sf -H "Authorization: Bearer $REDIAL_TOKEN" "${URLS[0]}/v1/cluster" | python3 -c '
import json,sys; v=json.load(sys.stdin); print(sum(n["shards"] for n in v["nodes"] if n["live"] and n["node"] != "c"))')
  [ "$held" = 64 ] && break
  sleep 0.05
done
python3 -c "import time; print(f'  the live nodes hold every shard {time.time() - $t0:.2f} s after the SIGKILL')"
stop_all
