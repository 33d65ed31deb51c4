//! RTP packets (RFC 3550 §5.1) over rtp-rs, and extended sequence numbers.
//!
//! rtp-rs parses and builds; everything stateful (sequence extension,
//! sources, reordering) is ours because its `Seq` ordering is a plain
//! half-range comparison that is not transitive across the wrap.

use bytes::Bytes;
use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError, Seq};

/// A parsed RTP packet with an owned payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("RTP packet of {len} bytes is malformed: {reason}")]
    Malformed { len: usize, reason: &'static str },
    #[error("RTP version {version} is not 2")]
    Version { version: u8 },
    #[error("payload type {pt} is outside 0..=127")]
    PayloadType { pt: u8 },
    #[error("RTP packet would be too large ({len} bytes)")]
    TooLarge { len: usize },
}

impl RtpPacket {
    /// Parses one datagram.
    pub fn parse(data: &[u8]) -> Result<Self, RtpError> {
        let r = RtpReader::new(data).map_err(|e| RtpError::Malformed {
            len: data.len(),
            reason: match e {
                RtpReaderError::BufferTooShort(_) => "shorter than its header",
                RtpReaderError::UnsupportedVersion(_) => "unsupported version",
                RtpReaderError::HeadersTruncated { .. } => "truncated CSRC or extension",
                RtpReaderError::PaddingLengthInvalid(_) => "invalid padding",
            },
        })?;
        if r.version() != 2 {
            return Err(RtpError::Version { version: r.version() });
        }
        // RTCP shares the port when muxed (RFC 5761 §4): PT 72..=76 with the marker is RTCP.
        let pt = r.payload_type();
        if (72..=76).contains(&pt) {
            return Err(RtpError::Malformed { len: data.len(), reason: "RTCP packet type on the RTP port" });
        }
        Ok(Self {
            payload_type: pt,
            marker: r.mark(),
            sequence: u16::from(r.sequence_number()),
            timestamp: r.timestamp(),
            ssrc: r.ssrc(),
            payload: Bytes::copy_from_slice(r.payload()),
        })
    }

    /// Serialises the packet.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RtpError> {
        if self.payload_type > 127 {
            return Err(RtpError::PayloadType { pt: self.payload_type });
        }
        RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .marked(self.marker)
            .sequence(Seq::from(self.sequence))
            .timestamp(self.timestamp)
            .ssrc(self.ssrc)
            .payload(&self.payload)
            .build()
            .map_err(|_| RtpError::TooLarge { len: 12 + self.payload.len() })
    }
}

/// Extends 16-bit sequence numbers to 64 bits by choosing, for each new value,
/// the candidate nearest the highest seen so far (the RFC 3550 A.1 cycle
/// count, made exact for reordered packets around a wrap).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqExtender {
    max: Option<u64>,
}

impl SeqExtender {
    /// Extends `seq` and updates the maximum when `seq` is newer.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = self.peek(seq);
        if self.max.is_none_or(|m| ext > m) {
            self.max = Some(ext);
        }
        ext
    }

    /// Extends `seq` without recording it.
    pub fn peek(&self, seq: u16) -> u64 {
        match self.max {
            // Start one cycle up so a packet just before the first one does not go negative.
            None => (1 << 16) + seq as u64,
            Some(m) => {
                let delta = seq.wrapping_sub(m as u16) as i16 as i64;
                (m as i64 + delta).max(0) as u64
            }
        }
    }

    /// Highest extended sequence seen.
    pub fn max(&self) -> Option<u64> {
        self.max
    }
}

/// Extends 32-bit RTP timestamps the same way (nearest to the last one).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimestampExtender {
    last: Option<i64>,
}

impl TimestampExtender {
    pub fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => ts as i64,
            Some(l) => l + ts.wrapping_sub(l as u32) as i32 as i64,
        };
        self.last = Some(ext);
        ext
    }

    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_parse_round_trip() {
        let p = RtpPacket {
            payload_type: 0,
            marker: true,
            sequence: 65535,
            timestamp: 0xFFFF_FF00,
            ssrc: 0xDEAD_BEEF,
            payload: Bytes::from_static(&[0xFF; 160]),
        };
        let b = p.to_bytes().unwrap();
        assert_eq!(b.len(), 172);
        assert_eq!(b[0], 0x80);
        assert_eq!(b[1], 0x80);
        assert_eq!(RtpPacket::parse(&b).unwrap(), p);
    }

    #[test]
    fn rejects_garbage() {
        assert!(RtpPacket::parse(&[0x80, 0]).is_err());
        assert!(RtpPacket::parse(&[0x40; 12]).is_err());
        let mut p = RtpPacket { payload_type: 128, marker: false, sequence: 0, timestamp: 0, ssrc: 0, payload: Bytes::new() };
        assert_eq!(p.to_bytes(), Err(RtpError::PayloadType { pt: 128 }));
        p.payload_type = 0;
        let mut b = p.to_bytes().unwrap();
        b[1] = 200; // an RTCP SR on the RTP port
        assert!(RtpPacket::parse(&b).is_err());
    }

    #[test]
    fn seq_wraps_forward_and_back() {
        let mut x = SeqExtender::default();
        let base = x.extend(65534);
        assert_eq!(x.extend(65535), base + 1);
        assert_eq!(x.extend(0), base + 2);
        assert_eq!(x.extend(1), base + 3);
        // A late packet from before the wrap keeps its old cycle.
        assert_eq!(x.extend(65533), base - 1);
        assert_eq!(x.max(), Some(base + 3));
        // Long runs across several wraps stay monotonic.
        let mut prev = x.max().unwrap();
        for i in 0..200_000u32 {
            let e = x.extend((2u32.wrapping_add(i)) as u16);
            assert_eq!(e, prev + 1);
            prev = e;
        }
    }

    #[test]
    fn timestamps_extend_across_wrap() {
        let mut t = TimestampExtender::default();
        assert_eq!(t.extend(u32::MAX - 159), u32::MAX as i64 - 159);
        assert_eq!(t.extend(0), u32::MAX as i64 + 1);
        assert_eq!(t.extend(160), u32::MAX as i64 + 161);
        assert_eq!(t.extend(0), u32::MAX as i64 + 1);
    }
}
