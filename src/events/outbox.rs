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
    fn after(&self, after: u64, limit: usize) -> OutboxFuture<'_, Result<Vec<Event>, StoreError>>;

    /// The sequence the next event will get.
    fn next_seq(&self) -> OutboxFuture<'_, Result<u64, StoreError>>;

    /// How far delivery to `endpoint` has got: every event it wants up to
    /// this sequence was delivered or parked.
    fn cursor<'a>(&'a self, endpoint: &'a str) -> OutboxFuture<'a, Result<Option<u64>, StoreError>>;

    /// Moves `endpoint`'s cursor, durably with the writer's next commit (a
    /// crash before it only repeats deliveries: at least once).
    fn save_cursor(&self, endpoint: &str, seq: u64);

    /// Parks a delivery (durable with the writer's next commit, which comes
    /// before any cursor saved after it).
    fn park(&self, parked: Parked);

    /// Parked deliveries after id `after`, oldest first, at most `limit`.
    fn parked(&self, limit: usize, after: Option<u64>) -> OutboxFuture<'_, Result<Vec<Parked>, StoreError>>;

    fn parked_get(&self, id: u64) -> OutboxFuture<'_, Result<Option<Parked>, StoreError>>;

    /// How many deliveries are parked.
    fn parked_count(&self) -> OutboxFuture<'_, Result<u64, StoreError>>;

    /// Records a text sent for a callback (durable with the next commit).
    fn record_text(&self, text: crate::sms::TextRecord);

    /// The texts recorded for a callback, oldest first.
    fn texts(&self, callback: u64) -> OutboxFuture<'_, Result<Vec<crate::sms::TextRecord>, StoreError>>;

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
    fn backoff<'a>(&'a self, endpoint: &'a str) -> OutboxFuture<'a, Result<Option<Backoff>, StoreError>> {
        let _ = endpoint;
        ready(Ok(None))
    }

    /// Whether this process may run the task `name` (a webhook endpoint's
    /// deliverer, the texts on events) that must run once across every
    /// process sharing the outbox. A single process always may; cluster
    /// nodes take turns through a lease.
    fn turn<'a>(&'a self, name: &'a str) -> OutboxFuture<'a, Result<Turn, StoreError>> {
        let _ = name;
        ready(Ok(Turn::Always))
    }

    /// Gives the turn of `name` back at once (a clean stop), so another
    /// process takes it over without waiting for the lease to lapse.
    fn end_turn<'a>(&'a self, name: &'a str) -> OutboxFuture<'a, ()> {
        let _ = name;
        ready(())
    }
}

/// An answer already known, as an [`OutboxFuture`].
pub fn ready<'a, T: Send + 'a>(v: T) -> OutboxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

/// The answer of [`Outbox::turn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The only process: it always may.
    Always,
    /// This process holds the turn for this long from when it asked (its
    /// own deadline, shorter than the lease the database keeps, so it stops
    /// before another can take over); it asks again well before.
    For(std::time::Duration),
    /// Another process holds it: ask again after this long.
    Elsewhere(std::time::Duration),
}

/// A turn held by a task (see [`Outbox::turn`]): taken, renewed a third
/// of the way through, and known lost once its own deadline passes
/// without a renewal.
#[derive(Debug)]
pub struct TurnHeld {
    /// `None`: the only process, no lease.
    until: Option<tokio::time::Instant>,
    renew_at: Option<tokio::time::Instant>,
}

impl TurnHeld {
    /// Waits until this process has the turn of `name`; `None` when `stop`
    /// turned true first.
    pub async fn take(outbox: &dyn Outbox, name: &str, stop: &mut tokio::sync::watch::Receiver<bool>) -> Option<TurnHeld> {
        let mut logged = false;
        loop {
            if *stop.borrow() {
                return None;
            }
            let asked = tokio::time::Instant::now();
            let wait = match outbox.turn(name).await {
                Ok(Turn::Always) => return Some(TurnHeld { until: None, renew_at: None }),
                Ok(Turn::For(d)) => {
                    tracing::info!(task = name, "this node took the turn");
                    return Some(TurnHeld { until: Some(asked + d), renew_at: Some(asked + d / 3) });
                }
                Ok(Turn::Elsewhere(d)) => {
                    if !std::mem::replace(&mut logged, true) {
                        tracing::debug!(task = name, "another node has the turn; waiting");
                    }
                    d
                }
                Err(e) => {
                    tracing::warn!(task = name, error = %e, "cannot ask for the turn; trying again shortly");
                    std::time::Duration::from_secs(1)
                }
            };
            tokio::select! {
                // Its sender gone: nothing will ever stop the task but this.
                r = stop.changed() => if r.is_err() { return None },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Whether the turn is still this process's (by its own deadline).
    pub fn held(&self) -> bool {
        self.until.is_none_or(|u| tokio::time::Instant::now() < u)
    }

    /// When to call [`TurnHeld::renew`]; `None` when there is no lease.
    pub fn renew_at(&self) -> Option<tokio::time::Instant> {
        self.renew_at
    }

    /// Renews the lease; false once the turn is lost (another process has
    /// it, or the deadline passed without a renewal).
    pub async fn renew(&mut self, outbox: &dyn Outbox, name: &str) -> bool {
        if self.until.is_none() {
            return true;
        }
        let asked = tokio::time::Instant::now();
        match outbox.turn(name).await {
            Ok(Turn::Always) => {
                (self.until, self.renew_at) = (None, None);
                true
            }
            Ok(Turn::For(d)) => {
                (self.until, self.renew_at) = (Some(asked + d), Some(asked + d / 3));
                true
            }
            Ok(Turn::Elsewhere(_)) => {
                tracing::warn!(task = name, "the turn moved to another node");
                false
            }
            Err(e) => {
                // Retried soon; the turn lasts until its own deadline.
                tracing::warn!(task = name, error = %e, "cannot renew the turn");
                self.renew_at = Some(asked + std::time::Duration::from_millis(500));
                self.held()
            }
        }
    }
}
