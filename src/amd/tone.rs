//! Per-frame tone analysis: ring-back (known dual/single tones) and single tones (beeps).

use super::goertzel::goertzel_power;
use super::SAMPLE_RATE;

/// A frame whose energy is at 400 Hz, and not at 450 Hz too, is Japan's ring (400 Hz
/// modulated at 16 Hz; the UK set catches it) rather than the UK's or Australia's, whose
/// 450 Hz tone holds as much as the 400 Hz one. (Over a 20 ms frame 450 Hz is the 400 Hz
/// tone's first null, so its share is leakage from the modulation's sidebands and noise.)
const LONE_400_MIN: f32 = 0.6;
const LONE_400_MAX_AT_450: f32 = 0.15;

/// What a frame's spectrum looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneAnalysis {
    /// Best fraction of the frame's energy at one ring-back tone set.
    pub ringback: f32,
    /// The ring-back energy is at 400 Hz alone (see `LONE_400_MIN`).
    pub lone_400: bool,
    /// The dominant single frequency and the fraction of energy there.
    pub single_hz: f32,
    pub single: f32,
}

/// Analyses one frame (samples as f32 in i16 scale) whose mean square is `ms` (> 0).
pub fn analyse(frame: &[f32], ms: f32) -> ToneAnalysis {
    let conc = |f: f32| goertzel_power(frame, f, SAMPLE_RATE) / ms;
    // Ring-back tones: UK 400+450 Hz, US 440+480 Hz, Europe (ITU-T E.180) 425 Hz.
    let (c400, c450) = (conc(400.0), conc(450.0));
    let ringback = (c400 + c450).max(conc(440.0) + conc(480.0)).max(conc(425.0));
    let lone_400 = c400 >= LONE_400_MIN && c450 < LONE_400_MAX_AT_450;
    // A pure tone obeys x[n] + x[n-2] = 2cos(w) x[n-1]: the least-squares fit of that
    // one coefficient over the frame gives its frequency exactly (noise pulls it a little
    // towards fs/4); Goertzels there and either side, for that error, measure how much of
    // the energy the tone holds.
    let (mut num, mut den) = (0.0f32, 0.0f32);
    for n in 2..frame.len() {
        num += (frame[n] + frame[n - 2]) * frame[n - 1];
        den += frame[n - 1] * frame[n - 1];
    }
    let mut single_hz = 0.0;
    let mut single = 0.0;
    if den > 0.0 {
        let cosw = (num / (2.0 * den)).clamp(-1.0, 1.0);
        let f = cosw.acos() * SAMPLE_RATE as f32 / (2.0 * std::f32::consts::PI);
        for df in [-16.0f32, -8.0, 0.0, 8.0, 16.0] {
            let c = conc(f + df);
            if c > single {
                single = c;
                single_hz = f + df;
            }
        }
    }
    ToneAnalysis { ringback, lone_400, single_hz, single }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(freqs: &[f32], start: usize) -> (Vec<f32>, f32) {
        let x: Vec<f32> = (start..start + 160)
            .map(|i| {
                freqs
                    .iter()
                    .map(|f| 3000.0 * (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin())
                    .sum()
            })
            .collect();
        let ms = x.iter().map(|v| v * v).sum::<f32>() / 160.0;
        (x, ms)
    }

    #[test]
    fn single_tone_frequency_and_concentration() {
        for f in [400.0, 733.0, 1000.0, 1400.0, 1987.0] {
            let (x, ms) = frame(&[f], 37);
            let a = analyse(&x, ms);
            assert!((a.single_hz - f).abs() < 15.0, "{f}: {a:?}");
            assert!(a.single > 0.9, "{f}: {a:?}");
        }
    }

    #[test]
    fn ringback_sets_are_recognised_and_not_single_tones() {
        // 440+480 Hz beat at 40 Hz, longer than a frame: check frames at every phase.
        for set in [&[440.0, 480.0][..], &[400.0, 450.0][..]] {
            for start in (0..200).step_by(20) {
                let (x, ms) = frame(set, start);
                let a = analyse(&x, ms);
                assert!(a.ringback > 0.7, "{set:?}: {a:?}");
                // Near the beat's peak the pair looks like one tone at the mean frequency;
                // the ring-back measure still holds at least as much of the energy.
                assert!(a.ringback >= a.single, "{set:?}: {a:?}");
            }
        }
        let (x, ms) = frame(&[425.0], 0);
        assert!(analyse(&x, ms).ringback > 0.9);
    }

    #[test]
    fn only_japans_ring_is_at_400_hz_alone() {
        for start in (0..200).step_by(20) {
            let (x, ms) = frame(&[400.0], start);
            assert!(analyse(&x, ms).lone_400, "Japan's 400 Hz");
            for set in [&[400.0, 450.0][..], &[400.0, 425.0, 450.0], &[425.0], &[440.0, 480.0], &[440.0]] {
                let (x, ms) = frame(set, start);
                assert!(!analyse(&x, ms).lone_400, "{set:?}");
            }
        }
    }

    #[test]
    fn a_beep_is_not_ringback() {
        let (x, ms) = frame(&[1000.0], 0);
        assert!(analyse(&x, ms).ringback < 0.1);
    }
}
