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
//! And what the speech's spectrum does from its first frames on: the share of each
//! frame's energy in eight bands of the telephone channel (a greeting stored and played
//! back has passed a codec twice and lost energy at the band edges), how fast that
//! spectrum moves between speech frames, and how steady the level is from word to word
//! (a platform normalises its recordings; a person turns and moves the handset).
//!
//! Times are seconds from the answer clock's start (the answer, or the end of the last
//! ring-back burst). The names are the model file's `features` list, in this order.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use serde::Serialize;

/// Number of features.
pub const FEATURE_COUNT: usize = 39;

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
    "band0_db",
    "band1_db",
    "band2_db",
    "band3_db",
    "band4_db",
    "band5_db",
    "band6_db",
    "band7_db",
    "spectral_flux_db",
    "word_level_sd_db",
];

/// One feature vector (see [`FEATURE_NAMES`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features(pub [f32; FEATURE_COUNT]);

/// As a JSON array, in [`FEATURE_NAMES`] order (serde derives arrays only up to 32).
impl Serialize for Features {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

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

/// Spectral bands of a frame: upper edges in Hz of eight bands over 0..4 kHz. The first
/// and last lie outside the 300..3400 Hz telephone band, where a stored greeting that
/// passed a codec twice has least left; the others split the voice band roughly evenly on
/// a perceptual scale.
pub const BAND_EDGES_HZ: [f32; BANDS] = [250.0, 500.0, 800.0, 1200.0, 1800.0, 2600.0, 3400.0, 4000.0];
/// Number of spectral bands.
pub const BANDS: usize = 8;
/// FFT length: a 20 ms frame (160 samples) zero-padded, 31.25 Hz per bin at 8 kHz.
const FFT_LEN: usize = 256;
/// A band with no energy reads this far under the frame (dB), not minus infinity.
pub const BAND_MIN_DB: f32 = -60.0;

/// Share of a frame's energy in each of [`BAND_EDGES_HZ`]'s bands, in dB (0 = all of it),
/// by a Hann-windowed real FFT. The plan and buffers are made once per detector.
#[derive(Clone)]
pub struct Spectrum {
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    output: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
    window: Vec<f32>,
    /// First FFT bin of each band, then the end.
    bin_edges: [usize; BANDS + 1],
}

impl std::fmt::Debug for Spectrum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spectrum").field("bin_edges", &self.bin_edges).finish()
    }
}

impl Default for Spectrum {
    fn default() -> Self {
        // One planner per thread would share plans; the plan for 256 points is cheap to
        // make and each detector lives for a call.
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT_LEN);
        let n = super::FRAME_SAMPLES;
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / (n - 1) as f32).cos())
            .collect();
        let hz_per_bin = super::SAMPLE_RATE as f32 / FFT_LEN as f32;
        let mut bin_edges = [0usize; BANDS + 1];
        for (i, hz) in BAND_EDGES_HZ.iter().enumerate() {
            bin_edges[i + 1] = ((hz / hz_per_bin).round() as usize).min(FFT_LEN / 2 + 1);
        }
        bin_edges[BANDS] = FFT_LEN / 2 + 1;
        Spectrum {
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
            bin_edges,
        }
    }
}

impl Spectrum {
    /// The band shares of one frame (160 samples), in dB; all [`BAND_MIN_DB`] for silence.
    pub fn bands(&mut self, frame: &[f32]) -> [f32; BANDS] {
        self.input.fill(0.0);
        for ((d, s), w) in self.input.iter_mut().zip(frame).zip(&self.window) {
            *d = s * w;
        }
        let mut out = [BAND_MIN_DB; BANDS];
        if self.fft.process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch).is_err() {
            return out; // the buffers are the plan's own: cannot fail
        }
        let mut e = [0.0f32; BANDS];
        for (b, band) in e.iter_mut().enumerate() {
            *band = self.output[self.bin_edges[b]..self.bin_edges[b + 1]].iter().map(|c| c.norm_sqr()).sum();
        }
        let total: f32 = e.iter().sum();
        if total > 0.0 {
            for (o, v) in out.iter_mut().zip(e) {
                *o = (10.0 * (v / total).max(1e-12).log10()).max(BAND_MIN_DB);
            }
        }
        out
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
    fn bands_find_a_tone_and_sum_to_the_frame() {
        let mut sp = Spectrum::default();
        let tone = |f: f32| -> Vec<f32> { (0..160).map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin() * 1000.0).collect() };
        for (hz, band) in [(150.0, 0), (1000.0, 3), (3000.0, 6), (3700.0, 7)] {
            let b = sp.bands(&tone(hz));
            let top = (0..BANDS).max_by(|&i, &j| b[i].total_cmp(&b[j])).unwrap();
            assert_eq!(top, band, "{hz} Hz: {b:?}");
            assert!(b[band] > -1.0, "{hz} Hz: {b:?}");
            let sum: f32 = b.iter().map(|d| 10f32.powf(d / 10.0)).sum();
            assert!((sum - 1.0).abs() < 0.01, "{sum}");
        }
        assert_eq!(sp.bands(&[0.0; 160]), [BAND_MIN_DB; BANDS]);
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
