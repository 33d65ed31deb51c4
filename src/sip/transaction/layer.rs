//! The transaction layer: matches messages to the four machines, owns their timers, and queues
//! what to send and what to tell the TU. Sans-IO: the driver feeds it messages and time.
//!
//! Run loop for a driver: after every input (`handle_message`, `send_*`, `handle_timeout`,
//! `report_transport_error`), drain `poll_transmit` and `poll_event` until both return `None`,
//! then sleep until `poll_timeout` (or the next input) and call `handle_timeout`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use rsip::{Method, Request, Response, SipMessage};
use slab::Slab;

use super::client_invite::ClientInvite;
use super::client_non_invite::ClientNonInvite;
use super::error::TransactionError;
use super::key::{Role, TransactionKey};
use super::key_index::KeyIndex;
use super::message::{branch_of, call_id_of, cseq_of, from_tag_of, top_via, top_via_key_parts, MAGIC_COOKIE};
use super::output::{Output, Up};
use super::server_invite::{SendRefused, ServerInvite};
use super::server_non_invite::ServerNonInvite;
use super::timer_index::{Armed, TimerIndex};
use super::timers::Durations;
use crate::config::SipTimers;
use crate::sip::Peer;

/// A message to put on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub to: Peer,
    pub message: SipMessage,
    /// The message as written by the transaction that keeps it for retransmissions: send these
    /// bytes rather than encoding `message` again. `None`: encode `message`.
    pub wire: Option<Bytes>,
}

/// What the transaction layer tells the TU (the endpoint / UA core).
#[derive(Debug, Clone, PartialEq)]
pub enum TransactionEvent {
    /// A new request created a server transaction; answer it with `send_response(key, ..)`.
    Request { key: TransactionKey, request: Request, from: Peer },
    /// A response in a client transaction (provisional or final; for INVITE, 2xx
    /// retransmissions too while the transaction is Accepted, RFC 6026).
    Response { key: TransactionKey, response: Response },
    /// Timer B or F (client) or H (server INVITE: the ACK never came) fired.
    Timeout { key: TransactionKey },
    /// The driver reported that sending for this transaction failed.
    TransportError { key: TransactionKey },
    /// An ACK for a 2xx: not part of any transaction (§17.1.1.3); goes to the dialog layer.
    Ack { request: Request, from: Peer },
    /// A new CANCEL. It has its own non-INVITE server transaction `key` (§9.2), to be answered
    /// 200 (or 481 when `target` is `None`). `target` is the INVITE server transaction it matches;
    /// the TU answers that one 487 if it is still pending
    /// ([`TransactionLayer::is_pending`]).
    Cancel { key: TransactionKey, target: Option<TransactionKey>, request: Request, from: Peer },
    /// A 2xx to an INVITE that matches no transaction: a retransmission the UAC core must ACK
    /// again (§13.2.2.4). Other stray responses are dropped (§17.1.3).
    StrayResponse { response: Response, from: Peer },
    /// The transaction ended and was removed.
    Terminated { key: TransactionKey },
}

/// The RFC 3261 names: INVITE/non-INVITE client/server transaction. The three machines that
/// keep a whole request are boxed so that every slab slot is only as large as the small
/// non-INVITE server machine, which is most of the live transactions (Timer J).
#[derive(Debug)]
enum Machine {
    Ict(Box<ClientInvite>),
    Nict(Box<ClientNonInvite>),
    Ist(Box<ServerInvite>),
    Nist(ServerNonInvite),
}

impl Machine {
    fn next_deadline(&self) -> Option<Instant> {
        match self {
            Machine::Ict(m) => m.next_deadline(),
            Machine::Nict(m) => m.next_deadline(),
            Machine::Ist(m) => m.next_deadline(),
            Machine::Nist(m) => m.next_deadline(),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Machine::Ict(m) => m.is_terminated(),
            Machine::Nict(m) => m.is_terminated(),
            Machine::Ist(m) => m.is_terminated(),
            Machine::Nist(m) => m.is_terminated(),
        }
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        match self {
            Machine::Ict(m) => m.on_timeout(now, out),
            Machine::Nict(m) => m.on_timeout(now, out),
            Machine::Ist(m) => m.on_timeout(now, out),
            Machine::Nist(m) => m.on_timeout(now, out),
        }
    }

    fn on_transport_error(&mut self) {
        match self {
            Machine::Ict(m) => m.on_transport_error(),
            Machine::Nict(m) => m.on_transport_error(),
            Machine::Ist(m) => m.on_transport_error(),
            Machine::Nist(m) => m.on_transport_error(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: TransactionKey,
    machine: Machine,
    /// Where requests (client) or responses (server) go.
    peer: Peer,
    call_id: Box<str>,
    /// The machine's next deadline as entered in the timer index (`None`: nothing armed).
    armed: Option<Armed>,
    /// Bytes this entry counts in [`TransactionLayer::kept_bytes`] (0: not a completed
    /// non-INVITE server transaction).
    kept: usize,
}

/// All live transactions of one endpoint. See the module docs for the run loop.
///
/// Built for hundreds of thousands of live transactions (every answered OPTIONS stays 32 s in
/// Completed over UDP): transactions live in a slab, found by key through a sharded hash map (`KeyIndex`), and their
/// deadlines in a heap ([`TimerIndex`]), so `poll_timeout` is O(1) and `handle_timeout` touches
/// only the transactions that are due.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: SipTimers,
    index: KeyIndex,
    txns: Slab<Entry>,
    deadlines: TimerIndex,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
    /// Completed non-INVITE server transactions (kept only to answer retransmissions until
    /// Timer J) and the memory they hold.
    kept: usize,
    kept_bytes: usize,
}

impl TransactionLayer {
    pub fn new(timers: SipTimers) -> Self {
        Self {
            timers,
            index: KeyIndex::default(),
            txns: Slab::new(),
            deadlines: TimerIndex::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            kept: 0,
            kept_bytes: 0,
        }
    }

    /// A message parsed by the transport, with where it came from. Malformed messages (no Via or
    /// CSeq) are dropped with a trace. Drain `poll_transmit`/`poll_event` afterwards.
    pub fn handle_message(&mut self, now: Instant, msg: SipMessage, from: Peer) {
        match msg {
            SipMessage::Request(req) => self.handle_request(now, req, from),
            SipMessage::Response(resp) => self.handle_response(now, resp, from),
        }
    }

    /// Starts a client transaction and queues the request for `to`. The request must carry a top
    /// Via whose branch starts with z9hG4bK (§8.1.1.7) and a CSeq whose method is the request's.
    /// ACK is refused: an ACK for a 2xx goes through [`Self::send_stateless`].
    pub fn send_request(&mut self, now: Instant, req: Request, to: Peer) -> Result<TransactionKey, TransactionError> {
        if req.method == Method::Ack {
            return Err(TransactionError::AckNotTransactional);
        }
        let via = top_via(&req.headers)?;
        let branch = branch_of(&via);
        let branch = match branch {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b,
            other => return Err(TransactionError::BadBranch { branch: other }),
        };
        let (_, cseq_method) = cseq_of(&req.headers)?;
        if cseq_method != req.method {
            return Err(TransactionError::MethodMismatch { method: req.method, cseq: cseq_method });
        }
        let key = TransactionKey::client(branch, req.method);
        if self.index.contains_key(&key) {
            return Err(TransactionError::Duplicate { key });
        }
        let call_id = call_id_of(&req.headers);
        let _span = tracing::debug_span!("sip_txn", call_id = %call_id, branch = %key.branch()).entered();
        tracing::debug!(method = %req.method, to = %to.addr, transport = %to.transport, "client transaction started");
        let d = Durations::new(self.timers, to.transport);
        let mut out = Vec::new();
        let machine = if req.method == Method::Invite {
            Machine::Ict(Box::new(ClientInvite::start(now, req, d, &mut out)))
        } else {
            Machine::Nict(Box::new(ClientNonInvite::start(now, req, d, &mut out)))
        };
        let slot = self.insert(key.clone(), machine, to, call_id);
        self.flush(slot, out);
        Ok(key)
    }

    /// Sends a response within the server transaction `key`. Its destination is where the
    /// request came from (§18.2.2: the driver sends TCP responses on the same connection).
    pub fn send_response(&mut self, now: Instant, key: &TransactionKey, resp: Response) -> Result<(), TransactionError> {
        let slot = self.index.get(key).ok_or_else(|| TransactionError::UnknownTransaction { key: key.clone() })?;
        let entry = &mut self.txns[slot];
        if key.role() != Role::Server {
            return Err(TransactionError::NotServer { key: key.clone() });
        }
        let (_, cseq_method) = cseq_of(&resp.headers)?;
        let expected_ok = cseq_method == key.method();
        if !expected_ok {
            return Err(TransactionError::ResponseMismatch { key: key.clone(), cseq: cseq_method });
        }
        let _span = tracing::debug_span!("sip_txn", call_id = %entry.call_id, branch = %key.branch()).entered();
        let status = resp.status_code.code();
        let mut out = Vec::new();
        let result = match &mut entry.machine {
            Machine::Ist(m) => m.send(now, resp, &mut out),
            Machine::Nist(m) => m.send(now, resp, &mut out),
            _ => return Err(TransactionError::NotServer { key: key.clone() }),
        };
        match result {
            Ok(()) => {
                tracing::debug!(status, "response sent");
                self.flush(slot, out);
                Ok(())
            }
            Err(SendRefused::AlreadyFinal) => Err(TransactionError::AlreadyFinal { key: key.clone(), status }),
        }
    }

    /// Sends a message outside any transaction (the ACK for a 2xx, 2xx retransmissions of the
    /// UAS core, stateless responses).
    pub fn send_stateless(&mut self, msg: SipMessage, to: Peer) {
        self.transmits.push_back(Transmit { to, message: msg, wire: None });
    }

    /// Fires every timer due at `now`. Call it when `poll_timeout` is reached (calling it early or
    /// late is harmless: only expired timers fire).
    pub fn handle_timeout(&mut self, now: Instant) {
        // Deadline order across transactions; a machine re-armed by its own step lands behind
        // `now` (every interval is positive), so the loop ends.
        while let Some(head) = self.deadlines.peek().filter(|h| h.at <= now) {
            self.deadlines.pop();
            let Some(entry) = self.txns.get_mut(head.slot).filter(|e| e.armed == Some(head)) else {
                continue; // stale: re-armed or removed since
            };
            entry.armed = None;
            let _span = tracing::debug_span!("sip_txn", call_id = %entry.call_id, branch = %entry.key.branch()).entered();
            let mut out = Vec::new();
            entry.machine.on_timeout(now, &mut out);
            self.flush(head.slot, out);
        }
        self.discard_stale();
    }

    /// The driver could not send for transaction `key` (§17.1.4, §17.2.4): the transaction ends
    /// with a `TransportError` event. Unknown keys are ignored (the transaction may have ended).
    pub fn report_transport_error(&mut self, key: &TransactionKey) {
        let Some(slot) = self.index.get(key) else { return };
        let entry = &mut self.txns[slot];
        tracing::debug!(call_id = %entry.call_id, branch = %key.branch(), "transport error");
        entry.machine.on_transport_error();
        self.events.push_back(TransactionEvent::TransportError { key: key.clone() });
        self.flush(slot, Vec::new());
    }

    /// Whether the INVITE server transaction `key` has not sent a final response yet (a CANCEL
    /// for it should then be followed by a 487, §9.2).
    pub fn is_pending(&self, key: &TransactionKey) -> bool {
        matches!(self.get(key), Some(Entry { machine: Machine::Ist(m), .. }) if m.is_pending())
    }

    /// The request that started an INVITE transaction (client or server), e.g. to build a
    /// CANCEL (§9.1) or a response.
    pub fn invite_request(&self, key: &TransactionKey) -> Option<&Request> {
        match &self.get(key)?.machine {
            Machine::Ict(m) => Some(m.request()),
            Machine::Ist(m) => Some(m.request()),
            _ => None,
        }
    }

    /// The next message to send. Call until `None` after every input.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU. Call until `None` after every input.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called; `None` when no timer is armed. Changes after
    /// every input, so ask again after each.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Every &mut entry point ends with `discard_stale`, so the head is current.
        self.deadlines.peek().map(|h| h.at)
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Live transactions that still cost work: every one but the completed non-INVITE server
    /// transactions, which only wait out Timer J to answer retransmissions with stored bytes.
    pub fn pending(&self) -> usize {
        self.txns.len() - self.kept
    }

    /// Memory held by the completed non-INVITE server transactions: their stored responses plus
    /// the bookkeeping of each (entry, map slot, heap entry, key and Call-ID strings).
    pub fn kept_bytes(&self) -> usize {
        self.kept_bytes
    }

    /// Entries in the timer index, stale ones included (tests check it stays bounded).
    #[cfg(test)]
    pub(crate) fn timer_entries(&self) -> usize {
        self.deadlines.len()
    }

    fn handle_request(&mut self, now: Instant, req: Request, from: Peer) {
        let key = match server_key(&req) {
            Ok(k) => k,
            Err(error) => {
                tracing::debug!(%error, method = %req.method, "request dropped: cannot identify its transaction");
                return;
            }
        };
        let call_id = call_id_of(&req.headers);
        let _span = tracing::debug_span!("sip_txn", call_id = %call_id, branch = %key.branch()).entered();
        let mut out = Vec::new();
        if let Some(slot) = self.index.get(&key) {
            match &mut self.txns[slot].machine {
                Machine::Ist(m) => m.on_request(now, req, &mut out),
                Machine::Nist(m) if req.method != Method::Ack => m.on_request(req, &mut out),
                _ => {
                    tracing::trace!(method = %req.method, "request matches no server transaction kind; dropped");
                    return;
                }
            }
            self.flush(slot, out);
            return;
        }
        let d = Durations::new(self.timers, from.transport);
        match req.method {
            // An ACK matching nothing acknowledges a 2xx: it belongs to the dialog layer.
            Method::Ack => self.events.push_back(TransactionEvent::Ack { request: req, from }),
            Method::Invite => {
                tracing::debug!("INVITE server transaction created");
                let machine = Machine::Ist(Box::new(ServerInvite::new(now, req.clone(), d)));
                let slot = self.insert(key.clone(), machine, from, call_id);
                self.events.push_back(TransactionEvent::Request { key, request: req, from });
                self.flush(slot, Vec::new());
            }
            Method::Cancel => {
                let target = key.with_method(Method::Invite);
                let target = matches!(self.get(&target), Some(Entry { machine: Machine::Ist(_), .. }))
                    .then_some(target);
                tracing::debug!(matched = target.is_some(), "CANCEL server transaction created");
                let machine = Machine::Nist(ServerNonInvite::new(now, d));
                let slot = self.insert(key.clone(), machine, from, call_id);
                self.events.push_back(TransactionEvent::Cancel { key, target, request: req, from });
                self.flush(slot, Vec::new());
            }
            _ => {
                tracing::debug!(method = %req.method, "non-INVITE server transaction created");
                let machine = Machine::Nist(ServerNonInvite::new(now, d));
                let slot = self.insert(key.clone(), machine, from, call_id);
                self.events.push_back(TransactionEvent::Request { key, request: req, from });
                self.flush(slot, Vec::new());
            }
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Response, from: Peer) {
        let (branch, method) = match top_via(&resp.headers).and_then(|v| Ok((branch_of(&v), cseq_of(&resp.headers)?.1))) {
            Ok(x) => x,
            Err(error) => {
                tracing::debug!(%error, "response dropped: malformed");
                return;
            }
        };
        let call_id = call_id_of(&resp.headers);
        let branch = branch.unwrap_or_default();
        let _span = tracing::debug_span!("sip_txn", call_id = %call_id, branch = %branch).entered();
        let key = TransactionKey::client(branch, method);
        let mut out = Vec::new();
        let slot = self.index.get(&key);
        match slot.map(|slot| &mut self.txns[slot].machine) {
            Some(Machine::Ict(m)) => m.on_response(now, resp, &mut out),
            Some(Machine::Nict(m)) => m.on_response(now, resp, &mut out),
            _ => {
                let code = resp.status_code.code();
                if method == Method::Invite && (200..300).contains(&code) {
                    tracing::debug!(code, "stray 2xx to INVITE passed up");
                    self.events.push_back(TransactionEvent::StrayResponse { response: resp, from });
                } else {
                    tracing::debug!(code, %method, "stray response dropped");
                }
                return;
            }
        }
        if let Some(slot) = slot {
            self.flush(slot, out);
        }
    }

    fn get(&self, key: &TransactionKey) -> Option<&Entry> {
        self.index.get(key).map(|slot| &self.txns[slot])
    }

    fn insert(&mut self, key: TransactionKey, machine: Machine, peer: Peer, call_id: String) -> usize {
        let slot = self.txns.insert(Entry { key: key.clone(), machine, peer, call_id: call_id.into(), armed: None, kept: 0 });
        self.index.insert(key, slot);
        slot
    }

    /// Turns machine outputs into transmits and events, then removes the transaction if it ended
    /// or re-enters its next deadline in the timer index if that changed.
    fn flush(&mut self, slot: usize, out: Vec<Output>) {
        let entry = &mut self.txns[slot];
        let peer = entry.peer;
        for o in out {
            match o {
                Output::Send(message) => self.transmits.push_back(Transmit { to: peer, message, wire: None }),
                Output::SendWire(message, wire) => self.transmits.push_back(Transmit { to: peer, message, wire: Some(wire) }),
                Output::Up(Up::Response(response)) => {
                    self.events.push_back(TransactionEvent::Response { key: entry.key.clone(), response })
                }
                Output::Up(Up::Ack(request)) => self.events.push_back(TransactionEvent::Ack { request, from: peer }),
                Output::Up(Up::Timeout) => {
                    tracing::debug!("transaction timed out");
                    self.events.push_back(TransactionEvent::Timeout { key: entry.key.clone() })
                }
            }
        }
        if entry.machine.is_terminated() {
            // Its heap entry, if any, is now stale and skipped.
            let entry = self.txns.remove(slot);
            self.index.remove(&entry.key);
            if entry.kept > 0 {
                self.kept -= 1;
                self.kept_bytes -= entry.kept;
            }
            tracing::trace!("transaction terminated");
            self.events.push_back(TransactionEvent::Terminated { key: entry.key });
        } else {
            if entry.kept == 0 {
                if let Machine::Nist(m) = &entry.machine {
                    if let Some(len) = m.kept_len() {
                        entry.kept = kept_size(entry, len);
                        self.kept += 1;
                        self.kept_bytes += entry.kept;
                    }
                }
            }
            let next = entry.machine.next_deadline();
            if next != entry.armed.map(|a| a.at) {
                entry.armed = next.map(|at| self.deadlines.arm(at, slot));
            }
        }
        self.discard_stale();
    }

    /// Pops stale entries off the top of the timer index, so that `poll_timeout` can peek, and
    /// rebuilds the index when stale entries outnumber live transactions (a transaction answered
    /// long before its old deadline leaves one behind until that deadline).
    fn discard_stale(&mut self) {
        while let Some(head) = self.deadlines.peek() {
            if self.txns.get(head.slot).is_some_and(|e| e.armed == Some(head)) {
                break;
            }
            self.deadlines.pop();
        }
        if self.deadlines.len() > 2 * self.txns.len() + 1024 {
            self.deadlines.rebuild(self.txns.iter().filter_map(|(_, e)| e.armed));
        }
    }
}

/// What a completed non-INVITE server transaction holds in memory: its slab entry, its key in
/// the index (with its hash and the table's control byte), its deadline in the heap, and four heap blocks (the
/// branch, the sent-by, the Call-ID and the stored response with its shared header), each with
/// an allocator header.
fn kept_size(entry: &Entry, response_len: usize) -> usize {
    const BLOCK: usize = 32;
    let strings = entry.key.branch().len() + entry.key.sent_by().map_or(0, str::len) + entry.call_id.len();
    std::mem::size_of::<Entry>()
        + super::key_index::ENTRY_BYTES
        + std::mem::size_of::<Armed>()
        + 4 * BLOCK
        + strings
        + response_len
}

/// The server transaction a request belongs to (§17.2.3). Requests without a z9hG4bK branch
/// (RFC 2543 peers) get a synthetic branch from Call-ID, CSeq number, From tag and top Via, which
/// still absorbs their retransmissions and matches their ACK/CANCEL to the INVITE.
fn server_key(req: &Request) -> Result<TransactionKey, TransactionError> {
    let (branch, sent_by) = top_via_key_parts(&req.headers)?;
    let (seq, _) = cseq_of(&req.headers)?;
    let branch = match branch {
        Some(b) if b.starts_with(MAGIC_COOKIE) => b,
        other => format!(
            "rfc2543:{}:{}:{}:{}",
            call_id_of(&req.headers),
            seq,
            from_tag_of(req).unwrap_or_default(),
            other.unwrap_or_default()
        ),
    };
    Ok(TransactionKey::server(branch, sent_by, req.method))
}

