//! Goertzel filter: the power of one frequency in a block, in O(n) without an FFT.

use std::f32::consts::PI;

/// Power of `freq_hz` in `block`, normalised so that a full-scale-independent sinusoid
/// of amplitude `a` at exactly `freq_hz` (whole block) gives `a² / 2`, the same units as
/// the block's mean square. `power / mean_square` is then the fraction of the block's
/// energy at that frequency (1.0 for a pure tone, up to the window's leakage).
pub fn goertzel_power(block: &[f32], freq_hz: f32, sample_rate: u32) -> f32 {
    let n = block.len();
    if n == 0 {
        return 0.0;
    }
    let w = 2.0 * PI * freq_hz / sample_rate as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    // |X(w)|² of the block's DFT at w; a sinusoid gives (a n / 2)².
    let mag2 = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * mag2 / (n as f32 * n as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(f: f32, a: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| a * (2.0 * PI * f * i as f32 / 8000.0).sin()).collect()
    }

    #[test]
    fn pure_tone_power_matches_mean_square() {
        let x = sine(440.0, 1000.0, 160);
        let p = goertzel_power(&x, 440.0, 8000);
        let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / 160.0;
        assert!((p / ms - 1.0).abs() < 0.02, "ratio {}", p / ms);
    }

    #[test]
    fn rejects_other_frequencies() {
        // 50 Hz is one bin at 160 samples: a null of the rectangular window.
        let x = sine(400.0, 1000.0, 160);
        let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / 160.0;
        assert!(goertzel_power(&x, 450.0, 8000) / ms < 0.01);
        assert!(goertzel_power(&x, 1000.0, 8000) / ms < 0.01);
        assert!(goertzel_power(&x, 425.0, 8000) / ms > 0.3);
    }

    #[test]
    fn dual_tone_splits_energy() {
        let a = sine(440.0, 1000.0, 160);
        let b = sine(480.0, 1000.0, 160);
        let x: Vec<f32> = a.iter().zip(&b).map(|(p, q)| p + q).collect();
        let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / 160.0;
        let both = goertzel_power(&x, 440.0, 8000) + goertzel_power(&x, 480.0, 8000);
        let one = goertzel_power(&x, 440.0, 8000) / ms;
        assert!(both / ms > 0.75, "{} {}", both / ms, one);
        assert!(one < 0.7, "{one}");
    }

    #[test]
    fn empty_block_is_zero() {
        assert_eq!(goertzel_power(&[], 440.0, 8000), 0.0);
    }
}
