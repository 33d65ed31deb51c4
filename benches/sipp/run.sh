#!/usr/bin/env bash
# Load runs behind docs/sip.md "Performance". Usage:
#   benches/sipp/run.sh redial|kamailio|both options|register RATE SECONDS [RUNS]
# Starts the server on a free loopback port (redial: target/release/redial, or $REDIAL_BIN,
# with 1000 agents user0..user999, password "<user>-pw"; kamailio: benches/sipp/kamailio.cfg
# with 2 GB of shared memory, so its location table never runs short), runs SIPp at RATE
# calls/s for SECONDS with distinct users from an -inf CSV ([authentication] per line) and a
# 4 MB socket buffer, prints SIPp's counters and the server's CPU seconds (user + system, the
# server and every process it forked, measured over the SIPp run only), then stops the server.
# A run passes (pass=yes) when FailedCall=0, SuccessfulCall=RATE*SECONDS and SIPp's elapsed
# time is at most SECONDS+1 (the rate was really sustained, not caught up by retransmissions).
# redial's run-loop steps longer than 20 ms are counted (slow_steps=, longest_step_ms=, the
# five longest with the live transactions then): a stall of the endpoint's task fills its
# receive queue. Every run prints why=...: the rate achieved (successful calls per elapsed second), the
# retransmissions, and for a failed run each cause: calls failed on an unexpected answer
# (with how many of those answers were 503, from SIPp's error trace), on UDP retransmission
# limits or receive timeouts, calls not completed, or an elapsed time over SECONDS+1.
#
# The issue-20 measurement, both servers in the same session, 3 runs per rate, alternating:
#   benches/sipp/run.sh both register RATE 20 3
# (SERVER may be redial, kamailio or both; RUNS defaults to 1). It ends with one line per
# server: passes=N/RUNS, the CPU seconds per 1,000 registrations of each run, and each failed
# run's why=.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=$1 scenario=$2 rate=$3 secs=$4 runs=${5:-1}
if [ "$server" = both ] || [ "$runs" -gt 1 ]; then
  servers=$server
  [ "$server" = both ] && servers="kamailio redial"
  declare -A passes per why
  for run in $(seq 1 "$runs"); do
    for s in $servers; do
      echo "== run $run/$runs: $s $scenario rate=$rate secs=$secs"
      out=$("$0" "$s" "$scenario" "$rate" "$secs" 1)
      echo "$out"
      grep -q '^pass=yes' <<< "$out" && passes[$s]=$(( ${passes[$s]:-0} + 1 ))
      per[$s]="${per[$s]:-}$(sed -n 's/.*cpu_s_per_1000=\([^ ]*\).*/\1/p' <<< "$out") "
      grep -q '^pass=yes' <<< "$out" || why[$s]="${why[$s]:-}
  run $run: $(sed -n 's/^why=//p' <<< "$out")"
    done
  done
  for s in $servers; do
    echo "summary server=$s scenario=$scenario rate=$rate secs=$secs passes=${passes[$s]:-0}/$runs cpu_s_per_1000=[ ${per[$s]}]${why[$s]:-}"
  done
  exit 0
fi
work=$(mktemp -d)
spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
freeport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU ticks of a process and all its descendants: "user system".
ticks() {
  local user=0 sys=0 p u s
  for p in $(descendants "$1"); do
    if [ -r "/proc/$p/stat" ]; then
      # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
      read -r u s <<< "$(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12, $13}')"
      user=$((user + u)) sys=$((sys + s))
    fi
  done
  echo "$user $sys"
}
descendants() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do descendants "$c"; done; }
port=$(freeport)
cport=$(freeport)
{ echo SEQUENTIAL; for i in $(seq 0 999); do echo "user$i;[authentication username=user$i password=user$i-pw]"; done; } > "$work/users.csv"
if [ "$server" = redial ]; then
  {
    # The overload guard runs with its defaults: completed REGISTER transactions, kept
    # 32 s (RFC 3261 17.2.2, Timer J) to absorb retransmissions, count by the memory
    # they hold (`max_kept_bytes`, 2 GiB). REDIAL_MAX_KEPT_BYTES sets another bound
    # (e.g. a small one, to see the guard's 503s reported in why=).
    printf '[sip]\nlisten = "127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:0"\n[storage]\npath = "data/r.redb"\n' "$port"
    [ -n "${REDIAL_MAX_KEPT_BYTES:-}" ] && printf '[sip.overload]\nmax_kept_bytes = %s\n' "$REDIAL_MAX_KEPT_BYTES"
    for i in $(seq 0 999); do printf '[[agents]]\nid = "user%s"\npassword = "user%s-pw"\n' "$i" "$i"; done
  } > "$work/redial.toml"
  mkdir -p "$work/sip-profiles"
  # Run-loop steps over 20 ms are logged (target redial::sip::stall) and summed up below.
  (cd "$work" && RUST_LOG=warn,redial::sip::stall=debug exec "${REDIAL_BIN:-$root/target/release/redial}" serve --config redial.toml > redial.out 2> redial.log) & spid=$!
  ready() { grep -q "redial ready" "$work/redial.log" 2>/dev/null || [ -n "$(ss -Hlun "sport = :$port")" ]; }
else
  kamailio -f "$here/kamailio.cfg" -l "udp:127.0.0.1:$port" -DD -E -m 2048 -M 32 > "$work/kamailio.out" 2> "$work/kamailio.log" & spid=$!
  ready() { [ -n "$(ss -Hlun "sport = :$port")" ]; }
fi
for _ in $(seq 1 100); do ready && break; sleep 0.1; done
sleep 0.5
calls=$((rate * secs))
cpu0=$(ticks "$spid")
set +e
sipp -sf "$here/$scenario.xml" -inf "$work/users.csv" -i 127.0.0.1 -p "$cport" -r "$rate" -m "$calls" \
  -buff_size 4194304 -timeout "$((secs + 15))s" -timeout_error -nostdin -trace_stat -stf "$work/stat.csv" \
  -trace_err -error_file "$work/errors.log" \
  "127.0.0.1:$port" > "$work/sipp.out" 2>&1
rc=$?
set -e
cpu1=$(ticks "$spid")
hz=$(getconf CLK_TCK)
line=$(tail -1 "$work/stat.csv")
IFS=';' read -r -a f <<< "$(head -1 "$work/stat.csv")"
IFS=';' read -r -a v <<< "$line"
ok=0
failed=-1 elapsed= retrans=0 unexpected=0 maxretrans=0 recvtimeout=0
for i in "${!f[@]}"; do
  case "${f[$i]}" in
    TotalCallCreated) echo "${f[$i]}=${v[$i]}";;
    Retransmissions\(C\)) echo "${f[$i]}=${v[$i]}"; retrans=${v[$i]};;
    FailedUnexpectedMessage\(C\)) unexpected=${v[$i]};;
    FailedMaxUDPRetrans\(C\)) maxretrans=${v[$i]};;
    FailedTimeoutOnRecv\(C\)) recvtimeout=${v[$i]};;
    ElapsedTime\(C\)) echo "${f[$i]}=${v[$i]}"; elapsed=${v[$i]};;
    FailedCall\(C\)) echo "${f[$i]}=${v[$i]}"; failed=${v[$i]};;
    SuccessfulCall\(C\)) echo "${f[$i]}=${v[$i]}"; ok=${v[$i]};;
  esac
done
# ElapsedTime is hh:mm:ss:usec.
elapsed_s=$(awk -F: '{printf "%.3f", $1 * 3600 + $2 * 60 + $3 + $4 / 1e6}' <<< "$elapsed")
read -r u0 s0 <<< "$cpu0"
read -r u1 s1 <<< "$cpu1"
cpu=$(echo "scale=3; ($u1 + $s1 - $u0 - $s0) / $hz" | bc)
echo "server_user_s=$(echo "scale=3; ($u1 - $u0) / $hz" | bc) server_sys_s=$(echo "scale=3; ($s1 - $s0) / $hz" | bc)"
per=$( [ "$ok" -gt 0 ] && echo "scale=4; $cpu * 1000 / $ok" | bc || echo "-")
echo "server_cpu_s=$cpu cpu_s_per_1000=$per"
pass=no
if [ "$failed" = 0 ] && [ "$ok" = "$calls" ] && awk -v e="$elapsed_s" -v s="$secs" 'BEGIN { exit !(e <= s + 1) }'; then
  pass=yes
fi
echo "pass=$pass elapsed_s=$elapsed_s"
# 503 answers among the unexpected messages (the overload guard, or Kamailio's own),
# retransmitted ones to calls already failed included.
n503=$(grep -c 'SIP/2.0 503 ' "$work/errors.log" 2>/dev/null || true)
achieved=$(awk -v n="$ok" -v e="$elapsed_s" 'BEGIN { printf "%.0f", (e > 0 ? n / e : 0) }')
why="achieved=${achieved}/s retransmissions=$retrans"
[ "$failed" != 0 ] && why="$why failed=$failed (unexpected_answer=$unexpected 503_answers=${n503:-0}, max_udp_retrans=$maxretrans, recv_timeout=$recvtimeout)"
[ "$ok" != "$calls" ] && why="$why completed=$ok/$calls"
awk -v e="$elapsed_s" -v s="$secs" 'BEGIN { exit !(e > s + 1) }' && why="$why not_sustained=elapsed ${elapsed_s}s>$((secs + 1))s"
# redial's guard says what tripped it (the first time it turned on).
if [ "$server" = redial ] && grep -q 'overloaded=true' "$work/redial.log" 2>/dev/null; then
  why="$why guard=[$(grep -m1 'overloaded=true' "$work/redial.log" | sed 's/.*overloaded=true //; s/ *SIP overload state changed.*//; s/"//g')]"
fi
echo "why=$why"
# redial's run-loop steps over 20 ms: how many, the longest, and the five longest whole.
if [ "$server" = redial ]; then
  slow=$(grep 'slow SIP endpoint step' "$work/redial.log" 2>/dev/null || true)
  n=$(grep -c . <<< "$slow" || true)
  longest=$(grep -o 'took_ms=[0-9]*' <<< "$slow" | cut -d= -f2 | sort -n | tail -1 || true)
  echo "slow_steps=$n longest_step_ms=${longest:-0}"
  if [ -n "$slow" ]; then
    grep -o 'took_ms=[0-9]*.*' <<< "$slow" | sort -t= -k2 -n -r | head -5 | sed 's/^/  slow_step /'
  fi
fi
echo "sipp_exit=$rc server=$server scenario=$scenario rate=$rate secs=$secs"
