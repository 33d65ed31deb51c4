//! One WebRTC leg on a loopback UDP socket, for the Chromium interop test
//! (`tests/browser/webrtc_leg.test.mjs`): prints `{"offer": SDP}`, reads `{"answer": SDP}`
//! from stdin, then sends a 20 ms PCMU tone frame every 20 ms and counts the browser's
//! frames for `SECS` seconds once connected (argument, default 3), and prints
//! `{"connected_ms", "frames_in", "frames_out", "rms_in"}` (or `{"error"}`, exit 1).
//!
//! Only loopback sources are heard and only loopback destinations are sent to.

use std::io::{BufRead, Write};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use redial::codec::g711::ulaw_encode;
use redial::webrtc::{AudioCodec, LegEvent, WebRtcLeg};
use serde_json::json;

const FRAME: Duration = Duration::from_millis(20);
/// Bound on ICE + DTLS after the answer; a stuck test fails instead of hanging.
const CONNECT_LIMIT: Duration = Duration::from_secs(20);

fn fail(msg: impl std::fmt::Display) -> ! {
    println!("{}", json!({ "error": msg.to_string() }));
    std::process::exit(1)
}

fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| fail(e));
    let local = sock.local_addr().unwrap_or_else(|e| fail(e));
    let (mut leg, offer) = WebRtcLeg::offer(Instant::now(), local).unwrap_or_else(|e| fail(e));
    println!("{}", json!({ "offer": offer }));
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap_or_else(|e| fail(e));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| fail(e));
    let answered = Instant::now();
    leg.accept_answer(v["answer"].as_str().unwrap_or_else(|| fail("no answer"))).unwrap_or_else(|e| fail(e));

    let mut buf = vec![0u8; 2048];
    let (mut connected_at, mut next_send) = (None::<Instant>, None::<Instant>);
    let (mut frames_in, mut frames_out, mut sum_sq, mut samples) = (0u64, 0u64, 0f64, 0u64);
    let mut phase = 0u64;
    loop {
        let now = Instant::now();
        if leg.poll_timeout().is_some_and(|t| t <= now) {
            leg.handle_timeout(now);
        }
        if let Some(at) = next_send.filter(|at| *at <= now) {
            // 440 Hz at 8 kHz, about -12 dBFS.
            let frame: Vec<u8> = (0..160u64)
                .map(|k| {
                    let t = (phase + k) as f64 / 8000.0;
                    ulaw_encode((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
                })
                .collect();
            leg.send_audio(now, AudioCodec::Pcmu, &frame, phase).unwrap_or_else(|e| fail(e));
            phase += 160;
            frames_out += 1;
            next_send = Some(at + FRAME);
        }
        while let Some(d) = leg.poll_transmit() {
            if d.to.ip().is_loopback() {
                let _ = sock.send_to(&d.bytes, d.to);
            }
        }
        while let Some(e) = leg.poll_event() {
            match e {
                LegEvent::Connected => {
                    connected_at = Some(now);
                    next_send = Some(now);
                }
                LegEvent::Audio { payload, .. } => {
                    frames_in += 1;
                    for b in payload {
                        let s = redial::codec::g711::ulaw_decode(b) as f64;
                        sum_sq += s * s;
                        samples += 1;
                    }
                }
                // This peer does not press keys.
                LegEvent::Telephone { .. } => {}
                LegEvent::Failed { reason } => fail(reason),
            }
        }
        match connected_at {
            Some(c) if now.duration_since(c) >= Duration::from_secs(secs) => break,
            None if now.duration_since(answered) > CONNECT_LIMIT => fail("not connected in time"),
            _ => {}
        }
        let wake = [leg.poll_timeout(), next_send, Some(now + Duration::from_millis(100))].into_iter().flatten().min().unwrap();
        sock.set_read_timeout(Some(wake.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)))).ok();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from.ip().is_loopback() {
                leg.handle_receive(Instant::now(), from, &buf[..n]);
            }
        }
    }
    let rms = if samples > 0 { (sum_sq / samples as f64).sqrt() } else { 0.0 };
    let connected_ms = connected_at.map(|c| c.duration_since(answered).as_millis() as u64);
    println!("{}", json!({ "connected_ms": connected_ms, "frames_in": frames_in, "frames_out": frames_out, "rms_in": rms }));
}
