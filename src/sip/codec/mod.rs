//! The codec boundary over rsip 0.4: every SIP message enters through [`decode`] and
//! leaves through [`encode`].
//!
//! rsip parses and prints messages and keeps every header as text; its gaps
//! (checked with tests in the submodules) are handled here and nowhere else:
//! - [`decode`]: splits the head ourselves — compact names (`i:`, `v:`, `m:`...) expanded,
//!   folded lines joined, white space around `;`/`=`/`,`/`/` taken out of the address
//!   headers and Via, comma lists of Via/Contact/Route split — checks what RFC 3261
//!   requires (mandatory headers, single-value headers, Content-Length vs body,
//!   CSeq, Max-Forwards, URIs, the SIP version, the 64 KiB cap) and builds the response
//!   to a refused request when it can be addressed (a top Via is enough). Then rsip parses
//!   a canonical copy. The RFC 4475 torture messages are the acceptance test.
//! - [`headers`]: our own parsers for what rsip's typed headers get wrong (name-addr
//!   with `tel:`, Contact with `+sip.instance="<urn:...>"`) or lack (P-Asserted-Identity,
//!   RSeq, RAck, Session-Expires).
//! - [`via`]: `received`/`rport` on receipt and the response destination (§18.2).

pub mod decode;
pub mod headers;
pub mod via;

pub use decode::{decode, DecodeError, DecodeErrorKind};
pub use headers::{AnyUri, ContactList, HeaderError, NameAddr};

use rsip::{Header, SipMessage};

/// Largest message we accept or send (bytes). Bigger ones are refused with 513 when
/// they can be addressed, and TCP connections sending them are closed.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// The methods redial's UA core handles (the Allow header; RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, MESSAGE";

/// Serialises a message: start line (with the RFC reason phrase — rsip prints
/// `400 BadRequest`), the headers, a Content-Length matching the body (RFC 3261 §20.14)
/// last, and the body bytes as they are (rsip's printer passes the body through
/// `from_utf8_lossy`, which corrupts binary bodies; found by the fuzz target).
pub fn encode(msg: &SipMessage) -> Vec<u8> {
    match msg {
        SipMessage::Request(r) => encode_request(r),
        SipMessage::Response(r) => encode_response(r),
    }
}

/// [`encode`] for a request.
pub fn encode_request(r: &rsip::Request) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(512 + r.body.len());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{} {} {}\r\n", r.method, r.uri, r.version);
    encode_rest(out, &r.headers, &r.body)
}

/// [`encode`] for a response.
pub fn encode_response(r: &rsip::Response) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(512 + r.body.len());
    let code = r.status_code.code();
    let _ = match (reason_phrase(code), &r.status_code) {
        (_, rsip::StatusCode::Other(_, reason)) => write!(out, "{} {code} {reason}\r\n", r.version),
        (Some(reason), _) => write!(out, "{} {code} {reason}\r\n", r.version),
        (None, sc) => write!(out, "{} {sc}\r\n", r.version),
    };
    encode_rest(out, &r.headers, &r.body)
}

fn encode_rest(mut out: Vec<u8>, headers: &rsip::Headers, body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    for h in headers.iter() {
        if !matches!(h, Header::ContentLength(_)) {
            let _ = write!(out, "{h}\r\n");
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
    out
}

/// The reason phrases of RFC 3261 §21 and the extensions we send.
pub fn reason_phrase(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => return None,
    })
}

/// Values of the headers named `name` (case-insensitive), in order; works for the
/// headers rsip types (`Via`, `From`...) and the ones it keeps as `Other`.
pub fn header_values<'a>(headers: &'a rsip::Headers, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers.iter().filter_map(move |h| {
        let s = h.to_string();
        let (n, v) = s.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The first value of header `name`, if any.
pub fn header_value(headers: &rsip::Headers, name: &str) -> Option<String> {
    header_values(headers, name).next()
}

/// A fresh random token for tags and branches (RFC 3261 §19.3: at least 32 bits of randomness).
pub fn new_tag() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

#[cfg(test)]
mod tests;
