//! Overload: the rate of new calls served when a carrier offers more than the endpoint
//! can take, and the audio of calls already in progress meanwhile. Real sockets on
//! loopback: the endpoint in-process (this binary, default `[sip.overload]`), a task that
//! answers every incoming call, and a SIPp carrier (`benches/sipp/flood_uac_did.xml`)
//! calling a DID; calls last HOLD, then the carrier hangs up. Run:
//! `cargo bench --bench sip_overload` (a few minutes; needs `sipp`, and root for the quota).
//!
//! Fair to both sides: the endpoint's runtime threads run in a cgroup v1 CPU quota of
//! `OVERLOAD_CPU_PCT` % of one core (default 10; 0 runs without one), so that SIPp, outside
//! it, can really offer several times what the endpoint sustains; SIPp and the phones run
//! in a second cgroup, and both have large CPU shares, so other work on the machine takes
//! from neither. `OVERLOAD_SIPP_CPUS` (a `taskset` list) pins SIPp. Each run prints the rate
//! SIPp achieved next to the rate served. `OVERLOAD_MAX_INVITE_DELAY` sets
//! `[sip.overload] max_invite_delay` (e.g. `1h` to compare without the receive tasks'
//! refusals on a backlog).
//!
//! First the sustainable rate is found: the rate doubles from `OVERLOAD_FROM` (default
//! 50/s) while every call of a `PROBE_SECS` run is answered with no 503 and no failure
//! (`OVERLOAD_RATE=N` skips the search). Then the flood runs at 1×, 2× and 4× that rate for
//! `OVERLOAD_SECS` (default 20 s) each, a fresh endpoint each time, `OVERLOAD_RUNS` times
//! (default 1), and prints per run: calls offered and the rate SIPp offered them at,
//! answered (INVITE 2xx), refused (503), other outcomes, the served rate, calls that ended
//! normally, the peak RSS of this process (endpoint, answering task, phones; SIPp is
//! another process), the quota's throttling, and the audio of `OVERLOAD_LONG_CALLS`
//! (default 4) calls set up before the flood: RTP packets sent and relayed each way.
//! Their media runs on its own runtime in the same quota, as `redial serve` runs it;
//! `OVERLOAD_MEDIA_RUNTIME=shared` relays on the endpoint's runtime instead.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "overload/audio.rs"]
mod audio;
#[path = "overload/quota.rs"]
mod quota;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audio::{FarLegs, Heard, LongCall, Phones};
use quota::Quota;
use redial::amd::AmdConfig;
use redial::media::call::{MediaConfig, MediaEngine};
use redial::media::Codec;
use redial::sip::calls::{IncomingCall, LegEvent};
use redial::sip::endpoint::Endpoint;
use redial::sip::transaction::Role;
use tokio::runtime::Runtime;

const HOLD: Duration = Duration::from_secs(2);
const PROBE_SECS: u32 = 10;
const DID: &str = "+15550100";
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const LO: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

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
    /// From SIPp's start to the last final answer: the time SIPp took to offer its calls.
    window: Duration,
    peak_rss: f64,
    sipp_exit: Option<i32>,
    /// Quota periods used up, and the time waited for the quota (ms).
    throttled: (u64, u64),
    audio: Option<(Heard, Heard)>,
}

impl Run {
    /// Every call answered, none refused or failed, and all offered in about the time asked
    /// (SIPp falls behind its rate when the answers are slow).
    fn clean(&self, secs: u32) -> bool {
        self.answered == u64::from(self.offered)
            && self.refused == 0
            && self.other == 0
            && self.sipp_exit == Some(0)
            && self.window.as_secs_f64() <= f64::from(secs) * 1.1
    }

    fn print(&self, label: &str) {
        let w = self.window.as_secs_f64();
        println!(
            "{label}: {}/s asked, SIPp offered {:.0}/s over {w:.1} s: {} calls, {} answered, {} refused 503, {} other; served {:.0}/s; {} ended normally; peak RSS {:.0} MiB; quota throttled {} periods, {} ms; SIPp exit {:?}",
            self.rate,
            f64::from(self.offered) / w,
            self.offered,
            self.answered,
            self.refused,
            self.other,
            self.answered as f64 / w,
            self.ended,
            self.peak_rss,
            self.throttled.0,
            self.throttled.1,
            self.sipp_exit,
        );
        if let Some((out, back)) = &self.audio {
            for (dir, h) in [("caller→far", out), ("far→caller", back)] {
                println!(
                    "    audio {dir}: {} packets sent, {} relayed ({:.2} % lost); worst second of the flood {} of {}; longest gap {} ms",
                    h.sent,
                    h.received,
                    100.0 * h.sent.saturating_sub(h.received) as f64 / h.sent.max(1) as f64,
                    h.worst_second,
                    h.per_second_sent,
                    h.longest_gap_ms,
                );
            }
        }
    }
}

/// The bench's application: rings and answers every call. A call from `long-<port>` gets
/// media: a leg answering the caller's offer, bridged to a leg toward the far phone on
/// `<port>` (whose leg port goes into `far_legs`).
async fn take(call: IncomingCall, engine: MediaEngine, far_legs: FarLegs, ended: Arc<AtomicU64>) {
    let mut call = call;
    let far = call.from_user.as_deref().and_then(|u| u.strip_prefix("long-")).and_then(|p| p.parse::<u16>().ok());
    let mut media = Vec::new();
    let answer = match far {
        None => SDP.to_vec(),
        Some(far) => {
            let offer = String::from_utf8_lossy(call.sdp.as_deref().unwrap_or_default()).into_owned();
            let (mut a, mut b) = (engine.open().await.expect("caller's leg"), engine.open().await.expect("far leg"));
            let answer = a.answer_offer(&offer, &[Codec::Pcmu]).expect("answer the caller");
            b.offer(&[Codec::Pcmu]);
            b.accept_answer(&audio::phone_sdp(far)).expect("far phone's answer");
            a.bridge(&mut b).expect("bridge");
            far_legs.lock().unwrap().insert(far, b.local_port());
            media.extend([a, b]);
            answer.into_bytes()
        }
    };
    call.leg.ring();
    call.leg.answer(answer);
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
}

/// SIPp as a child of this (main) thread, so outside the quota; pinned by `OVERLOAD_SIPP_CPUS`.
fn sipp(rate: u32, offered: u32, sip: &str, quota: Option<&Quota>) -> std::io::Result<std::process::Child> {
    let scenario = format!("{}/benches/sipp/flood_uac_did.xml", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = match std::env::var("OVERLOAD_SIPP_CPUS") {
        Ok(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpus, "sipp"]);
            c
        }
        Err(_) => Command::new("sipp"),
    };
    cmd.args(["-sf", &scenario, "-i", "127.0.0.1", "-p", &common::peer_port().to_string()])
        .args(["-s", DID, "-d", &HOLD.as_millis().to_string(), "-r", &rate.to_string()])
        .args(["-m", &offered.to_string(), "-l", &(rate * 4).to_string(), "-timeout", "120s", "-nostdin", "-max_socket", "4096"])
        // Answers that arrive while SIPp is busy wait in its socket, not dropped.
        .args(["-buff_size", "4194304", sip])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SIPp ends with this thread (the main one), also when the bench is killed.
    // SAFETY: prctl is async-signal-safe and touches nothing of this process's state.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    if let Some(q) = quota {
        Quota::enter_process(q.load_dir(), child.id());
    }
    Ok(child)
}

fn flood(rt: &Runtime, media_rt: Option<&Runtime>, phones_rt: &Runtime, quota: Option<&Quota>, rate: u32, secs: u32, long_calls: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::endpoint_config(dir.path(), DID);
    if let Some(d) = std::env::var("OVERLOAD_MAX_INVITE_DELAY").ok().and_then(|v| humantime::parse_duration(&v).ok()) {
        cfg.sip.overload.max_invite_delay = d;
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let ended = Arc::new(AtomicU64::new(0));
    let far_legs = FarLegs::default();
    let (ep, taker) = rt.block_on(async {
        let mut ep = Endpoint::start(&cfg, stop_rx).await.unwrap();
        let mut incoming = ep.incoming.take().unwrap();
        let media = MediaConfig { bind: LO, advertised: LO, media_timeout: Duration::from_secs(120), amd: AmdConfig::default() };
        let mut engine = MediaEngine::with_config(media, 40000..=49999).expect("media engine");
        if let Some(m) = media_rt {
            engine = engine.on_runtime(m.handle().clone());
        }
        let (e2, f2) = (ended.clone(), far_legs.clone());
        let taker = tokio::spawn(async move {
            while let Some(call) = incoming.recv().await {
                tokio::spawn(take(call, engine.clone(), f2.clone(), e2.clone()));
            }
        });
        (ep, taker)
    });
    let throttled0 = quota.map(Quota::throttled).unwrap_or_default();
    let calls: Vec<LongCall> = (0..long_calls).map(|n| LongCall::set_up(ep.local_addr, DID, n).expect("long call")).collect();
    let phones = (!calls.is_empty()).then(|| Phones::start(phones_rt, &calls, &far_legs).expect("phones"));

    // A thread outside the quota samples memory and when the last final answer was sent.
    let done = Arc::new(AtomicBool::new(false));
    let stats = ep.stats.clone();
    let answers = move || stats.get(Role::Server, "INVITE", "2xx") + stats.get(Role::Server, "INVITE", "5xx");
    let before = answers();
    let offered = rate * secs;
    let t0 = Instant::now();
    let d2 = done.clone();
    let sampler = std::thread::spawn(move || {
        let (mut peak, mut last) = (0f64, (before, t0));
        while !d2.load(Ordering::Relaxed) {
            peak = peak.max(rss_mib());
            let n = answers();
            if n != last.0 {
                last = (n, Instant::now());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (peak, last.1)
    });
    let flood_from = phones.as_ref().map(|p| p.second() + 1).unwrap_or(0);
    let mut child = sipp(rate, offered, &ep.local_addr.to_string(), quota).expect("sipp");
    static SHOWN: AtomicBool = AtomicBool::new(false);
    if !SHOWN.swap(true, Ordering::Relaxed) {
        println!("SIPp's cpu cgroup: {}", Quota::cgroup_of(child.id()));
    }
    let status = child.wait();
    let flood_to = phones.as_ref().map(|p| p.second()).unwrap_or(0);
    done.store(true, Ordering::Relaxed);
    let (peak_rss, last_answer) = sampler.join().unwrap();
    let window = last_answer.duration_since(t0).max(Duration::from_secs(secs.into()) / 2);
    let audio = phones.map(|p| p.finish(phones_rt, flood_from, flood_to));
    for (n, c) in calls.iter().enumerate() {
        c.bye(n);
    }
    let s = &ep.stats;
    let answered = s.get(Role::Server, "INVITE", "2xx") - long_calls as u64;
    let refused = s.get(Role::Server, "INVITE", "5xx");
    // Any other answer, or none.
    let other = u64::from(offered).saturating_sub(answered + refused);
    let throttled = quota.map(Quota::throttled).unwrap_or_default();
    let run = Run {
        rate,
        offered,
        answered,
        refused,
        other,
        // The long calls end after this is read (their BYE is sent below).
        ended: ended.load(Ordering::Relaxed),
        window,
        peak_rss,
        sipp_exit: status.ok().and_then(|s| s.code()),
        throttled: (throttled.0 - throttled0.0, throttled.1 - throttled0.1),
        audio,
    };
    let _ = stop.send(true);
    rt.block_on(async {
        taker.abort();
        let _ = tokio::time::timeout(Duration::from_secs(10), ep.join()).await;
    });
    run
}

/// A runtime of `workers` threads named `name`, each thread (workers and blocking ones)
/// entering the cgroup `dir` as it starts.
fn runtime_in(workers: usize, name: &str, dir: Option<std::path::PathBuf>) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .on_thread_start(move || {
            if let Some(d) = &dir {
                Quota::enter_thread(d);
            }
        })
        .enable_all()
        .build()
        .unwrap()
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
    // At 20 % SIPp could not offer 4× of what the endpoint sustained on a 2-core machine.
    let pct = env_u32("OVERLOAD_CPU_PCT", 10);
    let quota = match pct {
        0 => None,
        pct => match Quota::create(pct) {
            Ok(q) => Some(q),
            Err(e) => {
                println!("cannot set a CPU quota ({e}); set OVERLOAD_CPU_PCT=0 to run without one");
                return;
            }
        },
    };
    // The endpoint's runtime: every worker and blocking thread enters the quota as it starts.
    let rt = runtime_in(2, "tokio-runtime-worker", quota.as_ref().map(|q| q.dir().to_path_buf()));
    // Media's own runtime, as `redial serve` runs it, in the same quota
    // (`OVERLOAD_MEDIA_RUNTIME=shared` relays on the endpoint's runtime instead).
    let media_rt = match std::env::var("OVERLOAD_MEDIA_RUNTIME").as_deref() {
        Ok("shared") => None,
        _ => Some(runtime_in(2, "redial-media", quota.as_ref().map(|q| q.dir().to_path_buf()))),
    };
    // The phones' runtime, in the load generator's cgroup.
    let phones_rt = runtime_in(1, "phone-w", quota.as_ref().map(|q| q.load_dir().to_path_buf()));
    let secs = env_u32("OVERLOAD_SECS", 20);
    let runs = env_u32("OVERLOAD_RUNS", 1);
    let long_calls = env_u32("OVERLOAD_LONG_CALLS", 4) as usize;
    match &quota {
        Some(q) => println!(
            "endpoint threads in {} at {} % of one core; SIPp and phones in {}; max_invite_delay {:?}; media on {}",
            q.dir().display(),
            q.pct,
            q.load_dir().display(),
            std::env::var("OVERLOAD_MAX_INVITE_DELAY").unwrap_or_else(|_| "default".into()),
            if media_rt.is_some() { "its own runtime" } else { "the endpoint's runtime" }
        ),
        None => println!("no CPU quota: SIPp, phones and endpoint share the machine"),
    }
    let base = match std::env::var("OVERLOAD_RATE").ok().and_then(|v| v.parse().ok()) {
        Some(r) => r,
        None => {
            let mut rate = env_u32("OVERLOAD_FROM", 50);
            let mut last_clean = None;
            loop {
                let run = flood(&rt, media_rt.as_ref(), &phones_rt, quota.as_ref(), rate, PROBE_SECS, 0);
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
    for run in 1..=runs {
        for k in [1, 2, 4] {
            flood(&rt, media_rt.as_ref(), &phones_rt, quota.as_ref(), base * k, secs, long_calls).print(&format!("run {run}, {k}×"));
        }
    }
    // Threads leave the quota before it is removed (its drop moves any left).
    drop(rt);
    drop(media_rt);
    drop(phones_rt);
    drop(quota);
}
