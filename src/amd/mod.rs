//! Answering-machine detection: a streaming detector over 20 ms frames, time in samples.
//!
//! - [`detector`]: [`AmdDetector`], the sans-IO core: frames in, [`AmdDecision`] and the
//!   beep onset out.
//! - [`config`]: [`AmdConfig`], every threshold with its default.
//! - [`features`]: the feature vector read at every frame.
//! - [`model`]: the learned classifier over the features (weights in `model.json`).
//! - [`sequence`]: the learned recurrent model over per-frame inputs (weights in
//!   `sequence_model.json`), blended with [`model`] into P(machine).
//! - [`floor`]: the adaptive noise floor (a decaying percentile of frame energies).
//! - [`goertzel`]: single-frequency power, for ring-back and beep tones.
//! - [`tone`]: per-frame ring-back / single-tone analysis.
//! - [`wav`]: reading WAV files (PCM and G.711) into 8 kHz mono for `redial amd`.
//!
//! docs/amd.md describes the method, the corpus and the measured accuracy.

pub mod config;
pub mod detector;
pub mod features;
pub mod floor;
pub mod goertzel;
pub mod model;
pub mod sequence;
pub mod tone;
pub mod wav;

pub use config::{AmdConfig, AmdConfigError};
pub use detector::{AmdDecision, AmdDetector, AmdError, AmdResult, DecisionReason, Observation};

/// The detector's sample rate.
pub const SAMPLE_RATE: u32 = 8000;
/// Analysis frame length.
pub const FRAME_MS: u64 = 20;
/// Samples per analysis frame.
pub const FRAME_SAMPLES: usize = 160;

/// Runs a detector over a whole clip (8 kHz mono) in 20 ms frames, stopping when the
/// detector wants no more audio; returns the decision and the beep onset.
pub fn detect_clip(config: AmdConfig, samples: &[i16]) -> Result<(AmdDecision, Option<u64>), AmdConfigError> {
    Ok(run_clip(AmdDetector::new(config)?, samples))
}

/// [`detect_clip`] with a detector already made (with other models, for the offline tools).
pub fn run_clip(mut det: AmdDetector, samples: &[i16]) -> (AmdDecision, Option<u64>) {
    for chunk in samples.chunks(FRAME_SAMPLES) {
        if !det.wants_audio() {
            break;
        }
        if det.push_frame(chunk).is_err() {
            break;
        }
    }
    let d = det.finish();
    (d, det.beep_at_ms())
}

#[cfg(test)]
mod tests;
