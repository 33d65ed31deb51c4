//! redial — a SIP telephony agent with an embedded callback scheduler.
//!
//! # Layout
//! - [`app`]: the application core: book, scheduler, event bus, metrics, agents; what every adapter is handed.
//! - [`config`]: `redial.toml` and `sip-profiles/*.toml`, validated with every
//!   problem named by file and key.
//! - [`clock`]: the `Clock` trait; cores take time as an argument.
//! - [`e164`]: phone number rules.
//! - [`window`]: calling windows (`hours`) and their DST-correct arithmetic.
//! - [`events`]: the event bus: committed changes as typed, sequenced events.
//! - [`sip`]: the SIP stack — codec boundary over rsip, transports, the four
//!   RFC 3261 transaction machines, dialogs, digest auth, carrier
//!   registration and the agents' registrar. Sans-IO cores, tokio drivers.
//! - [`scheduler`]: the durable callback book — model, redb store with group
//!   commit, timer wheel, calling windows and rules.
//! - [`media`]: RTP/RTCP, G.711/Opus, SDP, DTMF, prompts.
//! - [`webrtc`]: browser agents' media legs (ICE-lite, DTLS-SRTP) on str0m.
//! - [`amd`]: answering-machine detection.
//! - [`agents`]: agent states, softphone registrations and reservations.
//! - [`dialler`]: due callbacks become calls: the two dial flows (sans-IO
//!   machines and their driver), outcomes, call limits.
//! - [`inbound`]: carriers' calls to DIDs: to an agent, or a callback offer
//!   (a sans-IO machine and its driver).
//! - [`metrics`]: in-memory counters and histograms, Prometheus text format.
//! - [`calls`]: what outbound and inbound calls share: call legs, ringing an
//!   agent, bridging, the held agent, the live-call table.
//! - [`ops`]: the callback and agent operations (scopes, visibility, audit)
//!   that the REST API and the console share.
//! - [`api`]: the HTTP API (axum), tokens, OpenAPI: an adapter over the core.
//! - [`console`]: the web console and agent workspace (server-rendered pages).
//! - [`codec`]: G.711 tables shared by media and AMD.
//! - [`detect`]: callback requests and promises found in a conversation.
//! - [`phone_tz`]: the timezone a phone number rings in.
//! - [`webhooks`]: signed POSTs of events to `[[webhooks]]` endpoints.
//! - [`cluster`]: cluster mode's shard leases, fencing and agent holds in PostgreSQL.
//! - [`cli`]: the `redial` command line.
//! - [`serve`]: wires the drivers together for `redial serve`.

pub mod agents;
pub mod app;
pub mod amd;
pub mod api;
pub mod calls;
pub mod cli;
pub mod cluster;
pub mod clock;
pub mod codec;
pub mod config;
pub mod console;
pub mod detect;
pub mod dialler;
pub mod e164;
pub mod events;
pub mod inbound;
pub mod media;
pub mod metrics;
pub mod ops;
pub mod phone_tz;
pub mod scheduler;
pub mod serve;
pub mod sip;
pub mod window;
pub mod webhooks;
pub mod webrtc;
