//! Call legs: outbound (UAC) and inbound (UAS) INVITE sessions with their dialogs
//! (RFC 3261 §12–§15, §9), run inside the endpoint task and controlled from other tasks.
//!
//! - this file: the public handle types ([`CallControl`], [`Leg`], [`IncomingCall`]) and the
//!   commands they send to the endpoint task.
//! - `table`: the legs' state and the maps that find a leg by transaction key, dialog id and
//!   Call-ID (no scans per message).
//! - `uac`: outbound legs (INVITE, digest retry, CANCEL, ACK of 2xx).
//! - `uas`: inbound legs (100/180/183/200 + 2xx retransmission, CANCEL).
//! - `in_dialog`: requests in a confirmed dialog (BYE, re-INVITE, INFO, OPTIONS, ACK).
//!
//! See `docs/sip-calls.md` for the event order of each kind of leg.

pub(crate) mod in_dialog;
pub mod pager;
pub(crate) mod table;
pub(crate) mod uac;
pub(crate) mod uas;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

pub(crate) use table::Calls;

/// Identifies a leg for the life of the endpoint.
pub type LegId = u64;

/// Digest credentials for one challenge (RFC 3261 §22.2).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// An outbound call: INVITE `request_uri` sent to `destination`.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// "sip:+15551234567@carrier.test" or an agent's Contact URI.
    pub request_uri: String,
    /// To header value, e.g. "<sip:+15551234567@carrier.test>".
    pub to: String,
    /// From display name ("Acme Support"), sent as a quoted string.
    pub from_name: Option<String>,
    /// From user part (caller ID, e.g. "+15550100").
    pub from_user: String,
    /// From host (profile domain, or our address for agents).
    pub from_host: String,
    /// Proxy address / registered binding source, and transport.
    pub destination: crate::sip::Peer,
    /// Extra headers, e.g. ("X-Redial-Callback-Id", id).
    pub headers: Vec<(String, String)>,
    /// The SDP offer (application/sdp).
    pub sdp: Vec<u8>,
    /// Answer one 401/407 challenge with these.
    pub credentials: Option<Credentials>,
}

/// What happens to a leg, in order (see `docs/sip-calls.md`).
#[derive(Debug, Clone, PartialEq)]
pub enum LegEvent {
    /// 1xx (not 100) to our INVITE; `sdp` when it carried one (183 early media).
    Progress { status: u16, sdp: Option<Vec<u8>> },
    /// UAC: 2xx received and ACKed (with its SDP answer). UAS: our 200 was ACKed.
    Answered { sdp: Option<Vec<u8>> },
    /// UAC: the INVITE ended without a dialog: final status after any auth retry; 408 for
    /// Timer B, 503 for a transport error; 487 after our CANCEL.
    /// UAS: the caller CANCELled before we answered (status 487).
    Failed { status: u16 },
    /// The confirmed call ended: `by_remote` = the peer sent BYE (we answered 200),
    /// else our BYE completed (any final response or timeout).
    Ended { by_remote: bool },
    /// DTMF by SIP INFO (application/dtmf-relay); answered 200.
    Dtmf { digit: char, duration_ms: u32 },
    /// The peer sent a re-INVITE with a new offer; it was answered 200 with our unchanged SDP.
    Reoffer { sdp: Vec<u8> },
}

/// What a handle asks of the endpoint task.
#[derive(Debug)]
pub(crate) enum Command {
    Dial { id: LegId, call_id: String, req: Box<DialRequest>, events: mpsc::UnboundedSender<LegEvent> },
    Hangup(LegId),
    Ring(LegId),
    Progress(LegId, Vec<u8>),
    Answer(LegId, Vec<u8>),
    Reject(LegId, u16, Vec<(String, String)>),
    Message(Box<pager::MessageRequest>, tokio::sync::oneshot::Sender<pager::MessageResult>),
}

/// One call leg. Dropping it hangs the call up (as [`Leg::hangup`]).
#[derive(Debug)]
pub struct Leg {
    pub id: LegId,
    pub call_id: String,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Leg {
    pub(crate) fn new(
        id: LegId,
        call_id: String,
        events: mpsc::UnboundedReceiver<LegEvent>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self { id, call_id, events, commands }
    }

    fn send(&self, c: Command) {
        // The endpoint has stopped: nothing left to control.
        let _ = self.commands.send(c);
    }

    /// Ends the leg whatever its state: CANCEL while the INVITE is pending (§9.1, incl. the
    /// 200/487 race: ACK then BYE), BYE once confirmed, 480 for an inbound call not yet answered.
    pub fn hangup(&self) {
        self.send(Command::Hangup(self.id));
    }

    /// Inbound only: send 180 Ringing.
    pub fn ring(&self) {
        self.send(Command::Ring(self.id));
    }

    /// Inbound only: 183 Session Progress with this SDP (early media).
    pub fn progress(&self, sdp: Vec<u8>) {
        self.send(Command::Progress(self.id, sdp));
    }

    /// Inbound only: 200 OK with this SDP answer (retransmitted until ACK, §13.3.1.4).
    pub fn answer(&self, sdp: Vec<u8>) {
        self.send(Command::Answer(self.id, sdp));
    }

    /// Inbound only: a final non-2xx response.
    pub fn reject(&self, status: u16) {
        self.send(Command::Reject(self.id, status, Vec::new()));
    }

    /// Inbound only: a final non-2xx response carrying these headers (e.g. a
    /// 407 with its `Proxy-Authenticate` challenge).
    pub fn reject_with(&self, status: u16, headers: Vec<(String, String)>) {
        self.send(Command::Reject(self.id, status, headers));
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        // A leg that already ended ignores it.
        self.hangup();
    }
}

/// An INVITE that arrived outside any dialog for one of our users.
#[derive(Debug)]
pub struct IncomingCall {
    pub leg: Leg,
    /// Request-URI user (a DID or an agent id).
    pub request_user: String,
    /// From URI user.
    pub from_user: Option<String>,
    /// P-Asserted-Identity user, if any.
    pub asserted_user: Option<String>,
    /// Where it came from.
    pub source: crate::sip::Peer,
    /// The offer.
    pub sdp: Option<Vec<u8>>,
    /// All headers as (name, value), for routing decisions.
    pub headers: Vec<(String, String)>,
}

/// Clone-able handle to the endpoint's calls.
#[derive(Debug, Clone)]
pub struct CallControl {
    commands: mpsc::UnboundedSender<Command>,
    next_id: Arc<AtomicU64>,
}

impl CallControl {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { commands: tx, next_id: Arc::new(AtomicU64::new(1)) }, rx)
    }

    pub(crate) fn next_id(&self) -> LegId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A leg the endpoint created (inbound), with its event sender.
    pub(crate) fn new_leg(&self, call_id: String) -> (Leg, mpsc::UnboundedSender<LegEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Leg::new(self.next_id(), call_id, rx, self.commands.clone()), tx)
    }

    /// Starts an outbound call; events arrive on the returned leg. Never blocks.
    /// When the endpoint has stopped, the leg gets `Failed { status: 503 }`.
    pub fn dial(&self, req: DialRequest) -> Leg {
        let call_id = crate::sip::dialog::new_call_id();
        let (leg, events) = self.new_leg(call_id.clone());
        if let Err(mpsc::error::SendError(Command::Dial { events, .. })) =
            self.commands.send(Command::Dial { id: leg.id, call_id, req: Box::new(req), events })
        {
            let _ = events.send(LegEvent::Failed { status: 503 });
        }
        leg
    }

    /// Sends a text as a SIP MESSAGE (RFC 3428); the receiver gets the
    /// final result. When the endpoint has stopped, the result is `Err(503)`.
    pub fn message(&self, req: pager::MessageRequest) -> tokio::sync::oneshot::Receiver<pager::MessageResult> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(mpsc::error::SendError(Command::Message(_, tx))) = self.commands.send(Command::Message(Box::new(req), tx)) {
            let _ = tx.send(Err(503));
        }
        rx
    }
}

#[cfg(test)]
mod tests;
