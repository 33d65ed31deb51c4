//! The SIP stack (RFC 3261).
//!
//! - [`codec`]: parsing/serialising over rsip, and the headers rsip gets wrong.
//! - [`transport`]: UDP and TCP on one address.
//! - [`transaction`]: the four §17 machines and the matching layer (sans-IO).
//! - [`dialog`]: §12 dialogs, in-dialog requests, CANCEL.
//! - [`auth`]: digest authentication, client and server.
//! - [`registration`]: carrier REGISTER client per profile.
//! - [`keepalive`]: OPTIONS pings per trunk.
//! - [`registrar`]: the agents' registrar.
//! - [`calls`]: call legs (outbound and inbound INVITE sessions) run by the endpoint.
//! - [`stats`]: transaction counters for `/metrics`.
//! - [`endpoint`]: the tokio driver tying them together.

pub mod auth;
pub mod calls;
pub mod codec;
pub mod dialog;
pub mod endpoint;
pub mod keepalive;
pub mod overload;
pub mod registrar;
pub mod registration;
pub mod stats;
pub mod transaction;
pub mod transport;

use std::net::SocketAddr;

pub use crate::config::Transport;

/// How redial names itself in User-Agent (requests) and Server (responses)
/// headers, RFC 3261 §20.35, §20.41.
pub const USER_AGENT: &str = concat!("redial/", env!("CARGO_PKG_VERSION"));

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
}
