//! Outbound SIP MESSAGE (RFC 3428 "pager mode"): one `text/plain` request
//! outside any dialog, with one digest retry (RFC 3261 §22.2), ending in the
//! final status. A text is a short message; [`split`] cuts a longer one into
//! parts that fit a trunk's limit.


use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response};
use tokio::sync::oneshot;

use super::table::{set_body, Calls, Ctx, PendingMessage as Pending};
use super::Credentials;
use crate::sip::dialog::{new_branch, new_call_id, new_tag, via};
use crate::sip::transaction::TransactionKey;

/// RFC 3428 §8: without congestion control a MESSAGE must stay under 1300
/// bytes in all; this many bytes of text leaves room for the headers.
pub const DEFAULT_MAX_TEXT: usize = 900;

/// One text to send.
#[derive(Debug, Clone)]
pub struct MessageRequest {
    /// `sip:+15550100@carrier.test`
    pub request_uri: String,
    /// The To header value, e.g. `<sip:+15550100@carrier.test>`.
    pub to: String,
    pub from_user: String,
    pub from_host: String,
    pub destination: crate::sip::Peer,
    /// UTF-8 text (`text/plain;charset=UTF-8`).
    pub text: String,
    pub credentials: Option<Credentials>,
    /// Extra headers, e.g. `X-Redial-Callback-Id`.
    pub headers: Vec<(String, String)>,
}

/// How a MESSAGE ended: `Ok(2xx status)` when the carrier accepted it,
/// else the failing status (408 for no answer, 503 for a transport error).
pub type MessageResult = Result<u16, u16>;


impl Calls {
    /// Builds and sends a MESSAGE; `reply` gets its final result.
    pub(super) fn send_message(&mut self, cx: &mut Ctx<'_>, req: MessageRequest, reply: oneshot::Sender<MessageResult>) {
        let Ok(uri) = rsip::Uri::try_from(req.request_uri.as_str()) else {
            tracing::warn!(uri = %req.request_uri, "MESSAGE: bad Request-URI");
            let _ = reply.send(Err(400));
            return;
        };
        let to = req.destination;
        let mut headers = Headers::default();
        headers.push(Header::Via(via(to.transport, self.me(to.addr), &new_branch())));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
        headers.push(Header::From(rsip::headers::From::new(format!("<sip:{}@{}>;tag={}", req.from_user, req.from_host, new_tag()))));
        headers.push(Header::To(rsip::headers::To::new(req.to)));
        headers.push(Header::CallId(rsip::headers::CallId::new(new_call_id())));
        headers.push(Header::CSeq(rsip::headers::CSeq::new("1 MESSAGE")));
        for (name, value) in req.headers {
            headers.push(Header::Other(name, value));
        }
        let mut request = Request { method: Method::Message, uri, version: rsip::Version::V2, headers, body: vec![] };
        set_body(&mut request.headers, &mut request.body, "text/plain;charset=UTF-8", req.text.into_bytes());
        let pending = Pending { request, peer: to, credentials: req.credentials, auth_tried: false, reply };
        self.send_pending(cx, pending);
    }

    fn send_pending(&mut self, cx: &mut Ctx<'_>, p: Pending) {
        match cx.request(p.request.clone(), p.peer) {
            Some(key) => {
                self.messages.insert(key, p);
            }
            None => {
                let _ = p.reply.send(Err(503));
            }
        }
    }

    /// A response to a MESSAGE; false when the transaction is not one.
    pub(super) fn on_message_response(&mut self, cx: &mut Ctx<'_>, key: &TransactionKey, resp: &Response) -> bool {
        let status = resp.status_code.code();
        if status < 200 {
            return self.messages.contains_key(key);
        }
        let Some(mut p) = self.messages.remove(key) else { return false };
        match status {
            200..=299 => {
                let _ = p.reply.send(Ok(status));
            }
            401 | 407 if p.credentials.is_some() && !p.auth_tried => {
                p.auth_tried = true;
                match self.with_auth(&p, resp) {
                    Some(request) => {
                        p.request = request;
                        self.send_pending(cx, p);
                    }
                    None => {
                        let _ = p.reply.send(Err(status));
                    }
                }
            }
            _ => {
                let _ = p.reply.send(Err(status));
            }
        }
        true
    }

    /// Timer F or a transport error; false when the transaction is not a MESSAGE.
    pub(super) fn on_message_failure(&mut self, key: &TransactionKey, status: u16) -> bool {
        match self.messages.remove(key) {
            Some(p) => {
                let _ = p.reply.send(Err(status));
                true
            }
            None => false,
        }
    }

    /// The MESSAGE again with credentials: CSeq + 1, a new branch (§22.2).
    fn with_auth(&self, p: &Pending, challenge: &Response) -> Option<Request> {
        let creds = p.credentials.as_ref()?;
        match self.with_digest(&p.request, challenge, creds, p.peer) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::info!(error = %e, "MESSAGE challenge not answerable");
                None
            }
        }
    }
}

/// Cuts `text` into parts of at most `max` bytes, at a space where one is
/// near the end of a part, never inside a UTF-8 character. `None` when
/// `max` cannot hold even one character.
pub fn split(text: &str, max: usize) -> Option<Vec<String>> {
    if text.len() <= max {
        return Some(vec![text.to_owned()]);
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() <= max {
            parts.push(rest.to_owned());
            break;
        }
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            return None;
        }
        // Prefer the last space in the final quarter of the part.
        if let Some(sp) = rest[..cut].rfind(' ').filter(|&sp| sp > 0 && sp >= cut * 3 / 4) {
            cut = sp;
        }
        parts.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    Some(parts)
}

#[cfg(test)]
mod split_tests {
    use super::split;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split("hello", 10).unwrap(), vec!["hello"]);
    }

    #[test]
    fn long_text_splits_at_spaces_and_within_the_limit() {
        let text = "We will call you back tomorrow at 3 pm about your order. Reply STOP to opt out.";
        let parts = split(text, 30).unwrap();
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|p| p.len() <= 30 && !p.starts_with(' ') && !p.ends_with(' ')), "{parts:?}");
        assert_eq!(parts.join(" "), text);
    }

    #[test]
    fn never_cuts_inside_a_character() {
        let text = "कल सुबह दस बजे कॉल करेंगे".repeat(3);
        let parts = split(&text, 20).unwrap();
        assert!(parts.iter().all(|p| p.len() <= 20));
        assert_eq!(parts.concat().replace(' ', ""), text.replace(' ', ""));
        assert!(split("é", 1).is_none());
    }
}
