//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711 as implemented by the
//! G.191 software tools (16-bit linear in/out, left-justified).
//!
//! Decoding is a 256-entry table built at compile time from the segment
//! formula; encoding finds the segment from the magnitude's bit length, which
//! is the same computation a 8192-entry table would cache, without the cache
//! misses. Written here because the codec is tiny and the crates on offer
//! either allocate per call or do not match G.191's rounding.

/// One 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

const ULAW_BIAS: i32 = 33; // in 14-bit units (G.711 µ-law: 0x84 on the 16-bit scale)

const fn ulaw_decode_formula(code: u8) -> i16 {
    let y = !code;
    let exp = ((y >> 4) & 7) as i32;
    let mant = (y & 0x0F) as i32;
    // 14-bit magnitude: the segment's chord start plus the step midpoint.
    let mag = (((2 * mant + ULAW_BIAS) << exp) - ULAW_BIAS) * 4;
    if y & 0x80 != 0 { -mag as i16 } else { mag as i16 }
}

const fn alaw_decode_formula(code: u8) -> i16 {
    let y = code ^ 0x55; // even bits are inverted on the line (G.711 §A)
    let exp = ((y >> 4) & 7) as i32;
    let mant = (y & 0x0F) as i32;
    let mag13 = if exp == 0 { 2 * mant + 1 } else { (2 * mant + 33) << (exp - 1) };
    let mag = mag13 * 8;
    if y & 0x80 != 0 { mag as i16 } else { -mag as i16 }
}

const fn build(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw { alaw_decode_formula(i as u8) } else { ulaw_decode_formula(i as u8) };
        i += 1;
    }
    t
}

/// µ-law code → linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = build(false);
/// A-law code → linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = build(true);

/// Bit length of `x` (0 for 0).
#[inline]
fn bits(x: i32) -> u32 {
    32 - (x as u32).leading_zeros()
}

/// Linear sample → µ-law code (G.191 `ulaw_compress`: 14-bit, one's complement for negatives).
#[inline]
pub fn ulaw_encode(pcm: i16) -> u8 {
    let x = (pcm as i32) >> 2;
    let (sign, mag) = if x < 0 { (0x00, !x) } else { (0x80, x) };
    let mag = (mag + ULAW_BIAS).min(0x1FFF);
    let exp = bits(mag >> 6); // segment 0 covers magnitudes below 64
    let mant = (mag >> (exp + 1)) & 0x0F;
    sign | (!((exp << 4) as i32 | mant) & 0x7F) as u8
}

/// Linear sample → A-law code (G.191 `alaw_compress`: 13-bit, one's complement for negatives).
#[inline]
pub fn alaw_encode(pcm: i16) -> u8 {
    let x = (pcm as i32) >> 3;
    let (sign, mag) = if x < 0 { (0x00, !x) } else { (0x80, x) };
    let mag = mag.min(0x0FFF);
    let exp = bits(mag >> 5); // segment 0 and 1 share the step size
    let mant = if exp == 0 { mag >> 1 } else { (mag >> exp) & 0x0F };
    ((sign | (exp << 4) as i32 | mant) as u8) ^ 0x55
}

#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Encodes `pcm` into `out` (same length; the shorter one bounds the work).
pub fn ulaw_encode_slice(pcm: &[i16], out: &mut [u8]) {
    out.iter_mut().zip(pcm).for_each(|(o, &s)| *o = ulaw_encode(s));
}
pub fn alaw_encode_slice(pcm: &[i16], out: &mut [u8]) {
    out.iter_mut().zip(pcm).for_each(|(o, &s)| *o = alaw_encode(s));
}
pub fn ulaw_decode_slice(codes: &[u8], out: &mut [i16]) {
    out.iter_mut().zip(codes).for_each(|(o, &c)| *o = ULAW_TO_LINEAR[c as usize]);
}
pub fn alaw_decode_slice(codes: &[u8], out: &mut [i16]) {
    out.iter_mut().zip(codes).for_each(|(o, &c)| *o = ALAW_TO_LINEAR[c as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values worked by hand from the G.711 tables (µ-law: Table 2a/2b,
    // A-law: Table 1a/1b) in G.191's 16-bit left-justified scale; the decode
    // values and the positive encodes agree with sox's independent codec.
    #[test]
    fn ulaw_decode_reference() {
        assert_eq!(ulaw_decode(0x00), -32124); // first entry: most negative
        assert_eq!(ulaw_decode(0x7F), 0); // negative zero
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFF), 0); // last entry
        assert_eq!(ulaw_decode(0xFE), 8); // smallest step: 2 (14-bit) × 4
        assert_eq!(ulaw_decode(0xF0), 120);
        assert_eq!(ulaw_decode(0xEF), 132); // segment 1 starts
        assert_eq!(ulaw_decode(0xCE), 988);
        assert_eq!(ulaw_decode(0x4E), -988);
    }

    #[test]
    fn alaw_decode_reference() {
        assert_eq!(alaw_decode(0x00), -5504); // first entry
        assert_eq!(alaw_decode(0xFF), 848); // last entry
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xFA), 1008);
    }

    #[test]
    fn encode_reference() {
        let cases: &[(i16, u8, u8)] = &[
            // linear, µ-law, A-law
            (0, 0xFF, 0xD5),
            (-1, 0x7F, 0x55),
            (8, 0xFE, 0xD5),
            (1000, 0xCE, 0xFA),
            (-1000, 0x4E, 0x7A),
            (32767, 0x80, 0xAA),
            (-32768, 0x00, 0x2A),
            (4000, 0xAF, 0x9A),
            (-4000, 0x2F, 0x1A),
            (100, 0xF2, 0xD3),
            (12345, 0x97, 0xBD),
            // Negative inputs use G.191's one's complement (truncation toward
            // -inf), so -100 lands one step from a rounding encoder's 0x72/0x50.
            (-100, 0x73, 0x53),
        ];
        for &(x, u, a) in cases {
            assert_eq!(ulaw_encode(x), u, "µ-law of {x}");
            assert_eq!(alaw_encode(x), a, "A-law of {x}");
        }
    }

    #[test]
    fn exhaustive_round_trip() {
        for c in 0..=255u8 {
            let want_u = if c == 0x7F { 0xFF } else { c }; // both µ-law zeros decode to 0
            assert_eq!(ulaw_encode(ulaw_decode(c)), want_u, "µ-law {c:#04x}");
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#04x}");
        }
    }

    #[test]
    fn monotonic_and_error_bounded() {
        // Quantisation error is at most half a step: the step doubles per segment.
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let e = (ulaw_decode(ulaw_encode(x)) as i32 - x as i32).abs();
            assert!(e <= 1024 + 4, "µ-law error {e} at {x}");
            let e = (alaw_decode(alaw_encode(x)) as i32 - x as i32).abs();
            assert!(e <= 1024 + 8, "A-law error {e} at {x}");
        }
        let mut prev = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let y = ulaw_decode(ulaw_encode(x));
            assert!(y >= prev);
            prev = y;
        }
    }
}
