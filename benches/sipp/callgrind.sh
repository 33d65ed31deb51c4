#!/usr/bin/env bash
# Instruction counts of the REGISTER path, independent of machine load. Usage:
#   benches/sipp/callgrind.sh [redial|kamailio] CALLS [OUT]
# Runs the server under valgrind --tool=callgrind — redial: target/release/redial (or
# $REDIAL_BIN) with the same 1000 agents as run.sh; kamailio: benches/sipp/kamailio.cfg
# as run.sh starts it, every forked process traced — drives a warm-up of 1000 digest
# registrations, zeroes the counters, drives CALLS more (401 round included) with SIPp
# at a slow rate, stops the server (SIGTERM: callgrind writes its files), and prints
# instructions per registration (all threads and processes) and, for redial, the top
# functions (inclusive) from callgrind_annotate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=redial
case "${1:-}" in redial|kamailio) server=$1; shift;; esac
calls=$1
out=${2:-$PWD/callgrind.out.register}
work=$(mktemp -d)
vpid=
trap '[ -n "$vpid" ] && kill $vpid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
freeport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(freeport)
cport=$(freeport)
{ echo SEQUENTIAL; for i in $(seq 0 999); do echo "user$i;[authentication username=user$i password=user$i-pw]"; done; } > "$work/users.csv"
if [ "$server" = redial ]; then
  {
    printf '[sip]\nlisten = "127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:0"\n[storage]\npath = "data/r.redb"\n' "$port"
    for i in $(seq 0 999); do printf '[[agents]]\nid = "user%s"\npassword = "user%s-pw"\n' "$i" "$i"; done
  } > "$work/redial.toml"
  mkdir -p "$work/sip-profiles"
  (cd "$work" && RUST_LOG=warn exec valgrind --tool=callgrind --callgrind-out-file="$out" \
    "${REDIAL_BIN:-$root/target/release/redial}" serve --config redial.toml > redial.out 2> redial.log) & vpid=$!
  for _ in $(seq 1 600); do grep -q "redial ready" "$work/redial.log" 2>/dev/null && break; sleep 0.1; done
else
  # One output file per process (%p); the totals are summed over all of them.
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out.%p" \
    kamailio -f "$here/kamailio.cfg" -l "udp:127.0.0.1:$port" -DD -E -m 2048 -M 32 \
    > "$work/kamailio.out" 2> "$work/kamailio.log" & vpid=$!
  for _ in $(seq 1 600); do [ -n "$(ss -Hlun "sport = :$port")" ] && break; sleep 0.1; done
  sleep 5
fi
# Warm-up run (first registrations of every agent), then zero the counters and measure.
sipp -sf "$here/register.xml" -inf "$work/users.csv" -i 127.0.0.1 -p "$cport" -r 50 -m 1000 \
  -timeout 120s -timeout_error -nostdin "127.0.0.1:$port" > "$work/sipp0.out" 2>&1
descendants() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do descendants "$c"; done; }
for p in $(descendants "$vpid"); do callgrind_control -z "$p" > /dev/null 2>&1 || true; done
sipp -sf "$here/register.xml" -inf "$work/users.csv" -i 127.0.0.1 -p "$cport" -r 50 -m "$calls" \
  -timeout 300s -timeout_error -nostdin -trace_stat -stf "$work/stat.csv" "127.0.0.1:$port" > "$work/sipp.out" 2>&1 || true
kill -TERM "$vpid"; wait "$vpid" 2>/dev/null || true; vpid=
sleep 2
grep -E "Successful call|Failed call|Retransmissions" "$work/sipp.out" | head -6 || true
total=0
for f in "$out" "$out".[0-9]*; do
  [ -f "$f" ] || continue
  n=$(callgrind_annotate --auto=no "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}' || true)
  total=$((total + ${n:-0}))
done
echo "server=$server instructions=$total per_registration=$((total / calls))"
[ "$server" = redial ] && { callgrind_annotate --auto=no --inclusive=yes "$out" 2>/dev/null | grep -E '^ *[0-9,]+ ' | head -45 || true; }
