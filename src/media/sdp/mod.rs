//! SDP offer/answer for one audio stream (RFC 3264, RFC 4566).
//!
//! Parsing and serialising use the `sdp` crate (webrtc-rs); this module adds
//! what the crate leaves to applications: reading an audio m-line into a
//! typed [`RemoteMedia`], building redial's offer, answering per RFC 3264
//! §6.1 and accepting an answer.
//!
//! - [`model`]: [`Direction`], [`Format`], [`RemoteMedia`] and the parse from SDP text.
//! - [`negotiate`]: [`build_offer`], [`answer_offer`], [`accept_answer`] and [`Negotiated`].
//! - [`reanswer`]: the answer to a re-offer (hold and resume) from the description we last sent.

pub mod model;
pub mod negotiate;
pub mod reanswer;

pub use model::{Crypto, Direction, Format, RemoteMedia};
pub use negotiate::{accept_answer, answer_offer, build_offer, Answer, LocalMedia, Negotiated, SrtpKeys, SrtpPolicy};

/// Why an SDP could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP does not parse: {reason}")]
    Syntax { reason: String },
    #[error("SDP has no usable audio stream")]
    NoAudio,
    #[error("no common codec: offered {offered:?}, accepted {accepted:?}")]
    NoCommonCodec { offered: Vec<String>, accepted: Vec<String> },
    #[error("the audio stream was rejected (port 0)")]
    Rejected,
    #[error("connection address `{address}` is not an IP address")]
    Address { address: String },
    #[error("the answer chose payload type {pt}, which was not offered")]
    NotOffered { pt: u8 },
    #[error("SRTP is required but no usable a=crypto (AES_CM_128_HMAC_SHA1_80/_32, inline key, no MKI) was agreed")]
    SrtpRequired,
    #[error("SRTP (RTP/SAVP) was offered but SRTP is off")]
    SrtpOff,
}

impl SdpError {
    /// The SIP response for an INVITE carrying this SDP: 488 Not Acceptable
    /// Here when the session cannot be agreed (RFC 3261 §21.4.26), 400 when
    /// the body is broken.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Syntax { .. } | SdpError::Address { .. } => 400,
            _ => 488,
        }
    }
}
