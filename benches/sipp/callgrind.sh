#!/usr/bin/env bash
# Instruction counts of redial's REGISTER path, independent of machine load. Usage:
#   benches/sipp/callgrind.sh CALLS [OUT]
# Runs target/release/redial (or $REDIAL_BIN) under valgrind --tool=callgrind with the
# same 1000 agents as run.sh, drives CALLS digest registrations (401 round included) with
# SIPp at a slow rate, stops redial (SIGTERM: callgrind writes its file), and prints
# instructions per registration and the top functions (inclusive) from callgrind_annotate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
calls=$1
out=${2:-$PWD/callgrind.out.register}
work=$(mktemp -d)
vpid=
trap '[ -n "$vpid" ] && kill $vpid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
freeport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(freeport)
cport=$(freeport)
{ echo SEQUENTIAL; for i in $(seq 0 999); do echo "user$i;[authentication username=user$i password=user$i-pw]"; done; } > "$work/users.csv"
{
  printf '[sip]\nlisten = "127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:0"\n[storage]\npath = "data/r.redb"\n' "$port"
  for i in $(seq 0 999); do printf '[[agents]]\nid = "user%s"\npassword = "user%s-pw"\n' "$i" "$i"; done
} > "$work/redial.toml"
mkdir -p "$work/sip-profiles"
(cd "$work" && RUST_LOG=warn exec valgrind --tool=callgrind --callgrind-out-file="$out" \
  "${REDIAL_BIN:-$root/target/release/redial}" serve --config redial.toml > redial.out 2> redial.log) & vpid=$!
for _ in $(seq 1 600); do grep -q "redial ready" "$work/redial.log" 2>/dev/null && break; sleep 0.1; done
# Warm-up run (first registrations of every agent), then zero the counters and measure.
sipp -sf "$here/register.xml" -inf "$work/users.csv" -i 127.0.0.1 -p "$cport" -r 50 -m 1000 \
  -timeout 120s -timeout_error -nostdin "127.0.0.1:$port" > "$work/sipp0.out" 2>&1
callgrind_control -z "$vpid" > /dev/null 2>&1 || callgrind_control -z > /dev/null
sipp -sf "$here/register.xml" -inf "$work/users.csv" -i 127.0.0.1 -p "$cport" -r 50 -m "$calls" \
  -timeout 300s -timeout_error -nostdin -trace_stat -stf "$work/stat.csv" "127.0.0.1:$port" > "$work/sipp.out" 2>&1 || true
kill -TERM "$vpid"; wait "$vpid" 2>/dev/null || true; vpid=
grep -E "Successful call|Failed call" "$work/sipp.out" | head -4 || true
total=$(callgrind_annotate --auto=no "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}')
echo "instructions=$total per_registration=$((total / calls))"
callgrind_annotate --auto=no --inclusive=yes "$out" 2>/dev/null | grep -E '^ *[0-9,]+ ' | head -45 || true
