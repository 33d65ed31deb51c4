//! What every call redial handles shares, outbound (the dialler's flows)
//! and inbound alike:
//! - [`CallKit`]: the SIP call control, media, agents, prompts, book,
//!   metrics and clock a call uses.
//! - [`party`]: one call leg with its anchored media; bridging two.
//! - [`ring`]: ringing an agent's softphones, with the headers naming the call.
//! - [`hold`]: the agent a call holds (wrap-up after a conversation).
//! - [`live`]: the calls in progress, by interaction id.
//!
//! Booking a callback from a live call: `POST /v1/callbacks` with an
//! `interaction_id` asks [`LiveCalls::lookup`]; when it names a live call,
//! the call supplies the defaults (phone, queue, `owner: "me"` = its agent,
//! due in 30 min) and at most one active callback may be booked for it.
//! [`live::LiveCallTable`] is the implementation the calls fill;
//! [`NoLiveCalls`] is the one for a process without calls.

pub mod hold;
pub mod live;
pub mod party;
pub mod ring;
#[cfg(test)]
pub(crate) mod sim;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::agents::Registry;
use crate::clock::Clock;
use crate::config::Config;
use crate::media::call::{MediaEngine, Prompts};
use crate::metrics::Metrics;
use crate::scheduler::book::Book;
use crate::sip::calls::CallControl;
use crate::sip::endpoint::AgentBindings;
use crate::sip::Peer;

pub use live::{new_interaction_id, LiveCallTable};

/// Sleeps until `at`, or forever without a deadline: the timer branch of a
/// driver's `select!`.
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Everything a call uses, shared by every call.
pub struct CallKit {
    /// As started: what only a restart changes (addresses, media, SIP).
    pub cfg: Arc<Config>,
    /// As the last reload left it: queues and their profiles, read per attempt.
    pub live_cfg: crate::config::LiveConfig,
    pub book: Arc<dyn Book>,
    pub agents: Arc<Registry>,
    pub calls: CallControl,
    /// The agents' registered contacts.
    pub bindings: AgentBindings,
    pub media: MediaEngine,
    pub prompts: Arc<Prompts>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Our SIP address, the host of the From/Contact we send agents.
    pub sip_addr: SocketAddr,
    pub live: Arc<LiveCallTable>,
    /// Where the console serves (`http://<http address>`), for the agent's `Call-Info` link.
    pub console_url: String,
}

impl CallKit {
    /// The configuration now, and each of its profiles' proxies as a SIP peer.
    pub fn live(&self) -> (Arc<Config>, BTreeMap<String, Peer>) {
        let (cfg, addrs) = self.live_cfg.snapshot();
        let peers = peers(&cfg, &addrs);
        (cfg, peers)
    }
}

/// Each profile of `cfg` whose proxy resolved (in `addrs`), as a SIP peer: its
/// address and the profile's transport.
pub fn peers(cfg: &Config, addrs: &crate::config::ProxyAddrs) -> BTreeMap<String, Peer> {
    cfg.profiles.values().filter_map(|p| addrs.get(&p.name).map(|a| (p.name.clone(), Peer { addr: *a, transport: p.transport }))).collect()
}

/// A call in progress, as far as booking a callback needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCall {
    /// The customer's number (E.164).
    pub phone: String,
    /// The queue the call belongs to.
    pub queue: String,
    /// The agent on the call, if one is connected.
    pub agent: Option<String>,
}

/// Looks up live calls by interaction id. Called on the request path for
/// every create that carries an `interaction_id`: it must not block (a map
/// lookup under a short lock).
pub trait LiveCalls: Send + Sync {
    fn lookup(&self, interaction_id: &str) -> Option<LiveCall>;
}

/// No calls are live: every `interaction_id` is just stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLiveCalls;

impl LiveCalls for NoLiveCalls {
    fn lookup(&self, _: &str) -> Option<LiveCall> {
        None
    }
}
