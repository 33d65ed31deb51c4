//! OPTIONS (RFC 3261 §11.2): 200 with what we accept.

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response};

use super::reply::reply;
use crate::sip::codec::ALLOW;

pub fn handle(req: &Request) -> Response {
    let mut resp = reply(req, 200);
    resp.headers.push(Header::Allow(rsip::headers::Allow::new(ALLOW)));
    resp.headers.push(Header::Accept(rsip::headers::Accept::new("application/sdp")));
    // No option tags yet: §20.37 allows an empty list.
    resp.headers.push(Header::Supported(rsip::headers::Supported::new("")));
    resp
}
