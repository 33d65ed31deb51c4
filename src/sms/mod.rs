//! Texts to customers through the queue's trunk (SIP MESSAGE, RFC 3428):
//! `sms_confirm` when a callback is booked, `sms_on_exhausted` when it ends
//! `exhausted`, and `sms_callback` at the due time of a callback whose
//! channel is `sms` (sent by the dialler in place of a call).
//!
//! - [`template`]: the placeholders (`{when}`, `{queue}`, `{phone}`), checked
//!   at config load and filled per callback.
//! - [`send`]: one text through the queue's trunk, shared by both uses.
//! - [`inbound`]: texts customers send us (MESSAGE from a carrier) become
//!   `sms.received` events.
//! - [`notify`]: follows the durable outbox after its own cursor, so a text
//!   due for a committed change is sent even across a restart.

pub mod inbound;
pub mod notify;
pub mod send;
pub mod template;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::scheduler::model::Callback;

/// A text a customer sent us through a carrier (inbound SIP MESSAGE), as
/// the `sms.received` event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundText {
    /// When it was accepted.
    pub at: Millis,
    /// The profile (trunk) it came through.
    pub trunk: String,
    /// The sender (the customer's number as the carrier gives it).
    pub from: String,
    /// Which of our numbers it was sent to.
    pub to: String,
    pub text: String,
}

/// One text sent (or tried) for a callback, recorded on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRecord {
    pub callback_id: u64,
    pub at: Millis,
    /// `confirm`, `exhausted` or `callback` (a `"channel": "sms"` callback's text).
    pub purpose: String,
    pub to: String,
    pub text: String,
    /// MESSAGE requests it took (a long text is split).
    pub parts: u32,
    /// `sent` when the trunk accepted every part (2xx), else `failed`.
    pub status: String,
    /// The final SIP status of the last part tried.
    pub sip_status: u16,
}

impl TextRecord {
    /// The record of `text` sent (or not) to `cb`'s customer at `at`.
    pub fn of(cb: &Callback, purpose: &str, text: String, sent: Result<send::Sent, send::Unsent>, at: Millis) -> Self {
        let (parts, sip_status) = match sent {
            Ok(s) => (s.parts, s.status),
            Err(_) => (0, 0),
        };
        let ok = sent.is_ok_and(|s| s.accepted());
        match sent {
            Ok(_) if ok => tracing::info!(callback = %cb.id, purpose, parts, "text sent"),
            Ok(s) => tracing::warn!(callback = %cb.id, purpose, status = s.status, "text not accepted by the trunk"),
            Err(e) => tracing::warn!(callback = %cb.id, purpose, error = %e, "text not sent"),
        }
        TextRecord {
            callback_id: cb.id.0,
            at,
            purpose: purpose.into(),
            to: cb.phone.clone(),
            text,
            parts,
            status: if ok { "sent" } else { "failed" }.into(),
            sip_status,
        }
    }
}
