//! SRTP cost per bridged call (RFC 3711 transform only): `cargo bench --bench srtp`.
//!
//! A bridged SRTP↔RTP call has, on its SRTP leg, 50 packets/s to unprotect and 50/s to
//! protect (20 ms G.711, 160-byte payloads) plus RTCP (negligible). This times both over
//! many packets and prints the CPU per call-minute they add on top of the plain relay
//! (whose own figure comes from `cargo bench --bench bridge`).

use std::time::Instant;

use redial::media::srtp::{KeyMaterial, SrtpContext, Suite};

fn main() {
    let n: u32 = std::env::var("REDIAL_BENCH_SRTP_N").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let key = KeyMaterial::random(Suite::AesCm128HmacSha1_80);
    let mut tx = SrtpContext::new(&key);
    let mut rx = SrtpContext::new(&key);
    let mut pkt = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
    pkt.extend_from_slice(&[0xffu8; 160]);
    let mut protected = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    for i in 0..n {
        pkt[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        pkt[4..8].copy_from_slice(&(i * 160).to_be_bytes());
        protected.push(tx.protect(&pkt).expect("protect"));
    }
    let protect = t0.elapsed();
    let t1 = Instant::now();
    for p in &protected {
        std::hint::black_box(rx.unprotect(p).expect("unprotect"));
    }
    let unprotect = t1.elapsed();
    let per_protect = protect.as_nanos() as f64 / n as f64;
    let per_unprotect = unprotect.as_nanos() as f64 / n as f64;
    // One call-minute on the SRTP leg: 3,000 packets each way.
    let per_call_minute_ms = (per_protect + per_unprotect) * 3000.0 / 1e6;
    println!("srtp: {n} packets of 172 bytes, AES_CM_128_HMAC_SHA1_80");
    println!("  protect   {per_protect:.0} ns/packet");
    println!("  unprotect {per_unprotect:.0} ns/packet (tag check, replay window, decrypt)");
    println!("  added CPU per bridged SRTP↔RTP call-minute: {per_call_minute_ms:.2} ms");
}
