//! Inbound legs (UAS, RFC 3261 §13.3): 100 Trying, the TU's provisional and final
//! responses, 2xx retransmission until the ACK (§13.3.1.4), and CANCEL (§9.2).

use rsip::headers::UntypedHeader;
use rsip::{Header, Request};

use super::table::{body_of, set_body, uas_response, Calls, Ctx, LegEntry, Offered, State};
use super::{IncomingCall, LegEvent, LegId};
use crate::sip::dialog::{new_tag, Dialog, Uas2xxRetransmitter};
use crate::sip::endpoint::reply::{reply, request_user};
use crate::sip::transaction::message::call_id_of;
use crate::sip::transaction::TransactionKey;
use crate::sip::Peer;

/// The user part of a name-addr or URI header value (`"Bob" <sip:bob@h>;tag=x` → `bob`).
fn user_of(value: &str) -> Option<String> {
    let uri = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    };
    let rest = uri.trim().split_once(':')?.1;
    let user = rest.split_once('@')?.0;
    let user = user.split(';').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_string())
}

impl Calls {
    /// An out-of-dialog INVITE for a user we know: an [`IncomingCall`] for the TU; 480 when
    /// nobody takes calls (receiver gone or full).
    pub(crate) fn on_invite(&mut self, cx: &mut Ctx<'_>, key: TransactionKey, invite: Request, from: Peer) {
        // No explicit 100 here: the INVITE server transaction sends it 200 ms after the INVITE
        // unless the TU answered first (§17.2.1), so a TU that rejects at once sends only
        // its final.
        let call_id = call_id_of(&invite.headers);
        let (leg, events) = self.control.new_leg(call_id.clone());
        let id = leg.id;
        let mut headers = Vec::with_capacity(invite.headers.iter().count());
        let (mut from_user, mut asserted_user) = (None, None);
        for h in invite.headers.iter() {
            let text = h.to_string();
            let (name, value) = text.split_once(':').map(|(n, v)| (n.trim(), v.trim())).unwrap_or((text.as_str(), ""));
            match h {
                Header::From(f) => from_user = user_of(f.value()),
                _ if name.eq_ignore_ascii_case("P-Asserted-Identity") => asserted_user = user_of(value),
                _ => {}
            }
            headers.push((name.to_string(), value.to_string()));
        }
        let call = IncomingCall {
            leg,
            request_user: request_user(&invite).unwrap_or_default(),
            from_user,
            asserted_user,
            source: from,
            sdp: body_of(&invite.body),
            headers,
        };
        if let Err(e) = self.incoming.try_send(call) {
            tracing::info!(%call_id, full = matches!(e, tokio::sync::mpsc::error::TrySendError::Full(_)), "nobody takes the call: 480");
            cx.respond(&key, reply(&invite, 480));
            return;
        }
        tracing::debug!(leg = id, %call_id, "incoming call offered");
        let offered = Offered { invite, key: key.clone(), to_tag: new_tag() };
        self.legs.insert(id, LegEntry { call_id, events, peer: from, state: State::Offered(Box::new(offered)), txns: Vec::new() });
        self.map_txn(id, key);
    }

    /// 180, or 183 with early-media SDP.
    pub(super) fn provisional(&mut self, cx: &mut Ctx<'_>, id: LegId, status: u16, sdp: Option<Vec<u8>>) {
        let Some(leg) = self.legs.get(&id) else { return };
        let State::Offered(o) = &leg.state else {
            tracing::debug!(leg = id, status, "provisional for a leg not offered: ignored");
            return;
        };
        let contact = self.contact(leg.peer);
        let mut resp = uas_response(&o.invite, status, &o.to_tag, Some(&contact));
        if let Some(sdp) = sdp {
            set_body(&mut resp.headers, &mut resp.body, "application/sdp", sdp);
        }
        let key = o.key.clone();
        cx.respond(&key, resp);
    }

    /// 200 with the SDP answer; it creates the dialog and is retransmitted until the ACK.
    pub(super) fn answer(&mut self, cx: &mut Ctx<'_>, id: LegId, sdp: Vec<u8>) {
        let Some(leg) = self.legs.get(&id) else { return };
        let State::Offered(o) = &leg.state else {
            tracing::debug!(leg = id, "answer for a leg not offered: ignored");
            return;
        };
        let peer = leg.peer;
        let contact = self.contact(peer);
        let mut ok = uas_response(&o.invite, 200, &o.to_tag, Some(&contact));
        set_body(&mut ok.headers, &mut ok.body, "application/sdp", sdp);
        let key = o.key.clone();
        let dialog = match Dialog::uas(&o.invite, &ok) {
            Ok(d) => d,
            Err(e) => {
                // An INVITE without Contact cannot make a dialog (§8.1.1.8).
                tracing::info!(leg = id, error = %e, "cannot answer");
                let resp = uas_response(&o.invite, 400, &o.to_tag, None);
                cx.respond(&key, resp);
                self.end(id, Some(LegEvent::Failed { status: 400 }));
                return;
            }
        };
        cx.respond(&key, ok.clone());
        let did = dialog.id().clone();
        self.dialogs.insert(dialog);
        self.by_dialog.insert(did.clone(), id);
        let retransmitter = Uas2xxRetransmitter::new(cx.now, ok, peer, self.timers_cfg);
        let armed = retransmitter.poll_timeout();
        if let Some(at) = armed {
            self.timers.insert((at, id));
        }
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.state = State::Accepting { dialog: did, retransmitter: Box::new(retransmitter), armed };
        }
    }

    /// A final non-2xx (the TU's reject, or 480 on hangup before answering).
    pub(super) fn reject(&mut self, cx: &mut Ctx<'_>, id: LegId, status: u16) {
        let Some(leg) = self.legs.get(&id) else { return };
        let State::Offered(o) = &leg.state else {
            tracing::debug!(leg = id, status, "reject for a leg not offered: ignored");
            return;
        };
        // Only 3xx–6xx end an INVITE without a dialog; anything else is a TU error.
        let status = if (300..700).contains(&status) { status } else { 500 };
        let resp = uas_response(&o.invite, status, &o.to_tag, None);
        let key = o.key.clone();
        cx.respond(&key, resp);
        self.end(id, None);
    }

    /// The caller CANCELled (the endpoint already answered 200 and 487, §9.2).
    pub(crate) fn on_cancelled(&mut self, target: &TransactionKey) {
        let Some(&id) = self.by_txn.get(target) else { return };
        if matches!(self.legs.get(&id).map(|l| &l.state), Some(State::Offered(_))) {
            self.end(id, Some(LegEvent::Failed { status: 487 }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::user_of;

    #[test]
    fn users_of_header_values() {
        assert_eq!(user_of("\"Bob\" <sip:bob@example.com>;tag=1").as_deref(), Some("bob"));
        assert_eq!(user_of("<sip:+15550100@c.test;user=phone>").as_deref(), Some("+15550100"));
        assert_eq!(user_of("sip:alice@h;tag=2").as_deref(), Some("alice"));
        assert_eq!(user_of("<tel:+15550100>"), None);
        assert_eq!(user_of("<sip:h.test>"), None);
    }
}
