//! The four RFC 3261 §17 transaction machines and the layer that matches messages to them (sans-IO).
//!
//! - [`layer`]: [`TransactionLayer`], the only entry point: messages in, transmits/events out.
//! - [`key`]: transaction identity and matching keys (§17.1.3, §17.2.3).
//! - `key_index`: the key → transaction map, sharded so that it grows in small steps.
//! - `client_invite`, `client_non_invite`, `server_invite`, `server_non_invite`: the machines
//!   (§17.1.1, §17.1.2, §17.2.1, §17.2.2; RFC 6026 Accepted states).
//! - [`timers`]: timers A–M as an enum and the per-transaction deadline table.
//! - [`message`]: header access, and the messages a transaction builds (100 Trying, ACK).
//! - [`error`]: the [`TransactionError`] enum.

mod client_invite;
mod client_non_invite;
pub mod error;
pub mod key;
mod key_index;
pub mod layer;
pub mod message;
mod output;
mod server_invite;
mod server_non_invite;
mod timer_index;
pub mod timers;

#[cfg(test)]
pub(crate) mod tests;

pub use error::TransactionError;
pub use key::{Role, TransactionKey};
pub use layer::{TransactionEvent, TransactionLayer, Transmit};
pub use message::response_for;
