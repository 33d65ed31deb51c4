//! Per-codec 20 ms frame encoders and decoders around an 8 kHz PCM pivot,
//! and the [`Transcoder`] between any two codecs.
//!
//! The pivot is 8 kHz because every call redial anchors has a telephone-band
//! leg (G.711); Opus runs at its own internal rate (48 kHz by default, for
//! browser agents) and is resampled with [`Resampler`] on the way in and out.

use super::g711;
use super::opus::{OpusDecoder, OpusEncoder, OpusError};
use super::resample::{ResampleError, Resampler};
use super::Codec;

/// Rate of the PCM that encoders take and decoders give.
pub const PIVOT_RATE: u32 = 8000;
/// Samples in one 20 ms pivot frame.
pub const PIVOT_FRAME: usize = 160;
/// Default internal rate for Opus.
pub const OPUS_RATE: u32 = 48000;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error(transparent)]
    Opus(#[from] OpusError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error("encoders take {want} samples (20 ms at 8 kHz), got {got}")]
    FrameLength { want: usize, got: usize },
}

#[derive(Debug)]
enum Enc {
    Pcmu,
    Pcma,
    Opus { enc: OpusEncoder, up: Resampler, buf: Vec<i16> },
}

/// Encodes 20 ms of 8 kHz PCM into one payload of `codec`.
#[derive(Debug)]
pub struct FrameEncoder {
    codec: Codec,
    enc: Enc,
}

impl FrameEncoder {
    pub fn new(codec: Codec) -> Result<Self, TranscodeError> {
        Self::with_opus_rate(codec, OPUS_RATE)
    }

    pub fn with_opus_rate(codec: Codec, opus_rate: u32) -> Result<Self, TranscodeError> {
        let enc = match codec {
            Codec::Pcmu => Enc::Pcmu,
            Codec::Pcma => Enc::Pcma,
            Codec::Opus => Enc::Opus { enc: OpusEncoder::new(opus_rate)?, up: Resampler::new(PIVOT_RATE, opus_rate)?, buf: Vec::with_capacity(opus_rate as usize / 50) },
        };
        Ok(Self { codec, enc })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Appends the payload for `pcm` (exactly 160 samples) to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        if pcm.len() != PIVOT_FRAME {
            return Err(TranscodeError::FrameLength { want: PIVOT_FRAME, got: pcm.len() });
        }
        match &mut self.enc {
            Enc::Pcmu => out.extend(pcm.iter().map(|&s| g711::ulaw_encode(s))),
            Enc::Pcma => out.extend(pcm.iter().map(|&s| g711::alaw_encode(s))),
            Enc::Opus { enc, up, buf } => {
                buf.clear();
                up.process(pcm, buf);
                enc.encode(buf, out)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Dec {
    Pcmu,
    Pcma,
    Opus { dec: OpusDecoder, down: Resampler, buf: Vec<i16> },
}

/// Decodes payloads of `codec` into 8 kHz PCM.
#[derive(Debug)]
pub struct FrameDecoder {
    codec: Codec,
    dec: Dec,
}

impl FrameDecoder {
    pub fn new(codec: Codec) -> Result<Self, TranscodeError> {
        Self::with_opus_rate(codec, OPUS_RATE)
    }

    pub fn with_opus_rate(codec: Codec, opus_rate: u32) -> Result<Self, TranscodeError> {
        let dec = match codec {
            Codec::Pcmu => Dec::Pcmu,
            Codec::Pcma => Dec::Pcma,
            Codec::Opus => Dec::Opus { dec: OpusDecoder::new(opus_rate)?, down: Resampler::new(opus_rate, PIVOT_RATE)?, buf: Vec::new() },
        };
        Ok(Self { codec, dec })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Appends the PCM of `payload` to `out`; `None` is a lost packet of 20 ms
    /// (silence for G.711, libopus concealment for Opus).
    pub fn decode(&mut self, payload: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), TranscodeError> {
        match (&mut self.dec, payload) {
            (Dec::Pcmu, Some(p)) => out.extend(p.iter().map(|&c| g711::ulaw_decode(c))),
            (Dec::Pcma, Some(p)) => out.extend(p.iter().map(|&c| g711::alaw_decode(c))),
            (Dec::Pcmu | Dec::Pcma, None) => out.extend(std::iter::repeat_n(0, PIVOT_FRAME)),
            (Dec::Opus { dec, down, buf }, p) => {
                buf.clear();
                dec.decode(p, buf)?;
                down.process(buf, out);
            }
        }
        Ok(())
    }
}

/// Converts payloads of one codec into 20 ms payloads of another, buffering
/// PCM so that a 30 ms G.711 peer still yields 20 ms frames.
#[derive(Debug)]
pub struct Transcoder {
    dec: FrameDecoder,
    enc: FrameEncoder,
    pcm: Vec<i16>,
}

impl Transcoder {
    pub fn new(from: Codec, to: Codec) -> Result<Self, TranscodeError> {
        Ok(Self { dec: FrameDecoder::new(from)?, enc: FrameEncoder::new(to)?, pcm: Vec::with_capacity(PIVOT_FRAME * 4) })
    }

    pub fn from_codec(&self) -> Codec {
        self.dec.codec()
    }

    pub fn to_codec(&self) -> Codec {
        self.enc.codec()
    }

    /// Feeds one incoming payload (`None` = lost) and appends every complete
    /// 20 ms output payload to `out`; returns how many were produced.
    pub fn transcode(&mut self, payload: Option<&[u8]>, out: &mut Vec<Vec<u8>>) -> Result<usize, TranscodeError> {
        self.dec.decode(payload, &mut self.pcm)?;
        let mut n = 0;
        let mut at = 0;
        while self.pcm.len() - at >= PIVOT_FRAME {
            let mut p = Vec::with_capacity(PIVOT_FRAME);
            self.enc.encode(&self.pcm[at..at + PIVOT_FRAME], &mut p)?;
            out.push(p);
            at += PIVOT_FRAME;
            n += 1;
        }
        self.pcm.drain(..at);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_frame(f: usize, hz: f64) -> Vec<i16> {
        (0..PIVOT_FRAME).map(|i| (6000.0 * (2.0 * std::f64::consts::PI * hz * (f * PIVOT_FRAME + i) as f64 / 8000.0).sin()) as i16).collect()
    }

    fn energy(x: &[i16]) -> f64 {
        x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64
    }

    #[test]
    fn every_pair_carries_a_tone() {
        let codecs = [Codec::Pcmu, Codec::Pcma, Codec::Opus];
        for from in codecs {
            for to in codecs {
                let mut src = FrameEncoder::new(from).unwrap();
                let mut t = Transcoder::new(from, to).unwrap();
                let mut sink = FrameDecoder::new(to).unwrap();
                let (mut input, mut output) = (vec![], vec![]);
                for f in 0..50 {
                    let frame = tone_frame(f, 700.0);
                    let mut p = vec![];
                    src.encode(&frame, &mut p).unwrap();
                    let mut outs = vec![];
                    assert_eq!(t.transcode(Some(&p), &mut outs).unwrap(), 1, "{from}->{to}");
                    if to != Codec::Opus {
                        assert_eq!(outs[0].len(), 160);
                    }
                    sink.decode(Some(&outs[0]), &mut output).unwrap();
                    input.extend(frame);
                }
                assert_eq!(output.len(), input.len());
                let r = energy(&output[2000..]) / energy(&input[2000..]);
                assert!(r > 0.6 && r < 1.4, "{from}->{to}: energy ratio {r}");
            }
        }
    }

    #[test]
    fn thirty_ms_packets_become_twenty() {
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Pcma).unwrap();
        let mut out = vec![];
        let pkt = vec![0xFFu8; 240];
        let counts: Vec<_> = (0..4).map(|_| t.transcode(Some(&pkt), &mut out).unwrap()).collect();
        assert_eq!(counts, vec![1, 2, 1, 2]);
        assert!(out.iter().all(|p| p.len() == 160 && p.iter().all(|&c| c == 0xD5)));
        // Loss becomes silence.
        let mut out = vec![];
        t.transcode(None, &mut out).unwrap();
        assert!(out[0].iter().all(|&c| c == 0xD5));
        assert!(matches!(FrameEncoder::new(Codec::Pcmu).unwrap().encode(&[0; 10], &mut vec![]), Err(TranscodeError::FrameLength { .. })));
    }
}
