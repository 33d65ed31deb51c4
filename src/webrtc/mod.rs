//! WebRTC media for browser agents: one sans-IO leg per call on top of str0m.
//!
//! - [`leg`]: [`WebRtcLeg`], ICE-lite with one host candidate, DTLS-SRTP (the peer's
//!   certificate is checked against its SDP `a=fingerprint`; `setup` roles negotiated:
//!   redial offers `actpass`), rtcp-mux, audio only, PCMU then PCMA offered so a G.711
//!   carrier leg is bridged without transcoding, Opus last for a browser without G.711,
//!   and telephone-event/8000 for the browser's keypad. Time is always an argument; the
//!   caller owns the UDP socket (in calls, the leg's RTP socket in `media::call`).
//!
//! Why str0m (sans-IO, a third of webrtc-rs's dependencies) is written in `docs/webrtc.md`.

pub mod leg;
#[cfg(test)]
mod tests;

pub use leg::{Agreed, AudioCodec, Datagram, LegEvent, WebRtcError, WebRtcLeg, TELEPHONE_EVENT_PT};
