//! Media throughput and pacing figures (docs/media.md).
//!
//! `cargo bench --bench media` — prints frames/s for G.711, the resampler and
//! transcoding, then measures prompt pacing over loopback UDP with the real
//! tokio driver (`REDIAL_BENCH_PACING_SECS`, default 10).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime};

use rand::{rngs::StdRng, SeedableRng};
use redial::media::g711;
use redial::media::player::{Player, Prompt};
use redial::media::resample::Resampler;
use redial::media::socket::{now, MediaSocket, RtpDriver};
use redial::media::transcode::{FrameEncoder, Transcoder};
use redial::media::{Codec, RtpSession, SessionConfig};

fn speech_like(n: usize) -> Vec<i16> {
    // A few harmonics with a slow envelope: not silence, not a pure tone.
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let s = (2.0 * std::f64::consts::PI * 180.0 * t).sin() + 0.5 * (2.0 * std::f64::consts::PI * 720.0 * t).sin() + 0.25 * (2.0 * std::f64::consts::PI * 2100.0 * t).sin();
            (6000.0 * env * s) as i16
        })
        .collect()
}

/// Runs `f` (one frame per call) for about `secs` and returns frames per second.
fn rate(secs: f64, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    loop {
        for _ in 0..256 {
            f(n);
            n += 1;
        }
        let e = start.elapsed().as_secs_f64();
        if e >= secs {
            return n as f64 / e;
        }
    }
}

fn line(name: &str, fps: f64) {
    // One channel needs 50 frames/s.
    println!("{name:<34} {fps:>14.0} frames/s  ({:>8.0} real-time channels/core)", fps / 50.0);
}

fn throughput() {
    let pcm = speech_like(8000 * 10);
    let frames: Vec<&[i16]> = pcm.chunks(160).collect();
    let ulaw: Vec<Vec<u8>> = frames.iter().map(|f| f.iter().map(|&s| g711::ulaw_encode(s)).collect()).collect();
    let mut out8 = [0u8; 160];
    let mut out16 = [0i16; 160];
    line("G.711 µ-law encode", rate(1.0, |n| {
        g711::ulaw_encode_slice(black_box(frames[n % frames.len()]), &mut out8);
        black_box(&out8);
    }));
    line("G.711 µ-law decode", rate(1.0, |n| {
        g711::ulaw_decode_slice(black_box(&ulaw[n % ulaw.len()]), &mut out16);
        black_box(&out16);
    }));
    line("G.711 A-law encode", rate(1.0, |n| {
        g711::alaw_encode_slice(black_box(frames[n % frames.len()]), &mut out8);
        black_box(&out8);
    }));
    line("G.711 A-law decode", rate(1.0, |n| {
        g711::alaw_decode_slice(black_box(&ulaw[n % ulaw.len()]), &mut out16);
        black_box(&out16);
    }));

    for (from, to, name) in [(8000, 48000, "resample 8k -> 48k"), (48000, 8000, "resample 48k -> 8k"), (8000, 16000, "resample 8k -> 16k"), (16000, 8000, "resample 16k -> 8k")] {
        let input = if from == 8000 { pcm.clone() } else {
            let mut up = Resampler::new(8000, from).unwrap();
            let mut v = vec![];
            up.process(&pcm, &mut v);
            v
        };
        let fl = from as usize / 50;
        let chunks: Vec<&[i16]> = input.chunks_exact(fl).collect();
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::with_capacity(1000);
        line(name, rate(1.0, |n| {
            out.clear();
            r.process(black_box(chunks[n % chunks.len()]), &mut out);
            black_box(&out);
        }));
    }

    let mut opus_enc = FrameEncoder::new(Codec::Opus).unwrap();
    let opus: Vec<Vec<u8>> = frames.iter().map(|f| {
        let mut p = vec![];
        opus_enc.encode(f, &mut p).unwrap();
        p
    }).collect();
    for (from, to, input) in [(Codec::Pcmu, Codec::Pcma, &ulaw), (Codec::Pcmu, Codec::Opus, &ulaw), (Codec::Opus, Codec::Pcmu, &opus)] {
        let mut t = Transcoder::new(from, to).unwrap();
        let mut out = Vec::with_capacity(4);
        line(&format!("transcode {from} -> {to}"), rate(2.0, |n| {
            out.clear();
            t.transcode(Some(black_box(&input[n % input.len()])), &mut out).unwrap();
            black_box(&out);
        }));
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A prompt played by the sans-IO player, paced with tokio timers, sent by
/// the socket driver to a plain receiving socket on loopback.
async fn pacing(secs: u64) {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let rx = tokio::net::UdpSocket::bind((lo, 0)).await.unwrap();
    let socket = MediaSocket::bind_any(lo).await.unwrap();
    let mut session = RtpSession::new(SessionConfig::default(), now(), SystemTime::now(), &mut StdRng::seed_from_u64(1));
    session.set_remote(rx.local_addr().unwrap(), None);
    let mut driver = RtpDriver::new(socket, session, StdRng::seed_from_u64(2));
    let prompt = Prompt::from_samples(8000, &speech_like(8000 * secs as usize)).unwrap();
    let frames = prompt.frames() as usize;
    let start = now() + Duration::from_millis(50);
    let mut player = Player::new(prompt, Codec::Pcmu, 0, false, start, 0).unwrap();
    let sender = tokio::spawn(async move {
        while let Some(due) = player.poll_timeout() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            while let Some(f) = player.poll_frame(now()) {
                let f = f.unwrap();
                driver.send(f.payload_type, f.marker, f.position, &f.payload).unwrap();
            }
        }
    });
    let mut arrivals = Vec::with_capacity(frames);
    let mut buf = [0u8; 2048];
    while arrivals.len() < frames {
        rx.recv_from(&mut buf).await.unwrap();
        arrivals.push(Instant::now());
    }
    sender.await.unwrap();
    let ideal = |n: usize| Duration::from_millis(20 * n as u64).as_secs_f64();
    let t0 = arrivals[0];
    // Deviation of each packet from start + n·20 ms (drift would grow here)...
    let mut abs_dev: Vec<f64> = arrivals.iter().enumerate().map(|(n, &a)| ((a - t0).as_secs_f64() - ideal(n)).abs() * 1000.0).collect();
    // ...and of each inter-packet gap from 20 ms.
    let mut gap_dev: Vec<f64> = arrivals.windows(2).map(|w| ((w[1] - w[0]).as_secs_f64() * 1000.0 - 20.0).abs()).collect();
    let last = abs_dev[abs_dev.len() - 1];
    println!("prompt pacing over {secs} s ({frames} packets, tokio driver, loopback UDP):");
    println!("  inter-packet deviation from 20 ms: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms", percentile(&mut gap_dev.clone(), 0.5), percentile(&mut gap_dev, 0.99), gap_dev.iter().cloned().fold(0.0, f64::max));
    println!("  deviation from start + n*20 ms:    p50 {:.3} ms, p99 {:.3} ms, last packet {:.3} ms (no drift)", percentile(&mut abs_dev.clone(), 0.5), percentile(&mut abs_dev, 0.99), last);
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    throughput();
    let secs = std::env::var("REDIAL_BENCH_PACING_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(pacing(secs));
}
