//! A test "phone": the RTP side of a SIPp peer. SIPp does the signalling and
//! advertises this phone's port in its SDP (`-set rtp_port`); the scenario
//! writes redial's RTP port into a file (`<dir>/<name>.rtp`), which the phone
//! reads to know where to send. It sends 20 ms PCMU packets of a clip (then
//! silence, as a handset does) and counts the RTP it receives.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// From learning redial's port (at the INVITE) to the first packet.
const ANSWER_DELAY: Duration = Duration::from_millis(400);

/// µ-law silence.
const SILENCE: u8 = 0xFF;

/// Received RTP packets kept for [`Phone::heard`] (10 minutes of 20 ms packets).
const KEEP: usize = 30_000;

/// One RTP packet the phone received.
#[derive(Debug, Clone)]
pub struct Heard {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

pub struct Phone {
    pub port: u16,
    keys: std::sync::mpsc::Sender<char>,
    muted: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    heard: Arc<Mutex<Vec<Heard>>>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The µ-law samples of a µ-law WAV file (the AMD corpus format).
pub fn ulaw_wav(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[0..4], b"RIFF", "{}", path.display());
    let mut i = 12;
    while i + 8 <= b.len() {
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        if &b[i..i + 4] == b"fmt " {
            let format = u16::from_le_bytes(b[i + 8..i + 10].try_into().unwrap());
            assert_eq!(format, 7, "{}: not µ-law", path.display());
        }
        if &b[i..i + 4] == b"data" {
            return b[i + 8..(i + 8 + len).min(b.len())].to_vec();
        }
        i += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// The length of a 16-bit PCM WAV in ms (8 kHz mono, as the prompts are).
pub fn pcm_wav_len_ms(path: &Path) -> u64 {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    len.saturating_sub(44) / 2 / 8
}

impl Phone {
    /// Starts a phone that will read its target port from `target_file` and
    /// play `audio` (µ-law at 8 kHz) once, then silence.
    pub fn start(target_file: PathBuf, audio: Vec<u8>) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind phone");
        sock.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let (received, sent, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (r, s, st) = (received.clone(), sent.clone(), stop.clone());
        let (keys, keys_rx) = std::sync::mpsc::channel();
        let muted = Arc::new(AtomicBool::new(false));
        let m = muted.clone();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        let thread = std::thread::spawn(move || run(sock, target_file, audio, keys_rx, m, r, h, s, st));
        Phone { port, keys, muted, received, heard, sent, stop, thread: Some(thread) }
    }

    /// Stops sending RTP (a dead line), still counting what arrives.
    pub fn mute(&self) {
        self.muted.store(true, Ordering::Relaxed);
    }

    /// Presses a key: an RFC 4733 telephone-event (payload type 101) of
    /// 100 ms, in place of audio, with the end packet sent three times.
    pub fn press(&self, key: char) {
        let _ = self.keys.send(key);
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The RTP packets received so far (the first [`KEEP`]), in arrival order.
    pub fn heard(&self) -> Vec<Heard> {
        self.heard.lock().unwrap().clone()
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_target(file: &Path) -> Option<SocketAddr> {
    let s = std::fs::read_to_string(file).ok()?;
    let port: u16 = s.trim().parse().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

fn event_code(key: char) -> u8 {
    match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        _ => panic!("not a key: {key}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    sock: UdpSocket,
    target_file: PathBuf,
    audio: Vec<u8>,
    keys: std::sync::mpsc::Receiver<char>,
    muted: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    heard: Arc<Mutex<Vec<Heard>>>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    // (event, timestamp of its start, packets sent so far)
    let mut pressing: Option<(u8, u32, u32)> = None;
    let mut target: Option<SocketAddr> = None;
    let mut pos = 0usize;
    let (mut seq, mut ts, ssrc) = (0u16, 0u32, 0x5eed_0001u32 ^ sock.local_addr().unwrap().port() as u32);
    let mut next_send = Instant::now();
    let mut next_look = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_look {
            // A new call (a retry) may bring a new port.
            let t = read_target(&target_file);
            if t.is_some() && t != target {
                target = t;
                pos = 0;
                // The port is known at the INVITE; a phone speaks once
                // answered (the scenarios answer 200 ms after ringing).
                next_send = Instant::now() + ANSWER_DELAY;
            }
            next_look = Instant::now() + Duration::from_millis(50);
        }
        if let Some(to) = target {
            while Instant::now() >= next_send {
                if pressing.is_none() {
                    if let Ok(k) = keys.try_recv() {
                        pressing = Some((event_code(k), ts, 0));
                    }
                }
                let mut pkt = Vec::with_capacity(172);
                match &mut pressing {
                    // 5 packets of 20 ms (100 ms), then the end packet three times.
                    Some((event, start, n)) => {
                        let first = *n == 0;
                        pkt.extend_from_slice(&[0x80, if first { 0x80 | 101 } else { 101 }]);
                        pkt.extend_from_slice(&seq.to_be_bytes());
                        pkt.extend_from_slice(&start.to_be_bytes());
                        pkt.extend_from_slice(&ssrc.to_be_bytes());
                        let end = *n >= 5;
                        let duration = (160 * (*n + 1).min(5)) as u16;
                        pkt.extend_from_slice(&[*event, if end { 0x80 | 10 } else { 10 }]);
                        pkt.extend_from_slice(&duration.to_be_bytes());
                        *n += 1;
                        if *n >= 8 {
                            pressing = None;
                        }
                    }
                    None => {
                        pkt.extend_from_slice(&[0x80, if seq == 0 { 0x80 } else { 0x00 }]);
                        pkt.extend_from_slice(&seq.to_be_bytes());
                        pkt.extend_from_slice(&ts.to_be_bytes());
                        pkt.extend_from_slice(&ssrc.to_be_bytes());
                        for k in 0..160 {
                            pkt.push(audio.get(pos + k).copied().unwrap_or(SILENCE));
                        }
                    }
                }
                pos += 160;
                if !muted.load(Ordering::Relaxed) {
                    let _ = sock.send_to(&pkt, to);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                next_send += Duration::from_millis(20);
            }
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n >= 12 && buf[0] >> 6 == 2 && !(200..=206).contains(&buf[1]) {
                let mut h = heard.lock().unwrap();
                // The payload follows the fixed header, any CSRCs and any extension (RFC 3550 §5.1, §5.3.1).
                let mut at = 12 + 4 * (buf[0] & 0x0F) as usize;
                if buf[0] & 0x10 != 0 && n >= at + 4 {
                    at += 4 + 4 * u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
                }
                if h.len() < KEEP && at <= n {
                    h.push(Heard {
                        marker: buf[1] & 0x80 != 0,
                        payload_type: buf[1] & 0x7F,
                        sequence: u16::from_be_bytes([buf[2], buf[3]]),
                        timestamp: u32::from_be_bytes(buf[4..8].try_into().unwrap()),
                        ssrc: u32::from_be_bytes(buf[8..12].try_into().unwrap()),
                        payload: buf[at..n].to_vec(),
                    });
                }
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
