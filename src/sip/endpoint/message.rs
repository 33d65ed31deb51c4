//! Inbound MESSAGE outside a dialog (RFC 3428 "pager mode"): a customer
//! texting back through a carrier. Accepted only from a configured carrier
//! (the source address is one of the profiles' resolved proxies; 403
//! otherwise), only as `text/plain` (415 with `Accept`, RFC 3428 §7) in
//! UTF-8 (400), then handed to the application and answered 200. When the
//! application is not taking texts (none is listening, or its queue is
//! full) the answer is 480 or 503, so the carrier retries or reports it.

use std::collections::HashMap;
use std::net::IpAddr;

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response};
use tokio::sync::mpsc;

use super::reply::{reply, request_user};
use crate::sip::Peer;

/// Texts waiting for the application; beyond this they get 503.
pub const INCOMING_TEXTS: usize = 256;

/// A text a carrier delivered to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingText {
    /// The profile (trunk) it came through.
    pub profile: String,
    /// The sender: the user part of From (the customer's number), or the whole URI.
    pub from: String,
    /// The Request-URI user (one of our numbers), or the whole URI.
    pub to: String,
    pub text: String,
    pub call_id: String,
}

/// Carrier source IP → the profile whose proxy is there (the first by name).
pub fn carriers<'a>(proxies: impl IntoIterator<Item = (&'a String, &'a Result<std::net::SocketAddr, String>)>) -> HashMap<IpAddr, String> {
    let mut out = HashMap::new();
    for (name, addr) in proxies {
        if let Ok(a) = addr {
            out.entry(a.ip()).or_insert_with(|| name.clone());
        }
    }
    out
}

/// Answers an out-of-dialog MESSAGE from `from`, handing an accepted text to `texts`.
pub fn handle(req: &Request, from: &Peer, carriers: &HashMap<IpAddr, String>, texts: Option<&mpsc::Sender<IncomingText>>) -> Response {
    let Some(profile) = carriers.get(&from.addr.ip()) else {
        tracing::info!(source = %from.addr, "MESSAGE from a source that is not a carrier: 403");
        return reply(req, 403);
    };
    let ctype = req.headers.iter().find_map(|h| match h {
        Header::ContentType(c) => Some(c.value().to_ascii_lowercase()),
        _ => None,
    });
    let plain = ctype.as_deref().is_some_and(|c| c.split(';').next().is_some_and(|m| m.trim() == "text/plain"));
    if !plain {
        let mut r = reply(req, 415);
        r.headers.push(Header::Accept(rsip::headers::Accept::new("text/plain")));
        return r;
    }
    // RFC 3428 §9 leaves the charset to the sender; only UTF-8 (and its
    // ASCII subset) is read, the default the pager sends.
    let charset_ok = ctype.as_deref().is_none_or(|c| c.split(';').skip(1).all(|p| match p.trim().split_once('=') {
        Some((k, v)) if k.trim() == "charset" => matches!(v.trim().trim_matches('"'), "utf-8" | "us-ascii"),
        _ => true,
    }));
    let Ok(text) = String::from_utf8(req.body.clone()) else { return reply(req, 400) };
    if !charset_ok {
        let mut r = reply(req, 415);
        r.headers.push(Header::Accept(rsip::headers::Accept::new("text/plain;charset=UTF-8")));
        return r;
    }
    let sender = req
        .headers
        .iter()
        .find_map(|h| match h {
            Header::From(f) => Some(f.value().to_string()),
            _ => None,
        })
        .and_then(|v| crate::sip::codec::headers::parse_name_addr(&v, "From").ok())
        .map(|na| na.uri.user().map(str::to_string).unwrap_or_else(|| na.uri.to_string()))
        .unwrap_or_default();
    let to = request_user(req).unwrap_or_else(|| req.uri.to_string());
    let call_id = crate::sip::transaction::message::call_id_of(&req.headers).to_string();
    let Some(texts) = texts else { return reply(req, 480) };
    match texts.try_send(IncomingText { profile: profile.clone(), from: sender, to, text, call_id }) {
        Ok(()) => reply(req, 200),
        Err(mpsc::error::TrySendError::Full(_)) => reply(req, 503),
        Err(mpsc::error::TrySendError::Closed(_)) => reply(req, 480),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;

    fn message(content_type: Option<&str>, body: &[u8]) -> Request {
        let ct = content_type.map(|c| format!("Content-Type: {c}\r\n")).unwrap_or_default();
        let raw = format!(
            "MESSAGE sip:+15550100@redial.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK1\r\nFrom: <sip:+15557654321@carrier.test>;tag=a\r\nTo: <sip:+15550100@redial.test>\r\nCall-ID: m1\r\nCSeq: 1 MESSAGE\r\n{ct}Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        match crate::sip::codec::decode(&bytes).expect("decodes") {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn peer(ip: [u8; 4]) -> Peer {
        Peer { addr: (ip, 5060).into(), transport: Transport::Udp }
    }

    #[test]
    fn a_carriers_text_is_handed_over_and_others_are_refused() {
        let proxies = std::collections::BTreeMap::from([("carrier1".to_string(), Ok("127.0.0.9:5060".parse().unwrap()))]);
        let carriers = carriers(&proxies);
        let (tx, mut rx) = mpsc::channel(1);
        let ok = message(Some("text/plain;charset=UTF-8"), "STOP ✋".as_bytes());
        assert_eq!(handle(&ok, &peer([127, 0, 0, 9]), &carriers, Some(&tx)).status_code.code(), 200);
        let got = rx.try_recv().unwrap();
        assert_eq!((got.profile.as_str(), got.from.as_str(), got.to.as_str(), got.text.as_str(), got.call_id.as_str()), ("carrier1", "+15557654321", "+15550100", "STOP ✋", "m1"));
        // Not a carrier's address, whatever it says.
        assert_eq!(handle(&ok, &peer([127, 0, 0, 8]), &carriers, Some(&tx)).status_code.code(), 403);
        // Not plain text, or not UTF-8.
        assert_eq!(handle(&message(Some("application/im-iscomposing+xml"), b"<x/>"), &peer([127, 0, 0, 9]), &carriers, Some(&tx)).status_code.code(), 415);
        assert_eq!(handle(&message(Some("text/plain;charset=ISO-8859-1"), b"caf\xe9"), &peer([127, 0, 0, 9]), &carriers, Some(&tx)).status_code.code(), 400);
        assert_eq!(handle(&message(Some("text/plain;charset=ISO-8859-1"), b"cafe"), &peer([127, 0, 0, 9]), &carriers, Some(&tx)).status_code.code(), 415);
        // The application's queue is full: 503, and nothing is lost silently.
        assert_eq!(handle(&ok, &peer([127, 0, 0, 9]), &carriers, Some(&tx)).status_code.code(), 200);
        assert_eq!(handle(&ok, &peer([127, 0, 0, 9]), &carriers, Some(&tx)).status_code.code(), 503);
        assert_eq!(handle(&ok, &peer([127, 0, 0, 9]), &carriers, None).status_code.code(), 480);
    }
}
