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
    /// The same of a frame near full scale fitted again for a clipped tone's fundamental
    /// (0 when not fitted again): for the beep alone, never a frame's kind (see `analyse`).
    pub clipped_hz: f32,
    pub clipped: f32,
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
    let near = |f: f32| {
        [-16.0f32, -8.0, 0.0, 8.0, 16.0]
            .iter()
            .map(|df| (f + df, conc(f + df)))
            .fold((0.0, 0.0), |best, c| if c.1 > best.1 { c } else { best })
    };
    let (single_hz, single) = fitted_hz(frame, 0.0).map_or((0.0, 0.0), near);
    // A beep clipped by a hot line carries odd harmonics, and the fit is then the mean of
    // their cos(w) weighted by their energy: 9 dB of clipping moves a 700 Hz tone's to about
    // 800 Hz, where its share reads 0.03 (docs/amd.md, session 29). A frame near full scale
    // (only there has anything been clipped) is fitted again through a resonator at the
    // first fit, which passes the fundamental and not its harmonics, and then at that fit.
    // Not quieter frames: there the resonator finds a voice's strongest harmonic, which on
    // a sustained vowel can hold three quarters of a frame for a beep's length. On a hot
    // line's loud voice it finds one too, so the fit is a clipped tone's only if the frame
    // is nearly all at its odd multiples (a clipped tone has no others) and nothing is at
    // half and one and a half times its frequency, where a voice's harmonic has its
    // neighbours. And it serves the beep alone: those frames stay speech for the models.
    let (mut clipped_hz, mut clipped) = (0.0, 0.0);
    // The cheap tests first: most frames are a tone's or quiet, and skip the peak's scan.
    if single < REFIT_BELOW
        && single_hz > 0.0
        && ms >= CLIPPED_MIN_RMS * CLIPPED_MIN_RMS
        && frame.iter().any(|v| v.abs() >= CLIPPED_PEAK)
    {
        let mut f = single_hz;
        for _ in 0..REFITS {
            f = fitted_hz(frame, f).unwrap_or(f);
        }
        let (hz, share) = near(f);
        let odd = share + conc(folded(3.0 * hz)) + conc(folded(5.0 * hz));
        if between(frame, ms, hz) < CLIPPED_MAX_BETWEEN && odd >= CLIPPED_MIN_ODD {
            (clipped_hz, clipped) = (hz, share);
        }
    }
    ToneAnalysis { ringback, lone_400, single_hz, single, clipped_hz, clipped }
}

/// A frame's peak (in i16 scale) at or above which it may hold a clipped tone: -3 dBFS.
/// A tone clipped at full scale still peaks there after the telephone band and a codec.
const CLIPPED_PEAK: f32 = 23_197.0;
/// And its RMS: -15 dBFS (a tone holds its level; the corpora's clipped beeps' frames that
/// peak at -3 dBFS are at -14.5 dBFS or above). Most frames of a greeting normalised to a
/// peak of -3 dBFS are quieter, and are not fitted again.
const CLIPPED_MIN_RMS: f32 = 5_827.0;
/// The share of a frame at half and one and a half times `hz`. A tone has nothing there; a
/// voice whose harmonic at `hz` holds most of the frame has its neighbours there (its
/// fundamental and third harmonic when `hz` is its second, which a sustained vowel's often
/// is on a line whose band starts near 300 Hz).
pub fn between(frame: &[f32], ms: f32, hz: f32) -> f32 {
    (goertzel_power(frame, hz / 2.0, SAMPLE_RATE) + goertzel_power(frame, 1.5 * hz, SAMPLE_RATE)) / ms
}

/// The most of a clipped tone's frame [`between`]: on the corpora's clipped beeps at most
/// 0.012 (median 0.001), on a real voice's vowel whose second harmonic held 0.8-0.9 of the
/// frame 0.04-0.10 (docs/amd.md, session 29).
const CLIPPED_MAX_BETWEEN: f32 = 0.02;
/// The most of a beep's frame [`between`] (a frame with more holds a run of its tone but
/// does not count for the beep): people on real telephone lines held vowels whose second
/// harmonic made 9 of the 12 beeps heard on 410 lines, at 0.05-0.24 per run; every beep of
/// the corpora and the platform's is kept from 0.03 to 0.05, and only 0.02 drops one, a
/// clipped beep after Opus, at 0.02-0.07 (docs/amd.md, session 30).
pub const BEEP_MAX_BETWEEN: f32 = 0.05;
/// The least of a clipped tone's frame at its first, third and fifth harmonics: on the
/// train splits' clipped beeps 0.86 or more in 95 % of files (median 0.99, least 0.76, codecs
/// and noise), on a hot line's vowel whose fourth harmonic held 0.8 of the frame 0.80-0.91.
const CLIPPED_MIN_ODD: f32 = 0.85;
/// A share of the frame at the first fit below which the frame is fitted again.
const REFIT_BELOW: f32 = 0.9;
/// How many times.
const REFITS: usize = 2;
/// The resonator's pole radius: about 130 Hz wide at 8 kHz.
const RESONATOR_R: f32 = 0.95;
/// Samples the resonator rings in before the fit counts them (its poles fall by 0.95^40,
/// to an eighth).
const RESONATOR_SETTLE: usize = 40;

/// Where a harmonic at `hz` lands at 8 kHz: above 4 kHz it folds back.
fn folded(hz: f32) -> f32 {
    let f = hz % SAMPLE_RATE as f32;
    if f > SAMPLE_RATE as f32 / 2.0 {
        SAMPLE_RATE as f32 - f
    } else {
        f
    }
}

/// The frequency of the least-squares fit of x[n] + x[n-2] = 2cos(w) x[n-1] over `frame`,
/// or over `frame` through a two-pole resonator at `at_hz` when that is above 0; None for a
/// silent frame.
fn fitted_hz(frame: &[f32], at_hz: f32) -> Option<f32> {
    let (mut num, mut den) = (0.0f32, 0.0f32);
    if at_hz > 0.0 {
        let w = 2.0 * std::f32::consts::PI * at_hz / SAMPLE_RATE as f32;
        let (a1, a2) = (2.0 * RESONATOR_R * w.cos(), -RESONATOR_R * RESONATOR_R);
        let (mut y1, mut y2) = (0.0f32, 0.0f32);
        for (n, &x) in frame.iter().enumerate() {
            let y = x + a1 * y1 + a2 * y2;
            if n >= RESONATOR_SETTLE {
                num += (y + y2) * y1;
                den += y1 * y1;
            }
            (y2, y1) = (y1, y);
        }
    } else {
        // The first fit runs on every loud frame: the plain loop.
        for n in 2..frame.len() {
            num += (frame[n] + frame[n - 2]) * frame[n - 1];
            den += frame[n - 1] * frame[n - 1];
        }
    }
    (den > 0.0).then(|| (num / (2.0 * den)).clamp(-1.0, 1.0).acos() * SAMPLE_RATE as f32 / (2.0 * std::f32::consts::PI))
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
    fn a_clipped_tone_is_found_at_its_fundamental() {
        // A hot line: 6-12 dB of gain over a tone already near full scale, clipped.
        for f in [400.0f32, 700.0, 1000.0, 1400.0] {
            for gain_db in [6.0f32, 9.0, 12.0] {
                let g = 10f32.powf(gain_db / 20.0);
                let x: Vec<f32> = (0..160)
                    .map(|i| 20000.0 * g * (2.0 * std::f32::consts::PI * f * (i + 11) as f32 / 8000.0).sin())
                    .map(|v| v.clamp(-32000.0, 32000.0))
                    .collect();
                let ms = x.iter().map(|v| v * v).sum::<f32>() / 160.0;
                let a = analyse(&x, ms);
                let (hz, share) =
                    if a.single >= REFIT_BELOW { (a.single_hz, a.single) } else { (a.clipped_hz, a.clipped) };
                assert!((hz - f).abs() < 15.0, "{f} Hz, {gain_db} dB: {a:?}");
                assert!(share > 0.75, "{f} Hz, {gain_db} dB: {a:?}");
            }
        }
    }

    #[test]
    fn a_loud_vowel_is_not_a_clipped_tone() {
        // A voice at 290 Hz whose second harmonic holds most of the frame, near full scale:
        // its first and third harmonics sit at half and one and a half times that one.
        let x: Vec<f32> = (0..160)
            .map(|i| {
                let t = 2.0 * std::f32::consts::PI * 290.0 * i as f32 / 8000.0;
                (9000.0 * t.sin() + 30000.0 * (2.0 * t).sin() + 8000.0 * (3.0 * t).sin()).clamp(-32000.0, 32000.0)
            })
            .collect();
        let ms = x.iter().map(|v| v * v).sum::<f32>() / 160.0;
        let a = analyse(&x, ms);
        assert_eq!(a.clipped, 0.0, "{a:?}");
    }

    #[test]
    fn a_low_voices_fourth_harmonic_is_not_a_clipped_tone() {
        // A voice at 120 Hz on a hot line whose fourth harmonic (480 Hz) holds four fifths
        // of the frame, its neighbours at 360 and 600 Hz the rest: nothing at 240 or 720 Hz
        // (half and one and a half times 480), but a fifth of the frame is off its odd
        // harmonics, which a clipped tone never is.
        let x: Vec<f32> = (0..160)
            .map(|i| {
                let t = 2.0 * std::f32::consts::PI * i as f32 / 8000.0;
                20000.0 * (480.0 * t).sin() + 7000.0 * (360.0 * t + 0.3).sin() + 7000.0 * (600.0 * t + 0.7).sin()
            })
            .map(|v| v.clamp(-32000.0, 32000.0))
            .collect();
        let ms = x.iter().map(|v| v * v).sum::<f32>() / 160.0;
        let a = analyse(&x, ms);
        assert!(a.single < REFIT_BELOW, "fitted again: {a:?}");
        assert_eq!(a.clipped, 0.0, "{a:?}");
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
