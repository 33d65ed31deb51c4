//! Call legs under load, real sockets on loopback: the endpoint in-process (this binary)
//! against SIPp. Run: `cargo bench --bench sip_calls` (about 40 s; needs `sipp`).
//!
//! (a) Outbound: `dial` at RATE calls/s for SECS seconds to a SIPp callee
//!     (`tests/sipp/calls_uas_answer.xml`: 180, 200, ACK, then our BYE after HOLD).
//! (b) Inbound: a SIPp carrier (`tests/sipp/calls_uac_did.xml`) calls a DID at RATE calls/s;
//!     a task rings and answers every `IncomingCall`; the carrier hangs up after HOLD.
//!
//! Printed: calls completed/failed, peak legs up at once, dial → Answered latency
//! percentiles, and this process's CPU time per call (the endpoint task plus the bench's own
//! tasks; SIPp is another process).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redial::config::Config;
use redial::sip::calls::{DialRequest, LegEvent};
use redial::sip::endpoint::Endpoint;
use redial::sip::{Peer, Transport};

const RATE: u32 = 250;
const SECS: u32 = 10;
const HOLD: Duration = Duration::from_secs(5);
const DID: &str = "+15550100";
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

fn config(dir: &std::path::Path) -> Config {
    common::endpoint_config(dir, DID)
}

fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    ended: AtomicU64,
    failed: AtomicU64,
    up: AtomicI64,
    peak: AtomicI64,
    latencies: Mutex<Vec<Duration>>,
}

impl Tally {
    fn up(&self) {
        let n = self.up.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
    }
    fn down(&self) {
        self.up.fetch_sub(1, Ordering::Relaxed);
    }
    fn report(&self, what: &str, wall: Duration, cpu: f64) {
        let mut l = self.latencies.lock().unwrap();
        l.sort();
        let pct = |p: f64| l.get(((l.len() as f64 - 1.0) * p) as usize).map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3)).unwrap_or("-".into());
        let done = self.ended.load(Ordering::Relaxed);
        println!(
            "{what}: {} answered, {done} ended, {} failed in {:.1} s; peak {} legs up; dial→Answered p50 {} p99 {} max {}; CPU {:.2} s = {:.0} µs/call",
            self.answered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            wall.as_secs_f64(),
            self.peak.load(Ordering::Relaxed),
            pct(0.5),
            pct(0.99),
            pct(1.0),
            cpu,
            cpu * 1e6 / done.max(1) as f64
        );
    }
}

async fn outbound(total: u32) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let ep = Endpoint::start(&cfg, stop_rx).await.unwrap();
    let port = common::peer_port();
    let mut sipp = Command::new("sipp")
        .args(["-sf", &scenario("calls_uas_answer.xml"), "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &total.to_string(), "-timeout", "60s", "-nostdin", "-max_socket", "4096"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = Arc::new(Tally::default());
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    let mut tasks = Vec::new();
    for _ in 0..total {
        tick.tick().await;
        let req = DialRequest {
            request_uri: format!("sip:+15551234567@127.0.0.1:{port}"),
            to: "<sip:+15551234567@carrier.test>".into(),
            from_name: None,
            from_user: DID.into(),
            from_host: "carrier.test".into(),
            destination: Peer { addr: ([127, 0, 0, 1], port).into(), transport: Transport::Udp },
            headers: vec![("X-Redial-Callback-Id".into(), "cb-1".into())],
            sdp: SDP.to_vec(),
            credentials: None,
        };
        let started = Instant::now();
        let mut leg = ep.calls.dial(req);
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut hung_up = false;
            let mut ringing_until = None;
            loop {
                let ev = match ringing_until {
                    Some(at) => match tokio::time::timeout_at(at, leg.events.recv()).await {
                        Ok(ev) => ev,
                        Err(_) => {
                            leg.hangup();
                            hung_up = true;
                            ringing_until = None;
                            continue;
                        }
                    },
                    None => leg.events.recv().await,
                };
                match ev {
                    Some(LegEvent::Answered { .. }) => {
                        tally.latencies.lock().unwrap().push(started.elapsed());
                        tally.answered.fetch_add(1, Ordering::Relaxed);
                        tally.up();
                        if !hung_up {
                            ringing_until = Some(tokio::time::Instant::now() + HOLD);
                        }
                    }
                    Some(LegEvent::Ended { .. }) => {
                        tally.ended.fetch_add(1, Ordering::Relaxed);
                        tally.down();
                        return;
                    }
                    Some(LegEvent::Failed { .. }) | None => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Some(_) => {}
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = t0.elapsed();
    tally.report(&format!("outbound {RATE}/s × {SECS} s, hold {HOLD:?}"), wall, cpu_seconds() - cpu0);
    let _ = sipp.wait();
}

async fn inbound(total: u32) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut ep = Endpoint::start(&cfg, stop_rx).await.unwrap();
    let mut incoming = ep.incoming.take().unwrap();
    let tally = Arc::new(Tally::default());
    let t2 = tally.clone();
    let taker = tokio::spawn(async move {
        let mut legs = Vec::new();
        while let Some(mut call) = incoming.recv().await {
            let tally = t2.clone();
            let started = Instant::now();
            legs.push(tokio::spawn(async move {
                call.leg.ring();
                call.leg.answer(SDP.to_vec());
                while let Some(ev) = call.leg.events.recv().await {
                    match ev {
                        LegEvent::Answered { .. } => {
                            tally.latencies.lock().unwrap().push(started.elapsed());
                            tally.answered.fetch_add(1, Ordering::Relaxed);
                            tally.up();
                        }
                        LegEvent::Ended { .. } => {
                            tally.ended.fetch_add(1, Ordering::Relaxed);
                            tally.down();
                            return;
                        }
                        LegEvent::Failed { .. } => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        _ => {}
                    }
                }
            }));
        }
        for l in legs {
            let _ = l.await;
        }
    });
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let sip = ep.local_addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sipp")
            .args(["-sf", &scenario("calls_uac_did.xml"), "-i", "127.0.0.1", "-p", &common::peer_port().to_string()])
            .args(["-s", DID, "-d", &HOLD.as_millis().to_string(), "-r", &RATE.to_string()])
            .args(["-m", &total.to_string(), "-timeout", "60s", "-nostdin", "-max_socket", "4096", &sip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    })
    .await
    .unwrap();
    let wall = t0.elapsed();
    // Let the last BYEs reach the legs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tally.report(&format!("inbound {RATE}/s × {SECS} s, hold {HOLD:?}"), wall, cpu_seconds() - cpu0);
    println!("  SIPp carrier exit: {:?} (0 = every call succeeded)", out.map(|s| s.code()));
    drop(ep);
    taker.abort();
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` compiles only
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let total = RATE * SECS;
    rt.block_on(outbound(total));
    rt.block_on(inbound(total));
}
