//! The durable outbox: every event, written in the same commit as the
//! change it reports, so an acknowledged change is never lost and never
//! reported before it is durable. Its sequence only ever increases, across
//! restarts; webhooks and server-sent events read history back from it.
//!
//! Beside the events it keeps, per webhook endpoint, how far delivery has
//! got (the cursor), and the deliveries parked after a day of failures.
//! The redb book implements it (`scheduler::store::outbox`).

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::{Event, Kind, Payload};
use crate::clock::Millis;
use crate::scheduler::book::StoreError;

/// A boxed future, so [`Outbox`] stays object-safe.
pub type OutboxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A delivery given up after a day of failures: kept, listed and retried on
/// request. It carries its signed body, so pruning the outbox loses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    /// Assigned when it is stored (`dlv_<id>` in the API); 0 before.
    pub id: u64,
    /// The endpoint's URL.
    pub endpoint: String,
    /// The event's sequence and type.
    pub seq: u64,
    pub kind: String,
    /// The exact body that was sent.
    pub body: Vec<u8>,
    pub failures: u32,
    pub first_failure: Millis,
    pub last_failure: Millis,
    pub last_error: String,
}

/// Where an endpoint's failing head delivery stands between tries, kept so
/// a restart (or SIGKILL) neither retries it at once nor restarts its 24 h.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The head event's sequence.
    pub seq: u64,
    pub failures: u32,
    pub first_failure: Millis,
    /// When it is tried next.
    pub retry_at: Millis,
    pub last_error: String,
}

/// What became of a retry of a parked delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The receiver took it (2xx): the parked record is removed.
    Delivered,
    /// Failed again at `at`: the record stays, with one more failure.
    Failed { at: Millis, error: String },
}

/// The outbox, as webhooks, server-sent events and the state followers use it.
pub trait Outbox: Send + Sync {
    /// Records an event that is not a change of the book (an agent's or a
    /// trunk's state): written in the writer's next commit, then published.
    fn publish(&self, kind: Kind, at: Millis, payload: Payload);

    /// Up to `limit` stored events after sequence `after`, oldest first.
    /// Older events may have been pruned: the first returned may be later
    /// than `after + 1`.
    fn after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// The sequence the next event will get.
    fn next_seq(&self) -> u64;

    /// How far delivery to `endpoint` has got: every event it wants up to
    /// this sequence was delivered or parked.
    fn cursor(&self, endpoint: &str) -> Result<Option<u64>, StoreError>;

    /// Moves `endpoint`'s cursor, durably with the writer's next commit (a
    /// crash before it only repeats deliveries: at least once).
    fn save_cursor(&self, endpoint: &str, seq: u64);

    /// Parks a delivery (durable with the writer's next commit, which comes
    /// before any cursor saved after it).
    fn park(&self, parked: Parked);

    /// Parked deliveries after id `after`, oldest first, at most `limit`.
    fn parked(&self, limit: usize, after: Option<u64>) -> Result<Vec<Parked>, StoreError>;

    fn parked_get(&self, id: u64) -> Result<Option<Parked>, StoreError>;

    /// How many deliveries are parked.
    fn parked_count(&self) -> Result<u64, StoreError>;

    /// Records a text sent for a callback (durable with the next commit).
    fn record_text(&self, text: crate::sms::TextRecord);

    /// The texts recorded for a callback, oldest first.
    fn texts(&self, callback: u64) -> Result<Vec<crate::sms::TextRecord>, StoreError>;

    /// Records a retry's outcome; resolves once it is durable.
    fn retried(&self, id: u64, outcome: RetryOutcome) -> OutboxFuture<'_, Result<(), StoreError>>;

    /// Saves `endpoint`'s back-off (durable with the writer's next commit),
    /// or clears it with `None` once its head is delivered or parked. An
    /// outbox that keeps none (in memory) ignores it: after a restart the
    /// head is then tried at once.
    fn save_backoff(&self, endpoint: &str, backoff: Option<Backoff>) {
        let _ = (endpoint, backoff);
    }

    /// The back-off saved for `endpoint`, if any.
    fn backoff(&self, endpoint: &str) -> Result<Option<Backoff>, StoreError> {
        let _ = endpoint;
        Ok(None)
    }
}
