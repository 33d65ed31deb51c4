//! Dialogs (RFC 3261 §12): UAC and UAS state, in-dialog requests, CANCEL (§9).
//!
//! - [`state`]: [`Dialog`], created from an INVITE and a 1xx/2xx; builds BYE, re-INVITE,
//!   OPTIONS, INFO and the ACK for a 2xx; validates the peer's in-dialog requests.
//! - [`set`]: [`Dialogs`], the map keyed by [`DialogId`] used to route in-dialog requests.
//! - [`cancel`]: [`cancel_for`], the §9.1 CANCEL of a pending INVITE.
//! - [`retransmit`]: [`Uas2xxRetransmitter`], the UAS core's 2xx retransmission until ACK.
//! - [`id`]: [`DialogId`]. [`ids`]: fresh branches, tags, Call-IDs and Via headers.
//! - [`error`]: [`DialogError`] and its SIP status mapping.

pub mod cancel;
pub mod state;
pub mod error;
pub mod id;
pub mod ids;
pub mod retransmit;
pub mod set;

#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod tests;

pub use cancel::cancel_for;
pub use state::{Dialog, DialogRole, DialogState, InDialogRequest};
pub use error::DialogError;
pub use id::DialogId;
pub use ids::{new_branch, new_call_id, new_tag, new_via, via};
pub use retransmit::{Retransmit2xxEvent, Uas2xxRetransmitter};
pub use set::Dialogs;
