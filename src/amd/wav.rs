//! WAV input for `redial amd`: 16-bit (or other) PCM through hound, G.711 µ-law/A-law
//! (format tags 7 and 6, which hound does not read) parsed here; stereo is mixed down and
//! other rates are resampled to 8 kHz.

use std::io::Cursor;
use std::path::Path;

use super::SAMPLE_RATE;

/// Why a file could not be read as audio.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read file: {source}")]
    Io {
        #[source]
        source: std::io::Error,
    },
    #[error("not a WAV file: {reason}")]
    NotWav { reason: String },
    #[error("unsupported WAV format (format tag {tag}, {bits} bits)")]
    Unsupported { tag: u16, bits: u16 },
    #[error("WAV file has no samples")]
    Empty,
    #[error("unsupported sample rate {rate} Hz (accepted: 4000 to 192000)")]
    UnsupportedRate { rate: u32 },
}

/// A decoded clip, 8 kHz mono.
#[derive(Debug, Clone)]
pub struct Clip {
    pub samples: Vec<i16>,
    /// The file's own rate (resampled from when not 8000).
    pub source_rate: u32,
}

/// Reads `path` into 8 kHz mono 16-bit samples.
pub fn read_wav(path: &Path) -> Result<Clip, WavError> {
    let bytes = std::fs::read(path).map_err(|source| WavError::Io { source })?;
    decode_wav(&bytes)
}

/// Decodes WAV bytes into 8 kHz mono 16-bit samples.
pub fn decode_wav(bytes: &[u8]) -> Result<Clip, WavError> {
    let (rate, mono) = match g711(bytes)? {
        Some(x) => x,
        None => pcm(bytes)?,
    };
    if !(4000..=192_000).contains(&rate) {
        return Err(WavError::UnsupportedRate { rate });
    }
    if mono.is_empty() {
        return Err(WavError::Empty);
    }
    let samples = if rate == SAMPLE_RATE { mono } else { resample(&mono, rate, SAMPLE_RATE) };
    Ok(Clip { samples, source_rate: rate })
}

fn pcm(bytes: &[u8]) -> Result<(u32, Vec<i16>), WavError> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| match e {
        hound::Error::IoError(e) => WavError::NotWav { reason: e.to_string() },
        hound::Error::FormatError(r) => WavError::NotWav { reason: r.to_string() },
        other => WavError::NotWav { reason: other.to_string() },
    })?;
    let spec = reader.spec();
    let ch = spec.channels.max(1) as usize;
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            let mut v = Vec::new();
            for s in reader.into_samples::<i32>() {
                let s = s.map_err(|e| WavError::NotWav { reason: e.to_string() })?;
                v.push(s as f32 * scale);
            }
            v
        }
        hound::SampleFormat::Float => {
            let mut v = Vec::new();
            for s in reader.into_samples::<f32>() {
                v.push(s.map_err(|e| WavError::NotWav { reason: e.to_string() })?);
            }
            v
        }
    };
    let mono = interleaved
        .chunks(ch)
        .map(|c| {
            let m = c.iter().sum::<f32>() / c.len() as f32;
            (m * 32768.0).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    Ok((spec.sample_rate, mono))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `Some` for a G.711 WAV (format tag 7 µ-law or 6 A-law), `None` for anything else
/// (left to hound).
fn g711(b: &[u8]) -> Result<Option<(u32, Vec<i16>)>, WavError> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut at = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = le32(b, at + 4) as usize;
        let body = at + 8;
        let end = body.saturating_add(len).min(b.len());
        if id == b"fmt " {
            if len < 16 || body + 16 > b.len() {
                return Err(WavError::NotWav { reason: "short fmt chunk".into() });
            }
            fmt = Some((le16(b, body), le16(b, body + 2), le32(b, body + 4), le16(b, body + 14)));
        } else if id == b"data" {
            let Some((tag, channels, rate, bits)) = fmt else {
                return Err(WavError::NotWav { reason: "data chunk before fmt chunk".into() });
            };
            let decode: fn(u8) -> i16 = match tag {
                7 => crate::codec::g711::ulaw_decode,
                6 => crate::codec::g711::alaw_decode,
                _ => return Ok(None),
            };
            if bits != 8 || channels == 0 {
                return Err(WavError::Unsupported { tag, bits });
            }
            let ch = channels as usize;
            let mono = b[body..end]
                .chunks_exact(ch)
                .map(|c| (c.iter().map(|&v| decode(v) as i32).sum::<i32>() / ch as i32) as i16)
                .collect();
            return Ok(Some((rate, mono)));
        }
        at = body.saturating_add(len + (len & 1));
    }
    Ok(None)
}

/// Band-limited resampling (windowed sinc, Hann window, 16 zero crossings each side).
pub fn resample(x: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || x.is_empty() || from == 0 || to == 0 {
        return x.to_vec();
    }
    let ratio = from as f64 / to as f64;
    let cutoff = (1.0 / ratio).min(1.0) * 0.95;
    let half = (16.0 / cutoff).ceil() as i64;
    let n_out = ((x.len() as f64) / ratio).floor() as usize;
    let mut out = Vec::with_capacity(n_out);
    for n in 0..n_out {
        let t = n as f64 * ratio;
        let c = t.floor() as i64;
        let mut acc = 0.0;
        for k in (c - half + 1)..=(c + half) {
            if k < 0 || k as usize >= x.len() {
                continue;
            }
            let d = t - k as f64;
            let arg = std::f64::consts::PI * d * cutoff;
            let sinc = if arg.abs() < 1e-9 { 1.0 } else { arg.sin() / arg };
            let w = 0.5 + 0.5 * (std::f64::consts::PI * d / (half as f64 + 1.0)).cos();
            acc += x[k as usize] as f64 * cutoff * sinc * w;
        }
        out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_bytes(tag: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * bits as u32 / 8).to_le_bytes());
        b.extend_from_slice(&(bits / 8).to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn g711_reference_points() {
        // G.711: µ-law 0xFF and 0x7F are ±0, 0x80 is +32124, 0x00 is -32124.
        assert_eq!(crate::codec::g711::ulaw_decode(0xff), 0);
        assert_eq!(crate::codec::g711::ulaw_decode(0x80), 32124);
        assert_eq!(crate::codec::g711::ulaw_decode(0x00), -32124);
        // A-law 0xD5 is +8, 0x55 is -8; 0xAA is +32256.
        assert_eq!(crate::codec::g711::alaw_decode(0xd5), 8);
        assert_eq!(crate::codec::g711::alaw_decode(0x55), -8);
        assert_eq!(crate::codec::g711::alaw_decode(0xaa), 32256);
    }

    #[test]
    fn reads_pcm_and_ulaw() {
        let pcm: Vec<u8> = [1000i16, -1000, 0].iter().flat_map(|s| s.to_le_bytes()).collect();
        let c = decode_wav(&wav_bytes(1, 8000, 16, &pcm)).unwrap();
        assert_eq!(c.samples, vec![1000, -1000, 0]);
        let c = decode_wav(&wav_bytes(7, 8000, 8, &[0x80, 0x00, 0xff])).unwrap();
        assert_eq!(c.samples, vec![32124, -32124, 0]);
    }

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(matches!(decode_wav(b"hello world, not audio"), Err(WavError::NotWav { .. })));
        assert!(matches!(decode_wav(&wav_bytes(7, 8000, 8, &[])), Err(WavError::Empty)));
        assert!(matches!(decode_wav(&wav_bytes(7, 1, 8, &[0; 100])), Err(WavError::UnsupportedRate { rate: 1 })));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        // Any bytes, and any bytes behind a valid-looking header, give a clip or an error,
        // never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                                       tag in proptest::sample::select(vec![1u16, 3, 6, 7, 0xfffe, 2]),
                                       bits in proptest::sample::select(vec![8u16, 16, 24, 32, 0, 12]),
                                       cut in 0usize..80) {
            let _ = decode_wav(&tail);
            let mut b = wav_bytes(tag, 8000, bits, &tail);
            let _ = decode_wav(&b);
            b.truncate(cut);
            let _ = decode_wav(&b);
        }
    }

    #[test]
    fn resamples_16k_tone_to_8k() {
        let x: Vec<i16> = (0..16000)
            .map(|i| (10000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16000.0).sin()) as i16)
            .collect();
        let pcm: Vec<u8> = x.iter().flat_map(|s| s.to_le_bytes()).collect();
        let c = decode_wav(&wav_bytes(1, 16000, 16, &pcm)).unwrap();
        assert_eq!(c.source_rate, 16000);
        assert_eq!(c.samples.len(), 8000);
        let y: Vec<f32> = c.samples[100..7900].iter().map(|&v| v as f32).collect();
        let ms = y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32;
        let p = crate::amd::goertzel::goertzel_power(&y, 1000.0, 8000);
        assert!(p / ms > 0.95, "{}", p / ms);
        assert!((ms.sqrt() - 7071.0).abs() < 200.0, "{}", ms.sqrt());
    }
}
