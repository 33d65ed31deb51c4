//! Requests that need a dialog we do not have: 481 (RFC 3261 §12.2.2, §15.1.2).
//!
//! BYE, INFO, UPDATE, PRACK and any request with a To tag land here until a dialog
//! layer owns them.

use rsip::{Request, Response};

use super::reply::reply;

pub fn handle(req: &Request) -> Response {
    reply(req, 481)
}
