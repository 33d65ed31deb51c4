//! The feature vector the model reads at every frame: how the first seconds after answer
//! are shaped (speech and silence runs, cadence of phrases and pauses), and what the
//! speech sounds like (zero-crossing rate, spectral tilt, level dynamics), how its pitch
//! moves (range, continuity, the slope at the end of the latest speech: a question rises),
//! how its energy is modulated (syllable peaks per second), how it starts (onset
//! sharpness) and how steady the line was before it (a recorded greeting's lead-in vs a
//! live line); and what the line itself does around the first speech: a voicemail
//! platform's line is digitally quiet or carries comfort noise until its recording
//! starts, and the recording brings its own room noise (a step in the background level
//! at the greeting's onset) at the platform's normalised level, where a person's line
//! carries their room from the moment of answer.
//!
//! Times are seconds from the answer clock's start (the answer, or the end of the last
//! ring-back burst). The names are the model file's `features` list, in this order.

use serde::Serialize;

/// Number of features.
pub const FEATURE_COUNT: usize = 29;

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
    "periodicity",
    "pitch_sd_st",
    "pitch_jump_st",
    "pitch_end_slope",
    "pitch_mean_st",
    "syllable_rate",
    "onset_rise_db",
    "lead_sd_db",
    "lead_db",
    "lead_digital",
    "speech_floor_db",
    "floor_step_db",
    "level_db",
    "tail_step_db",
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
    /// Peak normalised autocorrelation in the pitch range (0..1): how periodic the frame is.
    pub periodicity: f32,
    /// Pitch in semitones above 100 Hz when the frame is voiced (`periodicity` ≥
    /// [`VOICED`]), else `None`.
    pub pitch_st: Option<f32>,
}

/// Periodicity from which a frame counts as voiced.
pub const VOICED: f32 = 0.6;
/// Samples per frame after halving the rate to 4 kHz for the pitch search.
const HALF: usize = 80;
/// Pitch lags at 4 kHz: 10..=50 samples, 400..80 Hz.
const MIN_LAG: usize = 10;
const MAX_LAG: usize = 50;

/// Pitch by normalised autocorrelation over the last 20 ms against the 40 ms ending with
/// it, at half the rate (pairs averaged: a crude low-pass that halves the cost; the
/// telephone band's pitch harmonics stay well under 2 kHz).
#[derive(Debug, Clone)]
pub struct PitchTracker {
    /// The previous frame's and this frame's samples at 4 kHz, mean not removed.
    buf: [f32; 2 * HALF],
}

impl Default for PitchTracker {
    fn default() -> Self {
        PitchTracker { buf: [0.0; 2 * HALF] }
    }
}

impl PitchTracker {
    /// Takes the next frame (160 samples at 8 kHz); measures it when `analyse` (the cost is
    /// paid only for frames that may be speech), returning (periodicity, semitones).
    pub fn push(&mut self, frame: &[f32], analyse: bool) -> (f32, Option<f32>) {
        self.buf.copy_within(HALF.., 0);
        for (i, pair) in frame.chunks_exact(2).take(HALF).enumerate() {
            self.buf[HALF + i] = 0.5 * (pair[0] + pair[1]);
        }
        if !analyse {
            return (0.0, None);
        }
        let y = &self.buf;
        let cur = &y[HALF..];
        let e0: f32 = cur.iter().map(|v| v * v).sum();
        if e0 <= 0.0 {
            return (0.0, None);
        }
        // Energy of the lagged window y[HALF-lag .. 2*HALF-lag), updated as the lag grows.
        let mut el: f32 = y[HALF - MIN_LAG..2 * HALF - MIN_LAG].iter().map(|v| v * v).sum();
        let mut r = [0.0f32; MAX_LAG + 2];
        let (mut best, mut best_lag) = (0.0f32, 0usize);
        for lag in MIN_LAG..=MAX_LAG {
            if lag > MIN_LAG {
                let (add, drop) = (y[HALF - lag], y[2 * HALF - lag]);
                el += add * add - drop * drop;
            }
            let lagged = &y[HALF - lag..2 * HALF - lag];
            let c: f32 = cur.iter().zip(lagged).map(|(a, b)| a * b).sum();
            let n = c / (e0 * el.max(1e-9)).sqrt();
            r[lag] = n;
            if n > best {
                best = n;
                best_lag = lag;
            }
        }
        if best < VOICED || best_lag == 0 {
            return (best.max(0.0), None);
        }
        // Parabolic interpolation of the peak for a sub-sample lag.
        let mut lag = best_lag as f32;
        if best_lag > MIN_LAG && best_lag < MAX_LAG {
            let (a, b, c) = (r[best_lag - 1], r[best_lag], r[best_lag + 1]);
            let d = a - 2.0 * b + c;
            if d < 0.0 {
                lag += 0.5 * (a - c) / d;
            }
        }
        let hz = 4000.0 / lag;
        (best, Some(12.0 * (hz / 100.0).log2()))
    }
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
        FrameStats { zcr: crossings as f32 / n, tilt, periodicity: 0.0, pitch_st: None }
    }
}

/// Frame levels are binned from this (dBFS; lower is clamped to it) for the line-level
/// percentiles, in 1 dB bins up to 0 dBFS.
pub const LEVEL_MIN_DB: f32 = -80.0;
const LEVEL_BINS: usize = 80;

/// Percentiles of frame levels in 1 dB bins: a count per bin, no sort, so a percentile
/// of the few hundred frames of the analysis window costs one pass.
#[derive(Debug, Clone)]
pub struct LevelHistogram {
    bins: [u16; LEVEL_BINS],
    n: u32,
}

impl Default for LevelHistogram {
    fn default() -> Self {
        LevelHistogram { bins: [0; LEVEL_BINS], n: 0 }
    }
}

impl LevelHistogram {
    pub fn push(&mut self, db: f32) {
        let i = ((db - LEVEL_MIN_DB).max(0.0) as usize).min(LEVEL_BINS - 1);
        self.bins[i] = self.bins[i].saturating_add(1);
        self.n += 1;
    }

    pub fn len(&self) -> u32 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The level below which a fraction `q` of the frames lie (bin centre), or `None`
    /// when empty.
    pub fn percentile(&self, q: f32) -> Option<f32> {
        if self.n == 0 {
            return None;
        }
        let want = ((self.n as f32 * q).ceil() as u32).max(1);
        let mut seen = 0u32;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c as u32;
            if seen >= want {
                return Some(LEVEL_MIN_DB + i as f32 + 0.5);
            }
        }
        Some(LEVEL_MIN_DB + LEVEL_BINS as f32 - 0.5)
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
    fn level_percentiles_clamp_and_count() {
        let mut h = LevelHistogram::default();
        assert_eq!(h.percentile(0.5), None);
        for db in [-100.0, -60.2, -60.7, -40.0, -20.1] {
            h.push(db);
        }
        assert_eq!(h.len(), 5);
        assert_eq!(h.percentile(0.1), Some(-79.5)); // digital silence clamps to the bottom bin
        assert_eq!(h.percentile(0.5), Some(-60.5));
        assert_eq!(h.percentile(1.0), Some(-20.5));
        h.push(5.0);
        assert_eq!(h.percentile(1.0), Some(-0.5));
    }

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

    fn harmonic(f0: f32, start: usize) -> Vec<f32> {
        (start..start + 160)
            .map(|i| {
                let t = i as f32 / 8000.0;
                (1..=5).map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() * 1000.0 / k as f32).sum()
            })
            .collect()
    }

    #[test]
    fn pitch_of_a_harmonic_voice_and_none_for_noise() {
        for f0 in [95.0f32, 150.0, 220.0, 310.0] {
            let mut p = PitchTracker::default();
            p.push(&harmonic(f0, 0), false);
            let (r, st) = p.push(&harmonic(f0, 160), true);
            let hz = 100.0 * 2f32.powf(st.expect("voiced") / 12.0);
            assert!(r > 0.9 && (hz - f0).abs() < f0 * 0.03, "{f0}: {hz} r={r}");
        }
        // Deterministic white-ish noise (an LCG) is not periodic.
        let mut seed = 12345u32;
        let mut noise = || -> Vec<f32> {
            (0..160)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 16) as f32 - 32768.0
                })
                .collect()
        };
        let mut p = PitchTracker::default();
        p.push(&noise(), false);
        let (r, st) = p.push(&noise(), true);
        assert!(st.is_none() && r < VOICED, "noise r={r}");
    }
}
