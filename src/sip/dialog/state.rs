//! One dialog (RFC 3261 §12): its state, the requests we send in it (§12.2.1.1, §13.2.2.4) and
//! the checks on the requests the peer sends in it (§12.2.2).

use rsip::headers::UntypedHeader;
use rsip::prelude::ToTypedHeader;
use rsip::{Header, Headers, Method, Request, Response, StatusCode, Uri};

use super::error::DialogError;
use super::id::DialogId;
use crate::sip::transaction::message::{cseq_of, from_tag_of, response_for, to_tag_of};

/// Which side created the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogRole {
    Uac,
    Uas,
}

/// §12.1: a dialog created by a provisional is early; a 2xx confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// A request the peer sent in this dialog, as the TU needs to act on it.
#[derive(Debug, Clone, PartialEq)]
pub enum InDialogRequest {
    /// Answer 200 and end the dialog (§15.1.2); the dialog is already Terminated.
    Bye,
    /// A re-INVITE (target refresh). `offer` is its body, if any; a TU that does not renegotiate
    /// answers [`Dialog::reinvite_answer`] (200 with the same local SDP).
    ReInvite { offer: Option<Vec<u8>> },
    /// The ACK for our 2xx (stop the `Uas2xxRetransmitter`).
    Ack,
    Options,
    Info { content_type: Option<String>, body: Vec<u8> },
    /// UPDATE (RFC 3311), also a target refresh.
    Update,
    /// Any other method; the TU typically answers 405/501.
    Other(Method),
}

/// The state of one dialog. Created by [`Dialog::uac`] or [`Dialog::uas`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    id: DialogId,
    role: DialogRole,
    state: DialogState,
    /// Our From (UAC) / To (UAS) value, with our tag.
    local_party: String,
    /// Their To (UAC) / From (UAS) value, with their tag.
    remote_party: String,
    local_seq: u32,
    remote_seq: Option<u32>,
    remote_target: Uri,
    /// Route entries (`<uri;lr>` text) in the order we send them.
    route_set: Vec<String>,
    /// Our Contact header value, sent on target-refresh requests and 2xx.
    local_contact: Option<String>,
    /// CSeq of the INVITE (or re-INVITE) whose 2xx our ACK answers.
    invite_seq: u32,
    /// The session description we last sent (content type, body), for unchanged re-INVITE answers.
    local_sdp: Option<(String, Vec<u8>)>,
    /// The session description the peer sent when the session was set up (the answer in
    /// our INVITE's 2xx, or the offer in theirs), for what a re-offer leaves unsaid (the
    /// DTLS role).
    remote_sdp: Option<Vec<u8>>,
    /// We sent a re-INVITE and have no final response yet (glare, §14.1).
    reinvite_pending: bool,
    /// CSeq of the peer's re-INVITE we have not answered finally yet (§14.2).
    peer_reinvite_pending: Option<u32>,
}

fn header_value(headers: &Headers, pick: fn(&Header) -> Option<String>) -> Option<String> {
    headers.iter().find_map(pick)
}

fn from_value(h: &Header) -> Option<String> {
    match h {
        Header::From(v) => Some(v.value().to_string()),
        _ => None,
    }
}

fn to_value(h: &Header) -> Option<String> {
    match h {
        Header::To(v) => Some(v.value().to_string()),
        _ => None,
    }
}

fn contact_value(h: &Header) -> Option<String> {
    match h {
        Header::Contact(v) => Some(v.value().to_string()),
        _ => None,
    }
}

/// The URI of the (first) Contact of a message.
fn contact_uri(headers: &Headers) -> Result<Option<Uri>, DialogError> {
    let contact = headers.iter().find_map(|h| match h {
        Header::Contact(c) => Some(c),
        _ => None,
    });
    match contact {
        None => Ok(None),
        Some(c) => {
            let value = c.value();
            let first = split_list(value).into_iter().next().unwrap_or_default();
            let typed = rsip::headers::Contact::new(first)
                .typed()
                .map_err(|_| DialogError::MalformedHeader { header: "Contact" })?;
            Ok(Some(typed.uri))
        }
    }
}

/// Splits a comma-separated header value, ignoring commas inside `<...>` and quotes.
fn split_list(value: &str) -> Vec<String> {
    let mut out = vec![];
    let (mut depth, mut quoted, mut cur) = (0i32, false, String::new());
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Every Record-Route entry of a message, top to bottom.
fn record_routes(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::RecordRoute(rr) => Some(split_list(rr.value())),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The URI inside a route entry `<uri>;params` (or the bare entry).
fn route_uri(entry: &str) -> Result<Uri, DialogError> {
    let inner = match (entry.find('<'), entry.find('>')) {
        (Some(a), Some(b)) if a < b => &entry[a + 1..b],
        _ => entry.split(';').next().unwrap_or(entry),
    };
    Uri::try_from(inner).map_err(|_| DialogError::MalformedHeader { header: "Route" })
}

fn is_loose(entry: &str) -> bool {
    let lower = entry.to_ascii_lowercase();
    lower.contains(";lr>") || lower.contains(";lr;") || lower.contains(";lr=") || lower.ends_with(";lr")
}

fn status_of(resp: &Response) -> u16 {
    resp.status_code.code()
}

impl Dialog {
    /// UAC side (§12.1.2): from the INVITE we sent and a 101–299 response with a To tag.
    /// The route set is the response's Record-Route in reverse; the remote target its Contact.
    pub fn uac(invite: &Request, response: &Response) -> Result<Self, DialogError> {
        let status = status_of(response);
        let remote_tag = to_tag_of(response);
        if !(101..300).contains(&status) || remote_tag.is_none() {
            return Err(DialogError::NotDialogCreating { status });
        }
        let id = DialogId::for_incoming_response(response).ok_or(DialogError::MissingHeader { header: "From tag" })?;
        let (seq, _) = cseq_of(&invite.headers).map_err(|_| DialogError::MissingHeader { header: "CSeq" })?;
        let remote_target = match contact_uri(&response.headers)? {
            Some(uri) => uri,
            // A 2xx must carry a Contact (§13.3.1.4); a provisional may omit it.
            None if status >= 200 => return Err(DialogError::MissingHeader { header: "Contact" }),
            None => invite.uri.clone(),
        };
        let mut route_set = record_routes(&response.headers);
        route_set.reverse();
        Ok(Self {
            id,
            role: DialogRole::Uac,
            state: if status >= 200 { DialogState::Confirmed } else { DialogState::Early },
            local_party: header_value(&invite.headers, from_value).ok_or(DialogError::MissingHeader { header: "From" })?,
            remote_party: header_value(&response.headers, to_value).ok_or(DialogError::MissingHeader { header: "To" })?,
            local_seq: seq,
            remote_seq: None,
            remote_target,
            route_set,
            local_contact: header_value(&invite.headers, contact_value),
            invite_seq: seq,
            local_sdp: body_with_type(invite),
            remote_sdp: (!response.body.is_empty()).then(|| response.body.clone()),
            reinvite_pending: false,
            peer_reinvite_pending: None,
        })
    }

    /// UAS side (§12.1.1): from the INVITE we received and our 101–299 response to it, which
    /// carries our To tag (and our Contact). The route set is the INVITE's Record-Route in order.
    pub fn uas(invite: &Request, response: &Response) -> Result<Self, DialogError> {
        let status = status_of(response);
        let local_tag = to_tag_of(response);
        let remote_tag = from_tag_of(invite);
        let (Some(local_tag), Some(remote_tag)) = (local_tag, remote_tag) else {
            return Err(DialogError::NotDialogCreating { status });
        };
        if !(101..300).contains(&status) {
            return Err(DialogError::NotDialogCreating { status });
        }
        let (seq, _) = cseq_of(&invite.headers).map_err(|_| DialogError::MissingHeader { header: "CSeq" })?;
        let remote_target =
            contact_uri(&invite.headers)?.ok_or(DialogError::MissingHeader { header: "Contact" })?;
        let id = DialogId {
            call_id: crate::sip::transaction::message::call_id_of(&invite.headers),
            local_tag,
            remote_tag,
        };
        Ok(Self {
            id,
            role: DialogRole::Uas,
            state: if status >= 200 { DialogState::Confirmed } else { DialogState::Early },
            local_party: header_value(&response.headers, to_value).ok_or(DialogError::MissingHeader { header: "To" })?,
            remote_party: header_value(&invite.headers, from_value).ok_or(DialogError::MissingHeader { header: "From" })?,
            // §12.1.1: the UAS's local sequence starts empty; our first request uses 1.
            local_seq: 0,
            remote_seq: Some(seq),
            remote_target,
            route_set: record_routes(&invite.headers),
            local_contact: header_value(&response.headers, contact_value),
            invite_seq: seq,
            local_sdp: body_with_type_resp(response),
            remote_sdp: (!invite.body.is_empty()).then(|| invite.body.clone()),
            reinvite_pending: false,
            peer_reinvite_pending: None,
        })
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }

    pub fn role(&self) -> DialogRole {
        self.role
    }

    pub fn state(&self) -> DialogState {
        self.state
    }

    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// The session description we last sent, if any.
    pub fn local_sdp(&self) -> Option<&[u8]> {
        self.local_sdp.as_ref().map(|(_, b)| b.as_slice())
    }

    /// The peer's session description from the call's set-up, if any.
    pub fn remote_sdp(&self) -> Option<&[u8]> {
        self.remote_sdp.as_deref()
    }

    /// Records the session description we sent (for unchanged answers to re-INVITEs).
    pub fn set_local_sdp(&mut self, content_type: impl Into<String>, body: Vec<u8>) {
        self.local_sdp = Some((content_type.into(), body));
    }

    /// A later response in the INVITE transaction that created an early dialog (UAC): a 2xx
    /// confirms it and, per §13.2.2.4/§12.1.2, its Record-Route/Contact set the route set and
    /// remote target.
    pub fn on_response(&mut self, response: &Response) -> Result<(), DialogError> {
        let status = status_of(response);
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        if let Some(uri) = contact_uri(&response.headers)? {
            self.remote_target = uri;
        }
        if (200..300).contains(&status) && self.state == DialogState::Early {
            if !response.body.is_empty() {
                self.remote_sdp = Some(response.body.clone());
            }
            let mut routes = record_routes(&response.headers);
            routes.reverse();
            self.route_set = routes;
            self.state = DialogState::Confirmed;
        } else if status >= 300 && self.state == DialogState::Early {
            // §12.3: a non-2xx final ends an early dialog.
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// A response to our re-INVITE: a final one ends the glare window; a 2xx refreshes the
    /// remote target from its Contact (§12.2.1.2). The TU ACKs a 2xx with [`Self::ack`].
    pub fn on_reinvite_response(&mut self, response: &Response) -> Result<(), DialogError> {
        if status_of(response) >= 200 {
            self.reinvite_pending = false;
        }
        if (200..300).contains(&status_of(response)) {
            if let Some(uri) = contact_uri(&response.headers)? {
                self.remote_target = uri;
            }
        }
        Ok(())
    }

    /// Ends the dialog (BYE sent or received, or the 2xx was never ACKed).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// A new request in this dialog (§12.2.1.1): Request-URI the remote target (or the first
    /// route when it is a strict router), Route from the route set, the next local CSeq. `via`
    /// is the top Via with a fresh branch (see [`super::new_via`]). Target-refresh methods
    /// (INVITE, UPDATE) carry our Contact.
    pub fn request(&mut self, method: Method, via: rsip::headers::Via) -> Result<Request, DialogError> {
        if self.state == DialogState::Terminated && method != Method::Bye {
            return Err(DialogError::Terminated);
        }
        self.local_seq += 1;
        if method == Method::Invite {
            self.invite_seq = self.local_seq;
        }
        self.build(method, self.local_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: rsip::headers::Via) -> Result<Request, DialogError> {
        let mut headers = Headers::default();
        headers.push(Header::Via(via));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
        headers.push(Header::From(rsip::headers::From::new(self.local_party.clone())));
        headers.push(Header::To(rsip::headers::To::new(self.remote_party.clone())));
        headers.push(Header::CallId(rsip::headers::CallId::new(self.id.call_id.clone())));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} {method}"))));
        // §12.2.1.1: loose routing sends the route set as is; a strict first hop becomes the
        // Request-URI and the remote target goes last.
        let uri = match self.route_set.first() {
            Some(first) if !is_loose(first) => {
                for r in &self.route_set[1..] {
                    headers.push(Header::Route(rsip::headers::Route::new(r.clone())));
                }
                headers.push(Header::Route(rsip::headers::Route::new(format!("<{}>", self.remote_target))));
                route_uri(first)?
            }
            _ => {
                for r in &self.route_set {
                    headers.push(Header::Route(rsip::headers::Route::new(r.clone())));
                }
                self.remote_target.clone()
            }
        };
        if matches!(method, Method::Invite | Method::Update | Method::Ack) {
            if let Some(c) = &self.local_contact {
                headers.push(Header::Contact(rsip::headers::Contact::new(c.clone())));
            }
        }
        headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
        Ok(Request { method, uri, version: rsip::Version::V2, headers, body: vec![] })
    }

    pub fn bye(&mut self, via: rsip::headers::Via) -> Result<Request, DialogError> {
        let req = self.request(Method::Bye, via)?;
        self.state = DialogState::Terminated;
        Ok(req)
    }

    pub fn options(&mut self, via: rsip::headers::Via) -> Result<Request, DialogError> {
        self.request(Method::Options, via)
    }

    /// A re-INVITE offering `sdp` (or no body: an offerless re-INVITE).
    /// Until [`Self::on_reinvite_response`] sees its final response, a re-INVITE from the peer
    /// is refused with [`DialogError::Glare`] (491, §14.1).
    pub fn reinvite(&mut self, via: rsip::headers::Via, sdp: Option<Vec<u8>>) -> Result<Request, DialogError> {
        if self.reinvite_pending {
            return Err(DialogError::ReInviteInProgress);
        }
        let mut req = self.request(Method::Invite, via)?;
        self.reinvite_pending = true;
        if let Some(body) = sdp {
            set_body(&mut req.headers, &mut req.body, "application/sdp", body.clone());
            self.local_sdp = Some(("application/sdp".into(), body));
        }
        Ok(req)
    }

    pub fn info(&mut self, via: rsip::headers::Via, content_type: &str, body: Vec<u8>) -> Result<Request, DialogError> {
        let mut req = self.request(Method::Info, via)?;
        set_body(&mut req.headers, &mut req.body, content_type, body);
        Ok(req)
    }

    /// The ACK for a 2xx to our (re-)INVITE (§13.2.2.4): built like an in-dialog request but
    /// with the INVITE's CSeq number; a new branch. Sent with `send_stateless`, and sent again
    /// for every retransmitted 2xx.
    pub fn ack(&self, via: rsip::headers::Via) -> Result<Request, DialogError> {
        self.build(Method::Ack, self.invite_seq, via)
    }

    /// A UAC that sent CANCEL but received a 2xx anyway must still ACK it, then hang up with
    /// BYE (§9.1, §15). Returns the ACK and the BYE, in send order; the dialog ends.
    pub fn ack_and_bye(
        &mut self,
        ack_via: rsip::headers::Via,
        bye_via: rsip::headers::Via,
    ) -> Result<(Request, Request), DialogError> {
        let ack = self.ack(ack_via)?;
        let bye = self.bye(bye_via)?;
        Ok((ack, bye))
    }

    /// Checks and records a request the peer sent in this dialog (§12.2.2). A CSeq lower than
    /// the last one is refused ([`DialogError::CSeqOutOfOrder`] → 500); ACK and CANCEL reuse
    /// their INVITE's number and are not checked. Target refreshes update the remote target.
    pub fn handle_request(&mut self, req: &Request) -> Result<InDialogRequest, DialogError> {
        if self.state == DialogState::Terminated && req.method != Method::Ack {
            return Err(DialogError::Terminated);
        }
        let (seq, _) = cseq_of(&req.headers).map_err(|_| DialogError::MalformedHeader { header: "CSeq" })?;
        if !matches!(req.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq {
                if seq < last {
                    return Err(DialogError::CSeqOutOfOrder { got: seq, last });
                }
            }
            self.remote_seq = Some(seq);
        }
        let kind = match req.method {
            Method::Bye => {
                self.state = DialogState::Terminated;
                InDialogRequest::Bye
            }
            Method::Invite if self.reinvite_pending => return Err(DialogError::Glare),
            Method::Invite if self.peer_reinvite_pending.is_some_and(|p| p < seq) => {
                let pending = self.peer_reinvite_pending.unwrap_or_default();
                let retry_after_secs = rand::random_range(0..=10);
                return Err(DialogError::OverlappingReInvite { pending, retry_after_secs });
            }
            Method::Invite | Method::Update => {
                if let Some(uri) = contact_uri(&req.headers)? {
                    self.remote_target = uri;
                }
                if req.method == Method::Invite {
                    self.peer_reinvite_pending = Some(seq);
                    InDialogRequest::ReInvite { offer: (!req.body.is_empty()).then(|| req.body.clone()) }
                } else {
                    InDialogRequest::Update
                }
            }
            Method::Ack => {
                // The ACK for our 2xx to the peer's re-INVITE: it was answered (covers a TU
                // that did not call `on_reinvite_answered`).
                if self.peer_reinvite_pending.is_some_and(|p| p <= seq) {
                    self.peer_reinvite_pending = None;
                }
                InDialogRequest::Ack
            }
            Method::Options => InDialogRequest::Options,
            Method::Info => InDialogRequest::Info {
                content_type: req.headers.iter().find_map(|h| match h {
                    Header::ContentType(c) => Some(c.value().to_string()),
                    _ => None,
                }),
                body: req.body.clone(),
            },
            other => InDialogRequest::Other(other),
        };
        Ok(kind)
    }

    /// The TU sent `response` to the peer's re-INVITE: a final one (any class) ends the §14.2
    /// window, so a later re-INVITE is accepted again. Call it for every final sent to a
    /// re-INVITE (an ACK for a 2xx also ends the window; a non-2xx's ACK never reaches the
    /// dialog, §17.2.1).
    pub fn on_reinvite_answered(&mut self, response: &Response) {
        let Ok((seq, method)) = cseq_of(&response.headers) else { return };
        if method == Method::Invite && status_of(response) >= 200 && self.peer_reinvite_pending == Some(seq) {
            self.peer_reinvite_pending = None;
        }
    }

    /// The answer to a re-INVITE refused with [`DialogError::OverlappingReInvite`] (§14.2):
    /// 500 with a Retry-After of `retry_after_secs`.
    pub fn overlap_answer(reinvite: &Request, retry_after_secs: u32) -> Response {
        let mut resp = response_for(reinvite, StatusCode::ServerInternalError);
        resp.headers.push(Header::RetryAfter(rsip::headers::RetryAfter::new(retry_after_secs.to_string())));
        resp
    }

    /// The 200 to a re-INVITE answering its offer with `sdp` (RFC 3264 §8), which becomes
    /// the description we last sent.
    pub fn reinvite_answer_with(&mut self, reinvite: &Request, sdp: Vec<u8>) -> Response {
        self.local_sdp = Some(("application/sdp".into(), sdp));
        self.reinvite_answer(reinvite)
    }

    /// The 200 to a re-INVITE that keeps the session unchanged: our Contact and the same SDP we
    /// last sent (RFC 3264 §8: an unchanged answer keeps the o= version).
    pub fn reinvite_answer(&self, reinvite: &Request) -> Response {
        let mut resp = response_for(reinvite, StatusCode::OK);
        if let Some(c) = &self.local_contact {
            resp.headers.push(Header::Contact(rsip::headers::Contact::new(c.clone())));
        }
        if let Some((ct, body)) = &self.local_sdp {
            set_body(&mut resp.headers, &mut resp.body, ct, body.clone());
        }
        resp
    }
}

fn set_body(headers: &mut Headers, body_slot: &mut Vec<u8>, content_type: &str, body: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    headers.push(Header::ContentType(rsip::headers::ContentType::new(content_type)));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(body.len().to_string())));
    *body_slot = body;
}

fn content_type_of(headers: &Headers) -> Option<String> {
    headers.iter().find_map(|h| match h {
        Header::ContentType(c) => Some(c.value().to_string()),
        _ => None,
    })
}

fn body_with_type(req: &Request) -> Option<(String, Vec<u8>)> {
    (!req.body.is_empty()).then(|| (content_type_of(&req.headers).unwrap_or_else(|| "application/sdp".into()), req.body.clone()))
}

fn body_with_type_resp(resp: &Response) -> Option<(String, Vec<u8>)> {
    (!resp.body.is_empty())
        .then(|| (content_type_of(&resp.headers).unwrap_or_else(|| "application/sdp".into()), resp.body.clone()))
}

