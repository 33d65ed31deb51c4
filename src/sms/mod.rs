//! Texts to customers through the queue's trunk (SIP MESSAGE, RFC 3428):
//! `sms_confirm` when a callback is booked, `sms_on_exhausted` when it ends
//! `exhausted`.
//!
//! - [`template`]: the placeholders (`{when}`, `{queue}`, `{phone}`), checked
//!   at config load and filled per callback.
//! - [`notify`]: follows the durable outbox after its own cursor, so a text
//!   due for a committed change is sent even across a restart.

pub mod notify;
pub mod template;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// One text sent (or tried) for a callback, recorded on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRecord {
    pub callback_id: u64,
    pub at: Millis,
    /// `confirm` or `exhausted`.
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
