//! The feature vector the model reads at every frame: how the first seconds after answer
//! are shaped (speech and silence runs, cadence of phrases and pauses), and what the
//! speech sounds like (zero-crossing rate, spectral tilt, level dynamics).
//!
//! Times are seconds from the answer clock's start (the answer, or the end of the last
//! ring-back burst). The names are the model file's `features` list, in this order.

use serde::Serialize;

/// Number of features.
pub const FEATURE_COUNT: usize = 15;

/// Feature names, in vector order.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "elapsed_s",
    "onset_s",
    "first_utterance_s",
    "last_utterance_s",
    "trailing_silence_s",
    "voiced_s",
    "voiced_fraction",
    "longest_phrase_s",
    "words",
    "utterances",
    "longest_pause_s",
    "zero_crossings",
    "tilt",
    "level_sd_db",
    "snr_db",
];

/// One feature vector (see [`FEATURE_NAMES`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Features(pub [f32; FEATURE_COUNT]);

/// Per-frame measurements the features are built from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameStats {
    /// Zero crossings per sample (0..1): low for voiced speech, high for fricatives and noise.
    pub zcr: f32,
    /// Energy of the first difference over twice the energy (0..1): the spectral tilt.
    pub tilt: f32,
}

impl FrameStats {
    /// Measures one frame (samples in i16 scale) whose sum of squares is `energy`.
    pub fn of(frame: &[f32], energy: f32) -> FrameStats {
        let mut crossings = 0u32;
        let mut diff = 0.0f32;
        for w in frame.windows(2) {
            crossings += ((w[0] >= 0.0) != (w[1] >= 0.0)) as u32;
            diff += (w[1] - w[0]) * (w[1] - w[0]);
        }
        let n = frame.len().max(2) as f32 - 1.0;
        let tilt = if energy > 0.0 { (diff / (2.0 * energy)).min(2.0) } else { 0.0 };
        FrameStats { zcr: crossings as f32 / n, tilt }
    }
}

impl Features {
    /// The value of the feature called `name`.
    pub fn get(&self, name: &str) -> Option<f32> {
        FEATURE_NAMES.iter().position(|n| *n == name).map(|i| self.0[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_tone_has_low_zcr_and_tilt_high_tone_high() {
        let tone = |f: f32| -> Vec<f32> { (0..160).map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin() * 1000.0).collect() };
        let e = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>();
        let lo = tone(200.0);
        let hi = tone(3000.0);
        let (a, b) = (FrameStats::of(&lo, e(&lo)), FrameStats::of(&hi, e(&hi)));
        assert!(a.zcr < 0.06 && b.zcr > 0.7, "{a:?} {b:?}");
        assert!(a.tilt < 0.05 && b.tilt > 0.8, "{a:?} {b:?}");
        assert_eq!(FrameStats::of(&[0.0; 160], 0.0).tilt, 0.0);
    }
}
