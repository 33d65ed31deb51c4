//! Bridged-call capacity of `media::call` (target: ≥ 1,000 concurrent
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
//!
//! `REDIAL_BENCH_BRIDGE_MODES=rtp,srtp` runs each N once per mode, one after the
//! other in the same process: `srtp` makes one leg of every pair SDES SRTP
//! (AES_CM_128_HMAC_SHA1_80, RFC 4568; its phone protects what it sends and
//! unprotects what it receives), so the relay bridges SRTP↔RTP.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial::amd::AmdConfig;
use redial::media::call::{MediaConfig, MediaEngine, MediaLeg};
use redial::media::sdp::SrtpPolicy;
use redial::media::srtp::{KeyMaterial, SrtpContext, Suite};
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

/// The phone's answer; with `key`, SDES SRTP (`RTP/SAVP` and its `a=crypto`).
fn answer(port: u16, key: Option<&KeyMaterial>) -> String {
    let (proto, crypto) = match key {
        Some(k) => ("RTP/SAVP", format!("a=crypto:1 {} {}\r\n", Suite::AesCm128HmacSha1_80.name(), k.inline())),
        None => ("RTP/AVP", String::new()),
    };
    format!("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n{crypto}a=sendrecv\r\n")
}

/// The key of the first `a=crypto` line of an SDP.
fn offered_key(sdp: &str) -> KeyMaterial {
    let line = sdp.lines().find(|l| l.starts_with("a=crypto:")).expect("an a=crypto line in the SRTP offer");
    let params = line.split_whitespace().nth(2).expect("key params");
    KeyMaterial::from_key_params(Suite::AesCm128HmacSha1_80, params).expect("the offer's key")
}

/// A phone's SRTP contexts: what it sends, what it receives.
struct PhoneSrtp {
    tx: SrtpContext,
    rx: SrtpContext,
}

struct Phone {
    sock: Arc<UdpSocket>,
    /// The leg this phone talks to.
    leg: SocketAddr,
    srtp: Option<(KeyMaterial, KeyMaterial)>,
}

struct Shared {
    phase: AtomicU8,
    sent: AtomicU64,
}

/// Wall time in ns (the clock of SO_TIMESTAMPNS).
fn wall_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos() as u64
}

fn enable_rx_timestamps(sock: &UdpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and an int option of the right size.
    let r = unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one as *const libc::c_int as *const libc::c_void, std::mem::size_of::<libc::c_int>() as libc::socklen_t) };
    assert_eq!(r, 0, "SO_TIMESTAMPNS: {}", io::Error::last_os_error());
}

/// One non-blocking `recvmsg`: the length and the kernel's arrival time (ns).
fn recv_stamped(fd: libc::c_int, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: fd is a socket; msg points at live buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut at = None;
    // SAFETY: walking the control messages the kernel just wrote, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                at = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, at))
}

async fn sender(mut phones: Vec<(Arc<UdpSocket>, SocketAddr, u32, Option<SrtpContext>)>, offset: Duration, sh: Arc<Shared>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let dests: Vec<socket2::SockAddr> = phones.iter().map(|p| p.1.into()).collect();
    let mut pkt = [0xFFu8; 12 + 160];
    let mut k: u32 = 0;
    loop {
        tick.tick().await;
        let phase = sh.phase.load(Ordering::Relaxed);
        if phase >= DRAIN {
            return;
        }
        let mut sent = 0;
        for ((sock, _, ssrc, srtp), to) in phones.iter_mut().zip(&dests) {
            // RTP header (RFC 3550 §5.1) by hand: the harness must cost little next to the relay.
            pkt[0] = 0x80;
            pkt[1] = if k == 0 { 0x80 } else { 0 };
            pkt[2..4].copy_from_slice(&(k as u16).to_be_bytes());
            pkt[4..8].copy_from_slice(&k.wrapping_mul(160).to_be_bytes());
            pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
            pkt[12..20].copy_from_slice(&wall_ns().to_be_bytes());
            pkt[20] = phase;
            let protected = srtp.as_mut().map(|c| c.protect(&pkt).expect("protect"));
            if socket2::SockRef::from(&**sock).send_to(protected.as_deref().unwrap_or(&pkt), to).is_ok() && phase == MEASURE {
                sent += 1;
            }
        }
        sh.sent.fetch_add(sent, Ordering::Relaxed);
        k += 1;
    }
}

/// Every 50 ms, reads what arrived on `socks` until DONE. The kernel stamped
/// each arrival, so reading late does not change the figure, and batching
/// keeps the harness's CPU low. Returns the added delays and how late the
/// packets were read (µs) of measured packets.
async fn receiver(mut socks: Vec<(Arc<UdpSocket>, Option<SrtpContext>)>, sh: Arc<Shared>) -> (Vec<u32>, Vec<u32>) {
    for (s, _) in &socks {
        enable_rx_timestamps(s);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut buf = [0u8; 2048];
    let (mut added, mut wake) = (Vec::new(), Vec::new());
    loop {
        tick.tick().await;
        let done = sh.phase.load(Ordering::Relaxed) == DONE;
        for (s, srtp) in socks.iter_mut() {
            while let Ok((n, at)) = recv_stamped(s.as_raw_fd(), &mut buf) {
                let (Some(arrived), now) = (at, wall_ns()) else { continue };
                // An SRTP leg's packets are authenticated and decrypted first; RTCP
                // (payload type 200-204 in byte 1) is not media.
                let plain;
                let (buf, n) = match srtp {
                    Some(c) if !(200..=204).contains(&buf[1]) => match c.unprotect(&buf[..n]) {
                        Ok(p) => {
                            plain = p;
                            (&plain[..], plain.len())
                        }
                        Err(_) => continue,
                    },
                    _ => (&buf[..], n),
                };
                // Our legs send plain 12-byte headers; skip RTCP and events.
                if n == 12 + 160 && buf[1] & 0x7f == 0 && buf[12 + 8] == MEASURE {
                    let sent = u64::from_be_bytes(buf[12..20].try_into().expect("8 bytes"));
                    added.push((arrived.saturating_sub(sent) / 1000) as u32);
                    wake.push((now.saturating_sub(arrived) / 1000) as u32);
                }
            }
        }
        if done {
            return (added, wake);
        }
    }
}

fn run(relay: &Runtime, phones_rt: &Runtime, engine: &MediaEngine, n: usize, secs: u64, srtp: bool) {
    // Set up N bridged pairs, each leg answered by a phone.
    let mut legs: Vec<MediaLeg> = Vec::with_capacity(2 * n);
    let mut phones: Vec<Phone> = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let (a, b, pa, pb) = relay.block_on(async {
            let mut pair = Vec::new();
            let mut ph = Vec::new();
            for k in 0..2 {
                let mut leg = engine.open().await.expect("open leg");
                let std = std::net::UdpSocket::bind((LO, 0)).expect("phone socket");
                std.set_nonblocking(true).expect("non-blocking");
                let port = std.local_addr().expect("addr").port();
                // In SRTP mode the pair's first leg is SRTP, its second plain RTP.
                let keys = if srtp && k == 0 {
                    leg.set_srtp(SrtpPolicy::Required);
                    let offer = leg.offer(&[Codec::Pcmu]);
                    Some((KeyMaterial::random(Suite::AesCm128HmacSha1_80), offered_key(&offer)))
                } else {
                    leg.offer(&[Codec::Pcmu]);
                    None
                };
                leg.accept_answer(&answer(port, keys.as_ref().map(|k| &k.0))).expect("answer");
                ph.push((std, SocketAddr::new(LO, leg.local_port()), keys));
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
        for (std, leg, srtp) in [pa, pb] {
            phones.push(Phone { sock: Arc::new(UdpSocket::from_std(std).expect("tokio socket")), leg, srtp });
        }
        legs.push(a);
        legs.push(b);
    }

    let sh = Arc::new(Shared { phase: AtomicU8::new(WARMUP), sent: AtomicU64::new(0) });
    let contexts = |p: &Phone| p.srtp.as_ref().map(|(mine, legs)| PhoneSrtp { tx: SrtpContext::new(mine), rx: SrtpContext::new(legs) });
    let mut groups: Vec<Vec<_>> = (0..GROUPS).map(|_| Vec::new()).collect();
    let mut rx_groups: Vec<Vec<_>> = (0..GROUPS).map(|_| Vec::new()).collect();
    for (i, p) in phones.iter().enumerate() {
        let (tx, rx) = contexts(p).map_or((None, None), |c| (Some(c.tx), Some(c.rx)));
        groups[i % GROUPS].push((p.sock.clone(), p.leg, 0x5000_0000 + i as u32, tx));
        rx_groups[i % GROUPS].push((p.sock.clone(), rx));
    }
    let receivers: Vec<_> = rx_groups.into_iter().map(|g| phones_rt.spawn(receiver(g, sh.clone()))).collect();
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
    let (mut delays, mut wake) = phones_rt.block_on(async {
        let (mut all, mut wake) = (Vec::new(), Vec::new());
        for r in receivers {
            let (a, w) = r.await.expect("receiver");
            all.extend(a);
            wake.extend(w);
        }
        (all, wake)
    });
    let relayed: u64 = legs.iter().map(|l| l.stats().relayed).sum();
    drop(legs);

    let sent = sh.sent.load(Ordering::Relaxed);
    let got = delays.len() as u64;
    delays.sort_unstable();
    wake.sort_unstable();
    let pct_of = |v: &Vec<u32>, p: f64| v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0) as f64 / 1000.0;
    let pct = |p: f64| pct_of(&delays, p);
    let loss = if sent == 0 { 100.0 } else { 100.0 * sent.saturating_sub(got) as f64 / sent as f64 };
    let call_minutes = n as f64 * window.as_secs_f64() / 60.0;
    let cpu = (cpu1 - cpu0) as f64 / 1e9;
    let pcpu = (pcpu1 - pcpu0) as f64 / 1e9;
    println!(
        "{:>4} N={n:>5} pairs  sent {sent:>8} ({:.1} pps/direction/call)  received {got:>8}  loss {loss:.4} %  added delay p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  relay CPU {cpu:.2} s ({:.0} % of a core) = {:.3} CPU s per call-minute  [read by the harness late by p50 {:.2} / p99 {:.2} ms; phones CPU {pcpu:.2} s; relayed total {relayed}; load {}]",
        if srtp { "SRTP" } else { "RTP" },
        sent as f64 / (2.0 * n as f64 * window.as_secs_f64()),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        delays.last().copied().unwrap_or(0) as f64 / 1000.0,
        100.0 * cpu / window.as_secs_f64(),
        cpu / call_minutes,
        pct_of(&wake, 0.5),
        pct_of(&wake, 0.99),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?"),
    );
}

fn main() {
    let secs: u64 = std::env::var("REDIAL_BENCH_BRIDGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let ns: Vec<usize> = std::env::var("REDIAL_BENCH_BRIDGE_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![250, 500, 1000]);
    let relay = Builder::new_multi_thread().worker_threads(2).thread_name("relay-w").enable_all().build().expect("relay runtime");
    // Phones' workers (`REDIAL_BENCH_PHONE_THREADS`, default 2): one cannot send for
    // 1,000 calls while sharing the box; more take CPU share from the relay.
    let phone_threads = std::env::var("REDIAL_BENCH_PHONE_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let phones = Builder::new_multi_thread().worker_threads(phone_threads).thread_name("phone-w").enable_all().build().expect("phone runtime");
    let cfg = MediaConfig { bind: LO, advertised: LO, media_timeout: Duration::from_secs(60), amd: AmdConfig::default() };
    // 5,000 pairs of ports; pairs other programs hold are skipped.
    let engine = MediaEngine::with_config(cfg, 40000..=49999).expect("engine");
    println!("bridge bench: {secs} s per run after a 2 s warm-up, PCMU both legs, 50 pps each direction; relay runtime 2 workers, phones {phone_threads}");
    let modes: Vec<bool> = std::env::var("REDIAL_BENCH_BRIDGE_MODES").unwrap_or_else(|_| "rtp".into()).split(',').map(|m| m.trim() == "srtp").collect();
    for (n, srtp) in ns.into_iter().flat_map(|n| modes.iter().map(move |&m| (n, m))) {
        run(&relay, &phones, &engine, n, secs, srtp);
        // Let the closed legs' tasks end and release their ports.
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.ports_in_use() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
