//! Overload: the rate of new calls served when a carrier offers more than the endpoint
//! can take. Real sockets on loopback: the endpoint in-process (this binary, default
//! `[sip.overload]`), a task that answers every incoming call, and a SIPp carrier
//! (`benches/sipp/flood_uac_did.xml`) calling a DID; calls last HOLD, then the carrier
//! hangs up. Run: `cargo bench --bench sip_overload` (a few minutes; needs `sipp`).
//!
//! First the sustainable rate is found on this machine: the rate doubles from
//! `OVERLOAD_FROM` (default 50/s) while every call of a `PROBE_SECS` run is answered
//! with no 503 and no failure (`OVERLOAD_RATE=N` skips the search). Then the flood runs at
//! 1×, 2× and 4× that rate for `OVERLOAD_SECS` (default 20 s) each, a fresh endpoint each
//! time, and prints per run: calls offered, answered (INVITE 2xx), refused (503), other
//! outcomes, the served rate, calls that ended normally, and the peak RSS of this process
//! (the endpoint and the answering task; SIPp is another process).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial::sip::calls::LegEvent;
use redial::sip::endpoint::Endpoint;
use redial::sip::transaction::Role;

const HOLD: Duration = Duration::from_secs(2);
const PROBE_SECS: u32 = 10;
const DID: &str = "+15550100";
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident set size of this process now, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

struct Run {
    rate: u32,
    offered: u32,
    answered: u64,
    refused: u64,
    other: u64,
    ended: u64,
    wall: Duration,
    peak_rss: f64,
    sipp_exit: Option<i32>,
}

impl Run {
    /// Every call answered, none refused or failed, and all offered in about the time asked
    /// (SIPp falls behind its rate when the answers are slow).
    fn clean(&self, secs: u32) -> bool {
        self.answered == u64::from(self.offered)
            && self.refused == 0
            && self.other == 0
            && self.sipp_exit == Some(0)
            && self.wall.as_secs_f64() <= f64::from(secs) * 1.1
    }

    fn print(&self, label: &str) {
        println!(
            "{label}: {}/s offered for {:.1} s: {} calls, {} answered, {} refused 503, {} other; served {:.0}/s; {} ended normally; peak RSS {:.0} MiB; SIPp exit {:?}",
            self.rate,
            self.wall.as_secs_f64(),
            self.offered,
            self.answered,
            self.refused,
            self.other,
            self.answered as f64 / self.wall.as_secs_f64(),
            self.ended,
            self.peak_rss,
            self.sipp_exit,
        );
    }
}

async fn flood(rate: u32, secs: u32) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::endpoint_config(dir.path(), DID);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut ep = Endpoint::start(&cfg, stop_rx).await.unwrap();
    let mut incoming = ep.incoming.take().unwrap();
    let ended = Arc::new(AtomicU64::new(0));
    let e2 = ended.clone();
    let taker = tokio::spawn(async move {
        while let Some(mut call) = incoming.recv().await {
            let ended = e2.clone();
            tokio::spawn(async move {
                call.leg.ring();
                call.leg.answer(SDP.to_vec());
                while let Some(ev) = call.leg.events.recv().await {
                    match ev {
                        LegEvent::Ended { .. } => {
                            ended.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        LegEvent::Failed { .. } => return,
                        _ => {}
                    }
                }
            });
        }
    });
    let done = Arc::new(AtomicBool::new(false));
    let (d2, peak) = (done.clone(), Arc::new(std::sync::Mutex::new(0f64)));
    let p2 = peak.clone();
    let sampler = tokio::spawn(async move {
        while !d2.load(Ordering::Relaxed) {
            let now = rss_mib();
            {
                let mut p = p2.lock().unwrap();
                *p = p.max(now);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let offered = rate * secs;
    let sip = ep.local_addr.to_string();
    let scenario = format!("{}/benches/sipp/flood_uac_did.xml", env!("CARGO_MANIFEST_DIR"));
    let t0 = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sipp")
            .args(["-sf", &scenario, "-i", "127.0.0.1", "-p", &common::peer_port().to_string()])
            .args(["-s", DID, "-d", &HOLD.as_millis().to_string(), "-r", &rate.to_string()])
            .args(["-m", &offered.to_string(), "-l", &(rate * 4).to_string(), "-timeout", "120s", "-nostdin", "-max_socket", "4096", &sip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    })
    .await
    .unwrap();
    // The offered seconds, not SIPp's tail of calls on hold: what the served rate is over.
    let wall = t0.elapsed().saturating_sub(HOLD).max(Duration::from_secs(secs.into()));
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let s = &ep.stats;
    let answered = s.get(Role::Server, "INVITE", "2xx");
    let refused = s.get(Role::Server, "INVITE", "5xx");
    // Any other answer, or none.
    let other = u64::from(offered).saturating_sub(answered + refused);
    let run = Run { rate, offered, answered, refused, other, ended: ended.load(Ordering::Relaxed), wall, peak_rss: *peak.lock().unwrap(), sipp_exit: out.ok().and_then(|s| s.code()) };
    let _ = stop.send(true);
    taker.abort();
    let _ = tokio::time::timeout(Duration::from_secs(10), ep.join()).await;
    run
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` compiles only
    }
    // The guard's state changes (which measure tripped it) on stderr; `RUST_LOG` as for serve.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    redial::serve::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let secs = env_u32("OVERLOAD_SECS", 20);
    let base = match std::env::var("OVERLOAD_RATE").ok().and_then(|v| v.parse().ok()) {
        Some(r) => r,
        None => {
            let mut rate = env_u32("OVERLOAD_FROM", 50);
            let mut last_clean = None;
            loop {
                let run = rt.block_on(flood(rate, PROBE_SECS));
                run.print("probe");
                if !run.clean(PROBE_SECS) {
                    break;
                }
                last_clean = Some(rate);
                rate *= 2;
            }
            match last_clean {
                Some(r) => r,
                None => {
                    println!("not even {rate}/s was served cleanly; set OVERLOAD_FROM lower");
                    return;
                }
            }
        }
    };
    println!("sustainable rate: {base}/s (every call answered, on time, in a {PROBE_SECS} s run)");
    for k in [1, 2, 4] {
        rt.block_on(flood(base * k, secs)).print(&format!("{k}×"));
    }
}
