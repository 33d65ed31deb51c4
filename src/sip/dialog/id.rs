//! Dialog identity (§12): Call-ID, local tag, remote tag.

use rsip::{Request, Response};

use crate::sip::transaction::message::{call_id_of, from_tag_of, to_tag_of};

/// Identifies a dialog from our side: (Call-ID, local tag, remote tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// For a request we received: our tag is in To, the peer's in From (§12.2.2). `None` when
    /// either tag is missing (an out-of-dialog request).
    pub fn for_incoming_request(req: &Request) -> Option<Self> {
        Some(Self { call_id: call_id_of(&req.headers), local_tag: to_tag_of(req)?, remote_tag: from_tag_of(req)? })
    }

    /// For a response to a request we sent: our tag is in From, the peer's in To.
    pub fn for_incoming_response(resp: &Response) -> Option<Self> {
        Some(Self { call_id: call_id_of(&resp.headers), local_tag: from_tag_of(resp)?, remote_tag: to_tag_of(resp)? })
    }
}

impl std::fmt::Display for DialogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{};local={};remote={}", self.call_id, self.local_tag, self.remote_tag)
    }
}
