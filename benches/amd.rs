//! AMD CPU cost: how many real-time channels one core can analyse.
//!
//! `cargo bench --bench amd` — feeds every 20 ms frame of every corpus file through a
//! fresh detector per file (all frames, also after the decision, so the figure covers the
//! whole detection and beep-listening period) on one thread, and prints frames/s and
//! frames/s ÷ 50 (a real-time channel is 50 frames/s).

use std::path::PathBuf;
use std::time::Instant;

use redial::amd::wav::read_wav;
use redial::amd::{AmdConfig, AmdDetector, FRAME_SAMPLES};

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-media/amd-world");
    let mut clips = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("corpus").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "wav")) {
        clips.push(read_wav(p).expect("corpus wav").samples);
    }
    let frames_per_pass: usize = clips.iter().map(|c| c.len() / FRAME_SAMPLES).sum();
    let mut best = f64::MAX;
    let mut decided = 0usize;
    for _round in 0..5 {
        let start = Instant::now();
        decided = 0;
        for clip in &clips {
            let mut det = AmdDetector::new(AmdConfig::default()).expect("default config");
            for frame in clip.chunks_exact(FRAME_SAMPLES) {
                det.push_frame(frame).expect("not finished");
                if det.poll_decision().is_some() {
                    decided += 1;
                }
            }
            std::hint::black_box(det.finish());
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let fps = frames_per_pass as f64 / best;
    println!("amd: {} files, {} frames ({:.0} s of audio), {} decided before the end", clips.len(), frames_per_pass, frames_per_pass as f64 / 50.0, decided);
    println!("amd: best of 5 passes {:.3} s -> {:.0} frames/s on one core", best, fps);
    println!("amd: {:.0} concurrent real-time channels per core (frames/s / 50)", fps / 50.0);
}
