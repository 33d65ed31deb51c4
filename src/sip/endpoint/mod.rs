//! The SIP endpoint: transports + transaction layer + UA core, driven on tokio.
//!
//! - `driver`: the run loop around the sans-IO [`TransactionLayer`](crate::sip::transaction::TransactionLayer):
//!   after each batch of input, drain `poll_transmit`/`poll_event`, then sleep until `poll_timeout`.
//! - `core`: dispatch of new server transactions to one handler per method:
//!   `options` (200 + Allow/Accept/Supported), `register` (the agents' registrar),
//!   `invite` (404 unknown user; known users' INVITEs become call legs, `sip::calls`), `message`
//!   (texts from carriers, RFC 3428), `in_dialog` (481 without a dialog), `unsupported` (501 + Allow).
//!   ACKs are absorbed; CANCEL gets 200/487 or 481.
//! - `trunks`: per-profile carrier registration and OPTIONS keep-alive, and the shared
//!   [`TrunkStates`] the HTTP API reads.
//! - `reply`: response building (§8.2.6).

mod core;
mod driver;
mod in_dialog;
mod invite;
pub mod message;
mod options;
mod register;
pub mod reply;
pub mod trunks;
mod unsupported;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use driver::SHUTDOWN_GRACE;
pub use message::IncomingText;
pub use trunks::{TrunkStates, TrunkStatus};

use crate::agents::saved::{survives_restart, Dirty, SavedBinding};
use crate::clock::Millis;
use crate::config::Config;
use crate::sip::calls::{CallControl, IncomingCall};
use crate::sip::stats::SipStats;
use crate::sip::transport::{TransportError, Transports};

/// Users redial answers for: agents' ids and trunks' DIDs.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    agents: HashSet<String>,
    dids: HashSet<String>,
}

impl Directory {
    pub fn from_config(cfg: &Config) -> Self {
        let mut dids = HashSet::new();
        for p in cfg.profiles.values() {
            dids.extend(p.dids.iter().cloned());
            // Carriers often send the DID without `+`.
            dids.extend(p.dids.iter().map(|d| d.trim_start_matches('+').to_string()));
        }
        let mut d = Self { agents: HashSet::new(), dids };
        d.set_agents(&cfg.agents);
        d
    }

    /// Replaces the agents (a configuration reload); the DIDs stay.
    pub fn set_agents(&mut self, agents: &[crate::config::Agent]) {
        self.agents = agents.iter().map(|a| a.id.clone()).collect();
    }

    pub fn knows(&self, user: &str) -> bool {
        self.agents.contains(user) || self.dids.contains(user)
    }
}

/// One contact an agent's softphone registered, as the HTTP API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBinding {
    /// The Contact URI as registered.
    pub contact: String,
    pub expires_at: std::time::Instant,
    /// Where the REGISTER came from (the address to reach a softphone behind NAT).
    pub source: crate::sip::Peer,
}

impl AgentBinding {
    /// Whole seconds left at `now`.
    pub fn expires_in(&self, now: std::time::Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }
}

/// Agents' live bindings by agent id, refreshed after every REGISTER the registrar handles.
pub type AgentBindings = Arc<RwLock<BTreeMap<String, Vec<AgentBinding>>>>;

/// Registrations an earlier process saved, to restore at start, and where the registrar
/// marks each agent whose bindings change from then on.
#[derive(Debug, Default)]
pub struct Saved {
    pub bindings: BTreeMap<String, Vec<SavedBinding>>,
    pub dirty: Dirty,
}

/// `agent`'s live bindings in `view` that a restarted process could reach again, with
/// wall-clock expiries (`wall_now` is the wall clock at `now`).
pub fn saved_bindings(view: &AgentBindings, agent: &str, now: std::time::Instant, wall_now: Millis) -> Vec<SavedBinding> {
    let view = view.read().expect("agent bindings lock");
    view.get(agent)
        .map(|v| {
            v.iter()
                .filter(|b| survives_restart(b.source.transport) && b.expires_at > now)
                .map(|b| SavedBinding {
                    contact: b.contact.clone(),
                    expires_at: wall_now + b.expires_at.saturating_duration_since(now).as_millis() as Millis,
                    source: b.source.addr,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// What `Endpoint::start` gives back: addresses and shared views, and the task to await.
pub struct EndpointHandle {
    pub local_addr: SocketAddr,
    /// The SIP-over-WebSocket listener (`sip.ws_listen`), when on.
    pub ws_addr: Option<SocketAddr>,
    /// The secure WebSocket listener (`sip.wss_listen`), when on.
    pub wss_addr: Option<SocketAddr>,
    /// The TLS listener's address, when `sip.tls_listen` is set.
    pub tls_addr: Option<SocketAddr>,
    pub trunks: TrunkStates,
    pub agents: AgentBindings,
    /// Changes whenever `agents` changed.
    pub agent_changes: watch::Receiver<u64>,
    /// Changes whenever a trunk's registered/up/last-error state changed.
    pub trunk_changes: watch::Receiver<u64>,
    pub transports: Transports,
    /// Places calls (and controls them through their [`Leg`](crate::sip::calls::Leg)s).
    pub calls: CallControl,
    /// Calls that arrived for our users (DIDs, agents). Take it to answer calls; while it is
    /// `None`-ed and dropped, or full, INVITEs get 480.
    pub incoming: Option<mpsc::Receiver<IncomingCall>>,
    /// Texts carriers delivered (inbound MESSAGE). Take it to accept texts; while it is
    /// `None`-ed and dropped they get 480, while full 503.
    pub texts: Option<mpsc::Receiver<IncomingText>>,
    /// Transaction counters for `/metrics`.
    pub stats: Arc<SipStats>,
    /// Each profile's proxy as resolved at start (or why it did not resolve).
    pub proxies: BTreeMap<String, Result<SocketAddr, String>>,
    /// Applies a reloaded configuration's agents.
    pub agents_reload: AgentsReload,
    task: JoinHandle<()>,
}

/// Hands a reloaded configuration to the endpoint. Agents: new agents can register,
/// changed passwords apply to the next challenge answered, removed agents lose their
/// bindings. Bindings of the agents that stay, and calls, are untouched.
#[derive(Debug, Clone)]
pub struct AgentsReload(mpsc::UnboundedSender<Reload>);

/// What a reload changes in the running endpoint.
#[derive(Debug)]
pub(super) enum Reload {
    Agents(Arc<Config>),
    /// The profiles of `cfg`, with their proxies resolved.
    Trunks(Arc<Config>, BTreeMap<String, Result<SocketAddr, String>>),
}

impl AgentsReload {
    pub fn apply(&self, cfg: Arc<Config>) {
        let _ = self.0.send(Reload::Agents(cfg));
    }

    /// Trunks follow `cfg`'s profiles: a new one starts registering and pinging, a
    /// removed one unregisters (REGISTER with Expires: 0) and stops, a changed one
    /// unregisters with its old settings, then registers with the new. Calls in
    /// progress through any of them go on.
    /// `proxies`: each of `cfg`'s profiles' proxy resolved ([`trunks::resolve_proxies`]).
    pub fn apply_trunks(&self, cfg: Arc<Config>, proxies: BTreeMap<String, Result<SocketAddr, String>>) {
        let _ = self.0.send(Reload::Trunks(cfg, proxies));
    }
}

impl EndpointHandle {
    /// Waits until the endpoint has stopped (after `shutdown` was signalled and trunks were
    /// unregistered, or the bounded wait ran out).
    pub async fn join(self) {
        let _ = self.task.await;
        self.transports.close();
    }
}

/// Inbound calls waiting for the TU; beyond this they get 480.
pub const INCOMING_CALLS: usize = 1024;

pub struct Endpoint;

impl Endpoint {
    /// Binds `cfg.sip.listen` (UDP and TCP), starts registering trunks, and serves until
    /// `shutdown` becomes `true`; then unregisters trunks (Expires: 0) and stops.
    pub async fn start(cfg: &Config, shutdown: watch::Receiver<bool>) -> Result<EndpointHandle, EndpointError> {
        Self::start_saved(cfg, shutdown, Saved::default()).await
    }

    /// As [`Endpoint::start`], with the agents' bindings `saved` by an earlier process
    /// restored before the first message is read.
    pub async fn start_saved(cfg: &Config, shutdown: watch::Receiver<bool>, saved: Saved) -> Result<EndpointHandle, EndpointError> {
        let (transports, incoming) = Transports::bind(cfg.sip.listen).await?;
        let ws_addr = match cfg.sip.ws_listen {
            Some(addr) => Some(transports.listen_ws(addr).await?),
            None => None,
        };
        let tls_addr = start_tls(cfg, &transports).await?;
        let wss_addr = match cfg.sip.wss_listen {
            Some(addr) => Some(transports.listen_wss(addr).await?),
            None => None,
        };
        // From here on `sip.tls_listen` is the bound address (port 0 picks one), which
        // Via and Contact over TLS advertise.
        let mut bound = cfg.clone();
        bound.sip.tls_listen = tls_addr;
        let cfg = &bound;
        let trunks: TrunkStates = Arc::default();
        let agents: AgentBindings = Arc::default();
        let local_addr = transports.local_addr();
        let proxies = trunks::resolve_proxies(cfg).await;
        for p in cfg.profiles.values().filter(|p| p.transport == crate::config::Transport::Tls) {
            if let Some(Ok(addr)) = proxies.get(&p.name) {
                transports.set_tls_name(*addr, &p.proxy_host);
            }
        }
        let (changes_tx, agent_changes) = watch::channel(0u64);
        let (trunk_changes_tx, trunk_changes) = watch::channel(0u64);
        let (calls, commands) = CallControl::new();
        let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_CALLS);
        let (texts_tx, texts_rx) = mpsc::channel(message::INCOMING_TEXTS);
        let stats = Arc::new(SipStats::new());
        let (reload, reloads) = mpsc::unbounded_channel();
        let driver = driver::Driver::new(
            cfg,
            transports.clone(),
            &proxies,
            (trunks.clone(), trunk_changes_tx),
            agents.clone(),
            changes_tx,
            driver::CallsWiring { control: calls.clone(), commands, incoming: incoming_tx, texts: texts_tx, stats: stats.clone() },
            saved,
            reloads,
        );
        let task = tokio::spawn(driver.run(incoming, shutdown));
        Ok(EndpointHandle {
            local_addr,
            ws_addr,
            wss_addr,
            tls_addr,
            trunks,
            agents,
            agent_changes,
            trunk_changes,
            transports,
            calls,
            incoming: Some(incoming_rx),
            texts: Some(texts_rx),
            stats,
            proxies,
            agents_reload: AgentsReload(reload),
            task,
        })
    }
}

/// Enables TLS when `sip.tls_listen`, `[tls]` or a `transport = "tls"` profile asks for
/// it; returns the TLS listener's address.
async fn start_tls(cfg: &Config, transports: &Transports) -> Result<Option<SocketAddr>, TransportError> {
    let wanted = cfg.sip.tls_listen.is_some()
        || cfg.tls != crate::config::TlsConfig::default()
        || cfg.profiles.values().any(|p| p.transport == crate::config::Transport::Tls);
    if !wanted {
        return Ok(None);
    }
    let configs = crate::sip::transport::tls::TlsConfigs::load(&cfg.tls)?;
    transports.enable_tls(configs, cfg.sip.tls_listen).await
}

#[cfg(test)]
mod tests;
