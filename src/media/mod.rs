//! Media: RTP/RTCP sessions, G.711 and Opus, SDP offer/answer, DTMF, prompt player.
//!
//! Every protocol part is a sans-IO core that counts time in samples, RTP
//! timestamps or `Instant`s given to it; the only sockets are in [`socket`].
//!
//! # Layout
//! - [`codec`]: the [`Codec`] enum (PCMU, PCMA, Opus) with payload types and clock rates.
//! - [`rtp`]: RTP packets over rtp-rs, extended sequence numbers and timestamps.
//! - [`source`]: one remote source's reception state (RFC 3550 A.1, A.3, A.8).
//! - [`rtcp`]: SR/RR/SDES/BYE compound packets and the report interval (A.7).
//! - [`session`]: [`RtpSession`], the sans-IO RTP/RTCP session with symmetric RTP.
//! - [`jitter`]: a reordering buffer for analysis consumers.
//! - [`tap`]: a leg's audio as gap-free 8 kHz PCM frames for AMD and recording.
//! - [`ports`]: the even-port allocator over `media.ports`.
//! - [`socket`]: the tokio driver: a bound RTP/RTCP pair running an `RtpSession`.
//! - [`g711`]: µ-law and A-law.
//! - [`opus`]: Opus through audiopus (libopus).
//! - [`resample`]: polyphase windowed-sinc resampler between any two rates.
//! - [`transcode`]: frame encoders/decoders per codec and the [`Transcoder`].
//! - [`sdp`]: SDP offer/answer (RFC 3264) over the `sdp` crate.
//! - [`dtmf`]: RFC 4733 telephone-events in and out, SIP INFO bodies.
//! - [`player`]: paced prompt playback from WAV files.
//! - [`relay`]: the anchored bridge between two legs.
//! - [`call`]: live legs for the dialler: a tokio task per leg (or bridged pair)
//!   joining session, player, AMD, DTMF and relay; prompts.

pub mod call;
pub mod codec;
pub mod dtmf;
/// G.711 lives in [`crate::codec::g711`] (the AMD WAV reader uses it too); re-exported here.
pub use crate::codec::g711;
pub mod jitter;
pub mod opus;
pub mod player;
pub mod ports;
pub mod relay;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod socket;
pub mod srtp;
pub mod tap;
pub mod source;
pub mod transcode;

pub use codec::Codec;
pub use session::{RtpEvent, RtpSession, SessionConfig, Transmit};
pub use transcode::Transcoder;
