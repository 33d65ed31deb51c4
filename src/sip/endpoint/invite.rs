//! Out-of-dialog INVITE (RFC 3261 §13.3).
//!
//! INVITEs for known users (agents, trunk DIDs) become inbound call legs (`sip::calls`);
//! unknown users get 404 (§21.4.4).

use rsip::{Request, Response};

use super::reply::{reply, request_user};
use super::Directory;

/// `None` when the INVITE is for one of our users (a call leg takes it), else the 404.
pub fn handle(req: &Request, dir: &Directory) -> Option<Response> {
    match request_user(req) {
        Some(u) if dir.knows(&u) => None,
        _ => Some(reply(req, 404)),
    }
}
