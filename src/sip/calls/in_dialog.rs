//! Requests the peer sends in a call's dialog (RFC 3261 §12.2.2): BYE (§15.1.2), re-INVITE
//! (§14.2), INFO (RFC 6086, DTMF relay), OPTIONS (§11.2), and the ACK for our 2xx (§13.3.1.4).

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, StatusCode};

use super::table::{body_of, Calls, Ctx, State};
use super::LegEvent;
use crate::media::sdp::reanswer::reanswer;
use crate::sip::codec::ALLOW;
use crate::sip::dialog::{Dialog, DialogError, InDialogRequest};
use crate::sip::endpoint::reply::{reply, SERVER};
use crate::sip::transaction::TransactionKey;

impl Calls {
    /// A request with a To tag. Answered here whatever happens: 481 without a dialog.
    pub(crate) fn on_in_dialog(&mut self, cx: &mut Ctx<'_>, key: TransactionKey, req: Request) {
        let (did, kind) = match self.dialogs.handle_request(&req) {
            Ok(x) => x,
            Err(DialogError::OverlappingReInvite { retry_after_secs, .. }) => {
                cx.respond(&key, Dialog::overlap_answer(&req, retry_after_secs));
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, method = %req.method, "in-dialog request refused");
                cx.respond(&key, reply(&req, e.status_code()));
                return;
            }
        };
        let Some(&id) = self.by_dialog.get(&did) else {
            cx.respond(&key, reply(&req, 481));
            return;
        };
        match kind {
            InDialogRequest::Bye => {
                cx.respond(&key, reply(&req, 200));
                self.end(id, Some(LegEvent::Ended { by_remote: true }));
            }
            InDialogRequest::ReInvite { offer } => {
                let Some(d) = self.dialogs.get_mut(&did) else { return };
                let mut resp = match (&offer, d.local_sdp()) {
                    // RFC 3264 §8: the answer mirrors the offer's direction (hold, resume) and
                    // keeps everything else we last sent; a re-INVITE without an offer gets
                    // our last description as the offer.
                    (Some(sdp), Some(ours)) => {
                        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                        match reanswer(&text(ours), d.remote_sdp().map(text).as_deref(), &text(sdp)) {
                            Ok(answer) => d.reinvite_answer_with(&req, answer.into_bytes()),
                            Err(e) => {
                                // §14.2: an offer we cannot accept leaves the session as it was.
                                tracing::info!(error = %e, "re-INVITE offer refused");
                                let resp = reply(&req, e.sip_status());
                                d.on_reinvite_answered(&resp);
                                cx.respond(&key, resp);
                                return;
                            }
                        }
                    }
                    _ => d.reinvite_answer(&req),
                };
                resp.headers.push(Header::Server(rsip::headers::Server::new(SERVER)));
                d.on_reinvite_answered(&resp);
                cx.respond(&key, resp);
                if let (Some(sdp), Some(leg)) = (offer, self.legs.get(&id)) {
                    leg.emit(LegEvent::Reoffer { sdp });
                }
            }
            InDialogRequest::Info { content_type, body } => {
                let ct = content_type.unwrap_or_default().to_ascii_lowercase();
                let text = String::from_utf8_lossy(&body);
                let parsed = if ct.starts_with("application/dtmf-relay") {
                    crate::media::dtmf::parse_dtmf_relay(&text)
                } else if ct.starts_with("application/dtmf") {
                    crate::media::dtmf::parse_dtmf(&text)
                } else {
                    cx.respond(&key, reply(&req, 415));
                    return;
                };
                match parsed {
                    Ok(d) => {
                        cx.respond(&key, reply(&req, 200));
                        if let Some(leg) = self.legs.get(&id) {
                            // Without a Duration the digit's length is unknown: 0.
                            leg.emit(LegEvent::Dtmf { digit: d.digit, duration_ms: d.duration_ms.unwrap_or(0) });
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "bad DTMF INFO body");
                        cx.respond(&key, reply(&req, 400));
                    }
                }
            }
            InDialogRequest::Options => {
                let mut resp = reply(&req, 200);
                resp.headers.push(Header::Allow(rsip::headers::Allow::new(ALLOW)));
                cx.respond(&key, resp);
            }
            InDialogRequest::Ack => {}
            InDialogRequest::Update | InDialogRequest::Other(_) => {
                let mut resp = reply(&req, StatusCode::NotImplemented.code());
                resp.headers.push(Header::Allow(rsip::headers::Allow::new(ALLOW)));
                cx.respond(&key, resp);
            }
        }
    }

    /// An ACK outside any transaction: the ACK for our 2xx (→ `Answered`), or a late one.
    pub(crate) fn on_ack(&mut self, req: &Request) {
        let Ok((did, InDialogRequest::Ack)) = self.dialogs.handle_request(req) else { return };
        let Some(&id) = self.by_dialog.get(&did) else { return };
        let Some(leg) = self.legs.get_mut(&id) else { return };
        if let State::Accepting { armed, retransmitter, .. } = &mut leg.state {
            retransmitter.on_ack();
            if let Some(at) = armed.take() {
                self.timers.remove(&(at, id));
            }
            leg.emit(LegEvent::Answered { sdp: body_of(&req.body) });
            leg.state = State::Confirmed { dialog: did, ack: None };
        }
    }
}
