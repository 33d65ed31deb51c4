//! Opus (RFC 6716) through audiopus, which links the system libopus.
//!
//! Mono, 20 ms frames, VoIP tuning, at 8, 16 or 48 kHz internal rate. The
//! RTP clock of Opus is 48 kHz whatever the internal rate (RFC 7587 §4.1).

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Channels, MutSignals, SampleRate};

#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    #[error("Opus runs at 8000, 16000 or 48000 Hz here, not {rate}")]
    Rate { rate: u32 },
    #[error("Opus frame must be {want} samples at this rate, got {got}")]
    FrameLength { want: usize, got: usize },
    #[error("libopus: {0}")]
    Codec(#[from] audiopus::Error),
}

fn rate(hz: u32) -> Result<SampleRate, OpusError> {
    Ok(match hz {
        8000 => SampleRate::Hz8000,
        16000 => SampleRate::Hz16000,
        48000 => SampleRate::Hz48000,
        _ => return Err(OpusError::Rate { rate: hz }),
    })
}

/// Largest Opus packet we produce (RFC 6716 §3.4 allows 1275).
const MAX_PACKET: usize = 1275;

pub struct OpusEncoder {
    enc: Encoder,
    frame: usize,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").field("frame", &self.frame).finish()
    }
}

impl OpusEncoder {
    /// A mono VoIP encoder at `sample_rate` with in-band FEC.
    pub fn new(sample_rate: u32) -> Result<Self, OpusError> {
        let mut enc = Encoder::new(rate(sample_rate)?, Channels::Mono, Application::Voip)?;
        enc.set_inband_fec(true)?;
        enc.set_packet_loss_perc(5)?;
        Ok(Self { enc, frame: sample_rate as usize / 50 })
    }

    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Encodes one 20 ms frame, appending the packet to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), OpusError> {
        if pcm.len() != self.frame {
            return Err(OpusError::FrameLength { want: self.frame, got: pcm.len() });
        }
        let start = out.len();
        out.resize(start + MAX_PACKET, 0);
        let n = self.enc.encode(pcm, &mut out[start..])?;
        out.truncate(start + n);
        Ok(())
    }
}

pub struct OpusDecoder {
    dec: Decoder,
    frame: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").field("frame", &self.frame).finish()
    }
}

impl OpusDecoder {
    pub fn new(sample_rate: u32) -> Result<Self, OpusError> {
        Ok(Self { dec: Decoder::new(rate(sample_rate)?, Channels::Mono)?, frame: sample_rate as usize / 50 })
    }

    /// Decodes a packet (`None`: a lost packet, concealed by libopus),
    /// appending the samples to `out`.
    pub fn decode(&mut self, packet: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), OpusError> {
        let start = out.len();
        // Room for the longest Opus packet (120 ms).
        out.resize(start + self.frame * 6, 0);
        let pkt = match packet {
            Some(p) if !p.is_empty() => Some(Packet::try_from(p)?),
            _ => None,
        };
        let signals = MutSignals::try_from(&mut out[start..])?;
        let n = match pkt {
            Some(p) => self.dec.decode(Some(p), signals, false)?,
            // Concealment must ask for exactly one frame.
            None => self.dec.decode(None, MutSignals::try_from(&mut out[start..start + self.frame])?, false)?,
        };
        out.truncate(start + n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_each_rate() {
        for hz in [8000u32, 16000, 48000] {
            let mut enc = OpusEncoder::new(hz).unwrap();
            let mut dec = OpusDecoder::new(hz).unwrap();
            let n = hz as usize / 50;
            let mut decoded = vec![];
            let mut input = vec![];
            for f in 0..50 {
                let frame: Vec<i16> = (0..n).map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * (f * n + i) as f64 / hz as f64).sin()) as i16).collect();
                let mut pkt = vec![];
                enc.encode(&frame, &mut pkt).unwrap();
                assert!(!pkt.is_empty() && pkt.len() < 400);
                dec.decode(Some(&pkt), &mut decoded).unwrap();
                input.extend(frame);
            }
            assert_eq!(decoded.len(), 50 * n);
            // Energy survives the lossy codec (skip the start-up frames).
            let e = |x: &[i16]| x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>();
            let r = e(&decoded[10 * n..]) / e(&input[10 * n..]);
            assert!(r > 0.7 && r < 1.3, "{hz}: energy ratio {r}");
            let mut plc = vec![];
            dec.decode(None, &mut plc).unwrap();
            assert_eq!(plc.len(), n);
        }
        assert!(matches!(OpusEncoder::new(44100), Err(OpusError::Rate { rate: 44100 })));
        let mut enc = OpusEncoder::new(8000).unwrap();
        assert!(matches!(enc.encode(&[0; 100], &mut vec![]), Err(OpusError::FrameLength { want: 160, got: 100 })));
    }
}
