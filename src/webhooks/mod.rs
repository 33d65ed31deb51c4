//! Webhooks: every event a `[[webhooks]]` endpoint asked for is POSTed to it
//! as `{"id", "type", "at", "data"}`, signed with `X-Redial-Signature`.
//!
//! - [`sign`]: the HMAC-SHA256 signature.
//! - [`retry`]: back-off with jitter for a day, then park.
//! - [`queue`]: one endpoint's deliveries in order, sans-IO.
//! - [`send`]: one POST on a blocking thread.
//! - [`driver`]: a task per endpoint between the event bus and [`send`].
//!
//! Each endpoint gets its events in sequence order, one request at a time,
//! so a receiver sees each callback's events in order, and one slow or dead
//! receiver never holds up another.

pub mod driver;
pub mod queue;
pub mod retry;
pub mod send;
pub mod sign;

use serde_json::{json, Value};

use crate::events::Event;

/// Renders an event's object as the REST routes show it (the HTTP adapter
/// supplies this, so webhooks and the API cannot disagree).
pub type Render = std::sync::Arc<dyn Fn(&Event) -> Value + Send + Sync>;

/// The POST body of `ev`.
pub fn body(ev: &Event, render: &Render) -> Vec<u8> {
    let at = chrono::DateTime::from_timestamp_millis(ev.at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let v = json!({ "id": ev.id(), "type": ev.kind.name(), "at": at, "data": render(ev) });
    serde_json::to_vec(&v).expect("JSON values always serialise")
}
