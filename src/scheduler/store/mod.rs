//! The redb store: typed tables, indexes, group commit — the durable book.
//!
//! - [`tables`]: table definitions, schema version and migrations.
//! - [`codec`]: the compact versioned encoding of records and attempts.
//! - [`stats`]: per-queue counters kept in step with every status change.
//! - `writer`: the writer thread (group commit; the only mutator).
//! - [`backup`]: a consistent copy of the file from one read snapshot.
//! - [`query`]: reads — get, list with cursors, attempts, stats, and the
//!   consistency check used by tests.
//!
//! [`RedbBook`] implements the storage seam [`crate::scheduler::book::Book`]:
//! changes go to the writer thread and return once their transaction is
//! durably committed; reads use redb snapshots directly (they never wait
//! for the writer).

pub mod backup;
pub mod audit;
pub mod codec;
pub mod outbox;
pub mod query;
pub mod stats;
pub mod tables;
mod seam;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{oneshot, Notify};

pub use self::audit::{AuditEntry, AuditNote, AuditPage};
pub use self::query::{Inconsistency, ListFilter, Page};
use self::stats::Counters;
use self::writer::{Op, Writer};
use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::scheduler::engine::rules::RuleError;
use crate::scheduler::engine::{Availability, Engine};
use crate::scheduler::model::{AttemptOutcome, Callback, CallbackChanges, CallbackId, Dispatch, NewCallback, Status};

/// Tuning of the store.
#[derive(Debug, Clone)]
pub struct BookOptions {
    /// redb's page cache, bytes.
    pub cache_bytes: usize,
    /// Save redb's allocator state with every commit (two-phase commit), so
    /// a reopen after a crash takes milliseconds instead of a walk of the
    /// whole file. On by default; docs/design.md explains the trade.
    pub quick_repair: bool,
    /// Where every committed change is published, after its commit.
    pub bus: Option<Arc<crate::events::Bus>>,
    /// Write every change's events to the durable outbox in its commit. On
    /// by default; off only where a benchmark measures what the outbox
    /// costs (then nothing is stored nor published).
    pub outbox: bool,
    /// The configuration a SIGHUP reload replaces: the writer takes it up
    /// at its next batch. `None`: the configuration opened with, for good.
    pub live: Option<crate::config::LiveConfig>,
}

impl Default for BookOptions {
    fn default() -> Self {
        Self { cache_bytes: 64 << 20, quick_repair: true, bus: None, outbox: true, live: None }
    }
}

/// Storage failures. Cloneable so one failed commit can answer every request
/// of its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Redb(Arc<redb::Error>),
    #[error("cannot create {path}: {source}")]
    Io { path: PathBuf, #[source] source: Arc<std::io::Error> },
    #[error("record {id} is unreadable: {source}")]
    Decode { id: CallbackId, source: codec::DecodeError },
    #[error("the database has schema version {found}, newer than this build's {supported}: use a newer redial")]
    NewerSchema { found: u64, supported: u64 },
    #[error("no migration from schema version {from} to {to}")]
    NoMigration { from: u64, to: u64 },
    #[error("the scheduler has stopped")]
    Closed,
    /// The PostgreSQL book (cluster mode) failed.
    #[error("PostgreSQL: {0}")]
    Postgres(Arc<str>),
    /// The PostgreSQL server cannot be reached now (down, restarting, the
    /// connection cut): nothing was changed; the same request may succeed later.
    #[error("PostgreSQL unavailable: {0}")]
    Unavailable(Arc<str>),
    /// The backend cannot do this (a file backup of a PostgreSQL book).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl StoreError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        StoreError::Io { path: path.to_path_buf(), source: Arc::new(e) }
    }
}

macro_rules! from_redb {
    ($($t:ty),+) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(Arc::new(e.into()))
            }
        }
    )+};
}
from_redb!(redb::Error, redb::DatabaseError, redb::StorageError, redb::TableError, redb::TransactionError, redb::CommitError);

/// Why a schedule or reschedule was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("no such callback")]
    NotFound,
    #[error("the callback is {status}; only scheduled callbacks can change")]
    WrongState { status: Status },
    /// A live call already booked an active callback (one per interaction).
    #[error("an active callback already exists for this interaction: {existing_id}")]
    DuplicateInteraction { existing_id: CallbackId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ScheduleError {
    /// The API's stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ScheduleError::Rule(r) => r.code(),
            ScheduleError::NotFound => "not_found",
            ScheduleError::WrongState { .. } => "wrong_state",
            ScheduleError::DuplicateInteraction { .. } => "duplicate",
            ScheduleError::Store(_) => "storage",
        }
    }

    /// The HTTP status: 422 rules, 409 duplicate or wrong state, 404, 503.
    pub fn http_status(&self) -> u16 {
        match self {
            ScheduleError::Rule(r) => r.http_status(),
            ScheduleError::NotFound => 404,
            ScheduleError::WrongState { .. } | ScheduleError::DuplicateInteraction { .. } => 409,
            ScheduleError::Store(_) => 503,
        }
    }
}

impl CancelError {
    pub fn code(&self) -> &'static str {
        match self {
            CancelError::NotFound => "not_found",
            CancelError::WrongState { .. } => "wrong_state",
            CancelError::Store(_) => "storage",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            CancelError::NotFound => 404,
            CancelError::WrongState { .. } => 409,
            CancelError::Store(_) => 503,
        }
    }
}

/// Why a cancel was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CancelError {
    #[error("no such callback")]
    NotFound,
    #[error("the callback is {status}; only scheduled callbacks can be cancelled")]
    WrongState { status: Status },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an attempt report was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReportError {
    #[error("no such callback")]
    NotFound,
    #[error("that attempt is not in progress (callback is {status} after {attempts} attempts)")]
    NotInProgress { status: Status, attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one firing round handed over.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    /// Durably `in_progress`, each with its reserved agent.
    pub dispatches: Vec<Dispatch>,
    /// When to tick again at the latest (absent new requests or agents).
    pub next_deadline: Option<Millis>,
    /// Tick again at once: more is due than one round handed over, or a
    /// round changed callbacks that may be due now.
    pub more: bool,
}

/// The durable callback book in one redb file. Cheap to share behind an `Arc`.
pub struct RedbBook {
    db: Arc<Database>,
    cfg: Arc<Config>,
    tx: mpsc::Sender<Op>,
    writer: Option<JoinHandle<()>>,
    notify: Arc<Notify>,
    recovered: usize,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// The outbox's next event sequence as of the last commit.
    events_next: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for RedbBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBook").finish_non_exhaustive()
    }
}

impl RedbBook {
    /// Opens (or creates) the book at `path`, recovers attempts left in
    /// progress by a previous run, and starts the writer thread.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>, cfg: Arc<Config>, opts: BookOptions) -> Result<RedbBook, StoreError> {
        let path = path.as_ref();
        let db = Arc::new(tables::open(path, opts.cache_bytes)?);
        let (next_seq, counters) = {
            let r = db.begin_read()?;
            let next_seq = r.open_table(tables::META)?.get("next_seq")?.map_or(1, |v| v.value());
            let mut counters = HashMap::new();
            for e in r.open_table(tables::STATS)?.iter()? {
                let (k, v) = e?;
                let c = Counters::decode(v.value()).map_err(|source| StoreError::Decode { id: CallbackId(0), source })?;
                counters.insert(k.value().to_string(), c);
            }
            (next_seq, counters)
        };
        let (tx, rx) = mpsc::channel();
        let notify = Arc::new(Notify::new());
        let mut w = Writer {
            db: db.clone(),
            cfg: cfg.clone(),
            live: opts.live.clone(),
            clock: clock.clone(),
            engine: Engine::new(cfg.clone(), clock.now_ms()),
            rx,
            next_seq,
            counters,
            notify: notify.clone(),
            quick_repair: opts.quick_repair,
            waiting: Arc::default(),
            us_per_mark: writer::INITIAL_US_PER_MARK,
            staged: writer::Staged::read(&db)?,
            armed_until: Millis::MIN,
            bus: opts.bus.clone(),
            keep_events: opts.outbox,
            outbox: outbox::State::read(
                &db,
                cfg.webhooks.iter().map(|h| h.url.clone()).chain(crate::sms::notify::wanted(&cfg).then(|| crate::sms::notify::CURSOR.to_string())).collect(),
            )?,
        };
        let events_next = w.outbox.published_next.clone();
        let waiting = w.waiting.clone();
        let recovered = w.recover()?;
        if recovered > 0 {
            tracing::warn!(recovered, "closed attempts left in progress by the previous run");
        }
        let writer = std::thread::Builder::new()
            .name("redial-book".into())
            .spawn(move || w.run())
            .map_err(|e| StoreError::io(path, e))?;
        Ok(RedbBook { db, cfg, tx, writer: Some(writer), notify, recovered, waiting, events_next })
    }

    /// Writes a consistent copy of the book to `dest` (a new file) from one read
    /// snapshot, while the writer goes on (see [`backup`]). Blocking: run it off the
    /// async threads.
    pub fn backup(&self, dest: &Path) -> Result<backup::BackupReport, StoreError> {
        backup::backup(&self.db, dest)
    }

    /// Callbacks that are due but wait for an agent (as of the last round).
    pub fn waiting_for_agent(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many in-progress attempts the opening closed as failed.
    pub fn recovered(&self) -> usize {
        self.recovered
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Notified after every commit (the driver's wake-up).
    pub fn changed(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    async fn call<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op, closed: T) -> T {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(op(tx)).is_err() {
            return closed;
        }
        rx.await.unwrap_or(closed)
    }

    /// Schedules a callback; returns once it (and `audit`) is durably stored.
    pub async fn schedule(&self, req: NewCallback, audit: Option<AuditNote>) -> Result<Callback, ScheduleError> {
        self.call(|tx| Op::Schedule(req, audit, tx), Err(StoreError::Closed.into())).await
    }

    /// Changes a scheduled callback (`PATCH`).
    pub async fn reschedule(&self, id: CallbackId, changes: CallbackChanges, audit: Option<AuditNote>) -> Result<Callback, ScheduleError> {
        self.call(|tx| Op::Reschedule(id, changes, audit, tx), Err(StoreError::Closed.into())).await
    }

    /// Cancels a scheduled callback.
    pub async fn cancel(&self, id: CallbackId, audit: Option<AuditNote>) -> Result<Callback, CancelError> {
        self.call(|tx| Op::Cancel(id, audit, tx), Err(StoreError::Closed.into())).await
    }

    /// Records how attempt `attempt` ended and applies the retry policy.
    pub async fn report_outcome(&self, id: CallbackId, attempt: u32, outcome: AttemptOutcome) -> Result<Callback, ReportError> {
        self.call(|tx| Op::Report(id, attempt, outcome, tx), Err(StoreError::Closed.into())).await
    }

    /// One firing round at the book's clock: loads the near future, applies
    /// window and ownership rules, reserves agents and marks up to `max`
    /// callbacks `in_progress` durably. The driver calls this; tests call
    /// it directly.
    pub async fn tick(&self, avail: Arc<dyn Availability>, max: usize) -> Result<Tick, StoreError> {
        self.tick_ahead(avail, max, 0).await
    }

    /// A round that arms what is due within the next `ahead_ms`: those
    /// callbacks are marked `in_progress` now, and the caller hands each
    /// over at its `due_at`, so the commit's fsync is off the firing path.
    /// When more is due soon than can be marked in `ahead_ms` (a herd), the
    /// round reaches further, up to [`MAX_ARM_AHEAD_MS`](crate::scheduler::engine::MAX_ARM_AHEAD_MS),
    /// so the marking is done before the due time. `next_deadline` is when
    /// the next arming round must run (already moved earlier).
    pub async fn tick_ahead(&self, avail: Arc<dyn Availability>, max: usize, ahead_ms: Millis) -> Result<Tick, StoreError> {
        self.call(|tx| Op::Tick(avail, max, ahead_ms, tx), Err(StoreError::Closed)).await
    }

    /// "Skip when already reached", for the inbound call handler
    /// (which checks the queue's `skip_if_reached` first): the customer at
    /// `phone` reached an agent of `queue` on the inbound call `interaction`.
    /// Their `scheduled` callback in that queue ends `skipped` (end reason
    /// `reached`, `skipped_by` = `interaction`), durably, and is returned;
    /// `None` when there is none or it is already `in_progress`.
    pub async fn skip_reached(&self, phone: &str, queue: &str, interaction: &str) -> Result<Option<Callback>, StoreError> {
        let (p, q, i) = (phone.to_string(), queue.to_string(), interaction.to_string());
        self.call(|tx| Op::Skip(p, q, i, tx), Err(StoreError::Closed)).await
    }

    /// Hands `entries` to the writer, which appends them in its next
    /// batch's transaction; returns once that batch is durably committed.
    pub async fn audit_append(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.tx.send(Op::Audit(entries)).map_err(|_| StoreError::Closed)?;
        self.flush().await;
        Ok(())
    }

    /// Hands outbox work (cursors, parked deliveries, texts, publications)
    /// to the writer, for its next transaction; false once the book is closed.
    fn send_outbox(&self, op: outbox::OutboxOp) -> bool {
        let sent = self.tx.send(Op::Outbox(op)).is_ok();
        if !sent {
            tracing::warn!("the book is closed; outbox work dropped");
        }
        sent
    }

    /// Waits until every change sent before it is committed.
    pub async fn flush(&self) {
        self.call(Op::Flush, ()).await
    }

    /// Stops the writer after the requests already sent; the file is closed
    /// when the last `Arc<Database>` (including reads in flight) is dropped.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.writer.take() {
            let _ = h.join();
            RedbBook::audit_sync(&self.db);
        }
    }
}

impl Drop for RedbBook {
    fn drop(&mut self) {
        self.stop();
    }
}
