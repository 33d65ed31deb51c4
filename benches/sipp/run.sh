#!/usr/bin/env bash
# Load runs behind docs/sip.md "Performance". Usage:
#   benches/sipp/run.sh redial|kamailio options|register RATE SECONDS
# Starts the server on a free loopback port (redial: target/release/redial with 1000
# agents user0..user999, password "<user>-pw"; kamailio: benches/sipp/kamailio.cfg),
# runs SIPp at RATE calls/s for SECONDS, prints SIPp's counters, stops the server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=$1 scenario=$2 rate=$3 secs=$4
work=$(mktemp -d)
trap 'kill $spid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
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
  (cd "$work" && RUST_LOG=warn exec "${REDIAL_BIN:-$root/target/release/redial}" serve --config redial.toml 2> redial.log) & spid=$!
else
  kamailio -f "$here/kamailio.cfg" -l "udp:127.0.0.1:$port" -DD -E -m 256 -M 32 2> "$work/kamailio.log" & spid=$!
fi
sleep 1
calls=$((rate * secs))
set +e
sipp -sf "$here/$scenario.xml" -inf "$work/users.csv" -i 127.0.0.1 -p "$cport" -r "$rate" -m "$calls" \
  -timeout "$((secs + 15))s" -timeout_error -nostdin -trace_stat -stf "$work/stat.csv" \
  "127.0.0.1:$port" > "$work/sipp.out" 2>&1
rc=$?
set -e
line=$(tail -1 "$work/stat.csv")
IFS=';' read -r -a f <<< "$(head -1 "$work/stat.csv")"
IFS=';' read -r -a v <<< "$line"
for i in "${!f[@]}"; do
  case "${f[$i]}" in
    ElapsedTime\(C\)|TotalCallCreated|SuccessfulCall\(C\)|FailedCall\(C\)|Retransmissions\(C\)) echo "${f[$i]}=${v[$i]}";;
  esac
done
echo "sipp_exit=$rc server=$server scenario=$scenario rate=$rate secs=$secs"
