//! The storage seam: everything the rest of redial asks of the callback book,
//! as one object-safe trait. The redb book ([`store::RedbBook`]) implements it;
//! a networked backend (PostgreSQL in cluster mode) implements the same
//! methods, and the contract tests (`tests/scheduler_*.rs`, through
//! `tests/scheduler_util.rs`) hold any implementation to the same rules,
//! indexes and recovery.
//!
//! Every method returns a future, reads included: a local file answers at
//! once, a database across the network does not, and callers must not care
//! which. A change's future resolves once the change is durable; its events
//! are published (in commit order) before it resolves.
//!
//! [`store::RedbBook`]: super::store::RedbBook

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Notify;

use super::engine::Availability;
use super::model::{Attempt, AttemptOutcome, Callback, CallbackChanges, CallbackId, NewCallback, Origin, Stats};
pub use super::store::audit::{AuditEntry, AuditNote, AuditPage};
pub use super::store::backup::BackupReport;
pub use super::store::query::{Inconsistency, ListFilter, Page};
pub use super::store::{CancelError, ReportError, ScheduleError, StoreError, Tick};
use crate::clock::Millis;

/// A boxed future borrowing the book: what keeps [`Book`] object-safe.
pub type BookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The durable callback book: changes (each durable when its future
/// resolves), firing rounds, reads and the audit log.
pub trait Book: Send + Sync {
    // ---- changes -------------------------------------------------------

    /// Schedules a callback; `audit` is recorded in the same commit.
    fn schedule_noted(&self, req: NewCallback, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, ScheduleError>>;

    /// Changes a scheduled callback (`PATCH`); `audit` in the same commit.
    fn reschedule_noted(&self, id: CallbackId, changes: CallbackChanges, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, ScheduleError>>;

    /// Cancels a scheduled callback; `audit` in the same commit.
    fn cancel_noted(&self, id: CallbackId, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, CancelError>>;

    /// Records how attempt `attempt` ended and applies the retry policy.
    fn report_outcome(&self, id: CallbackId, attempt: u32, outcome: AttemptOutcome) -> BookFuture<'_, Result<Callback, ReportError>>;

    /// A firing round arming what is due within `ahead_ms`: marks up to
    /// `max` callbacks `in_progress`, each with the agent `avail` reserved.
    fn tick_ahead(&self, avail: Arc<dyn Availability>, max: usize, ahead_ms: Millis) -> BookFuture<'_, Result<Tick, StoreError>>;

    /// The customer at `phone` reached an agent of `queue` on the inbound
    /// call `interaction`: their scheduled callback there ends `skipped`.
    fn skip_reached<'a>(&'a self, phone: &'a str, queue: &'a str, interaction: &'a str) -> BookFuture<'a, Result<Option<Callback>, StoreError>>;

    /// Appends audit entries that belong to no single change (bulk
    /// summaries, agents' states); durable when the future resolves.
    fn audit_append(&self, entries: Vec<AuditEntry>) -> BookFuture<'_, Result<(), StoreError>>;

    /// Resolves once every change sent before it is durable.
    fn flush(&self) -> BookFuture<'_, ()>;

    // ---- reads ---------------------------------------------------------

    fn get(&self, id: CallbackId) -> BookFuture<'_, Result<Option<Callback>, StoreError>>;

    /// The active (`scheduled` or `in_progress`) callback for a phone in a queue.
    fn find_active<'a>(&'a self, phone: &'a str, queue: &'a str) -> BookFuture<'a, Result<Option<Callback>, StoreError>>;

    /// One page of callbacks matching `filter`, after `cursor`.
    fn list<'a>(&'a self, filter: &'a ListFilter, limit: usize, cursor: Option<&'a str>) -> BookFuture<'a, Result<Page<Callback>, StoreError>>;

    /// Every attempt of a callback, oldest first; `None` for an unknown id.
    fn attempts(&self, id: CallbackId) -> BookFuture<'_, Result<Option<Vec<Attempt>>, StoreError>>;

    /// Counts per status, for one queue or all.
    fn stats<'a>(&'a self, queue: Option<&'a str>) -> BookFuture<'a, Result<Stats, StoreError>>;

    /// Counts per status for one queue or all, of one origin or all, and
    /// the same selection of queues split by every origin.
    fn stats_by_origin<'a>(&'a self, queue: Option<&'a str>, origin: Option<Origin>) -> BookFuture<'a, Result<(Stats, Vec<(Origin, Stats)>), StoreError>>;

    /// Audit entries older than `before`, newest first.
    fn audit_page(&self, limit: usize, before: Option<u64>) -> BookFuture<'_, Result<AuditPage, StoreError>>;

    /// The newest `limit` entries about `target`, looking back `horizon`.
    fn audit_for<'a>(&'a self, target: &'a str, limit: usize, horizon: usize) -> BookFuture<'a, Result<Vec<AuditEntry>, StoreError>>;

    /// Every index agrees with the records (tests and `redial check`).
    fn check_consistency(&self) -> BookFuture<'_, Result<Result<(), Vec<Inconsistency>>, StoreError>>;

    // ---- operations ----------------------------------------------------

    /// Writes a consistent copy of the book to `dest`. Blocking.
    fn backup(&self, dest: &Path) -> Result<BackupReport, StoreError>;

    /// Callbacks due but waiting for an agent (as of the last round).
    fn waiting_for_agent(&self) -> usize;

    /// In-progress attempts the opening closed as failed.
    fn recovered(&self) -> usize;

    /// Notified after every commit that may change what is due.
    fn changed(&self) -> Arc<Notify>;

    // ---- provided ------------------------------------------------------

    fn schedule(&self, req: NewCallback) -> BookFuture<'_, Result<Callback, ScheduleError>> {
        self.schedule_noted(req, None)
    }

    fn reschedule(&self, id: CallbackId, changes: CallbackChanges) -> BookFuture<'_, Result<Callback, ScheduleError>> {
        self.reschedule_noted(id, changes, None)
    }

    fn cancel(&self, id: CallbackId) -> BookFuture<'_, Result<Callback, CancelError>> {
        self.cancel_noted(id, None)
    }

    /// A firing round for what is due now.
    fn tick(&self, avail: Arc<dyn Availability>, max: usize) -> BookFuture<'_, Result<Tick, StoreError>> {
        self.tick_ahead(avail, max, 0)
    }

    /// [`get`](Book::get) by the id's text form; an unparsable id is absent.
    fn get_str<'a>(&'a self, id: &'a str) -> BookFuture<'a, Result<Option<Callback>, StoreError>> {
        match CallbackId::parse(id) {
            Some(id) => self.get(id),
            None => Box::pin(async { Ok(None) }),
        }
    }
}
