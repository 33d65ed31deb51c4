//! REGISTER from agents' softphones: handed to the agents' [`Registrar`](crate::sip::registrar::Registrar)
//! (digest challenge, bindings, the guard against guessing), with the bindings view for the
//! HTTP API kept in step.
//!
//! The guard's work on the driver side: requests from blocked sources and from well-known
//! scanners are screened out before they become transactions ([`Registrar::screen`]); answers
//! the guard holds wait here until due ([`Registrar::poll_held`]); every failure is logged as
//! `auth failure: source=<ip> user=<name>` (one line a fail2ban filter can match) and counted.

use std::collections::{BinaryHeap, HashMap};
use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use rsip::headers::UntypedHeader;
use rsip::{Request, Response, SipMessage};

use super::{AgentBinding, AgentBindings, Saved};
use crate::config::{Config, GuardConfig};
use crate::sip::registrar::{to_user, Answer, Penalty, RegistrarEvent};
use crate::sip::stats::{AuthCounter, SipStats};
use crate::sip::transaction::TransactionKey;
use crate::sip::Peer;

/// A held answer: due time, then an insertion number for a stable order.
struct Held {
    at: Instant,
    seq: u64,
    key: TransactionKey,
    resp: Response,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

pub(super) struct Registrar {
    inner: crate::sip::registrar::Registrar<StdRng>,
    view: AgentBindings,
    /// Bumped when the agents' registry must look again (a `watch`: bursts coalesce).
    changes: tokio::sync::watch::Sender<u64>,
    /// Per agent, the earliest binding expiry the registry was last told about. A refresh
    /// that keeps the same contacts is not announced while this is still at least half
    /// the new lifetime away; instead a re-announcement is scheduled [`ANNOUNCE_MARGIN`]
    /// before it (`recheck`), so the registry never sees a live agent lapse.
    announced: HashMap<String, Instant>,
    /// (when, agent, the expiry announced when it was scheduled), earliest first.
    recheck: BinaryHeap<Reverse<(Instant, String, Instant)>>,
    /// The expiry each agent's pending recheck was scheduled for (one per agent).
    scheduled: HashMap<String, Instant>,
    /// Answers the guard holds, earliest first; at most `sip.guard.max_tracked`.
    held: BinaryHeap<Reverse<Held>>,
    held_seq: u64,
    max_held: usize,
    guard: GuardConfig,
    stats: Arc<SipStats>,
    /// Agents whose bindings changed, for the write-behind of saved registrations.
    saved: crate::agents::saved::Dirty,
}

impl Registrar {
    pub(super) fn new(cfg: &Config, now: Instant, view: AgentBindings, changes: tokio::sync::watch::Sender<u64>, stats: Arc<SipStats>) -> Self {
        let inner = crate::sip::registrar::Registrar::from_config(cfg, now, StdRng::from_os_rng());
        Self {
            inner,
            view,
            changes,
            announced: HashMap::new(),
            recheck: BinaryHeap::new(),
            scheduled: HashMap::new(),
            held: BinaryHeap::new(),
            held_seq: 0,
            max_held: cfg.sip.guard.max_tracked,
            guard: cfg.sip.guard.clone(),
            stats,
            saved: Default::default(),
        }
    }

    /// Puts back the bindings saved by an earlier process (wall-clock expiries at
    /// `wall_now`), and from now on marks every agent whose bindings change in
    /// `saved.dirty`. An agent with a saved binding that was not put back (expired, or
    /// the agent was removed) is marked, so the next write deletes it.
    pub(super) fn restore(&mut self, now: Instant, wall_now: crate::clock::Millis, saved: Saved) {
        let mut kept = 0;
        let mut partly = Vec::new();
        for (agent, list) in saved.bindings {
            let n = list.len();
            let mut kept_here = 0;
            for b in list {
                let left = std::time::Duration::from_millis(b.expires_at.saturating_sub(wall_now).max(0) as u64);
                let source = crate::sip::Peer { addr: b.source, transport: crate::config::Transport::Udp };
                kept_here += usize::from(self.inner.restore(now, &agent, b.contact, now + left, source));
            }
            kept += kept_here;
            if kept_here < n {
                partly.push(agent);
            }
        }
        // Marking starts after the restored agents are in the view: what was put back
        // is what is saved already.
        self.drain_events(now);
        self.saved = saved.dirty;
        for agent in partly {
            self.saved.mark(&agent);
        }
        if kept > 0 {
            tracing::info!(bindings = kept, agents = self.inner.registered_agents(now).len(), "saved registrations restored");
        }
    }

    /// Whether to drop `msg` from `from` before it becomes a transaction: a request whose
    /// User-Agent names a known scanner (`sip.guard.drop_scanners`), or a REGISTER from a
    /// blocked source.
    pub(super) fn screen(&self, now: Instant, msg: &SipMessage, from: &Peer) -> bool {
        let SipMessage::Request(req) = msg else { return false };
        if self.guard.drop_scanners && is_scanner(req, &self.guard.scanner_agents) {
            self.stats.auth(AuthCounter::Scanner);
            tracing::debug!(source = %from.addr.ip(), "scanner dropped");
            return true;
        }
        if req.method == rsip::Method::Register && self.inner.guard().source_blocked(now, from.addr.ip()) {
            self.stats.auth(AuthCounter::Dropped);
            return true;
        }
        false
    }

    /// The answer to send now, if any (a held one comes out of [`Registrar::poll_held`]).
    pub(super) fn handle(&mut self, now: Instant, key: &TransactionKey, req: &Request, from: Peer) -> Option<Response> {
        let answer = self.inner.register(now, req, from);
        self.drain_events(now);
        match answer {
            Answer::Now(resp) => {
                if resp.status_code.code() == 200 {
                    if let Some(agent) = to_user(req) {
                        self.refresh_view(&agent, now);
                    }
                }
                Some(resp)
            }
            Answer::Hold(resp, at) if self.held.len() < self.max_held => {
                self.held_seq += 1;
                self.held.push(Reverse(Held { at, seq: self.held_seq, key: key.clone(), resp }));
                None
            }
            // Bounded: beyond max_held, the answer goes at once (the block still comes).
            Answer::Hold(resp, _) => Some(resp),
            Answer::Drop => None,
        }
    }

    /// Replaces the agents (a configuration reload); removed agents' bindings end now.
    pub(super) fn set_agents(&mut self, now: Instant, agents: &[crate::config::Agent]) {
        self.inner.set_agents(agents);
        self.drain_events(now);
    }

    /// A connection-oriented peer (a browser's WebSocket) went away: its bindings end now.
    pub(super) fn connection_closed(&mut self, now: Instant, source: Peer) {
        let agents = self.inner.connection_closed(now, source);
        self.drain_events(now);
        for agent in agents {
            tracing::info!(agent = %agent, peer = %source.addr, "binding ended with its connection");
            self.refresh_view(&agent, now);
        }
    }

    /// A held answer that is due at `now`.
    pub(super) fn poll_held(&mut self, now: Instant) -> Option<(TransactionKey, Response)> {
        if self.held.peek().is_some_and(|Reverse(h)| h.at <= now) {
            let Reverse(h) = self.held.pop()?;
            return Some((h.key, h.resp));
        }
        None
    }

    /// When `handle_timeout` or `poll_held` is due (the next binding expiry or held answer).
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let held = self.held.peek().map(|Reverse(h)| h.at);
        let recheck = self.recheck.peek().map(|Reverse((at, _, _))| *at);
        [self.inner.poll_timeout(), held, recheck].into_iter().flatten().min()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if self.inner.poll_timeout().is_some_and(|at| at <= now) {
            self.inner.handle_timeout(now);
            self.drain_events(now);
        }
        while self.recheck.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
            let Some(Reverse((_, agent, for_expiry))) = self.recheck.pop() else { break };
            if self.scheduled.get(&agent) == Some(&for_expiry) {
                self.scheduled.remove(&agent);
                // Still what the registry knows: announce the refreshed expiry now.
                if self.announced.get(&agent) == Some(&for_expiry) {
                    self.announced.remove(&agent);
                    self.refresh_view(&agent, now);
                }
            }
        }
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
                RegistrarEvent::AuthFailure { source, user, penalty } => {
                    // One stable line per failure, for fail2ban-style filters.
                    tracing::warn!("auth failure: source={source} user={}", log_safe(&user));
                    self.stats.auth(AuthCounter::Failure);
                    match penalty {
                        Penalty::None => {}
                        Penalty::Hold(_) => self.stats.auth(AuthCounter::Delayed),
                        Penalty::Block => {
                            tracing::warn!("auth blocked: source={source} user={}", log_safe(&user));
                            self.stats.auth(AuthCounter::Blocked);
                        }
                    }
                }
                RegistrarEvent::Blocked { .. } => self.stats.auth(AuthCounter::Dropped),
            }
        }
    }

    /// Writes `agent`'s live bindings into the view, and tells the registry when it must
    /// look: contacts or sources changed, or the expiry it knows is less than half the new
    /// lifetime away.
    fn refresh_view(&mut self, agent: &str, now: Instant) {
        let bindings: Vec<AgentBinding> = self
            .inner
            .contacts(agent, now)
            .into_iter()
            .map(|b| AgentBinding { contact: b.uri, expires_at: b.expires_at, source: b.source })
            .collect();
        let earliest = bindings.iter().map(|b| b.expires_at).min();
        self.saved.mark(agent);
        let announce = {
            let mut view = self.view.write().expect("agent bindings lock");
            let same_contacts = view.get(agent).is_some_and(|old| {
                old.len() == bindings.len() && old.iter().zip(&bindings).all(|(a, b)| a.contact == b.contact && a.source == b.source)
            });
            let fresh_enough = match (self.announced.get(agent), earliest) {
                (Some(&known), Some(new)) => known.saturating_duration_since(now) >= new.saturating_duration_since(now) / 2,
                _ => false,
            };
            if bindings.is_empty() {
                view.remove(agent);
            } else {
                view.insert(agent.to_string(), bindings);
            }
            !(same_contacts && fresh_enough)
        };
        if !announce {
            if let Some(&known) = self.announced.get(agent) {
                if self.scheduled.get(agent) != Some(&known) {
                    self.scheduled.insert(agent.to_string(), known);
                    let at = known.checked_sub(ANNOUNCE_MARGIN).unwrap_or(known).max(now);
                    self.recheck.push(Reverse((at, agent.to_string(), known)));
                }
            }
        }
        if announce {
            match earliest {
                Some(e) => {
                    self.announced.insert(agent.to_string(), e);
                }
                None => {
                    self.announced.remove(agent);
                }
            }
            self.changes.send_modify(|g| *g = g.wrapping_add(1));
        }
    }
}

/// How long before the expiry the registry knows a skipped refresh is announced after all.
const ANNOUNCE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a User-Agent header of `req` contains one of `agents` (lower-case), ignoring case.
fn is_scanner(req: &Request, agents: &[String]) -> bool {
    req.headers.iter().any(|h| match h {
        rsip::Header::UserAgent(ua) => {
            let v = ua.value().to_ascii_lowercase();
            agents.iter().any(|a| v.contains(a.as_str()))
        }
        _ => false,
    })
}

/// A user name as one log token: printable ASCII without spaces or `=`, at most 64 characters.
fn log_safe(user: &str) -> String {
    let s: String = user.chars().take(64).map(|c| if c.is_ascii_graphic() && c != '=' { c } else { '?' }).collect();
    if s.is_empty() { "-".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_keeps_one_token() {
        assert_eq!(log_safe("alice"), "alice");
        assert_eq!(log_safe("a b=c\nd"), "a?b?c?d");
        assert_eq!(log_safe(""), "-");
        assert_eq!(log_safe(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn scanners_are_recognised_by_user_agent() {
        let agents: Vec<String> = crate::config::guard::DEFAULT_SCANNER_AGENTS.iter().map(|s| s.to_ascii_lowercase()).collect();
        let req = |ua: &str| -> Request {
            let text = format!(
                "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n{ua}Content-Length: 0\r\n\r\n"
            );
            Request::try_from(text.as_bytes()).unwrap()
        };
        assert!(is_scanner(&req("User-Agent: friendly-scanner\r\n"), &agents));
        assert!(is_scanner(&req("User-Agent: SIPVicious 0.3\r\n"), &agents));
        assert!(is_scanner(&req("User-Agent: VaxSIPUserAgent/3.1\r\n"), &agents));
        assert!(!is_scanner(&req("User-Agent: baresip v3\r\n"), &agents));
        assert!(!is_scanner(&req(""), &agents));
    }
}
