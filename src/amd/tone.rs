//! Per-frame tone analysis: ring-back (known dual/single tones) and single tones (beeps).

use super::goertzel::goertzel_power;
use super::SAMPLE_RATE;

/// Ring-back tones: US 440+480 Hz, UK 400+450 Hz, Europe (ITU-T E.180) 425 Hz.
const RINGBACK: [&[f32]; 3] = [&[440.0, 480.0], &[400.0, 450.0], &[425.0]];

/// What a frame's spectrum looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneAnalysis {
    /// Best fraction of the frame's energy at one ring-back tone set.
    pub ringback: f32,
    /// The dominant single frequency and the fraction of energy there.
    pub single_hz: f32,
    pub single: f32,
}

/// Analyses one frame (samples as f32 in i16 scale) whose mean square is `ms` (> 0).
pub fn analyse(frame: &[f32], ms: f32) -> ToneAnalysis {
    let conc = |f: f32| goertzel_power(frame, f, SAMPLE_RATE) / ms;
    let ringback = RINGBACK
        .iter()
        .map(|set| set.iter().map(|&f| conc(f)).sum::<f32>())
        .fold(0.0f32, f32::max);
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
    ToneAnalysis { ringback, single_hz, single }
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
    fn a_beep_is_not_ringback() {
        let (x, ms) = frame(&[1000.0], 0);
        assert!(analyse(&x, ms).ringback < 0.1);
    }
}
