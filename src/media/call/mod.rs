//! Live media legs: the thin tokio layer that joins the sans-IO media cores
//! for the dialler.
//!
//! A [`MediaLeg`] is one call leg's RTP endpoint: an RTP/RTCP port pair from
//! `media.ports`, an [`RtpSession`](super::RtpSession), and one tokio task
//! that moves datagrams and timers. The leg's methods are synchronous: SDP is
//! built and read on the caller's side, and everything that touches the
//! stream goes to the task as a command, processed in order. What happens on
//! the stream comes back as [`MediaEvent`]s on [`MediaLeg::events`].
//!
//! Bridging moves the other leg's socket and session into this leg's task, so
//! a bridged pair is served by one task owning both sockets: a packet is
//! received, relayed ([`Relay`](super::relay::Relay)) and sent in the same
//! wake-up, with no channel hop.
//!
//! - [`engine`]: [`MediaEngine`] (ports, configuration).
//! - [`settings`]: [`MediaConfig`], what the live legs need from the configuration.
//! - [`leg`]: [`MediaLeg`], the handle: offer/answer, play, AMD, bridge.
//! - [`task`]: the task serving one leg, or a bridged pair of legs.
//! - [`analysis`]: AMD on a leg's received audio (tap → detector → events).
//! - [`prompts`]: [`Prompts`], the configured prompt WAVs with tone fallbacks.

pub mod analysis;
pub mod engine;
pub mod leg;
pub mod prompts;
pub mod settings;
mod task;

use std::io;
use std::net::IpAddr;

pub use engine::MediaEngine;
pub use settings::MediaConfig;
pub use leg::{MediaLeg, MediaLegStats};
pub use prompts::Prompts;

use super::player::PlayerError;
use super::ports::PortError;
use super::sdp::SdpError;
use super::transcode::TranscodeError;
use crate::amd::{AmdConfigError, AmdDecision};

/// What happened on a leg's stream, in order, on [`MediaLeg::events`].
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// First RTP packet from the remote (symmetric RTP latched).
    FirstPacket,
    /// The prompt started with `play` finished (not sent for looped prompts or after stop).
    PlayDone,
    /// AMD decided (once per `start_amd`).
    Amd(AmdDecision),
    /// A voicemail beep heard after AMD started, at this audio time (ms since start_amd).
    Beep { at_ms: u64 },
    /// End of the greeting after a machine decision: `amd.end_of_greeting_silence_ms`
    /// of silence following speech (or the beep).
    GreetingEnded,
    /// RFC 4733 digit from the remote (when not bridged; while bridged digits are relayed).
    Dtmf { digit: char, duration_ms: u32 },
    /// No RTP from the remote for `media.timeout`.
    Timeout,
    /// The leg's media transport cannot go on (a browser leg: the DTLS handshake
    /// failed, the certificate did not match the answer's fingerprint, or ICE consent
    /// expired, RFC 7675). `set_up`: whether media had flowed before (ICE and DTLS
    /// done); a leg that never got there carried no call.
    Failed { reason: String, set_up: bool },
}

/// Why a media operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaCallError {
    /// `media.ports` is empty or every pair is leased.
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("cannot bind RTP/RTCP on {addr}: {source}")]
    Bind { addr: IpAddr, source: io::Error },
    #[error(transparent)]
    Sdp(#[from] SdpError),
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
    /// Offer/answer has not completed on this leg (bridge or answer before it).
    #[error("leg {leg} has no negotiated media yet")]
    NotNegotiated { leg: u64 },
    /// `accept_answer` without an `offer` first.
    #[error("leg {leg} received an answer but made no offer")]
    NoOffer { leg: u64 },
    #[error("leg {leg} is already bridged")]
    AlreadyBridged { leg: u64 },
    #[error(transparent)]
    WebRtc(#[from] crate::webrtc::WebRtcError),
    #[error("invalid [amd] configuration: {0}")]
    Amd(#[from] AmdConfigError),
    /// The media runtime could not start the leg (it is shutting down).
    #[error("media runtime: {0}")]
    Runtime(String),
    /// A prompt file exists but cannot be used (a missing one falls back to a tone).
    #[error("prompt `{name}`: {source}")]
    Prompt { name: &'static str, source: PlayerError },
}
