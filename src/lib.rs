//! redial — a SIP telephony agent with an embedded callback scheduler.
//!
//! # Layout
//! - [`config`]: `redial.toml` and `sip-profiles/*.toml`, validated with every
//!   problem named by file and key.
//! - [`clock`]: the `Clock` trait; cores take time as an argument.
//! - [`e164`]: phone number rules.
//! - [`events`]: the event bus: committed changes as typed, sequenced events.
//! - [`sip`]: the SIP stack — codec boundary over rsip, transports, the four
//!   RFC 3261 transaction machines, dialogs, digest auth, carrier
//!   registration and the agents' registrar. Sans-IO cores, tokio drivers.
//! - [`scheduler`]: the durable callback book — model, redb store with group
//!   commit, timer wheel, calling windows and rules.
//! - [`media`]: RTP/RTCP, G.711/Opus, SDP, DTMF, prompts.
//! - [`amd`]: answering-machine detection.
//! - [`agents`]: agent states, softphone registrations and reservations.
//! - [`dialler`]: due callbacks become calls: the two dial flows, outcomes,
//!   bridging, call limits.
//! - [`inbound`]: carriers' calls to DIDs: to an agent, or a callback offer.
//! - [`api`]: the HTTP API (axum), tokens, metrics, OpenAPI.
//! - [`cli`]: the `redial` command line.
//! - [`serve`]: wires the drivers together for `redial serve`.

pub mod agents;
pub mod amd;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod detect;
pub mod dialler;
pub mod e164;
pub mod events;
pub mod inbound;
pub mod media;
pub mod phone_tz;
pub mod scheduler;
pub mod serve;
pub mod sip;
