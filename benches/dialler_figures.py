#!/usr/bin/env python3
"""Dialler figures (docs/dialler.md): customer-first callbacks started per
second against SIPp answering at once, and the time from each callback's due
time to its INVITE on the wire.

N callbacks are booked due at the same second T; at T the scheduler hands
them all over and the dialler dials them. The INVITE times are the attempts'
`dialed_at` (taken when the INVITE is handed to the transport), so
`dialed_at - due_at` is the due-to-wire delay and N / (last - first INVITE)
the set-up rate. Agents are not needed to start calls
(REDIAL_DEV_UNLIMITED_AGENTS=1); each call then ends after AMD and the
apology prompt.

With SPREAD_S > 0 the due times are spread evenly over that many seconds
instead (a steady rate of N / SPREAD_S callbacks per second).

Needs: cargo build --release --bins; sipp.
Usage: benches/dialler_figures.py [N] [SPREAD_S]   (defaults 2000, 0)
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/redial"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
SPREAD_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
TOKEN = "bench-secret-0001"


def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def api(http, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{http}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def ms(t):
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000


def main():
    tmp = tempfile.mkdtemp()
    http, sip, carrier = port(), port(), port()
    os.makedirs(f"{tmp}/profiles")
    with open(f"{tmp}/profiles/carrier.toml", "w") as f:
        f.write(f'proxy = "sip:127.0.0.1:{carrier}"\ndomain = "carrier.test"\noptions_ping = "0"\n')
    with open(f"{tmp}/redial.toml", "w") as f:
        f.write(f'''[sip]
listen = "127.0.0.1:{sip}"
[media]
ports = "20000-29999"
prompts = "{ROOT}/prompts"
[amd]
total_analysis_ms = 1000
[http]
listen = "127.0.0.1:{http}"
[storage]
path = "{tmp}/redial.redb"
[profiles]
dir = "{tmp}/profiles"
[[tokens]]
name = "bench"
secret = "{TOKEN}"
scopes = ["admin"]
[[queues]]
name = "q"
profile = "carrier"
max_attempts = 1
''')
    sipp = subprocess.Popen(["sipp", "-sf", f"{ROOT}/tests/sipp/dial_carrier_instant.xml", "-i", "127.0.0.1",
                             "-p", str(carrier), "-m", str(N), "-nostdin", "-timeout", "120s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    env = dict(os.environ, REDIAL_API_RATE="0", REDIAL_DEV_UNLIMITED_AGENTS="1", RUST_LOG="warn")
    redial = subprocess.Popen([BIN, "serve", "--config", f"{tmp}/redial.toml"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/redial.log", "w"), cwd=tmp)
    try:
        for _ in range(100):
            try:
                api(http, "GET", "/healthz"); break
            except Exception:
                time.sleep(0.1)
        # Booking must end before the first due time comes within the 60 s minimum lead.
        due = (datetime.now(timezone.utc) + timedelta(seconds=65 + N // 100)).replace(microsecond=0)
        dues, ids = {}, []
        for i in range(N):
            t = due + timedelta(seconds=SPREAD_S * i / N)
            at = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            cid = api(http, "POST", "/v1/callbacks", {"phone": f"+1555{i:07d}", "queue": "q", "scheduled_at": at})["id"]
            ids.append(cid)
            dues[cid] = t.timestamp() * 1000
        print(f"{N} callbacks due from {due.isoformat()} over {SPREAD_S} s; waiting", flush=True)
        time.sleep(max(0, due.timestamp() + SPREAD_S - time.time()) + 2)
        deadline = time.time() + 120
        while time.time() < deadline:
            left = api(http, "GET", "/v1/stats?queue=q")["pending"]
            if left == 0:
                break
            time.sleep(1)
        delays, dialed = [], []
        for i in ids:
            a = api(http, "GET", f"/v1/callbacks/{i}/attempts")["items"]
            t = a[0]["timeline"]["dialed_at"] if a and a[0].get("timeline") else None
            if t:
                dialed.append(ms(t)); delays.append(ms(t) - dues[i])
        delays.sort()
        q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]
        span = (max(dialed) - min(dialed)) / 1000 if dialed else 0
        print(f"dialled {len(dialed)}/{N}; INVITEs over {span:.3f} s = {len(dialed) / span if span else float('inf'):.0f} callbacks started/s")
        print(f"calls up at the end: {api(http, 'GET', '/v1/stats?queue=q')}")
        print(f"due -> INVITE: p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {delays[-1]:.0f} ms")
    finally:
        redial.terminate(); sipp.kill()
        redial.wait(); sipp.wait()


if __name__ == "__main__":
    main()
