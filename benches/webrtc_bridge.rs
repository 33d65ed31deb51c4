//! Browser-agent calls against plain RTP calls, measured in the same run:
//! relay CPU per call-minute of a WebRTC↔RTP bridge (DTLS-SRTP, ICE consent, RTCP
//! by str0m on the browser leg; G.711 passed through) against an RTP↔RTP bridge, and
//! the set-up time of the browser leg from its answer (the agent's 200 OK) to ICE and
//! DTLS done and to the first audio frame arriving from redial.
//!
//! `cargo bench --bench webrtc_bridge` — for N pairs (`REDIAL_BENCH_WEBRTC_N`,
//! comma-separated, default 50,100) and each kind (RTP↔RTP, then WebRTC↔RTP), every
//! leg's far end sends 20 ms PCMU at 50 packets/s for `REDIAL_BENCH_WEBRTC_SECS`
//! (default 20) after the legs connected and a 2 s warm-up. The far ends are str0m
//! peers playing the browser (full ICE, controlling, Chrome's codec order) and plain
//! UDP phones, all on their own runtime (threads `peer-w`); the legs on a 2-worker
//! runtime (`relay-w`) whose CPU is read per thread from /proc/self/task/*/schedstat.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial::amd::AmdConfig;
use redial::media::call::{MediaConfig, MediaEngine, MediaEvent, MediaLeg};
use redial::media::Codec;
use str0m::change::SdpOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::runtime::{Builder, Runtime};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Total CPU time (ns) of this process's threads whose name starts with `prefix`.
fn cpu_ns(prefix: &str) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            total += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
    /// Of those, by the browser peers.
    browser_sent: AtomicU64,
    browser_received: AtomicU64,
}

/// The phase a packet was sent in, in its first payload byte: only packets sent and
/// received in MEASURE count (G.711 payloads pass the bridge unchanged).
const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DRAIN: u8 = 2;

/// Where every far end reports.
struct Shared {
    stop: AtomicBool,
    phase: AtomicU8,
    counts: Counts,
    /// Browser legs: answer → connected, answer → first audio (µs), per call.
    setup: std::sync::Mutex<Vec<(u64, u64)>>,
}

fn answer_sdp(port: u16) -> String {
    format!("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
}

/// A plain RTP phone: 20 ms PCMU to its leg, counting what comes back.
async fn rtp_phone(sock: UdpSocket, leg: SocketAddr, sh: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut pkt = [0xFFu8; 12 + 160];
    let mut buf = [0u8; 2048];
    let ssrc: u32 = rand::random();
    let mut k: u32 = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => {
                pkt[0] = 0x80;
                pkt[1] = 0;
                pkt[2..4].copy_from_slice(&(k as u16).to_be_bytes());
                pkt[4..8].copy_from_slice(&k.wrapping_mul(160).to_be_bytes());
                pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
                let phase = sh.phase.load(Ordering::Relaxed);
                pkt[12] = phase;
                if sock.send_to(&pkt, leg).await.is_ok() && phase == MEASURE {
                    sh.counts.sent.fetch_add(1, Ordering::Relaxed);
                }
                k += 1;
            }
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, _)) = r {
                    if n == 12 + 160 && buf[1] & 0x7f == 0 && buf[12] == MEASURE {
                        sh.counts.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// A str0m peer playing the browser against the leg's offer; returns it with its answer.
fn browser(offer: &str, local: SocketAddr, now: Instant) -> (Rtc, String) {
    let mut cfg = Rtc::builder().clear_codecs().enable_opus(true, false).enable_pcmu(true, false).enable_pcma(true, false);
    cfg.codec_config().add_config(126.into(), None, RtcCodec::Tele, Frequency::EIGHT_KHZ, None, Default::default());
    let mut rtc = cfg.build(now);
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    let answer = rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).expect("offer")).expect("answer");
    (rtc, answer.to_sdp_string())
}

/// Drives one browser peer: its datagrams, timers, and 20 ms PCMU once connected.
async fn browser_peer(mut rtc: Rtc, sock: UdpSocket, answered: Instant, sh: Arc<Shared>) {
    let local = sock.local_addr().expect("addr");
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut mid, mut connected_at, mut first_audio): (Option<Mid>, Option<Instant>, Option<Instant>) = (None, None, None);
    let mut rtp_time: u64 = 0;
    loop {
        // Drain str0m to its next timeout (its run contract).
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket2::SockRef::from(&sock).send_to(&t.contents, &t.destination.into());
                }
                Ok(Output::Event(Event::Connected)) => connected_at = Some(Instant::now()),
                Ok(Output::Event(Event::MediaAdded(m))) => mid = Some(m.mid),
                Ok(Output::Event(Event::MediaData(d))) => {
                    if first_audio.is_none() {
                        let now = Instant::now();
                        first_audio = Some(now);
                        let c = connected_at.unwrap_or(now);
                        sh.setup.lock().expect("setup").push(((c - answered).as_micros() as u64, (now - answered).as_micros() as u64));
                    }
                    if d.data.first() == Some(&MEASURE) {
                        sh.counts.received.fetch_add(1, Ordering::Relaxed);
                        sh.counts.browser_received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => panic!("browser peer: {e}"),
            }
        };
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        let input = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => Some((n, from)),
                Err(_) => None,
            },
            _ = tokio::time::sleep_until(timeout.into()) => None,
            _ = tick.tick() => {
                if let (Some(m), Some(_)) = (mid, connected_at) {
                    let now = Instant::now();
                    if let Some(w) = rtc.writer(m) {
                        let pt = w.payload_params().find(|p| p.spec().codec == RtcCodec::PCMU).map(|p| p.pt()).expect("PCMU");
                        let phase = sh.phase.load(Ordering::Relaxed);
                        let mut frame = vec![0xFFu8; 160];
                        frame[0] = phase;
                        if w.write(pt, now, MediaTime::new(rtp_time, Frequency::EIGHT_KHZ), frame).is_ok() && phase == MEASURE {
                            sh.counts.sent.fetch_add(1, Ordering::Relaxed);
                            sh.counts.browser_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        rtp_time += 160;
                    }
                }
                continue;
            }
        };
        let now = Instant::now();
        let r = match input {
            Some((n, from)) => match buf[..n].try_into() {
                Ok(contents) => rtc.handle_input(Input::Receive(now, Receive { proto: Protocol::Udp, source: from, destination: local, contents })),
                Err(_) => Ok(()),
            },
            None => rtc.handle_input(Input::Timeout(now)),
        };
        r.expect("browser peer input");
    }
}

fn pct(v: &[u64], p: f64) -> f64 {
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0) as f64 / 1000.0
}

/// One run: `n` bridged pairs, leg A a browser (WebRTC) leg when `webrtc`, else RTP.
fn run(relay: &Runtime, peers: &Runtime, engine: &MediaEngine, n: usize, secs: u64, webrtc: bool) {
    let sh = Arc::new(Shared { stop: AtomicBool::new(false), phase: AtomicU8::new(WARMUP), counts: Counts::default(), setup: Default::default() });
    let mut legs: Vec<MediaLeg> = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let (mut a, mut b) = relay.block_on(async { (engine.open().await.expect("open"), engine.open().await.expect("open")) });
        let _g = peers.enter();
        if webrtc {
            let offer = a.offer_webrtc().expect("offer");
            let std = std::net::UdpSocket::bind((LO, 0)).expect("socket");
            std.set_nonblocking(true).expect("non-blocking");
            let now = Instant::now();
            let (rtc, answer) = browser(&offer, std.local_addr().expect("addr"), now);
            a.accept_answer(&answer).expect("answer");
            peers.spawn(browser_peer(rtc, UdpSocket::from_std(std).expect("tokio"), now, sh.clone()));
        } else {
            let std = std::net::UdpSocket::bind((LO, 0)).expect("socket");
            std.set_nonblocking(true).expect("non-blocking");
            a.offer(&[Codec::Pcmu]);
            a.accept_answer(&answer_sdp(std.local_addr().expect("addr").port())).expect("answer");
            peers.spawn(rtp_phone(UdpSocket::from_std(std).expect("tokio"), SocketAddr::new(LO, a.local_port()), sh.clone()));
        }
        let std = std::net::UdpSocket::bind((LO, 0)).expect("socket");
        std.set_nonblocking(true).expect("non-blocking");
        b.offer(&[Codec::Pcmu]);
        b.accept_answer(&answer_sdp(std.local_addr().expect("addr").port())).expect("answer");
        peers.spawn(rtp_phone(UdpSocket::from_std(std).expect("tokio"), SocketAddr::new(LO, b.local_port()), sh.clone()));
        relay.block_on(async { a.bridge(&mut b) }).expect("bridge");
        legs.push(a);
        legs.push(b);
    }
    // Every browser leg connected (bounded: a leg that never connects is reported).
    let deadline = Instant::now() + Duration::from_secs(30);
    while webrtc && sh.setup.lock().expect("setup").len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let connected = if webrtc { sh.setup.lock().expect("setup").len() } else { n };
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, pcpu0, t0) = (cpu_ns("relay-w"), cpu_ns("peer-w"), Instant::now());
    sh.phase.store(MEASURE, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(secs));
    sh.phase.store(DRAIN, Ordering::Relaxed);
    let (cpu1, pcpu1, window) = (cpu_ns("relay-w"), cpu_ns("peer-w"), t0.elapsed());
    // Packets sent in MEASURE and still in flight arrive within this.
    std::thread::sleep(Duration::from_millis(500));
    sh.stop.store(true, Ordering::Relaxed);
    // Legs whose media failed (a browser leg: DTLS, or ICE consent not renewed in time
    // when the peers or the relay are starved of CPU), with their first reason.
    let mut failed = 0usize;
    let mut why = String::new();
    for l in legs.iter_mut() {
        while let Ok(ev) = l.events.try_recv() {
            if let MediaEvent::Failed { reason, .. } = ev {
                failed += 1;
                if why.is_empty() {
                    why = reason;
                }
            }
        }
    }
    drop(legs);
    let (sent, got) = (sh.counts.sent.load(Ordering::Relaxed), sh.counts.received.load(Ordering::Relaxed));
    let loss = if sent == 0 { 100.0 } else { 100.0 * sent.saturating_sub(got) as f64 / sent as f64 };
    let cpu = (cpu1 - cpu0) as f64 / 1e9;
    let call_minutes = n as f64 * window.as_secs_f64() / 60.0;
    let kind = if webrtc { "WebRTC<->RTP" } else { "RTP<->RTP   " };
    let mut setup = String::new();
    if webrtc {
        let v = sh.setup.lock().expect("setup").clone();
        let (mut c, mut m): (Vec<u64>, Vec<u64>) = v.into_iter().unzip();
        c.sort_unstable();
        m.sort_unstable();
        setup = format!(
            "  set-up from the answer: ICE+DTLS p50 {:.1} ms p99 {:.1} ms, first audio p50 {:.1} ms p99 {:.1} ms ({connected}/{n} connected)",
            pct(&c, 0.5),
            pct(&c, 0.99),
            pct(&m, 0.5),
            pct(&m, 0.99)
        );
    }
    println!(
        "{kind} N={n:>4}  sent {sent:>7} received {got:>7} (browsers sent {} received {}) loss {loss:.3} %  legs failed {failed}{}  relay CPU {cpu:.2} s ({:.0} % of a core) = {:.4} CPU s per call-minute  [peers CPU {:.2} s; load {}]{setup}",
        sh.counts.browser_sent.load(Ordering::Relaxed),
        sh.counts.browser_received.load(Ordering::Relaxed),
        if why.is_empty() { String::new() } else { format!(" ({why})") },
        100.0 * cpu / window.as_secs_f64(),
        cpu / call_minutes,
        (pcpu1 - pcpu0) as f64 / 1e9,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?"),
    );
}

fn main() {
    let secs: u64 = std::env::var("REDIAL_BENCH_WEBRTC_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let ns: Vec<usize> = std::env::var("REDIAL_BENCH_WEBRTC_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![50, 100]);
    let relay = Builder::new_multi_thread().worker_threads(2).thread_name("relay-w").enable_all().build().expect("relay runtime");
    let peers = Builder::new_multi_thread().worker_threads(2).thread_name("peer-w").enable_all().build().expect("peer runtime");
    let cfg = MediaConfig { bind: LO, advertised: LO, media_timeout: Duration::from_secs(60), amd: AmdConfig::default() };
    let engine = MediaEngine::with_config(cfg, 40000..=49999).expect("engine");
    println!("webrtc_bridge bench: {secs} s per run after the legs connected and a 2 s warm-up; PCMU 50 pps each way; relay runtime 2 workers, peers 2");
    for n in ns {
        for webrtc in [false, true] {
            run(&relay, &peers, &engine, n, secs, webrtc);
            let deadline = Instant::now() + Duration::from_secs(10);
            while engine.ports_in_use() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
