//! The audio codecs redial speaks, with their RTP properties.

use std::fmt;

/// An audio codec as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 §6).
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus (RFC 7587): dynamic payload type, RTP clock always 48 kHz.
    Opus,
}

impl Codec {
    /// The encoding name used in `a=rtpmap` and in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// Parses a profile or rtpmap encoding name (case-insensitive, RFC 4566 §6).
    pub fn from_name(name: &str) -> Option<Self> {
        [Codec::Pcmu, Codec::Pcma, Codec::Opus].into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The static payload type, if the codec has one.
    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }

    /// The payload type redial offers.
    pub fn default_pt(self) -> u8 {
        self.static_pt().unwrap_or(111)
    }

    /// RTP timestamp clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// Channels as written in rtpmap (Opus is always signalled as 2, RFC 7587 §7).
    pub fn rtpmap_channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// RTP timestamp ticks in one 20 ms frame.
    pub fn ticks_per_frame(self) -> u32 {
        self.clock_rate() / 50
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
