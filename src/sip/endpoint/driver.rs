//! The tokio run loop around the sans-IO cores (STYLE.md §1).
//!
//! Inputs: decoded messages from the transports, the shutdown signal, and timers. After
//! each batch of input the loop drains every core's `poll_transmit`/`poll_event` until
//! all are empty, then sleeps until the earliest `poll_timeout`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsip::SipMessage;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::core::{self, Decision};
use super::message::{self, IncomingText};
use super::register::Registrar;
use super::trunks::Trunks;
use super::{AgentBindings, Directory, TrunkStates};
use crate::clock::Clock as _;
use crate::config::Config;
use crate::sip::calls::table::Ctx;
use crate::sip::calls::{CallControl, Calls, Command, IncomingCall};
use crate::sip::overload::{Gate, Load, Overload};
use crate::sip::stats::{Outcome, SipStats};
use crate::sip::codec::via;
use crate::config::Transport;
use crate::sip::transaction::message::{branch_of, top_via};
use crate::sip::transaction::{Role, TransactionEvent, TransactionKey, TransactionLayer, Transmit};
use crate::sip::transport::{Incoming, Transports};

/// How long shutdown waits for trunks' un-REGISTERs to be answered.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Messages taken from the transports before the cores are drained.
const BATCH: usize = 256;
/// A run-loop step (one batch of input and the draining of the cores after it) longer than
/// this is logged at debug level, target `redial::sip::stall`, with what it did: the endpoint
/// answers on one task, so a slow step is a stall every sender sees.
const SLOW_STEP: Duration = Duration::from_millis(20);

/// One step of the run loop being timed: what woke it, when, and the live transactions then.
#[derive(Debug, Clone, Copy)]
struct Step {
    what: &'static str,
    started: Instant,
    items: usize,
    transactions: usize,
}

/// The channels between the call handles and the endpoint task, and the shared counters.
pub(super) struct CallsWiring {
    pub control: CallControl,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub incoming: mpsc::Sender<IncomingCall>,
    /// Texts from carriers (inbound MESSAGE).
    pub texts: mpsc::Sender<IncomingText>,
    pub stats: Arc<SipStats>,
}

pub(super) struct Driver {
    layer: TransactionLayer,
    transports: Transports,
    dir: Directory,
    registrar: Registrar,
    trunks: Trunks,
    calls: Calls,
    commands: mpsc::UnboundedReceiver<Command>,
    stats: Arc<SipStats>,
    /// Client transactions whose final response was counted (2xx retransmissions are not).
    counted: HashSet<TransactionKey>,
    overload: Overload,
    /// The overload and backlog states as the UDP receive tasks read them.
    gate: Arc<Gate>,
    /// Reloaded configurations, whose agents apply at once.
    reloads: mpsc::UnboundedReceiver<super::Reload>,
    /// Carrier source IP → profile: where an inbound MESSAGE may come from.
    carriers: HashMap<IpAddr, String>,
    texts: mpsc::Sender<IncomingText>,
    /// The step being timed, closed after the cores are drained.
    step: Option<Step>,
    /// The longest step since the last overload sample (reported when the state changes).
    longest_step: Duration,
}

impl Driver {
    pub(super) fn new(
        cfg: &Config,
        transports: Transports,
        proxies: &BTreeMap<String, Result<SocketAddr, String>>,
        trunk_states: (TrunkStates, watch::Sender<u64>),
        agents: AgentBindings,
        agent_changes: watch::Sender<u64>,
        calls: CallsWiring,
        saved: super::Saved,
        reloads: mpsc::UnboundedReceiver<super::Reload>,
    ) -> Self {
        let now = Instant::now();
        let local = transports.local_addr();
        let mut registrar = Registrar::new(cfg, now, agents, agent_changes, calls.stats.clone());
        let scanners = if cfg.sip.guard.drop_scanners { cfg.sip.guard.scanner_agents.clone() } else { Vec::new() };
        let gate = Arc::new(Gate::new(&cfg.sip.overload, calls.stats.clone()).with_scanners(scanners));
        transports.set_gate(gate.clone());
        registrar.restore(now, crate::clock::SystemClock.now_ms(), saved);
        Self {
            layer: TransactionLayer::new(cfg.sip.timers),
            dir: Directory::from_config(cfg),
            registrar,
            trunks: Trunks::new(cfg, local, now, proxies, trunk_states.0, trunk_states.1),
            calls: Calls::new(cfg, local, calls.control, calls.incoming),
            commands: calls.commands,
            stats: calls.stats,
            counted: HashSet::new(),
            overload: Overload::new(cfg.sip.overload.clone()),
            gate,
            reloads,
            carriers: message::carriers(proxies),
            texts: calls.texts,
            transports,
            step: None,
            longest_step: Duration::ZERO,
        }
    }

    pub(super) async fn run(self, incoming: mpsc::Receiver<Incoming>, shutdown: watch::Receiver<bool>) {
        let span = tracing::info_span!("sip_endpoint", local = %self.transports.local_addr());
        self.run_inner(incoming, shutdown).instrument(span).await
    }

    async fn run_inner(mut self, mut incoming: mpsc::Receiver<Incoming>, mut shutdown: watch::Receiver<bool>) {
        let mut stop_by: Option<Instant> = None;
        let mut closed = self.transports.take_closed();
        loop {
            let now = Instant::now();
            self.pump(now);
            if let Some(step) = self.step.take() {
                self.step_done(step, incoming.len());
            }
            if let Some(deadline) = stop_by {
                if now >= deadline || (self.trunks.all_unregistered() && self.calls.leg_count() == 0) {
                    tracing::info!(unregistered = self.trunks.all_unregistered(), calls_left = self.calls.leg_count(), "SIP endpoint stopped");
                    return;
                }
            }
            let wake = [
                self.layer.poll_timeout(),
                self.trunks.poll_timeout(),
                self.registrar.poll_timeout(),
                self.calls.poll_timeout(),
                stop_by,
            ]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = shutdown.changed(), if stop_by.is_none() => {
                    if r.is_err() || *shutdown.borrow() {
                        tracing::info!("SIP endpoint stopping: hanging up calls, unregistering trunks");
                        stop_by = Some(now + SHUTDOWN_GRACE);
                        self.trunks.unregister_all(now);
                        self.calls.hangup_all(&mut Ctx { now, layer: &mut self.layer, stats: &self.stats });
                    }
                }
                Some(c) = self.commands.recv() => {
                    let now = Instant::now();
                    let mut cx = Ctx { now, layer: &mut self.layer, stats: &self.stats };
                    self.calls.handle_command(&mut cx, c);
                    for _ in 1..BATCH {
                        match self.commands.try_recv() {
                            Ok(c) => self.calls.handle_command(&mut cx, c),
                            Err(_) => break,
                        }
                    }
                }
                m = incoming.recv() => {
                    let Some(m) = m else { return };
                    let now = Instant::now();
                    let mut step = Step { what: "messages", started: now, items: 1, transactions: self.layer.len() };
                    if self.overload.sample_due(now) {
                        let load = Load {
                            transactions: self.layer.pending(),
                            kept_bytes: self.layer.kept_bytes(),
                            call_setups: self.calls.setup_count(),
                            queued: incoming.len(),
                        };
                        if let Some(on) = self.overload.sample(now, load) {
                            tracing::warn!(
                                overloaded = on,
                                transactions = load.transactions,
                                kept_bytes = load.kept_bytes,
                                call_setups = load.call_setups,
                                queued = load.queued,
                                longest_step_ms = self.longest_step.as_millis() as u64,
                                "SIP overload state changed"
                            );
                            self.stats.set_overloaded(on);
                            self.gate.set_overloaded(on);
                        }
                        self.longest_step = Duration::ZERO;
                    }
                    // The first message of a batch is the one that waited longest.
                    let waited = now.saturating_duration_since(m.received);
                    let queued = incoming.len();
                    if let Some(on) = self.overload.waited(waited, queued) {
                        tracing::debug!(backlogged = on, waited_ms = waited.as_millis() as u64, queued, "SIP receive backlog changed");
                        self.gate.set_backlogged(on);
                    }
                    if !self.registrar.screen(now, &m.msg, &m.from) {
                        self.layer.handle_message(now, m.msg, m.from);
                    }
                    for _ in 1..BATCH {
                        match incoming.try_recv() {
                            Ok(m) if self.registrar.screen(now, &m.msg, &m.from) => {}
                            Ok(m) => self.layer.handle_message(now, m.msg, m.from),
                            Err(_) => break,
                        }
                        step.items += 1;
                    }
                    self.fire_timers(now);
                    self.step = Some(step);
                }
                Some(reload) = self.reloads.recv() => match reload {
                    super::Reload::Agents(cfg) => {
                        self.registrar.set_agents(Instant::now(), &cfg.agents);
                        self.dir.set_agents(&cfg.agents);
                    }
                    super::Reload::Trunks(cfg, proxies) => {
                        // Shutting down: the trunks are unregistering already.
                        if stop_by.is_none() {
                            self.trunks.reload(&cfg, self.transports.local_addr(), Instant::now(), &proxies);
                            self.carriers = message::carriers(&proxies);
                        }
                    }
                },
                Some(peer) = async { match closed.as_mut() { Some(c) => c.recv().await, None => std::future::pending().await } } => {
                    self.registrar.connection_closed(Instant::now(), peer);
                    self.calls.connection_closed(peer);
                }
                _ = sleep => {
                    let now = Instant::now();
                    let transactions = self.layer.len();
                    let ended = self.fire_timers(now);
                    self.step = Some(Step { what: "timers", started: now, items: ended, transactions });
                }
            }
        }
    }

    /// Fires every core's due timers; returns the transactions that ended. Called when the
    /// loop wakes for a timer and after every batch of messages: the loop prefers input, so
    /// under steady load it might not wake for timers for seconds, and Timer J would then end
    /// a second's worth of transactions (tens of thousands) in one step instead of a few
    /// hundred per batch.
    fn fire_timers(&mut self, now: Instant) -> usize {
        // Every core ignores a timeout that is not due yet.
        let transactions = self.layer.len();
        if self.layer.poll_timeout().is_some_and(|at| at <= now) {
            self.layer.handle_timeout(now);
        }
        let ended = transactions.saturating_sub(self.layer.len());
        if self.trunks.poll_timeout().is_some_and(|at| at <= now) {
            self.trunks.handle_timeout(now);
        }
        if self.calls.poll_timeout().is_some_and(|at| at <= now) {
            self.calls.handle_timeout(&mut Ctx { now, layer: &mut self.layer, stats: &self.stats });
        }
        if self.registrar.poll_timeout().is_some_and(|at| at <= now) {
            self.registrar.handle_timeout(now);
            let mut cx = Ctx { now, layer: &mut self.layer, stats: &self.stats };
            while let Some((key, resp)) = self.registrar.poll_held(now) {
                cx.respond(&key, resp);
            }
        }
        ended
    }

    /// Closes a timed step: keeps the longest, and logs a slow one with what it did
    /// (`items`: messages taken, or transactions ended by timers).
    fn step_done(&mut self, step: Step, queued: usize) {
        let took = step.started.elapsed();
        self.longest_step = self.longest_step.max(took);
        if took >= SLOW_STEP {
            tracing::debug!(
                target: "redial::sip::stall",
                step = step.what,
                took_ms = took.as_millis() as u64,
                items = step.items,
                transactions_before = step.transactions,
                transactions = self.layer.len(),
                kept_bytes = self.layer.kept_bytes(),
                queued,
                "slow SIP endpoint step"
            );
        }
    }

    /// Drains every core until nothing is left to send or report.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some((req, to, trunk)) = self.trunks.poll_request(now) {
                progressed = true;
                match self.layer.send_request(now, req, to) {
                    Ok(key) => self.trunks.started(trunk, key),
                    Err(e) => tracing::warn!(error = %e, trunk = %trunk, "cannot start client transaction"),
                }
            }
            while let Some(ev) = self.layer.poll_event() {
                progressed = true;
                self.on_event(now, ev);
            }
            while let Some(t) = self.layer.poll_transmit() {
                progressed = true;
                self.transmit(t);
            }
            if !progressed {
                return;
            }
        }
    }

    fn transmit(&mut self, t: Transmit) {
        let to = match &t.message {
            // §18.2.2: UDP responses go where the top Via (received/rport) says; TCP ones
            // on the request's connection, or to the Via sent-by once it closed.
            SipMessage::Response(r) => via::response_peer(r, t.to, |a| self.transports.has_connection(t.to.transport, a)),
            SipMessage::Request(_) => t.to,
        };
        let sent = match t.wire {
            Some(wire) => self.transports.send_bytes(to, wire.to_vec()),
            None => self.transports.send(to, &t.message),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, to = %to.addr, "send failed");
            // A WebSocket peer is reachable only on its own connection (RFC 7118 §5.3): once
            // that is gone the request's transaction fails now (§17.1.4), not at Timer B/F.
            if let (SipMessage::Request(req), Transport::Ws) = (&t.message, to.transport) {
                if let Some(branch) = top_via(&req.headers).ok().as_ref().and_then(branch_of) {
                    self.layer.report_transport_error(&TransactionKey::client(branch, req.method));
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, ev: TransactionEvent) {
        let mut cx = Ctx { now, layer: &mut self.layer, stats: &self.stats };
        match ev {
            TransactionEvent::Request { key, request, from } => {
                let call_id = crate::sip::transaction::message::call_id_of(&request.headers);
                let _span = tracing::debug_span!("sip_request", call_id = %call_id, method = %request.method).entered();
                let new_work = request.method == rsip::Method::Register || (request.method == rsip::Method::Invite && !core::in_dialog(&request));
                if new_work {
                    let refused = if request.method == rsip::Method::Invite { self.overload.refuse_invite() } else { self.overload.refuse() };
                    if let Some(secs) = refused {
                        self.stats.overload_refused();
                        let mut r = super::reply::reply(&request, 503);
                        r.headers.push(rsip::Header::RetryAfter(<rsip::headers::RetryAfter as rsip::headers::UntypedHeader>::new(secs.to_string())));
                        cx.respond(&key, r);
                        return;
                    }
                }
                let resp = match core::dispatch(&request, &self.dir) {
                    Decision::Respond(r) => r,
                    Decision::Register => match self.registrar.handle(now, &key, &request, from) {
                        Some(r) => r,
                        None => return,
                    },
                    Decision::Invite => return self.calls.on_invite(&mut cx, key, request, from),
                    Decision::InDialog => return self.calls.on_in_dialog(&mut cx, key, request),
                    Decision::Message => message::handle(&request, &from, &self.carriers, Some(&self.texts)),
                };
                tracing::debug!(status = resp.status_code.code(), peer = %core::peer_str(&from), "answered");
                cx.respond(&key, resp);
            }
            TransactionEvent::Cancel { key, target, request, .. } => {
                core::cancel(&mut cx, &key, target.as_ref(), &request);
                if let Some(t) = &target {
                    self.calls.on_cancelled(t);
                }
            }
            TransactionEvent::Response { key, response } => {
                let code = response.status_code.code();
                if code >= 200 && self.counted.insert(key.clone()) {
                    self.stats.record(Role::Client, &key.method(), Outcome::Status(code));
                }
                if self.calls.owns(&key) {
                    self.calls.on_response(&mut cx, &key, response);
                } else {
                    self.trunks.on_response(now, &key, response);
                }
            }
            TransactionEvent::Timeout { key } => {
                self.failure(now, &key, Outcome::Timeout, 408);
            }
            TransactionEvent::TransportError { key } => {
                self.failure(now, &key, Outcome::TransportError, 503);
            }
            TransactionEvent::Terminated { key } => {
                self.counted.remove(&key);
                self.calls.forget_txn(&key);
                self.trunks.forget(&key);
            }
            TransactionEvent::Ack { request, .. } => self.calls.on_ack(&request),
            TransactionEvent::StrayResponse { response, .. } => self.calls.on_stray(&mut cx, &response),
        }
    }

    /// Timer B/F/H or a transport error: counted, then told to the leg or trunk it belongs to.
    fn failure(&mut self, now: Instant, key: &TransactionKey, outcome: Outcome, status: u16) {
        // A server transaction was counted by the final response the core sent.
        if key.role() == Role::Client {
            self.stats.record(Role::Client, &key.method(), outcome);
        }
        let mut cx = Ctx { now, layer: &mut self.layer, stats: &self.stats };
        if !self.calls.on_failure(&mut cx, key, status) {
            self.trunks.on_failure(now, key);
        }
    }
}
