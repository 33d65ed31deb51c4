//! CANCEL of a pending INVITE (RFC 3261 §9.1).

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request};

/// The CANCEL for `invite`: same Request-URI, Call-ID, To, From, CSeq number and top Via (so
/// it matches the INVITE's server transaction, §9.2), the same Route headers, method CANCEL and
/// no body. Send it with `TransactionLayer::send_request`, only after a provisional response
/// arrived (§9.1).
pub fn cancel_for(invite: &Request) -> Request {
    let mut headers = Headers::default();
    let mut via_done = false;
    for h in invite.headers.iter() {
        match h {
            Header::Via(v) if !via_done => {
                via_done = true;
                let value = v.value();
                let first = value.split(',').next().unwrap_or(value).trim();
                headers.push(Header::Via(rsip::headers::Via::new(first)));
            }
            Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) | Header::MaxForwards(_) => {
                headers.push(h.clone())
            }
            Header::CSeq(c) => {
                let seq = c.seq().unwrap_or(0);
                headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} CANCEL"))));
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
    Request { method: Method::Cancel, uri: invite.uri.clone(), version: rsip::Version::V2, headers, body: vec![] }
}
