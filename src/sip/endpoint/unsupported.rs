//! Methods we do not implement: 501 with Allow (RFC 3261 §8.2.1, §21.5.2).

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response};

use super::reply::reply;
use crate::sip::codec::ALLOW;

pub fn handle(req: &Request) -> Response {
    let mut resp = reply(req, 501);
    resp.headers.push(Header::Allow(rsip::headers::Allow::new(ALLOW)));
    resp
}
