//! Outbound legs (UAC, RFC 3261 §13.2): the INVITE, one digest retry (§22.2), CANCEL (§9.1)
//! and the ACK of the 2xx (§13.2.2.4).

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response};
use tokio::sync::mpsc;

use super::table::{body_of, send_ack, set_body, Calling, Calls, Ctx, LegEntry, State};
use super::{DialRequest, LegEvent, LegId};
use crate::sip::codec::ALLOW;
use crate::sip::dialog::{cancel_for, new_branch, new_tag, via, Dialog, DialogId};
use crate::sip::transaction::TransactionKey;

impl Calls {
    /// Builds and sends the INVITE of a new outbound leg.
    pub(super) fn dial(&mut self, cx: &mut Ctx<'_>, id: LegId, call_id: String, req: DialRequest, events: mpsc::UnboundedSender<LegEvent>) {
        let uri = match rsip::Uri::try_from(req.request_uri.as_str()) {
            Ok(u) => u,
            Err(_) => {
                tracing::warn!(leg = id, uri = %req.request_uri, "dial: bad Request-URI");
                let _ = events.send(LegEvent::Failed { status: 400 });
                return;
            }
        };
        let to = req.destination;
        let mut headers = Headers::default();
        headers.push(Header::Via(via(to.transport, self.me(to.addr), &new_branch())));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
        headers.push(Header::From(rsip::headers::From::new(format!("<sip:{}@{}>;tag={}", req.from_user, req.from_host, new_tag()))));
        headers.push(Header::To(rsip::headers::To::new(req.to.clone())));
        headers.push(Header::CallId(rsip::headers::CallId::new(call_id.clone())));
        headers.push(Header::CSeq(rsip::headers::CSeq::new("1 INVITE")));
        headers.push(Header::Contact(rsip::headers::Contact::new(self.contact(to))));
        headers.push(Header::Allow(rsip::headers::Allow::new(ALLOW)));
        for (name, value) in &req.headers {
            headers.push(Header::Other(name.clone(), value.clone()));
        }
        let mut invite = Request { method: Method::Invite, uri, version: rsip::Version::V2, headers, body: vec![] };
        set_body(&mut invite.headers, &mut invite.body, "application/sdp", req.sdp);
        let Some(key) = cx.request(invite.clone(), to) else {
            let _ = events.send(LegEvent::Failed { status: 503 });
            return;
        };
        tracing::debug!(leg = id, %call_id, "INVITE sent");
        let calling = Calling {
            invite,
            key: key.clone(),
            credentials: req.credentials,
            auth_tried: false,
            provisional: false,
            hangup: false,
            cancel_sent: false,
            cancel_deadline: None,
        };
        self.legs.insert(id, LegEntry { call_id, events, peer: to, state: State::Calling(Box::new(calling)), txns: Vec::new() });
        self.map_txn(id, key);
    }

    /// CANCEL for the pending INVITE (§9.1); the INVITE then ends with 487 (or a racing 2xx).
    pub(super) fn send_cancel(&mut self, cx: &mut Ctx<'_>, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else { return };
        let State::Calling(c) = &mut leg.state else { return };
        c.cancel_sent = true;
        let at = cx.now + self.timers_cfg.t1 * 64;
        c.cancel_deadline = Some(at);
        self.timers.insert((at, id));
        let cancel = cancel_for(&c.invite);
        let peer = leg.peer;
        if let Some(key) = cx.request(cancel, peer) {
            self.map_txn(id, key);
        }
    }

    /// A response in one of a leg's client transactions. Returns false when not ours.
    pub(crate) fn on_response(&mut self, cx: &mut Ctx<'_>, key: &TransactionKey, resp: Response) -> bool {
        if self.on_message_response(cx, key, &resp) {
            return true;
        }
        let Some(&id) = self.by_txn.get(key) else { return false };
        match key.method() {
            Method::Invite => self.on_invite_response(cx, id, key, resp),
            Method::Bye if resp.status_code.code() >= 200 => self.end(id, Some(LegEvent::Ended { by_remote: false })),
            // CANCEL's own 200/481 tells nothing: the INVITE's final does.
            _ => {}
        }
        true
    }

    /// Timer B/F or a transport error in one of a leg's client transactions.
    pub(crate) fn on_failure(&mut self, cx: &mut Ctx<'_>, key: &TransactionKey, status: u16) -> bool {
        if self.on_message_failure(key, status) {
            return true;
        }
        let Some(&id) = self.by_txn.get(key) else { return false };
        let _ = cx;
        match key.method() {
            Method::Invite => {
                if matches!(self.legs.get(&id).map(|l| &l.state), Some(State::Calling(_))) {
                    self.end(id, Some(LegEvent::Failed { status }));
                }
            }
            Method::Bye => self.end(id, Some(LegEvent::Ended { by_remote: false })),
            _ => {}
        }
        true
    }

    fn on_invite_response(&mut self, cx: &mut Ctx<'_>, id: LegId, key: &TransactionKey, resp: Response) {
        let status = resp.status_code.code();
        let Some(leg) = self.legs.get_mut(&id) else { return };
        let c = match &mut leg.state {
            State::Calling(c) if &c.key == key => c,
            // 2xx retransmissions while the transaction is Accepted (RFC 6026): ACK again.
            State::Confirmed { ack: Some(ack), .. } | State::Ending { ack: Some(ack), .. } if (200..300).contains(&status) => {
                let (ack, peer) = (ack.clone(), leg.peer);
                send_ack(cx, &ack, peer);
                return;
            }
            _ => return,
        };
        match status {
            100..=199 => {
                c.provisional = true;
                let cancel = c.hangup && !c.cancel_sent;
                if status > 100 {
                    leg.emit(LegEvent::Progress { status, sdp: body_of(&resp.body) });
                }
                if cancel {
                    self.send_cancel(cx, id);
                }
            }
            200..=299 => self.on_2xx(cx, id, resp),
            // After a hangup a challenge simply ends the call.
            401 | 407 if c.credentials.is_some() && !c.auth_tried && !c.hangup => self.retry_with_auth(cx, id, resp),
            _ => self.end(id, Some(LegEvent::Failed { status })),
        }
    }

    /// The 2xx: the dialog, its ACK, then `Answered` — or, after a hangup, ACK then BYE (§9.1).
    fn on_2xx(&mut self, cx: &mut Ctx<'_>, id: LegId, resp: Response) {
        let Some(leg) = self.legs.get_mut(&id) else { return };
        let State::Calling(c) = &leg.state else { return };
        let hung_up = c.hangup;
        if let Some(at) = c.cancel_deadline {
            self.timers.remove(&(at, id));
        }
        let dialog = match Dialog::uac(&c.invite, &resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(leg = id, error = %e, "2xx does not create a dialog");
                self.end(id, Some(LegEvent::Failed { status: 502 }));
                return;
            }
        };
        let peer = leg.peer;
        let ack = match dialog.ack(self.via(peer)) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(leg = id, error = %e, "cannot build ACK");
                self.end(id, Some(LegEvent::Failed { status: 502 }));
                return;
            }
        };
        send_ack(cx, &ack, peer);
        let did: DialogId = dialog.id().clone();
        self.dialogs.insert(dialog);
        self.by_dialog.insert(did.clone(), id);
        let Some(leg) = self.legs.get_mut(&id) else { return };
        leg.state = State::Confirmed { dialog: did, ack: Some(ack) };
        if hung_up {
            tracing::debug!(leg = id, "2xx after hangup: ACK then BYE");
            self.send_bye(cx, id);
        } else {
            leg.emit(LegEvent::Answered { sdp: body_of(&resp.body) });
        }
    }

    /// Resends the INVITE once with digest credentials (§22.2): CSeq + 1, a new branch, the
    /// same Call-ID and From tag. A challenge that cannot be answered fails the leg.
    fn retry_with_auth(&mut self, cx: &mut Ctx<'_>, id: LegId, resp: Response) {
        let status = resp.status_code.code();
        let Some(leg) = self.legs.get_mut(&id) else { return };
        let peer = leg.peer;
        let State::Calling(c) = &mut leg.state else { return };
        let Some(creds) = c.credentials.clone() else { return };
        c.auth_tried = true;
        let sent = c.invite.clone();
        let invite = match self.with_digest(&sent, &resp, &creds, peer) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(leg = id, error = %e, "challenge not answerable");
                self.end(id, Some(LegEvent::Failed { status }));
                return;
            }
        };
        let Some(key) = cx.request(invite.clone(), peer) else {
            self.end(id, Some(LegEvent::Failed { status: 503 }));
            return;
        };
        let Some(leg) = self.legs.get_mut(&id) else { return };
        if let State::Calling(c) = &mut leg.state {
            c.invite = invite;
            c.key = key.clone();
            // A fresh INVITE transaction: CANCEL waits for its own provisional (§9.1).
            c.provisional = false;
        }
        self.map_txn(id, key);
    }

    /// A 2xx to an INVITE whose transaction is gone (§13.2.2.4): ACK it again.
    pub(crate) fn on_stray(&mut self, cx: &mut Ctx<'_>, resp: &Response) {
        let Some(did) = DialogId::for_incoming_response(resp) else { return };
        let Some(&id) = self.by_dialog.get(&did) else { return };
        let Some(leg) = self.legs.get(&id) else { return };
        if let State::Confirmed { ack: Some(ack), .. } | State::Ending { ack: Some(ack), .. } = &leg.state {
            let (ack, peer) = (ack.clone(), leg.peer);
            send_ack(cx, &ack, peer);
        }
    }
}
