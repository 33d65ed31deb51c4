//! The UA core: what the endpoint does with each transaction event (RFC 3261 §8.2).
//! One handler per method in the sibling files; this file only dispatches.

use rsip::{Method, Request, Response};

use super::reply::{has_tag, reply};
use super::{in_dialog, invite, options, unsupported, Directory};
use crate::sip::calls::table::Ctx;
use crate::sip::transaction::TransactionKey;
use crate::sip::Peer;

/// What the dispatcher decided for a new server transaction.
pub(super) enum Decision {
    Respond(Response),
    /// Not for the core (e.g. a REGISTER, answered by the registrar).
    Register,
    /// An out-of-dialog INVITE for a user we know: a new inbound call leg.
    Invite,
    /// A request in a dialog (To tag): the call legs' dialogs answer it (481 if unknown).
    InDialog,
    /// An out-of-dialog MESSAGE (RFC 3428): a text, accepted from carriers only.
    Message,
}

/// Whether the request's To carries a tag: it belongs to a dialog (§12.2.2).
pub(super) fn in_dialog(req: &Request) -> bool {
    req.headers.iter().any(|h| match h {
        rsip::Header::To(t) => has_tag(rsip::headers::UntypedHeader::value(t)),
        _ => false,
    })
}

/// Picks the handler for a request outside any dialog we know.
pub(super) fn dispatch(req: &Request, dir: &Directory) -> Decision {
    let in_dialog = in_dialog(req);
    // §8.2.2.3: we support no extensions, so any Require (except on ACK/CANCEL) is 420.
    if !matches!(req.method, Method::Ack | Method::Cancel) {
        let required: Vec<String> = req
            .headers
            .iter()
            .filter_map(|h| match h {
                rsip::Header::Require(r) => Some(rsip::headers::UntypedHeader::value(r).to_string()),
                _ => None,
            })
            .flat_map(|v| v.split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>())
            .filter(|t| !t.is_empty())
            .collect();
        if !required.is_empty() {
            let mut r = reply(req, 420);
            r.headers.push(rsip::Header::Unsupported(<rsip::headers::Unsupported as rsip::headers::UntypedHeader>::new(required.join(", "))));
            return Decision::Respond(r);
        }
    }
    match req.method {
        Method::Options if !in_dialog => Decision::Respond(options::handle(req)),
        Method::Register => Decision::Register,
        Method::Invite if !in_dialog => match invite::handle(req, dir) {
            Some(r) => Decision::Respond(r),
            None => Decision::Invite,
        },
        Method::Message if !in_dialog => Decision::Message,
        _ if in_dialog => Decision::InDialog,
        Method::Invite | Method::Bye | Method::Info | Method::Update | Method::PRack | Method::Options => {
            Decision::Respond(in_dialog::handle(req))
        }
        _ => Decision::Respond(unsupported::handle(req)),
    }
}

/// Answers a CANCEL (§9.2): 200 and 487 to the INVITE when it matched a pending one, else 481.
pub(super) fn cancel(cx: &mut Ctx<'_>, key: &TransactionKey, target: Option<&TransactionKey>, req: &Request) {
    let Some(target) = target else {
        cx.respond(key, reply(req, 481));
        return;
    };
    cx.respond(key, reply(req, 200));
    if cx.layer.is_pending(target) {
        if let Some(invite) = cx.layer.invite_request(target).cloned() {
            cx.respond(target, reply(&invite, 487));
        }
    }
}

/// A peer for tracing.
pub(super) fn peer_str(p: &Peer) -> String {
    format!("{}/{}", p.addr, p.transport)
}
