//! The legs of one endpoint: their states and the maps that find a leg from a message
//! (transaction key, dialog id), and the helpers every kind of leg uses.
//!
//! Sans-IO like the transaction layer it drives: the endpoint task hands it transaction
//! events, commands and the time; it answers through the [`TransactionLayer`] and reports to
//! each leg's event channel (an unbounded send, which never blocks).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use rand::SeedableRng;
use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response, SipMessage, StatusCode};
use tokio::sync::mpsc;

use super::{CallControl, Command, Credentials, IncomingCall, LegEvent, LegId};
use crate::sip::auth::client::{set_auth_headers, ClientError, DigestClient};
use crate::config::{Config, SipTimers};
use crate::sip::dialog::{DialogId, Dialogs, Uas2xxRetransmitter};
use crate::sip::endpoint::reply::{has_tag, SERVER};
use crate::sip::stats::{Outcome, SipStats};
use crate::sip::transaction::{response_for, Role, TransactionKey, TransactionLayer};
use crate::sip::{Peer, Transport};

/// What a leg handler needs from the endpoint for one input.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub layer: &'a mut TransactionLayer,
    pub stats: &'a SipStats,
}

impl Ctx<'_> {
    /// Sends `resp` on a server transaction; finals are counted in the stats.
    pub fn respond(&mut self, key: &TransactionKey, resp: Response) {
        let code = resp.status_code.code();
        match self.layer.send_response(self.now, key, resp) {
            Ok(()) if code >= 200 => self.stats.record(Role::Server, &key.method(), Outcome::Status(code)),
            Ok(()) => {}
            Err(e) => tracing::debug!(error = %e, %key, "cannot send response"),
        }
    }

    /// Starts a client transaction; `None` when the layer refused it.
    pub fn request(&mut self, req: Request, to: Peer) -> Option<TransactionKey> {
        match self.layer.send_request(self.now, req, to) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start client transaction");
                None
            }
        }
    }
}

/// A UAC leg whose INVITE is pending (§13.2).
#[derive(Debug)]
pub(super) struct Calling {
    /// The INVITE as last sent (after an auth retry, the retried one).
    pub invite: Request,
    pub key: TransactionKey,
    pub credentials: Option<Credentials>,
    /// The one digest retry was used.
    pub auth_tried: bool,
    /// A provisional arrived, so a CANCEL may be sent (§9.1).
    pub provisional: bool,
    /// The TU hung up; CANCEL as soon as `provisional`.
    pub hangup: bool,
    pub cancel_sent: bool,
    /// 64·T1 after our CANCEL: give up on a peer that never sends the INVITE's final (§9.1).
    pub cancel_deadline: Option<Instant>,
}

/// A UAS leg whose INVITE waits for the TU (§13.3).
#[derive(Debug)]
pub(super) struct Offered {
    pub invite: Request,
    pub key: TransactionKey,
    pub to_tag: String,
}

/// One state per phase of a leg; each carries only what that phase needs.
#[derive(Debug)]
pub(super) enum State {
    Calling(Box<Calling>),
    Offered(Box<Offered>),
    /// UAS: our 2xx is out and retransmitted until the ACK (§13.3.1.4).
    Accepting { dialog: DialogId, retransmitter: Box<Uas2xxRetransmitter>, armed: Option<Instant> },
    /// The dialog is confirmed. `ack` (UAC): our ACK, sent again for every 2xx retransmission.
    Confirmed { dialog: DialogId, ack: Option<Request> },
    /// Our BYE is in flight; the leg ends on its final response or timeout.
    Ending { dialog: DialogId, ack: Option<Request> },
}

#[derive(Debug)]
/// A MESSAGE in flight: what a digest retry needs, and who gets the result
/// (`Ok(2xx)` or the failing status).
pub(crate) struct PendingMessage {
    pub(super) request: Request,
    pub(super) peer: crate::sip::Peer,
    pub(super) credentials: Option<Credentials>,
    pub(super) auth_tried: bool,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<u16, u16>>,
}

pub(super) struct LegEntry {
    pub call_id: String,
    pub events: mpsc::UnboundedSender<LegEvent>,
    /// Where this leg's requests go: the dial destination, or the INVITE's source.
    pub peer: Peer,
    pub state: State,
    /// Transaction keys mapped to this leg, removed with it.
    pub txns: Vec<TransactionKey>,
}

impl LegEntry {
    pub fn emit(&self, ev: LegEvent) {
        // A receiver that is gone was dropped, which hangs up: nothing to tell.
        let _ = self.events.send(ev);
    }
}

/// All call legs of the endpoint.
pub(crate) struct Calls {
    pub(super) control: CallControl,
    pub(super) incoming: mpsc::Sender<IncomingCall>,
    pub(super) timers_cfg: SipTimers,
    pub(super) cfg_public: Option<std::net::IpAddr>,
    pub(super) local: SocketAddr,
    /// The TLS listener (bound), for Via and Contact over TLS.
    pub(super) local_tls: Option<SocketAddr>,
    pub(super) legs: HashMap<LegId, LegEntry>,
    pub(super) by_txn: HashMap<TransactionKey, LegId>,
    pub(super) by_dialog: HashMap<DialogId, LegId>,
    pub(super) dialogs: Dialogs,
    /// Deadlines: 2xx retransmissions of `Accepting` legs, CANCEL give-ups of `Calling` ones.
    pub(super) timers: BTreeSet<(Instant, LegId)>,
    /// MESSAGE requests in flight (RFC 3428), outside any leg.
    /// MESSAGE client transactions in flight (see `pager`).
    pub(super) messages: HashMap<crate::sip::transaction::TransactionKey, PendingMessage>,
}

impl Calls {
    pub(crate) fn new(cfg: &Config, local: SocketAddr, control: CallControl, incoming: mpsc::Sender<IncomingCall>) -> Self {
        Self {
            control,
            incoming,
            timers_cfg: cfg.sip.timers,
            cfg_public: cfg.sip.public_addr,
            local,
            local_tls: cfg.sip.tls_listen,
            legs: HashMap::new(),
            by_txn: HashMap::new(),
            by_dialog: HashMap::new(),
            dialogs: Dialogs::new(),
            timers: BTreeSet::new(),
            messages: Default::default(),
        }
    }

    /// Live legs.
    pub(crate) fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Legs not yet confirmed: dialling, offered, or answering until the ACK.
    pub(crate) fn setup_count(&self) -> usize {
        self.legs.values().filter(|l| matches!(l.state, State::Calling(_) | State::Offered(_) | State::Accepting { .. })).count()
    }

    /// Whether nothing at all is kept: no leg, no transaction, dialog or timer entry.
    #[allow(dead_code)]
    pub(crate) fn holds_nothing(&self) -> bool {
        self.legs.is_empty() && self.messages.is_empty() && self.by_txn.is_empty() && self.by_dialog.is_empty() && self.dialogs.is_empty() && self.timers.is_empty()
    }

    /// The address we put in Via and Contact towards `to` (as `trunks::advertised`): the
    /// TLS listener's over TLS when there is one.
    pub(super) fn me(&self, to: Peer) -> SocketAddr {
        let local = match (to.transport, self.local_tls) {
            (Transport::Tls, Some(tls)) => tls,
            _ => self.local,
        };
        match self.cfg_public {
            Some(ip) => SocketAddr::new(ip, local.port()),
            None if !local.ip().is_unspecified() => local,
            None => crate::sip::endpoint::trunks::advertised_from(self.cfg_public, local, Some(to.addr)),
        }
    }

    pub(super) fn via(&self, to: Peer) -> rsip::headers::Via {
        crate::sip::dialog::new_via(to.transport, &self.me(to).to_string())
    }

    /// `request` sent again with digest credentials answering `challenge` (a 401 or 407), as
    /// a new transaction towards `to`: CSeq one higher (RFC 3261 §22.2) and a fresh Via branch
    /// (§8.1.1.7); the rest of the request is unchanged.
    pub(super) fn with_digest(&self, request: &Request, challenge: &Response, creds: &Credentials, to: Peer) -> Result<Request, ClientError> {
        let mut client = DigestClient::new(creds.username.clone(), creds.password.clone());
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let auth = client.respond(challenge, request, &mut rng)?;
        let mut retried = request.clone();
        let seq = crate::sip::transaction::message::cseq_of(&retried.headers).map(|(s, _)| s).unwrap_or(1) + 1;
        let method = retried.method;
        let new_via = self.via(to);
        for h in retried.headers.iter_mut() {
            match h {
                Header::CSeq(_) => *h = Header::CSeq(rsip::headers::CSeq::new(format!("{seq} {method}"))),
                Header::Via(_) => *h = Header::Via(new_via.clone()),
                _ => {}
            }
        }
        set_auth_headers(&mut retried, auth);
        Ok(retried)
    }

    pub(super) fn contact(&self, to: Peer) -> String {
        let me = self.me(to);
        match to.transport {
            Transport::Udp => format!("<sip:redial@{me}>"),
            Transport::Tcp => format!("<sip:redial@{me};transport=tcp>"),
            Transport::Ws => format!("<sip:redial@{me};transport=ws>"),
            Transport::Tls => format!("<sip:redial@{me};transport=tls>"),
        }
    }

    pub(super) fn map_txn(&mut self, id: LegId, key: TransactionKey) {
        self.by_txn.insert(key.clone(), id);
        if let Some(l) = self.legs.get_mut(&id) {
            l.txns.push(key);
        }
    }

    /// Forgets a leg and everything that points at it.
    pub(super) fn end(&mut self, id: LegId, ev: Option<LegEvent>) {
        let Some(leg) = self.legs.remove(&id) else { return };
        if let Some(ev) = ev {
            leg.emit(ev);
        }
        for k in &leg.txns {
            self.by_txn.remove(k);
        }
        match &leg.state {
            State::Accepting { dialog, armed, .. } => {
                if let Some(at) = armed {
                    self.timers.remove(&(*at, id));
                }
                self.forget_dialog(dialog);
            }
            State::Confirmed { dialog, .. } | State::Ending { dialog, .. } => self.forget_dialog(dialog),
            State::Calling(c) => {
                if let Some(at) = c.cancel_deadline {
                    self.timers.remove(&(at, id));
                }
            }
            State::Offered(_) => {}
        }
        tracing::debug!(leg = id, call_id = %leg.call_id, "leg ended");
    }

    fn forget_dialog(&mut self, dialog: &DialogId) {
        self.by_dialog.remove(dialog);
        self.dialogs.remove(dialog);
    }

    /// A WebSocket connection closed (RFC 7118 §5: the browser is reachable only through
    /// it): every leg with that peer ends at once, as if the browser had hung up, so the
    /// call's other leg is hung up now rather than at the media timeout. No BYE or
    /// CANCEL can reach it; an INVITE still pending fails with 503 (§17.1.4).
    pub(crate) fn connection_closed(&mut self, peer: Peer) -> usize {
        let ids: Vec<LegId> = self.legs.iter().filter(|(_, l)| l.peer == peer).map(|(id, _)| *id).collect();
        for &id in &ids {
            let ev = match self.legs.get(&id).map(|l| &l.state) {
                Some(State::Calling(_) | State::Offered(_)) => LegEvent::Failed { status: 503 },
                _ => LegEvent::Ended { by_remote: true },
            };
            tracing::info!(leg = id, peer = %peer.addr, "the agent's WebSocket closed: leg ended");
            self.end(id, Some(ev));
        }
        ids.len()
    }

    /// Whether a client or server transaction belongs to a leg.
    pub(crate) fn owns(&self, key: &TransactionKey) -> bool {
        self.by_txn.contains_key(key) || self.messages.contains_key(key)
    }

    /// A transaction ended: drop its mapping.
    pub(crate) fn forget_txn(&mut self, key: &TransactionKey) {
        // A MESSAGE transaction that ended without a final answer.
        self.on_message_failure(key, 408);
        if let Some(id) = self.by_txn.remove(key) {
            if let Some(l) = self.legs.get_mut(&id) {
                l.txns.retain(|k| k != key);
            }
        }
    }

    /// A command from a [`Leg`](super::Leg) or [`CallControl`].
    pub(crate) fn handle_command(&mut self, cx: &mut Ctx<'_>, cmd: Command) {
        match cmd {
            Command::Dial { id, call_id, req, events } => self.dial(cx, id, call_id, *req, events),
            Command::Hangup(id) => self.hangup(cx, id),
            Command::Ring(id) => self.provisional(cx, id, 180, None),
            Command::Progress(id, sdp) => self.provisional(cx, id, 183, Some(sdp)),
            Command::Answer(id, sdp) => self.answer(cx, id, sdp),
            Command::Reject(id, status, headers) => self.reject(cx, id, status, headers),
            Command::Message(req, reply) => self.send_message(cx, *req, reply),
        }
    }

    /// Shutdown: every leg is hung up (BYE, CANCEL or 480), as if its handle had been dropped.
    pub(crate) fn hangup_all(&mut self, cx: &mut Ctx<'_>) {
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            self.hangup(cx, id);
        }
    }

    /// Hangup: CANCEL, BYE or 480 depending on the phase.
    fn hangup(&mut self, cx: &mut Ctx<'_>, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else { return };
        match &mut leg.state {
            State::Calling(c) => {
                c.hangup = true;
                if c.provisional && !c.cancel_sent {
                    self.send_cancel(cx, id);
                }
            }
            State::Offered(_) => self.reject(cx, id, 480, Vec::new()),
            State::Accepting { .. } | State::Confirmed { .. } => self.send_bye(cx, id),
            State::Ending { .. } => {}
        }
    }

    /// Ends a confirmed (or accepting) leg with BYE (§15.1.1); `Ended` comes with its final
    /// response. A BYE that cannot be sent ends the leg at once.
    pub(super) fn send_bye(&mut self, cx: &mut Ctx<'_>, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else { return };
        let (dialog, ack) = match std::mem::replace(&mut leg.state, State::Ending { dialog: empty_dialog_id(), ack: None }) {
            State::Accepting { dialog, armed, .. } => {
                if let Some(at) = armed {
                    self.timers.remove(&(at, id));
                }
                (dialog, None)
            }
            State::Confirmed { dialog, ack } | State::Ending { dialog, ack } => (dialog, ack),
            other => {
                leg.state = other;
                return;
            }
        };
        let peer = leg.peer;
        leg.state = State::Ending { dialog: dialog.clone(), ack };
        let via = self.via(peer);
        let bye = self.dialogs.get_mut(&dialog).map(|d| d.bye(via));
        match bye {
            Some(Ok(bye)) => match cx.request(bye, peer) {
                Some(key) => self.map_txn(id, key),
                None => self.end(id, Some(LegEvent::Ended { by_remote: false })),
            },
            _ => self.end(id, Some(LegEvent::Ended { by_remote: false })),
        }
    }

    /// The earliest 2xx retransmission deadline. Call again after every input.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Runs the due 2xx retransmissions; a 2xx never ACKed in 64·T1 ends the call with BYE.
    pub(crate) fn handle_timeout(&mut self, cx: &mut Ctx<'_>) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > cx.now {
                break;
            }
            self.timers.pop_first();
            let Some(leg) = self.legs.get_mut(&id) else { continue };
            if let State::Calling(c) = &mut leg.state {
                if c.cancel_deadline == Some(at) {
                    c.cancel_deadline = None;
                    let key = c.key.clone();
                    tracing::info!(leg = id, call_id = %leg.call_id, "no final response 64·T1 after CANCEL: INVITE abandoned (RFC 3261 §9.1)");
                    self.end(id, Some(LegEvent::Failed { status: 487 }));
                    // The only way to destroy the client transaction, stuck in Proceeding.
                    cx.layer.report_transport_error(&key);
                }
                continue;
            }
            let State::Accepting { retransmitter, armed, .. } = &mut leg.state else { continue };
            retransmitter.handle_timeout(cx.now);
            while let Some(t) = retransmitter.poll_transmit() {
                cx.layer.send_stateless(t.message, t.to);
            }
            if retransmitter.poll_event().is_some() {
                *armed = None;
                tracing::info!(leg = id, call_id = %leg.call_id, "2xx never ACKed; hanging up (RFC 3261 §13.3.1.4)");
                self.send_bye(cx, id);
                continue;
            }
            *armed = retransmitter.poll_timeout();
            if let Some(next) = *armed {
                self.timers.insert((next, id));
            }
        }
    }
}

/// A placeholder while a state is moved out (never observed).
fn empty_dialog_id() -> DialogId {
    DialogId { call_id: String::new(), local_tag: String::new(), remote_tag: String::new() }
}

/// A UAS response to `invite` with our To `tag` (§8.2.6.2, §12.1.1), a Server header, and
/// `contact` when given (dialog-creating responses, §12.1.1).
pub(super) fn uas_response(invite: &Request, status: u16, tag: &str, contact: Option<&str>) -> Response {
    let mut resp = response_for(invite, StatusCode::from(status));
    for h in resp.headers.iter_mut() {
        if let Header::To(to) = h {
            if !has_tag(to.value()) {
                *h = Header::To(rsip::headers::To::new(format!("{};tag={tag}", to.value())));
            }
        }
    }
    if let Some(c) = contact {
        resp.headers.push(Header::Contact(rsip::headers::Contact::new(c)));
    }
    resp.headers.push(Header::Server(rsip::headers::Server::new(SERVER)));
    resp
}

/// Replaces the body (and Content-Type/Length) of a message.
pub(super) fn set_body(headers: &mut rsip::Headers, body_slot: &mut Vec<u8>, content_type: &str, body: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    headers.push(Header::ContentType(rsip::headers::ContentType::new(content_type)));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(body.len().to_string())));
    *body_slot = body;
}

/// The body of a message, if it has one.
pub(super) fn body_of(body: &[u8]) -> Option<Vec<u8>> {
    (!body.is_empty()).then(|| body.to_vec())
}

/// Sends a request outside any transaction (ACK for a 2xx, §13.2.2.4).
pub(super) fn send_ack(cx: &mut Ctx<'_>, ack: &Request, to: Peer) {
    cx.layer.send_stateless(SipMessage::Request(ack.clone()), to);
}
