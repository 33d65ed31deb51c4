//! Bridged-call capacity of `media::call` (issue 6: ≥ 1,000 concurrent
//! bridged G.711 calls with < 0.1 % loss and p99 added relay delay ≤ 5 ms).
//!
//! `cargo bench --bench bridge` — for N = 250, 500, 1000 bridged pairs
//! (`REDIAL_BENCH_BRIDGE_N`, comma-separated), two phones per pair send PCMU
//! at 50 packets/s each towards their leg over loopback UDP, for
//! `REDIAL_BENCH_BRIDGE_SECS` (default 20) after a 2 s warm-up. Prints the
//! loss, the one-way delay phone → leg → relay → leg → phone (p50, p99, max:
//! an upper bound of the relay's added delay, as it includes both phones'
//! kernel and scheduling time), and the CPU the relay runtime used per
//! call-minute.
//!
//! The legs run on their own 2-worker tokio runtime (threads `relay-w`); the
//! phones on another (`phone-w`), so the relay's CPU time is read per thread
//! from /proc/self/task/*/schedstat.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial::amd::AmdConfig;
use redial::media::call::{MediaConfig, MediaEngine, MediaLeg};
use redial::media::rtp::RtpPacket;
use redial::media::Codec;
use tokio::net::UdpSocket;
use tokio::runtime::{Builder, Runtime};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Sender groups, started 1 ms apart so the packets of one 20 ms period are spread.
const GROUPS: usize = 20;

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DRAIN: u8 = 2;
const DONE: u8 = 3;

/// Total CPU time (ns) of this process's threads whose name starts with `prefix`.
fn cpu_ns(prefix: &str) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        total += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

fn answer(port: u16) -> String {
    format!("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
}

struct Phone {
    sock: Arc<UdpSocket>,
    /// The leg this phone talks to.
    leg: SocketAddr,
}

struct Shared {
    phase: AtomicU8,
    sent: AtomicU64,
    t0: Instant,
}

impl Shared {
    fn ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

async fn sender(phones: Vec<(Arc<UdpSocket>, SocketAddr, u32)>, offset: Duration, sh: Arc<Shared>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pkt = RtpPacket { payload_type: 0, marker: true, sequence: 0, timestamp: 0, ssrc: 0, payload: Default::default() };
    let mut payload = vec![0xFFu8; 160];
    let mut k: u32 = 0;
    loop {
        tick.tick().await;
        let phase = sh.phase.load(Ordering::Relaxed);
        if phase >= DRAIN {
            return;
        }
        for (sock, to, ssrc) in &phones {
            payload[0..8].copy_from_slice(&sh.ns().to_be_bytes());
            payload[8] = phase;
            pkt.ssrc = *ssrc;
            pkt.sequence = k as u16;
            pkt.timestamp = k.wrapping_mul(160);
            pkt.marker = k == 0;
            pkt.payload = payload.clone().into();
            let bytes = pkt.to_bytes().expect("valid packet");
            if sock.send_to(&bytes, to).await.is_ok() && phase == MEASURE {
                sh.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        k += 1;
    }
}

/// Receives until DONE; returns the delays (µs) of measured packets.
async fn receiver(sock: Arc<UdpSocket>, sh: Arc<Shared>) -> Vec<u32> {
    let mut buf = [0u8; 2048];
    let mut delays = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                let now = sh.ns();
                // Our legs send plain 12-byte headers; skip RTCP and events.
                if n == 12 + 160 && buf[1] & 0x7f == 0 && buf[12 + 8] == MEASURE {
                    let sent = u64::from_be_bytes(buf[12..20].try_into().expect("8 bytes"));
                    delays.push((now.saturating_sub(sent) / 1000) as u32);
                }
            }
            _ if sh.phase.load(Ordering::Relaxed) == DONE => return delays,
            _ => {}
        }
    }
}

fn run(relay: &Runtime, phones_rt: &Runtime, engine: &MediaEngine, n: usize, secs: u64) {
    // Set up N bridged pairs, each leg answered by a phone.
    let mut legs: Vec<MediaLeg> = Vec::with_capacity(2 * n);
    let mut phones: Vec<Phone> = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let (a, b, pa, pb) = relay.block_on(async {
            let mut pair = Vec::new();
            let mut ph = Vec::new();
            for _ in 0..2 {
                let mut leg = engine.open().await.expect("open leg");
                let std = std::net::UdpSocket::bind((LO, 0)).expect("phone socket");
                std.set_nonblocking(true).expect("non-blocking");
                let port = std.local_addr().expect("addr").port();
                leg.offer(&[Codec::Pcmu]);
                leg.accept_answer(&answer(port)).expect("answer");
                ph.push((std, SocketAddr::new(LO, leg.local_port())));
                pair.push(leg);
            }
            let mut b = pair.pop().expect("b");
            let mut a = pair.pop().expect("a");
            a.bridge(&mut b).expect("bridge");
            let pb = ph.pop().expect("pb");
            let pa = ph.pop().expect("pa");
            (a, b, pa, pb)
        });
        let _g = phones_rt.enter();
        for (std, leg) in [pa, pb] {
            phones.push(Phone { sock: Arc::new(UdpSocket::from_std(std).expect("tokio socket")), leg });
        }
        legs.push(a);
        legs.push(b);
    }

    let sh = Arc::new(Shared { phase: AtomicU8::new(WARMUP), sent: AtomicU64::new(0), t0: Instant::now() });
    let mut groups: Vec<Vec<(Arc<UdpSocket>, SocketAddr, u32)>> = vec![Vec::new(); GROUPS];
    for (i, p) in phones.iter().enumerate() {
        groups[i % GROUPS].push((p.sock.clone(), p.leg, 0x5000_0000 + i as u32));
    }
    let receivers: Vec<_> = phones.iter().map(|p| phones_rt.spawn(receiver(p.sock.clone(), sh.clone()))).collect();
    let senders: Vec<_> = groups.into_iter().enumerate().map(|(g, ph)| phones_rt.spawn(sender(ph, Duration::from_millis(g as u64), sh.clone()))).collect();

    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, pcpu0, t0) = (cpu_ns("relay-w"), cpu_ns("phone-w"), Instant::now());
    sh.phase.store(MEASURE, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(secs));
    sh.phase.store(DRAIN, Ordering::Relaxed);
    let (cpu1, pcpu1, window) = (cpu_ns("relay-w"), cpu_ns("phone-w"), t0.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    sh.phase.store(DONE, Ordering::Relaxed);
    phones_rt.block_on(async {
        for s in senders {
            let _ = s.await;
        }
    });
    let mut delays: Vec<u32> = phones_rt.block_on(async {
        let mut all = Vec::new();
        for r in receivers {
            all.extend(r.await.expect("receiver"));
        }
        all
    });
    let relayed: u64 = legs.iter().map(|l| l.stats().relayed).sum();
    drop(legs);

    let sent = sh.sent.load(Ordering::Relaxed);
    let got = delays.len() as u64;
    delays.sort_unstable();
    let pct = |p: f64| delays.get(((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1))).copied().unwrap_or(0) as f64 / 1000.0;
    let loss = if sent == 0 { 100.0 } else { 100.0 * sent.saturating_sub(got) as f64 / sent as f64 };
    let call_minutes = n as f64 * window.as_secs_f64() / 60.0;
    let cpu = (cpu1 - cpu0) as f64 / 1e9;
    let pcpu = (pcpu1 - pcpu0) as f64 / 1e9;
    println!(
        "N={n:>5} pairs  sent {sent:>8}  received {got:>8}  loss {loss:.4} %  delay p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  relay CPU {cpu:.2} s ({:.0} % of a core) = {:.3} CPU s per call-minute  [phones CPU {pcpu:.2} s; relayed total {relayed}]",
        pct(0.5),
        pct(0.99),
        delays.last().copied().unwrap_or(0) as f64 / 1000.0,
        100.0 * cpu / window.as_secs_f64(),
        cpu / call_minutes,
    );
}

fn main() {
    let secs: u64 = std::env::var("REDIAL_BENCH_BRIDGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let ns: Vec<usize> = std::env::var("REDIAL_BENCH_BRIDGE_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![250, 500, 1000]);
    let relay = Builder::new_multi_thread().worker_threads(2).thread_name("relay-w").enable_all().build().expect("relay runtime");
    let phones = Builder::new_multi_thread().worker_threads(2).thread_name("phone-w").enable_all().build().expect("phone runtime");
    let cfg = MediaConfig { bind: LO, advertised: LO, media_timeout: Duration::from_secs(60), amd: AmdConfig::default() };
    // 5,000 pairs of ports; pairs other programs hold are skipped.
    let engine = MediaEngine::with_config(cfg, 40000..=49999).expect("engine");
    println!("bridge bench: {secs} s per run after a 2 s warm-up, PCMU both legs, 50 pps each direction");
    for n in ns {
        run(&relay, &phones, &engine, n, secs);
        // Let the closed legs' tasks end and release their ports.
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.ports_in_use() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
