//! Calls in progress during the flood: a few calls set up before it (a raw UDP caller whose
//! From user is `long-<far port>`), each answered by the bench's taker with two media legs
//! bridged by the relay: the caller's leg, and a leg toward a "far" phone. Both phones send
//! PCMU at 50 packets/s to their leg; each counts what the relay delivered from the other
//! side, per second, and the longest gap between two packets. The phones run on their own
//! runtime, outside the endpoint's CPU quota.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds of per-second counts kept.
const SECONDS: usize = 600;
const PACKET_EVERY: Duration = Duration::from_millis(20);
/// 20 ms of PCMU.
const PAYLOAD: usize = 160;

pub fn phone_sdp(port: u16) -> String {
    format!("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
}

/// The far phones' leg ports, told by the taker: far phone port → its leg's port.
pub type FarLegs = Arc<Mutex<HashMap<u16, u16>>>;

/// One established call, from the caller's side.
pub struct LongCall {
    sip: UdpSocket,
    server: SocketAddr,
    call_id: String,
    from: String,
    to: String,
    near: UdpSocket,
    far: UdpSocket,
    /// The caller's leg at the endpoint (from the 200's SDP).
    near_leg: SocketAddr,
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl LongCall {
    /// INVITE to `did`, wait for the 200, ACK it. Blocking: run before the flood.
    pub fn set_up(server: SocketAddr, did: &str, n: usize) -> Result<LongCall, String> {
        let bind = || UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string());
        let (sip, near, far) = (bind()?, bind()?, bind()?);
        sip.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let local = sip.local_addr().map_err(|e| e.to_string())?;
        let (near_port, far_port) = (near.local_addr().unwrap().port(), far.local_addr().unwrap().port());
        let call_id = format!("long-{n}-{}", local.port());
        let from = format!("<sip:long-{far_port}@127.0.0.1>;tag=l{n}");
        let sdp = phone_sdp(near_port);
        let invite = format!(
            "INVITE sip:{did}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKlong{n}\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: <sip:{did}@{server}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:long@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sip.send_to(invite.as_bytes(), server).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65_536];
        let ok = loop {
            let (k, _) = sip.recv_from(&mut buf).map_err(|e| format!("long call {n}: no answer: {e}"))?;
            let text = String::from_utf8_lossy(&buf[..k]).into_owned();
            let code: u16 = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            if code >= 300 {
                return Err(format!("long call {n} refused: {}", text.lines().next().unwrap_or("")));
            }
            if code >= 200 {
                break text;
            }
        };
        let to = header(&ok, "To").ok_or("200 without To")?.to_string();
        let port: u16 = ok.lines().find_map(|l| l.strip_prefix("m=audio ")?.split_whitespace().next()?.parse().ok()).ok_or("200 without m=audio")?;
        let call = LongCall { sip, server, call_id, from, to, near, far, near_leg: SocketAddr::from(([127, 0, 0, 1], port)) };
        call.send_in_dialog("ACK", 1, n)?;
        Ok(call)
    }

    fn send_in_dialog(&self, method: &str, cseq: u32, n: usize) -> Result<(), String> {
        let local = self.sip.local_addr().map_err(|e| e.to_string())?;
        let msg = format!(
            "{method} sip:long@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKlong{method}{n}\r\nMax-Forwards: 70\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            self.from,
            self.to,
            self.call_id,
            server = self.server,
        );
        self.sip.send_to(msg.as_bytes(), self.server).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Hangs up (the endpoint's 200 is not awaited: the run is over).
    pub fn bye(&self, n: usize) {
        let _ = self.send_in_dialog("BYE", 2, n);
    }
}

/// What one direction of every call received, per second since the phones started.
struct Direction {
    sent: AtomicU64,
    received: AtomicU64,
    per_second: Vec<AtomicU64>,
    /// Longest gap between two packets received on one call (µs).
    longest_gap_us: AtomicU64,
}

impl Direction {
    fn new() -> Self {
        Self { sent: AtomicU64::new(0), received: AtomicU64::new(0), per_second: (0..SECONDS).map(|_| AtomicU64::new(0)).collect(), longest_gap_us: AtomicU64::new(0) }
    }
}

pub struct Phones {
    t0: Instant,
    stop: Arc<AtomicBool>,
    /// To the far side (sent by the callers), and back.
    out: Arc<Direction>,
    back: Arc<Direction>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    calls: usize,
}

/// Figures of one direction over a window of whole seconds.
pub struct Heard {
    pub sent: u64,
    pub received: u64,
    /// Fewest packets received in one second of the window, over every call, and what
    /// the phones send per second (calls × 50).
    pub worst_second: u64,
    pub per_second_sent: u64,
    pub longest_gap_ms: u64,
}

impl Phones {
    /// Starts both phones of every call on `rt`: sending every 20 ms, counting what arrives.
    pub fn start(rt: &tokio::runtime::Runtime, calls: &[LongCall], far_legs: &FarLegs) -> Result<Phones, String> {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let (out, back) = (Arc::new(Direction::new()), Arc::new(Direction::new()));
        let mut tasks = Vec::new();
        let mut senders = Vec::new();
        let _g = rt.enter();
        for (i, c) in calls.iter().enumerate() {
            let far_port = c.far.local_addr().unwrap().port();
            let far_leg = *far_legs.lock().unwrap().get(&far_port).ok_or(format!("no far leg for call {i}"))?;
            let far_leg = SocketAddr::from(([127, 0, 0, 1], far_leg));
            for (sock, to, heard, sends) in [(&c.near, c.near_leg, &back, &out), (&c.far, far_leg, &out, &back)] {
                let std = sock.try_clone().map_err(|e| e.to_string())?;
                std.set_nonblocking(true).map_err(|e| e.to_string())?;
                let sock = Arc::new(tokio::net::UdpSocket::from_std(std).map_err(|e| e.to_string())?);
                senders.push((sock.clone(), to, sends.clone(), 0x4000_0000 + senders.len() as u32));
                tasks.push(rt.spawn(receive(sock, heard.clone(), stop.clone(), t0)));
            }
        }
        tasks.push(rt.spawn(send(senders, stop.clone())));
        Ok(Phones { t0, stop, out, back, tasks, calls: calls.len() })
    }

    /// Seconds since the phones started.
    pub fn second(&self) -> usize {
        self.t0.elapsed().as_secs() as usize
    }

    /// Stops sending, lets the last packets arrive, and returns both directions' figures over
    /// the whole seconds `from..to` (the flood).
    pub fn finish(self, rt: &tokio::runtime::Runtime, from: usize, to: usize) -> (Heard, Heard) {
        self.stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            for t in self.tasks {
                let _ = t.await;
            }
        });
        let heard = |d: &Direction| Heard {
            sent: d.sent.load(Ordering::Relaxed),
            received: d.received.load(Ordering::Relaxed),
            worst_second: (from..to.min(SECONDS)).map(|s| d.per_second[s].load(Ordering::Relaxed)).min().unwrap_or(0),
            per_second_sent: self.calls as u64 * (Duration::from_secs(1).as_millis() / PACKET_EVERY.as_millis()) as u64,
            longest_gap_ms: d.longest_gap_us.load(Ordering::Relaxed) / 1000,
        };
        (heard(&self.out), heard(&self.back))
    }
}

async fn send(phones: Vec<(Arc<tokio::net::UdpSocket>, SocketAddr, Arc<Direction>, u32)>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(PACKET_EVERY);
    let mut packet = [0xffu8; 12 + PAYLOAD];
    for n in 0u32.. {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        for (sock, to, dir, ssrc) in &phones {
            // RTP version 2, PT 0 (PCMU), sequence, timestamp, SSRC (RFC 3550 §5.1).
            packet[0] = 0x80;
            packet[1] = 0;
            packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&(n.wrapping_mul(PAYLOAD as u32)).to_be_bytes());
            packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
            if sock.send_to(&packet, to).await.is_ok() {
                dir.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn receive(sock: Arc<tokio::net::UdpSocket>, dir: Arc<Direction>, stop: Arc<AtomicBool>, t0: Instant) {
    let mut buf = [0u8; 2048];
    let mut last: Option<Instant> = None;
    loop {
        // Packets still in flight when sending stops arrive within this.
        let grace = if stop.load(Ordering::Relaxed) { Duration::from_millis(300) } else { Duration::from_millis(100) };
        match tokio::time::timeout(grace, sock.recv_from(&mut buf)).await {
            Ok(Ok((k, _))) if k >= 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 0 => {
                let now = Instant::now();
                dir.received.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = dir.per_second.get(now.duration_since(t0).as_secs() as usize) {
                    s.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(prev) = last {
                    dir.longest_gap_us.fetch_max(now.duration_since(prev).as_micros() as u64, Ordering::Relaxed);
                }
                last = Some(now);
            }
            Ok(_) => {}
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(_) => {}
        }
    }
}
