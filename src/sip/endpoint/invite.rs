//! Out-of-dialog INVITE (RFC 3261 §13.3).
//!
//! Calls into redial are placed by the dialer, which owns call handling; until a call
//! handler is attached, INVITEs for known users (agents, trunk DIDs) get 480 and
//! unknown users 404 (§21.4.4).

use rsip::{Request, Response};

use super::reply::{reply, request_user};
use super::Directory;

pub fn handle(req: &Request, dir: &Directory) -> Response {
    match request_user(req) {
        Some(u) if dir.knows(&u) => reply(req, 480),
        _ => reply(req, 404),
    }
}
