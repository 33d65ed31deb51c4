#!/usr/bin/env bash
# Cluster figures (docs/cluster.md), all in one run on this machine:
#  1. durable POST /v1/callbacks per second and p99 (wrk; each 201 after the
#     commit) on redb, on PostgreSQL with 1, 2 and 3 nodes (one wrk per
#     node, the connections split between them);
#  2. callbacks fired per second and fire lateness: a herd of HERD callbacks
#     due at one instant, from that instant until none is pending (the queue
#     has no trunk, so each hand-over ends its attempt at once; lateness is
#     the end of that attempt less the due time);
#  3. the same herd (SIP_HERD callbacks) on 3 nodes dialling through
#     Kamailio (deploy/kamailio/redial-front.cfg) to a SIPp carrier that
#     answers 486: lateness of each attempt's start, and how many INVITEs
#     the carrier and Kamailio's second guard saw;
#  4. take-over after a SIGKILL: one of 3 nodes (lease 10 s, the default)
#     killed, TAKEOVERS times; time until the live nodes hold every shard.
# Everything shares these cores with PostgreSQL and wrk: the figures compare
# backends on one machine, they are not a deployment's capacity.
# Needs: cargo build --release --bin redial; wrk; PostgreSQL server binaries;
# kamailio and sipp (Debian packages).
# Usage: benches/cluster_figures.sh [DURATION_S] [CONNECTIONS] [HERD] [SIP_HERD] [TAKEOVERS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-64}
HERD=${3:-5000}
SIP_HERD=${4:-1000}
TAKEOVERS=${5:-3}
BIN=${BIN:-target/release/redial}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
TMP=$(mktemp -d)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}" ${KPID:-} ${SIPPID:-}; do kill "$p" 2>/dev/null || true; done
  [ -n "${KPID:-}" ] && kill -9 -- -"$KPID" 2>/dev/null || true
  # $PGPID is the subshell that started the server; the postmaster's own pid is
  # the first line of postmaster.pid (immediate shutdown: SIGQUIT).
  [ -f "$TMP/pg/data/postmaster.pid" ] && kill -QUIT "$(head -1 "$TMP/pg/data/postmaster.pid")" 2>/dev/null || true
  [ -n "${PGPID:-}" ] && kill -QUIT "$PGPID" 2>/dev/null || true
  sleep 0.5
  # KEEP=1 keeps the logs (nodes, Kamailio, the carrier's messages) for a look after the run.
  if [ -n "${KEEP:-}" ]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
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
  [ -n "${PROFILE:-}" ] && printf '%s\n' "$PROFILE" > "$dir/profiles/carrier.toml"
  # Nodes on one machine share its addresses: each gets its own RTP port range,
  # or they bind in step from the same first pair and an attempt that finds 16
  # pairs taken in a row fails before its INVITE ("no media port").
  MEDIA_N=$(( ${MEDIA_N:-0} + 1 ))
  cat > "$dir/redial.toml" <<TOML
[media]
ports = "$(( 21000 + MEDIA_N * 1000 ))-$(( 21999 + MEDIA_N * 1000 ))"
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
  SIPS+=("127.0.0.1:$sip")
}
SIPS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); URLS=(); SIPS=(); }
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
# herd [N] [QUEUE] [PREFIX]: by default HERD callbacks of queue q; with a
# queue that has a trunk, lateness is each attempt's start less its due time.
herd() {
  local at n=${#URLS[@]} size=${1:-$HERD}
  # Due after the 60 s minimum lead plus time to post the herd.
  at=$(python3 -c "import time; print(int(time.time()) + 75 + $size // 50)")
  python3 - "$at" "$size" "${2:-q}" "${3:-+1888}" "${URLS[@]}" <<'PY'
import json, sys, time, urllib.request, urllib.error, concurrent.futures as cf, datetime
at, herd, queue, prefix, urls = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
def ms(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
def get(path):
    r = urllib.request.Request(urls[0] + path, headers={"Authorization": "Bearer bench-secret-0001"})
    return json.load(urllib.request.urlopen(r))
iso = datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
def post(i):
    body = json.dumps({"phone": prefix + "%07d" % i, "queue": queue, "scheduled_at": iso}).encode()
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
cbs, cursor = [], None
while True:
    page = get("/v1/callbacks?limit=500&queue=" + queue + ("&cursor=" + cursor if cursor else ""))
    cbs += [c for c in page["items"] if c["phone"].startswith(prefix)]
    cursor = page.get("next_cursor")
    if not cursor:
        break
if queue == "q":
    late = sorted(ms(c["updated_at"]) - ms(c["due_at"]) for c in cbs)
else:
    late = []
    # An attempt's start is its due time when it was armed ahead; its end
    # (the carrier's 486 back through Kamailio) is what the customer's
    # phone would have seen by then.
    outcomes = {}
    def first(c):
        a = get("/v1/callbacks/" + c["id"] + "/attempts")["items"]
        if a:
            k = (a[0].get("outcome"), a[0].get("sip_status"), a[0].get("note"))
            outcomes[k] = outcomes.get(k, 0) + 1
        return ms(a[0]["ended_at"]) - ms(c["due_at"]) if a and a[0].get("ended_at") else None
    with cf.ThreadPoolExecutor(16) as ex:
        late = sorted(x for x in ex.map(first, cbs) if x is not None)
    print("  first attempts by (outcome, SIP status):", ", ".join(f"{o}/{s}{' (' + t + ')' if t else ''}: {n}" for (o, s, t), n in sorted(outcomes.items(), key=str)))
pct = lambda p: late[min(len(late) - 1, int(len(late) * p / 100))]
print(f"  {herd} due at once on {len(urls)} node(s): drained {took:.2f} s after due, {herd / took:.0f} fired/s; "
      f"lateness p50 {pct(50):.0f} ms, p99 {pct(99):.0f} ms, max {late[-1]:.0f} ms over {len(late)}")
PY
}

if [ "${ONLY:-}" != sip ]; then
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

echo "== PostgreSQL, 2 nodes"
psql_ "CREATE DATABASE two"
for n in a b; do start "$n" "$(pg_storage two)" "$(cluster "$n")"; done
sleep 4 # the leases settle into halves
post
herd
stop_all
fi

echo "== PostgreSQL, 3 nodes, calls through Kamailio to a SIPp carrier (486)"
psql_ "CREATE DATABASE three"
KPORT=$(port)
CARRIER=$(port)
# SIPp asks for a 64 KiB UDP receive buffer unless told (`-buff_size`); a herd's
# INVITEs from Kamailio overflow it (the kernel drops them: `ss -uam` shows the
# socket's drop count), so the carrier gets 1 MiB, like Kamailio's own (which it
# raises to 512 KiB at start). CARRIER_BUFF=default leaves SIPp's default.
CARRIER_BUFF=${CARRIER_BUFF:-1048576}
BUFF=()
[ "$CARRIER_BUFF" != default ] && BUFF=(-buff_size "$CARRIER_BUFF")
sipp -sf tests/sipp/dial_carrier_busy.xml -i 127.0.0.1 -p "$CARRIER" -m 1000000 -bg -trace_msg -message_file "$TMP/carrier.log" \
  "${BUFF[@]}" -set dir "$TMP" -set rtp_port 9 >/dev/null 2>&1 || true
SIPPID=$(pgrep -n -f "sipp -sf tests/sipp/dial_carrier_busy.xml -i 127.0.0.1 -p $CARRIER" || true)
PROFILE="proxy = \"sip:127.0.0.1:$KPORT\"
domain = \"127.0.0.1:$CARRIER\"
register = false
caller_id = \"+15550100\"
codecs = [\"PCMU\"]
options_ping = \"0\""
for n in a b c; do start "$n" "$(pg_storage three)" "$(cluster "$n")
[[queues]]
name = \"k\"
profile = \"carrier\"
max_attempts = 1"; done
PROFILE=
for s in "${SIPS[@]}"; do echo "1 sip:$s"; done > "$TMP/nodes.list"
setsid kamailio -f deploy/kamailio/redial-front.cfg -l "udp:127.0.0.1:$KPORT" -A "DISPATCHER_LIST=\"$TMP/nodes.list\"" \
  -DD -E -m 128 -M 8 -Y "$TMP" >"$TMP/kamailio.log" 2>&1 &
KPID=$!
sleep 4 # the leases settle into thirds; dispatcher probes the nodes
[ "${ONLY:-}" != sip ] && post && herd
drops_before=$(netstat -su 2>/dev/null | awk '/receive buffer errors/ {print $1}' || true)
herd "$SIP_HERD" k +1777
drops_after=$(netstat -su 2>/dev/null | awk '/receive buffer errors/ {print $1}' || true)
[ -n "$drops_before" ] && [ -n "$drops_after" ] && echo "  UDP datagrams the kernel dropped for a full receive buffer during the herd (any socket): $((drops_after - drops_before))"
[ -n "${SIPPID:-}" ] && echo "  the carrier's UDP socket: $(ss -uanmp 2>/dev/null | grep -A1 "pid=$SIPPID," | grep -o 'rb[0-9]*\|d[0-9]*)' | tr '\n' ' ')(rb = receive buffer, d = datagrams the kernel dropped)"
echo "  the carrier got $(grep -E '^\s*X-Redial-Attempt:' "$TMP/carrier.log" | sort -u | wc -l) attempts in $(grep -E '^\s*Call-ID:' "$TMP/carrier.log" | sort -u | wc -l) calls ($(grep -cE '^\s*INVITE sip:' "$TMP/carrier.log" || true) INVITEs with retransmissions and later requests); Kamailio refused $(grep -c 'second INVITE for attempt' "$TMP/kamailio.log" || true) as second ones"

echo "== take-over after SIGKILL (lease 10 s), $TAKEOVERS times"
for round in $(seq "${TAKEOVERS}"); do
  victim=${PIDS[-1]}
  name="v$round"
  [ "$round" = 1 ] && name=c
  kill -9 "$victim"
  t0=$(date +%s.%N)
  while true; do
    held=$(curl -sf -H "Authorization: Bearer $REDIAL_TOKEN" "${URLS[0]}/v1/cluster" | python3 -c '
import json,sys; v=json.load(sys.stdin); print(sum(n["shards"] for n in v["nodes"] if n["live"] and n["node"] != sys.argv[1]))' "$name")
    [ "$held" = 64 ] && break
    sleep 0.05
  done
  python3 -c "import time; print(f'  round $round: the live nodes hold every shard {time.time() - $t0:.2f} s after the SIGKILL')"
  unset 'PIDS[-1]' 'URLS[-1]' 'SIPS[-1]'
  PIDS=("${PIDS[@]}"); URLS=("${URLS[@]}"); SIPS=("${SIPS[@]}")
  if [ "$round" != "$TAKEOVERS" ]; then
    start "v$((round + 1))" "$(pg_storage three)" "$(cluster "v$((round + 1))")"
    sleep 12 # the dead node's heartbeat ages out; the new one takes its third
  fi
done
stop_all
