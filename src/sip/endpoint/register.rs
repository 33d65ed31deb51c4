//! REGISTER from agents' softphones: handed to the agents' [`Registrar`](crate::sip::registrar::Registrar)
//! (digest challenge, bindings), with the bindings view for the HTTP API kept in step.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rsip::headers::UntypedHeader;
use rsip::{Request, Response};

use super::{AgentBinding, AgentBindings};
use crate::config::Config;
use crate::sip::auth::DEFAULT_NONCE_LIFETIME;
use crate::sip::codec::headers::parse_name_addr;
use crate::sip::registrar::RegistrarEvent;
use crate::sip::Peer;

pub(super) struct Registrar {
    inner: crate::sip::registrar::Registrar<StdRng>,
    view: AgentBindings,
    /// Bumped after every change of `view`, so the agents' registry can follow
    /// (a `watch`: bursts of REGISTERs coalesce into one look).
    changes: tokio::sync::watch::Sender<u64>,
    /// `inner.poll_timeout()` (a scan of every binding), kept since the last change.
    deadline: Option<Instant>,
}

impl Registrar {
    pub(super) fn new(cfg: &Config, now: Instant, view: AgentBindings, changes: tokio::sync::watch::Sender<u64>) -> Self {
        let nonce_lifetime: Duration = DEFAULT_NONCE_LIFETIME;
        let inner = crate::sip::registrar::Registrar::new(
            &cfg.sip.realm,
            &cfg.sip.digest_algorithms,
            &cfg.agents,
            nonce_lifetime,
            now,
            StdRng::from_os_rng(),
        );
        Self { inner, view, changes, deadline: None }
    }

    pub(super) fn handle(&mut self, now: Instant, req: &Request, from: Peer) -> Response {
        let resp = self.inner.handle_register(now, req, from);
        if resp.status_code.code() == 200 {
            let agent = req
                .headers
                .iter()
                .find_map(|h| match h {
                    rsip::Header::To(t) => parse_name_addr(t.value(), "To").ok(),
                    _ => None,
                })
                .and_then(|na| na.uri.user().map(str::to_string));
            if let Some(agent) = agent {
                self.refresh_view(&agent, now);
            }
        }
        self.drain_events(now);
        self.deadline = self.inner.poll_timeout();
        resp
    }

    /// When `handle_timeout` is due (the next binding expiry).
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.drain_events(now);
        self.deadline = self.inner.poll_timeout();
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(ev) = self.inner.poll_event() {
            match ev {
                RegistrarEvent::AgentReachable { agent } => {
                    let contacts: Vec<String> = self.inner.contacts(&agent, now).into_iter().map(|b| b.uri).collect();
                    tracing::info!(agent = %agent, contacts = ?contacts, "agent registered");
                    self.refresh_view(&agent, now);
                }
                RegistrarEvent::AgentUnreachable { agent } => {
                    tracing::info!(agent = %agent, "agent unregistered");
                    self.refresh_view(&agent, now);
                }
            }
        }
    }

    fn refresh_view(&self, agent: &str, now: Instant) {
        let bindings: Vec<AgentBinding> = self
            .inner
            .contacts(agent, now)
            .into_iter()
            .map(|b| AgentBinding { contact: b.uri, expires_at: b.expires_at, source: b.source })
            .collect();
        {
            let mut view = self.view.write().expect("agent bindings lock");
            if bindings.is_empty() {
                view.remove(agent);
            } else {
                view.insert(agent.to_string(), bindings);
            }
        }
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }
}
