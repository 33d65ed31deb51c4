//! The callback book in PostgreSQL, behind the storage seam
//! ([`Book`]). It keeps the redb book's shape: one writer per node applies
//! every change of a batch in one transaction (group commit), using the
//! same pure rules ([`crate::scheduler::change`]) and the same in-memory
//! engine for timing; reads go straight to the database on a second
//! connection.
//!
//! What differs is that several nodes share the tables:
//! - a firing round reads and locks only callbacks of shards this node may
//!   dial (`FOR UPDATE SKIP LOCKED`: a row another node is changing is left
//!   for the next round, never waited for);
//! - in cluster mode ([`Ownership`]) the move to `in_progress` for attempt N
//!   is written together with the fenced start ([`leases::start_attempt`]):
//!   a node whose lease was taken over cannot start an attempt even before
//!   it notices;
//! - the one active callback per phone and queue is a unique index, so two
//!   nodes booking the same customer at once cannot both succeed;
//! - every change that may alter what is due sends `NOTIFY redial_book`, and
//!   each node's listener forgets its near future and reloads it, so a
//!   change on one node reaches the driver that dials it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures_util::future::try_join_all;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_postgres::{Client, NoTls, Row};

use super::holds;
use super::leases::{self, shard_of, Held};
use super::schema;
use crate::clock::{Clock, Millis};
use crate::config::Config;
use super::outbox;
use crate::events::outbox::{OutboxFuture, RetryOutcome, Turn};
use crate::events::{Backoff, Bus, Event, Kind, Outbox, Parked, Payload};
use crate::scheduler::store::outbox::OutboxOp;
use crate::sms::TextRecord;
use crate::scheduler::book::{
    AuditEntry, AuditNote, AuditPage, BackupReport, Book, BookFuture, CancelError, Inconsistency, ListFilter, Page,
    ReportError, ScheduleError, StoreError, Tick,
};
use crate::scheduler::change::{self, action_id};
use crate::scheduler::reply::Reply;
use crate::scheduler::engine::rules::RuleError;
use crate::scheduler::engine::{due_second, Action, Availability, DueEntry, Engine, LOAD_CHUNK};
use crate::scheduler::model::{Attempt, AttemptOutcome, Callback, CallbackChanges, CallbackId, Dispatch, NewCallback, Origin, Outcome, Stats, Status};
use crate::scheduler::store::codec::{decode_attempt, decode_callback, encode_attempt, encode_callback};
use crate::scheduler::store::stats::Counters;

/// At most this many requests share one transaction.
const MAX_BATCH: usize = 1024;
/// Largest page of a list (as the redb book).
const MAX_LIMIT: usize = 500;
/// The channel every node listens on for changes to the book.
const CHANNEL: &str = "redial_book";
/// Changes to callbacks due sooner than this wake the other nodes; later
/// ones reach them through their own loads of the due index (which look
/// [`crate::scheduler::engine::LOOKAHEAD_MS`] ahead).
const NOTIFY_WITHIN_MS: Millis = 10_000;
/// Before any round is measured: the cost of marking one callback, µs.
const INITIAL_US_PER_MARK: u32 = 200;

pub use super::error::pg_error;

/// Which shards this node may dial, shared with the lease loop. A book
/// without one (a single node) dials every shard without fencing.
#[derive(Debug)]
pub struct Ownership {
    pub node: String,
    pub shards: u32,
    /// A node not seen for this long is gone (its attempts can be closed).
    pub lease: std::time::Duration,
    held: Mutex<Held>,
    /// Bumped whenever the set of shards held changes.
    generation: AtomicU64,
    /// Shards newly claimed whose in-progress attempts must be closed
    /// (their dialler lost them) before they are dialled here.
    claimed: Mutex<Vec<u32>>,
    /// This node's agent holds (their keys), renewed by the lease loop
    /// while their attempts go on.
    holds: Mutex<HashSet<String>>,
    /// Agents other nodes hold now, as last read or refused.
    elsewhere: Mutex<HashSet<String>>,
}

impl Ownership {
    pub fn new(node: impl Into<String>, shards: u32, lease: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            node: node.into(),
            shards: shards.max(1),
            lease,
            held: Mutex::default(),
            generation: AtomicU64::new(0),
            claimed: Mutex::default(),
            holds: Mutex::default(),
            elsewhere: Mutex::default(),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lease loop's view changed: `f` edits it; `claimed` are shards
    /// just taken over.
    pub fn update(&self, claimed: &[u32], f: impl FnOnce(&mut Held)) {
        let changed = {
            let mut held = self.held();
            let before = held.list();
            f(&mut held);
            held.list() != before
        };
        if !claimed.is_empty() {
            self.claimed.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(claimed);
        }
        // Renewals only move deadlines: the book reloads only when the
        // shards or their epochs changed, or some need a sweep.
        if changed || !claimed.is_empty() {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// (shard, epoch) of every shard held (for renewals and `GET /v1/cluster`).
    pub fn list(&self) -> Vec<(u32, i64)> {
        self.held().list()
    }

    /// The epoch to fence with, if `shard` may be dialled at `now`.
    pub fn may_dial(&self, shard: u32, now: Millis) -> Option<i64> {
        self.held().may_dial(shard, now)
    }

    /// Forgets shards whose local deadline passed; true if any was.
    pub fn expire(&self, now: Millis) -> bool {
        let gone = self.held().expire(now);
        if !gone.is_empty() {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        !gone.is_empty()
    }

    /// This node's agent holds now (for their renewal).
    pub fn holds(&self) -> Vec<String> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    fn add_holds(&self, keys: impl IntoIterator<Item = String>) {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).extend(keys);
    }

    fn drop_hold(&self, key: &str) {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Whether another node holds `agent` (as last known here).
    pub fn held_elsewhere(&self, agent: &str) -> bool {
        self.elsewhere.lock().unwrap_or_else(|p| p.into_inner()).contains(agent)
    }

    /// The agents other nodes hold, as the lease loop read them.
    pub fn set_held_elsewhere(&self, agents: impl IntoIterator<Item = String>) {
        *self.elsewhere.lock().unwrap_or_else(|p| p.into_inner()) = agents.into_iter().collect();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn take_claimed(&self) -> Vec<u32> {
        std::mem::take(&mut *self.claimed.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// How to reach the database and what this node is.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// A libpq-style connection string (`host=… user=… dbname=…`) or URL.
    pub url: String,
    /// A schema of its own (created if missing); `None` = the default
    /// search path. Tests give each book one.
    pub schema: Option<String>,
    /// Shards of the cluster (fixed for its life).
    pub shards: u32,
    /// Cluster mode: the shards this node leases. `None` = a single node.
    pub ownership: Option<Arc<Ownership>>,
    /// Where committed changes are published, after their commit.
    pub bus: Option<Arc<Bus>>,
    /// Write every change's events to the durable outbox shared by the
    /// nodes ([`super::outbox`]) in its transaction; the book is then the
    /// node's [`Outbox`]. Off for a book used only as a book.
    pub outbox: bool,
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), schema: None, shards: 64, ownership: None, bus: None, outbox: false }
    }
}

/// Connects with `opts` (its schema set as the search path); the
/// connection runs on the calling runtime. `listen` receives notifications.
pub async fn connect(opts: &PgOptions, listen: Option<mpsc::UnboundedSender<String>>) -> Result<Client, StoreError> {
    let (client, mut conn) = tokio_postgres::connect(&opts.url, NoTls).await.map_err(pg_error)?;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if let Some(l) = &listen {
                        let _ = l.send(n.payload().to_string());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "PostgreSQL connection ended");
                    break;
                }
                None => break,
            }
        }
    });
    if let Some(s) = &opts.schema {
        let q = quote_ident(s);
        client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {q}; SET search_path TO {q}")).await.map_err(pg_error)?;
    }
    Ok(client)
}

/// The writer's connection. In cluster mode its session ends a transaction
/// left idle for one lease: a node cut off from the database between its
/// batch's last statement and `COMMIT` would otherwise keep the outbox's
/// counter row locked ([`super::outbox`]), and every node's writes with
/// it, until TCP gave up on the connection (hours). A SIGKILLed node's
/// socket closes at once; this is for a node that vanishes from the network.
async fn writer_connection(opts: &PgOptions) -> Result<Client, StoreError> {
    let db = connect(opts, None).await?;
    if let Some(own) = &opts.ownership {
        let ms = own.lease.as_millis().max(1);
        db.batch_execute(&format!("SET idle_in_transaction_session_timeout = {ms}")).await.map_err(pg_error)?;
    }
    Ok(db)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

enum Op {
    Schedule(NewCallback, Option<AuditNote>, oneshot::Sender<Result<Callback, ScheduleError>>),
    Reschedule(CallbackId, CallbackChanges, Option<AuditNote>, oneshot::Sender<Result<Callback, ScheduleError>>),
    Cancel(CallbackId, Option<AuditNote>, oneshot::Sender<Result<Callback, CancelError>>),
    Report(CallbackId, u32, AttemptOutcome, oneshot::Sender<Result<Callback, ReportError>>),
    Tick(Arc<dyn Availability>, usize, Millis, oneshot::Sender<Result<Tick, StoreError>>),
    Flush(oneshot::Sender<()>),
    Skip(String, String, String, oneshot::Sender<Result<Option<Callback>, StoreError>>),
    Audit(Vec<AuditEntry>, oneshot::Sender<Result<(), StoreError>>),
    /// Outbox work: an event from outside the book, a webhook cursor, a
    /// parked delivery, a text sent, a retry's outcome.
    Outbox(OutboxOp),
}

/// What one batch changed, applied to memory after its commit.
#[derive(Default)]
struct Batch {
    replies: Vec<Reply>,
    engine: HashMap<CallbackId, Option<DueEntry>>,
    wake_driver: bool,
    marked: usize,
    /// A row was locked by another node or its fence refused: memory no
    /// longer knows what is due; reload after the commit.
    reload: bool,
    events: Vec<(Kind, Payload)>,
    audit: Vec<AuditEntry>,
    /// Ids reserved for this batch's schedules.
    ids: Vec<u32>,
    /// Agent holds written for this batch's attempts (committed on their
    /// own): given back if the batch fails.
    holds: Vec<String>,
    /// A callback became scheduled due within [`NOTIFY_WITHIN_MS`]: other
    /// nodes may have to dial it before their next load reaches it.
    near_due: bool,
    /// The attempts this batch starts, (callback, attempt number).
    started: Vec<(CallbackId, u32)>,
    /// Events from outside the book (agents, trunks, texts received).
    published: Vec<(Kind, Millis, Payload)>,
    /// Outbox work other than events.
    outbox: Vec<OutboxOp>,
    /// The batch's events as the outbox stored them, with their sequences.
    stored: Vec<Event>,
}

impl Batch {
    fn note(&mut self, now: Millis, note: Option<AuditNote>, done: Option<&Callback>) {
        if let (Some(note), Some(cb)) = (note, done) {
            self.audit.push(note.entry(now, cb));
        }
    }
}

/// Takes the `refused` callbacks out of a firing round before its commit:
/// they are not handed over, their agents are free again, and their records
/// are left as they were.
fn withdraw(refused: &HashSet<CallbackId>, out: &mut Vec<Dispatch>, writes: &mut Vec<(Callback, Callback)>, avail: &dyn Availability) {
    out.retain(|d| {
        let keep = !refused.contains(&d.callback.id);
        if !keep {
            avail.release(&d.agent);
        }
        keep
    });
    writes.retain(|(old, _)| !refused.contains(&old.id));
}

/// Answers `op` with `e` without applying it.
fn refuse(op: Op, e: &StoreError) {
    match op {
        Op::Schedule(.., tx) | Op::Reschedule(.., tx) => drop(tx.send(Err(e.clone().into()))),
        Op::Cancel(.., tx) => drop(tx.send(Err(e.clone().into()))),
        Op::Report(.., tx) => drop(tx.send(Err(e.clone().into()))),
        Op::Tick(.., tx) => drop(tx.send(Err(e.clone()))),
        Op::Flush(tx) => drop(tx.send(())),
        Op::Skip(.., tx) => drop(tx.send(Err(e.clone()))),
        Op::Audit(_, tx) => drop(tx.send(Err(e.clone()))),
        Op::Outbox(OutboxOp::Retried(.., tx)) => drop(tx.send(Err(e.clone()))),
        Op::Outbox(_) => {}
    }
}

struct Writer {
    db: Client,
    /// Agent holds are written here, each in its own transaction, so that a
    /// node waiting for another's hold to commit holds no lock of its own
    /// (cluster mode).
    holds_db: Option<Client>,
    /// The connection that LISTENs for other nodes' changes (cluster mode).
    listen: Option<Client>,
    listen_tx: mpsc::UnboundedSender<String>,
    opts: PgOptions,
    cfg: Arc<Config>,
    clock: Arc<dyn Clock>,
    engine: Engine,
    shards: u32,
    own: Option<Arc<Ownership>>,
    generation: u64,
    notify: Arc<Notify>,
    waiting: Arc<AtomicUsize>,
    us_per_mark: u32,
    armed_until: Millis,
    bus: Option<Arc<Bus>>,
    /// Attempts started by a batch whose commit failed: never dialled, yet
    /// perhaps written (a commit's answer can be lost with the connection).
    /// Put back once the database answers again ([`Writer::undo_unconfirmed`]).
    unconfirmed: Vec<(CallbackId, u32)>,
    /// Batches committed since the outbox was last pruned.
    since_prune: u32,
}

/// The outbox is pruned once per this many batches.
const PRUNE_EVERY: u32 = 512;

fn id_i64(id: CallbackId) -> i64 {
    id.0 as i64
}

fn decode_row(row: &Row, col: usize) -> Result<Callback, StoreError> {
    let id: i64 = row.get(0);
    let bytes: &[u8] = row.get(col);
    decode_callback(bytes).map_err(|source| StoreError::Decode { id: CallbackId(id as u64), source })
}

/// A connection LISTENing on [`CHANNEL`], its notifications sent to `tx`.
async fn listen_to(opts: &PgOptions, tx: &mpsc::UnboundedSender<String>) -> Result<Client, StoreError> {
    let listen = connect(opts, Some(tx.clone())).await?;
    listen.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(pg_error)?;
    Ok(listen)
}

impl Writer {
    /// Connects again when the database connection ended (the database
    /// restarted, or the network between them failed): without it no change
    /// can be written, and nothing is dialled, until this succeeds. What is
    /// due is read again, as other nodes' notifications may have been missed.
    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let closed = |c: &Option<Client>| c.as_ref().is_some_and(|c| c.is_closed());
        if !self.db.is_closed() && !closed(&self.listen) && !closed(&self.holds_db) {
            return Ok(());
        }
        if self.db.is_closed() {
            self.db = writer_connection(&self.opts).await?;
        }
        if closed(&self.holds_db) {
            self.holds_db = Some(connect(&self.opts, None).await?);
        }
        if self.listen.as_ref().is_some_and(|l| l.is_closed()) {
            self.listen = Some(listen_to(&self.opts, &self.listen_tx).await?);
        }
        tracing::info!("reconnected to the database");
        self.engine.reset(self.clock.now_ms());
        Ok(())
    }

    /// Ends this batch's agent holds whose keys `which` picks (their attempts
    /// will not start). One that cannot be ended lapses with its lease.
    async fn drop_holds(&self, which: impl Fn(&str) -> bool, batch: &mut Batch) {
        let (Some(own), Some(hdb)) = (&self.own, &self.holds_db) else { return };
        let (gone, kept): (Vec<String>, Vec<String>) = batch.holds.drain(..).partition(|k| which(k));
        batch.holds = kept;
        for key in gone {
            own.drop_hold(&key);
            if let Err(e) = holds::release_hold(hdb, &key).await {
                tracing::warn!(error = %pg_error(e), hold = %key, "could not end an agent hold; it lapses");
            }
        }
    }

    /// The shards this node may dial at `now` with their epochs; `None` =
    /// every shard, unfenced (a single node).
    fn dialable(&self, now: Millis) -> Option<HashMap<u32, i64>> {
        self.own.as_ref().map(|o| o.list().into_iter().filter(|(s, _)| o.may_dial(*s, now).is_some()).collect())
    }

    fn mine(&self, cb: &Callback, now: Millis) -> bool {
        match &self.own {
            None => true,
            Some(o) => o.may_dial(shard_of(&cb.id.to_string(), self.shards), now).is_some(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>, mut remote: mpsc::UnboundedReceiver<String>) {
        let me = self.own.as_ref().map(|o| o.node.clone()).unwrap_or_default();
        loop {
            let first = tokio::select! {
                op = rx.recv() => match op {
                    Some(op) => op,
                    None => return,
                },
                Some(from) = remote.recv() => {
                    // Another node changed the book: what this node holds
                    // in memory may be stale or missing.
                    let mut other = from != me;
                    while let Ok(f) = remote.try_recv() {
                        other |= f != me;
                    }
                    if other {
                        self.engine.reset(self.clock.now_ms());
                        self.notify.notify_one();
                    }
                    continue;
                }
            };
            let mut ops = vec![first];
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.process(ops).await;
        }
    }

    async fn process(&mut self, ops: Vec<Op>) {
        let now = self.clock.now_ms();
        if let Err(e) = self.reconnect().await {
            tracing::warn!(error = %e, "cannot reach the database; changes refused");
            for op in ops {
                refuse(op, &e);
            }
            return;
        }
        if !self.unconfirmed.is_empty() {
            match self.undo_unconfirmed().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(put_back = n, "attempts written by a batch whose commit failed were never dialled: scheduled again"),
                Err(e) => tracing::error!(error = %e, "cannot check the attempts of a failed batch; retried with the next batch"),
            }
        }
        if let Some(o) = self.own.clone() {
            let g = o.generation();
            if g != self.generation {
                // Shards came or went: reload the near future of those held now.
                self.generation = g;
                self.engine.reset(now);
                let claimed = o.take_claimed();
                if !claimed.is_empty() {
                    match self.recover(&claimed).await {
                        Ok(n) if n > 0 => tracing::warn!(recovered = n, "closed attempts left in progress on shards taken over"),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "cannot close the attempts of shards taken over");
                            o.claimed.lock().unwrap_or_else(|p| p.into_inner()).extend(claimed);
                            self.generation = 0;
                        }
                    }
                }
            }
        }
        let mut batch = Batch::default();
        let started = std::time::Instant::now();
        let result = self.apply_all(now, ops, &mut batch).await;
        match result {
            Ok(()) => {
                if batch.marked >= 64 {
                    // Timing the writer's own work, not scheduling logic:
                    // it only decides how early herds are armed.
                    let us = (started.elapsed().as_micros() / batch.marked as u128).clamp(1, 5_000) as u32;
                    self.us_per_mark = (self.us_per_mark + us).div_ceil(2);
                }
                for (id, state) in batch.engine.drain() {
                    match state {
                        Some(e) => self.engine.handle_upsert(e),
                        None => self.engine.handle_removed(id),
                    }
                }
                if batch.reload {
                    self.engine.reset(now);
                }
                self.waiting.store(self.engine.ready_len(), Ordering::Relaxed);
                self.publish(now, &mut batch);
                self.prune().await;
                for r in batch.replies {
                    r.send(None);
                }
                if batch.wake_driver || batch.reload {
                    self.notify.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "book write failed; batch refused");
                let _ = self.db.batch_execute("ROLLBACK").await;
                self.unconfirmed.append(&mut batch.started);
                // Its attempts did not start: nor do their agents' holds.
                self.drop_holds(|_| true, &mut batch).await;
                self.engine.reset(now);
                self.waiting.store(self.engine.ready_len(), Ordering::Relaxed);
                for r in batch.replies {
                    r.send(Some(&e));
                }
                self.notify.notify_one();
            }
        }
    }

    async fn apply_all(&mut self, now: Millis, ops: Vec<Op>, batch: &mut Batch) -> Result<(), StoreError> {
        let schedules = ops.iter().filter(|o| matches!(o, Op::Schedule(..))).count();
        self.db.batch_execute("BEGIN").await.map_err(pg_error)?;
        if schedules > 0 {
            let rows = self
                .db
                .query("SELECT nextval('redial_callback_seq') FROM generate_series(1, $1)", &[&(schedules as i32)])
                .await
                .map_err(pg_error)?;
            batch.ids = rows.iter().rev().map(|r| r.get::<_, i64>(0) as u32).collect();
        }
        let mut ops = ops.into_iter();
        for op in ops.by_ref() {
            batch.wake_driver |= !matches!(op, Op::Tick(..) | Op::Flush(_) | Op::Audit(..) | Op::Outbox(_));
            match op {
                Op::Schedule(req, note, tx) => {
                    let r = self.schedule(now, req, batch).await?;
                    batch.note(now, note, r.as_ref().ok());
                    batch.replies.push(Reply::Schedule(tx, r));
                }
                Op::Reschedule(id, ch, note, tx) => {
                    let r = self.reschedule(now, id, &ch, batch).await?;
                    batch.note(now, note, r.as_ref().ok());
                    batch.replies.push(Reply::Schedule(tx, r));
                }
                Op::Cancel(id, note, tx) => {
                    let r = self.cancel(now, id, batch).await?;
                    batch.note(now, note, r.as_ref().ok());
                    batch.replies.push(Reply::Cancel(tx, r));
                }
                Op::Report(id, n, outcome, tx) => {
                    let r = self.report(now, id, n, outcome, None, batch).await?;
                    batch.replies.push(Reply::Report(tx, r));
                }
                Op::Tick(avail, max, ahead, tx) => match self.tick(now, ahead, &*avail, max, batch).await {
                    Ok(tick) => batch.replies.push(Reply::Tick(tx, avail, tick)),
                    Err(e) => {
                        drop(tx.send(Err(e.clone())));
                        return Err(e);
                    }
                },
                Op::Flush(tx) => batch.replies.push(Reply::Flush(tx)),
                Op::Audit(entries, tx) => {
                    batch.audit.extend(entries);
                    batch.replies.push(Reply::Done(tx));
                }
                Op::Skip(phone, queue, interaction, tx) => {
                    let r = self.skip(now, &phone, &queue, &interaction, batch).await?;
                    batch.replies.push(Reply::Skip(tx, r));
                }
                Op::Outbox(OutboxOp::Publish(kind, at, payload)) => batch.published.push((kind, at, payload)),
                Op::Outbox(op) => batch.outbox.push(op),
            }
        }
        self.append_audit(&batch.audit).await?;
        if batch.near_due && self.own.is_some() {
            let me = self.own.as_ref().map(|o| o.node.clone()).unwrap_or_default();
            self.db.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &me]).await.map_err(pg_error)?;
        }
        self.write_outbox(now, batch).await?;
        self.db.batch_execute("COMMIT").await.map_err(pg_error)?;
        Ok(())
    }

    /// Whether changes produce events (published, or kept in the outbox).
    fn keeps_events(&self) -> bool {
        self.bus.is_some() || self.opts.outbox
    }

    /// Writes the batch's outbox work, then its events, in the open
    /// transaction: last before `COMMIT`, as the events' counter stays
    /// locked until the commit ([`super::outbox`]).
    async fn write_outbox(&self, now: Millis, batch: &mut Batch) -> Result<(), StoreError> {
        for op in batch.outbox.drain(..) {
            let op = match op {
                // Answered once the batch commits (or with its error).
                OutboxOp::Retried(id, outcome, tx) => {
                    batch.replies.push(Reply::Done(tx));
                    OutboxOp::Retried(id, outcome, oneshot::channel().0)
                }
                other => other,
            };
            if self.opts.outbox {
                outbox::apply(&self.db, op).await?;
            }
        }
        if !self.opts.outbox {
            return Ok(());
        }
        let events: Vec<(Kind, Millis, Payload)> = batch.events.drain(..).map(|(k, p)| (k, now, p)).chain(batch.published.drain(..)).collect();
        batch.stored = outbox::append(&self.db, events).await?;
        Ok(())
    }

    /// Publishes a committed batch's events on the bus: with the outbox's
    /// sequences, or (no outbox) with the bus's own.
    fn publish(&self, now: Millis, batch: &mut Batch) {
        let Some(bus) = &self.bus else { return };
        for ev in batch.stored.drain(..) {
            bus.publish(ev);
        }
        for (kind, payload) in batch.events.drain(..) {
            bus.publish_next(kind, now, payload);
        }
        for (kind, at, payload) in batch.published.drain(..) {
            bus.publish_next(kind, at, payload);
        }
    }

    /// Prunes a chunk of the outbox now and then (its own statement, after
    /// the batch's commit). A failure is only logged: the next prune retries.
    async fn prune(&mut self) {
        if !self.opts.outbox {
            return;
        }
        self.since_prune += 1;
        if self.since_prune < PRUNE_EVERY {
            return;
        }
        self.since_prune = 0;
        let endpoints: Vec<String> = self.cfg.webhooks.iter().map(|w| w.url.clone()).collect();
        match outbox::prune(&self.db, &endpoints).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "outbox pruned"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox"),
        }
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let targets: Vec<&str> = entries.iter().map(|e| e.target.as_str()).collect();
        let bodies: Vec<Vec<u8>> = entries.iter().map(|e| serde_json::to_vec(e).unwrap_or_default()).collect();
        self.db
            .execute(
                "INSERT INTO redial_audit (target, entry) SELECT t, e FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS u(t, e, n) ORDER BY n",
                &[&targets, &bodies],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn get_for_update(&self, id: CallbackId) -> Result<Option<Callback>, StoreError> {
        let row = self.db.query_opt("SELECT id, record FROM redial_callbacks WHERE id = $1 FOR UPDATE", &[&id_i64(id)]).await.map_err(pg_error)?;
        row.map(|r| decode_row(&r, 1)).transpose()
    }

    /// Writes `new` over `old` (none when creating) and records the
    /// engine's view and the events of the change.
    /// A new record that conflicts with an active one for its phone and
    /// queue is not written: `false`.
    async fn put(&self, old: Option<&Callback>, new: &Callback, batch: &mut Batch) -> Result<bool, StoreError> {
        let record = encode_callback(new);
        let delay = new.first_due_at - new.created_at;
        match old {
            None => {
                let shard = shard_of(&new.id.to_string(), self.shards) as i32;
                let n = self
                    .db
                    .execute(
                        "INSERT INTO redial_callbacks (id, shard, status, phone, queue, owner, interaction_id, due_at, first_delay, record)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                         ON CONFLICT (phone, queue) WHERE status IN (0, 1) AND NOT displaced DO NOTHING",
                        &[
                            &id_i64(new.id),
                            &shard,
                            &(new.status.code() as i16),
                            &new.phone,
                            &new.queue,
                            &new.owner,
                            &new.interaction_id,
                            &new.due_at,
                            &delay,
                            &record,
                        ],
                    )
                    .await
                    .map_err(pg_error)?;
                if n == 0 {
                    return Ok(false);
                }
            }
            Some(_) => {
                self.db
                    .execute(
                        "UPDATE redial_callbacks SET status = $2, owner = $3, due_at = $4, first_delay = $5, record = $6, queue = $7 WHERE id = $1",
                        &[&id_i64(new.id), &(new.status.code() as i16), &new.owner, &new.due_at, &delay, &record, &new.queue],
                    )
                    .await
                    .map_err(pg_error)?;
            }
        }
        let now = new.updated_at;
        if new.status == Status::Scheduled && new.due_at < now.saturating_add(NOTIFY_WITHIN_MS) {
            batch.near_due = true;
        }
        let entry = (new.status == Status::Scheduled && self.mine(new, now)).then(|| change::due_entry(&self.cfg, new));
        batch.engine.insert(new.id, entry);
        if self.keeps_events() {
            batch.events.extend(change::change_events(old, new));
        }
        Ok(true)
    }

    async fn schedule(&self, now: Millis, mut req: NewCallback, batch: &mut Batch) -> Result<Result<Callback, ScheduleError>, StoreError> {
        let seq = batch.ids.pop().unwrap_or(0);
        let (v, when_resolution) = match change::validate_new(now, &self.cfg, &mut req) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if let (true, Some(i)) = (req.unique_interaction, req.interaction_id.as_deref()) {
            let rows = self
                .db
                .query("SELECT id, record FROM redial_callbacks WHERE interaction_id = $1 AND status IN (0, 1)", &[&i])
                .await
                .map_err(pg_error)?;
            for r in &rows {
                if self.is_follow_up(&req, &decode_row(r, 1)?) {
                    continue;
                }
                // A duplicate customer is named first, as the rules order them.
                if let Some(existing_id) = self.active_id(&req.phone, &req.queue).await? {
                    if !self.follows_up(&req, existing_id).await? {
                        return Ok(Err(RuleError::Duplicate { existing_id }.into()));
                    }
                }
                return Ok(Err(ScheduleError::DuplicateInteraction { existing_id: CallbackId(r.get::<_, i64>(0) as u64) }));
            }
        }
        let id = CallbackId::new(seq, rand::rng().random());
        let cb = change::new_record(&self.cfg, now, id, req.clone(), v, when_resolution);
        // The unique index over active callbacks decides, also against a
        // booking another node is committing at this moment.
        if self.put(None, &cb, batch).await? {
            return Ok(Ok(cb));
        }
        let Some(existing_id) = self.active_id(&cb.phone, &cb.queue).await? else {
            return Err(StoreError::Postgres("an active callback conflicted and then vanished; try again".into()));
        };
        if !self.follows_up(&req, existing_id).await? {
            return Ok(Err(RuleError::Duplicate { existing_id }.into()));
        }
        // A follow-up booked on the live call of the callback being dialled
        // takes the slot from it: that one is about to end.
        self.db.execute("UPDATE redial_callbacks SET displaced = true WHERE id = $1", &[&id_i64(existing_id)]).await.map_err(pg_error)?;
        if !self.put(None, &cb, batch).await? {
            return Err(StoreError::Postgres("a follow-up conflicted after its callback gave up the slot; try again".into()));
        }
        Ok(Ok(cb))
    }

    /// Whether `existing` is the callback in progress on the live call the
    /// request is a follow-up of (same phone and queue, being dialled now).
    fn is_follow_up(&self, req: &NewCallback, existing: &Callback) -> bool {
        req.follow_up_of == Some(existing.id) && existing.status == Status::InProgress && existing.phone == req.phone && existing.queue == req.queue
    }

    /// [`Self::is_follow_up`] of the record `existing`, locked for the change.
    async fn follows_up(&self, req: &NewCallback, existing: CallbackId) -> Result<bool, StoreError> {
        if req.follow_up_of != Some(existing) {
            return Ok(false);
        }
        Ok(self.get_for_update(existing).await?.is_some_and(|c| self.is_follow_up(req, &c)))
    }

    async fn active_id(&self, phone: &str, queue: &str) -> Result<Option<CallbackId>, StoreError> {
        let row = self
            .db
            .query_opt("SELECT id FROM redial_callbacks WHERE phone = $1 AND queue = $2 AND status IN (0, 1) AND NOT displaced", &[&phone, &queue])
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| CallbackId(r.get::<_, i64>(0) as u64)))
    }

    async fn reschedule(&self, now: Millis, id: CallbackId, ch: &CallbackChanges, batch: &mut Batch) -> Result<Result<Callback, ScheduleError>, StoreError> {
        let Some(old) = self.get_for_update(id).await? else { return Ok(Err(ScheduleError::NotFound)) };
        let new = match change::rescheduled(now, &self.cfg, &old, ch) {
            Ok(new) => new,
            Err(e) => return Ok(Err(e)),
        };
        if new.queue != old.queue {
            if let Some(existing_id) = self.active_id(&old.phone, &new.queue).await? {
                return Ok(Err(RuleError::Duplicate { existing_id }.into()));
            }
        }
        self.put(Some(&old), &new, batch).await?;
        Ok(Ok(new))
    }

    async fn cancel(&self, now: Millis, id: CallbackId, batch: &mut Batch) -> Result<Result<Callback, CancelError>, StoreError> {
        let Some(old) = self.get_for_update(id).await? else { return Ok(Err(CancelError::NotFound)) };
        let new = match change::cancelled(now, &old) {
            Ok(new) => new,
            Err(e) => return Ok(Err(e)),
        };
        self.put(Some(&old), &new, batch).await?;
        Ok(Ok(new))
    }

    async fn report(
        &self,
        now: Millis,
        id: CallbackId,
        n: u32,
        o: AttemptOutcome,
        note: Option<&str>,
        batch: &mut Batch,
    ) -> Result<Result<Callback, ReportError>, StoreError> {
        let row = self
            .db
            .query_opt("SELECT id, record, displaced FROM redial_callbacks WHERE id = $1 FOR UPDATE", &[&id_i64(id)])
            .await
            .map_err(pg_error)?;
        let Some(row) = row else { return Ok(Err(ReportError::NotFound)) };
        let old = decode_row(&row, 1)?;
        let (mut new, attempt) = match change::reported(now, &self.cfg, &old, n, o, note) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // A follow-up booked during this call holds the (phone, queue) slot:
        // this one cannot be scheduled again beside it.
        if new.status == Status::Scheduled && row.get::<_, bool>(2) {
            new.status = Status::Cancelled;
        }
        self.db
            .execute(
                "INSERT INTO redial_attempts (callback, attempt, record) VALUES ($1, $2, $3)
                 ON CONFLICT (callback, attempt) DO UPDATE SET record = EXCLUDED.record",
                &[&id_i64(id), &(n as i32), &encode_attempt(&attempt)],
            )
            .await
            .map_err(pg_error)?;
        if self.keeps_events() {
            batch.events.push(change::attempt_event(&new, &attempt));
        }
        self.put(Some(&old), &new, batch).await?;
        if let Some(own) = &self.own {
            // The attempt is over: so is the agent's hold for it.
            let key = holds::hold_key(&id.to_string(), n);
            holds::release_hold(&self.db, &key).await.map_err(pg_error)?;
            own.drop_hold(&key);
        }
        Ok(Ok(new))
    }

    async fn skip(&self, now: Millis, phone: &str, queue: &str, interaction: &str, batch: &mut Batch) -> Result<Option<Callback>, StoreError> {
        let row = self
            .db
            .query_opt("SELECT id, record FROM redial_callbacks WHERE phone = $1 AND queue = $2 AND status IN (0, 1) AND NOT displaced FOR UPDATE", &[&phone, &queue])
            .await
            .map_err(pg_error)?;
        let Some(row) = row else { return Ok(None) };
        let old = decode_row(&row, 1)?;
        let Some(new) = change::skipped(now, &old, interaction) else { return Ok(None) };
        self.put(Some(&old), &new, batch).await?;
        Ok(Some(new))
    }

    /// Puts back the [`Writer::unconfirmed`] attempts that the database shows
    /// started by this node (their batch's commit went through though its
    /// answer was lost): they were never handed to the dialler, so each is
    /// scheduled again under its previous number, as due as it was, and its
    /// fenced start is removed. One that moved on, or that another node
    /// started, is left alone. Returns how many were put back.
    async fn undo_unconfirmed(&mut self) -> Result<usize, StoreError> {
        let list = std::mem::take(&mut self.unconfirmed);
        let wall = self.clock.now_ms();
        let mut batch = Batch::default();
        let result = async {
            self.db.batch_execute("BEGIN").await.map_err(pg_error)?;
            let mut n = 0;
            for (id, attempt) in &list {
                let row = self.db.query_opt("SELECT id, record FROM redial_callbacks WHERE id = $1 FOR UPDATE", &[&id_i64(*id)]).await.map_err(pg_error)?;
                let Some(row) = row else { continue };
                let cb = decode_row(&row, 1)?;
                let Some(back) = change::unstarted(wall, &cb, *attempt) else { continue };
                if let Some(o) = &self.own {
                    let ours = self
                        .db
                        .execute("DELETE FROM redial_attempt_starts WHERE callback = $1 AND attempt = $2 AND node = $3", &[&id.to_string(), &(*attempt as i32), &o.node])
                        .await
                        .map_err(pg_error)?;
                    if ours == 0 {
                        continue;
                    }
                }
                self.put(Some(&cb), &back, &mut batch).await?;
                n += 1;
            }
            self.write_outbox(wall, &mut batch).await?;
            self.db.batch_execute("COMMIT").await.map_err(pg_error)?;
            Ok::<usize, StoreError>(n)
        }
        .await;
        let result = self.end_sweep(wall, result, batch).await;
        if result.is_err() {
            self.unconfirmed = list;
        }
        result
    }

    /// Ends a sweep's own transaction (committed when `result` is `Ok`): its
    /// events are published and the near future reloaded, or it is rolled back.
    async fn end_sweep(&mut self, now: Millis, result: Result<usize, StoreError>, mut batch: Batch) -> Result<usize, StoreError> {
        match result {
            Ok(n) => {
                self.publish(now, &mut batch);
                self.engine.reset(now);
                Ok(n)
            }
            Err(e) => {
                let _ = self.db.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// Closes every attempt left `in_progress` in `shards` (every shard
    /// when empty) as failed and reschedules it by the retry policy: the
    /// node that dialled it is gone or fenced and will never report it, so
    /// the attempt is spent and never dialled again under the same number.
    async fn recover(&mut self, shards: &[u32]) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut batch = Batch::default();
        self.db.batch_execute("BEGIN").await.map_err(pg_error)?;
        let result = async {
            let all = shards.is_empty();
            let shards: Vec<i32> = shards.iter().map(|s| *s as i32).collect();
            let rows = self
                .db
                .query(
                    "SELECT id, record FROM redial_callbacks WHERE status = 1 AND ($1 OR shard = ANY($2)) ORDER BY id FOR UPDATE",
                    &[&all, &shards],
                )
                .await
                .map_err(pg_error)?;
            let mut n = 0;
            let live: HashSet<String> = match &self.own {
                None => HashSet::new(),
                Some(o) => self
                    .db
                    .query("SELECT node FROM redial_nodes WHERE seen_at > now() - make_interval(secs => $1)", &[&o.lease.as_secs_f64()])
                    .await
                    .map_err(pg_error)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            };
            for row in rows {
                let cb = decode_row(&row, 1)?;
                if let Some(o) = &self.own {
                    // Left alone: an attempt a live node is dialling (it
                    // reports the outcome), and one this process started
                    // under the epoch it holds now.
                    let start = self
                        .db
                        .query_opt("SELECT node, epoch, shard FROM redial_attempt_starts WHERE callback = $1 AND attempt = $2", &[&cb.id.to_string(), &(cb.attempts as i32)])
                        .await
                        .map_err(pg_error)?;
                    if let Some(st) = start {
                        let (node, epoch, shard): (String, i64, i32) = (st.get(0), st.get(1), st.get(2));
                        let ours_now = node == o.node && o.list().iter().any(|(s, e)| *s == shard as u32 && *e == epoch);
                        if ours_now || (node != o.node && live.contains(&node)) {
                            continue;
                        }
                    }
                }
                let o = AttemptOutcome::new(Outcome::Failed);
                let _ = self.report(now, cb.id, cb.attempts, o, Some("redial restarted during this attempt"), &mut batch).await?;
                n += 1;
            }
            self.write_outbox(now, &mut batch).await?;
            self.db.batch_execute("COMMIT").await.map_err(pg_error)?;
            Ok::<usize, StoreError>(n)
        }
        .await;
        self.end_sweep(now, result, batch).await
    }

    /// One firing round as if it were `ahead` ms later (the redb writer's
    /// round, over the shards this node may dial).
    async fn tick(&mut self, now: Millis, ahead: Millis, avail: &dyn Availability, max: usize, batch: &mut Batch) -> Result<Tick, StoreError> {
        let ahead = ahead.max(0);
        let from = now;
        let horizon = if ahead > 0 { self.engine.arm_horizon(now, ahead, self.us_per_mark) } else { 0 };
        let now = (now + horizon).max(self.armed_until);
        self.armed_until = now;
        let dialable = self.dialable(from);
        let mut loaded = 0;
        if let Some(until_s) = self.engine.needs_load(now) {
            loaded = self.load(until_s, dialable.as_ref()).await?;
        }
        let mut dispatches = Vec::new();
        let mut more = false;
        let result = async {
            loop {
                let budget = max.saturating_sub(dispatches.len());
                if budget == 0 {
                    more = true;
                    break;
                }
                let actions = self.engine.poll_actions(now, avail, budget);
                let n = actions.len();
                if n == 0 {
                    break;
                }
                let round = self.apply_actions(now, from, actions, avail, dialable.as_ref(), batch).await?;
                batch.marked += round.len();
                dispatches.extend(round);
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(e) = result {
            for d in &dispatches {
                avail.release(&d.agent);
            }
            return Err(e);
        }
        let changed = batch.engine.values().any(|e| e.as_ref().is_some_and(|e| e.due_at <= now));
        let next_deadline = if ahead > 0 { self.engine.poll_arm_timeout(from, ahead, self.us_per_mark) } else { self.engine.poll_timeout() };
        // A node in a cluster also looks again when its leases may change.
        let next_deadline = match self.own.as_ref().and_then(|o| o.held().poll_timeout()) {
            Some(d) => Some(next_deadline.map_or(d, |n| n.min(d))),
            None => next_deadline,
        };
        Ok(Tick { dispatches, next_deadline, more: more || changed || loaded > 0 || batch.reload })
    }

    /// Applies one poll's actions: the records are locked together (rows
    /// another node is changing are skipped, not waited for), each action
    /// goes through the shared rules, and a fire in cluster mode writes its
    /// fenced start first. Dispatches come back in the engine's order.
    async fn apply_actions(
        &mut self,
        now: Millis,
        wall: Millis,
        actions: Vec<Action>,
        avail: &dyn Availability,
        dialable: Option<&HashMap<u32, i64>>,
        batch: &mut Batch,
    ) -> Result<Vec<Dispatch>, StoreError> {
        let ids: Vec<i64> = actions.iter().map(|a| id_i64(action_id(a))).collect();
        let rows = self
            .db
            .query("SELECT id, record, shard FROM redial_callbacks WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED", &[&ids])
            .await
            .map_err(pg_error)?;
        let mut records: HashMap<CallbackId, (Callback, u32)> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let cb = decode_row(r, 1)?;
            records.insert(cb.id, (cb, r.get::<_, i32>(2) as u32));
        }
        let mut writes = Vec::new();
        let mut out = Vec::new();
        let mut starts: Vec<(CallbackId, u32, u32, i64)> = Vec::new();
        for a in actions {
            let id = action_id(&a);
            let Some((old, shard)) = records.get(&id) else {
                // Locked by another node's change, or gone: the next round
                // sees it as it is then.
                if let Action::Fire { agent, .. } = &a {
                    avail.release(agent);
                }
                batch.reload = true;
                continue;
            };
            let epoch = match dialable {
                None => None,
                Some(d) => match d.get(shard) {
                    Some(e) => Some(*e),
                    None => {
                        // The shard left this node since the engine loaded it.
                        if let Action::Fire { agent, .. } = &a {
                            avail.release(agent);
                        }
                        batch.reload = true;
                        continue;
                    }
                },
            };
            let applied = change::apply_action(now, wall, &self.cfg, old, a);
            if let Some(keep) = applied.keep {
                batch.engine.insert(old.id, Some(keep));
            }
            if let Some(agent) = applied.release {
                avail.release(&agent);
            }
            if let (Some(d), Some(e)) = (&applied.dispatch, epoch) {
                starts.push((old.id, d.attempt, *shard, e));
            }
            if let Some(new) = applied.write {
                writes.push((old.clone(), new));
            }
            if let Some(d) = applied.dispatch {
                out.push(d);
            }
        }
        if let (Some(own), Some(hdb)) = (&self.own, &self.holds_db) {
            // Each agent handed an attempt is held in the cluster first: a
            // hold another node has (a conditional write) leaves the
            // callback as it was, for a later round or another agent.
            let node = own.node.clone();
            let wanted: Vec<(CallbackId, String, String)> =
                out.iter().filter(|d| d.agent != holds::ANY_AGENT).map(|d| (d.callback.id, d.agent.clone(), holds::hold_key(&d.callback.id.to_string(), d.attempt))).collect();
            let got = try_join_all(wanted.iter().map(|(id, agent, key)| {
                let node = node.clone();
                async move { holds::reserve(hdb, agent, &node, key, own.lease).await.map(|ok| (*id, agent.clone(), key.clone(), ok)) }
            }))
            .await
            .map_err(pg_error)?;
            let mut refused = HashSet::new();
            for (id, agent, key, ok) in got {
                if ok {
                    batch.holds.push(key);
                } else {
                    tracing::info!(agent = %agent, callback = %id, "agent held by another node");
                    own.elsewhere.lock().unwrap_or_else(|p| p.into_inner()).insert(agent);
                    refused.insert(id);
                }
            }
            if !refused.is_empty() {
                batch.reload = true;
                withdraw(&refused, &mut out, &mut writes, avail);
                starts.retain(|(id, ..)| !refused.contains(id));
            }
            own.add_holds(batch.holds.iter().cloned());
        }
        if let Some(own) = &self.own {
            // The fenced starts: a refused one (the lease moved on) is not
            // dialled and its record is left as it was.
            let node = own.node.clone();
            let fenced = try_join_all(starts.iter().map(|(id, n, shard, epoch)| {
                let node = node.clone();
                let db = &self.db;
                async move { leases::start_attempt(db, &node, *shard, *epoch, &id.to_string(), *n).await.map(|ok| (*id, ok)) }
            }))
            .await
            .map_err(pg_error)?;
            let refused: HashSet<CallbackId> = fenced.into_iter().filter(|(_, ok)| !ok).map(|(id, _)| id).collect();
            if !refused.is_empty() {
                tracing::warn!(refused = refused.len(), "attempt starts refused by the fence: shards lost");
                batch.reload = true;
                withdraw(&refused, &mut out, &mut writes, avail);
                self.drop_holds(|key| refused.iter().any(|id| key.starts_with(&format!("{id}/"))), batch).await;
            }
        }
        for (old, new) in &writes {
            self.put(Some(old), new, batch).await?;
        }
        batch.started.extend(out.iter().map(|d| (d.callback.id, d.attempt)));
        Ok(out)
    }

    /// Reads the due index from the engine's horizon up to `until_s`, at
    /// most about [`LOAD_CHUNK`] entries (whole seconds only), of the
    /// shards this node may dial.
    async fn load(&mut self, until_s: i64, dialable: Option<&HashMap<u32, i64>>) -> Result<usize, StoreError> {
        let from_s = self.engine.loaded_until_s().max(0);
        let all = dialable.is_none();
        let shards: Vec<i32> = dialable.map(|d| d.keys().map(|s| *s as i32).collect()).unwrap_or_default();
        let sql = "SELECT id, record FROM redial_callbacks
                    WHERE status = 0 AND due_at >= $1 AND due_at < $2 AND ($3 OR shard = ANY($4))
                    ORDER BY due_at, id LIMIT $5";
        let lo = from_s.saturating_mul(1000);
        let hi = until_s.max(0).saturating_mul(1000);
        let rows = self.db.query(sql, &[&lo, &hi, &all, &shards, &(LOAD_CHUNK as i64 + 1)]).await.map_err(pg_error)?;
        let mut cbs = rows.iter().map(|r| decode_row(r, 1)).collect::<Result<Vec<_>, _>>()?;
        let mut reached = until_s;
        if cbs.len() > LOAD_CHUNK {
            let last_s = due_second(cbs.last().expect("non-empty").due_at);
            if due_second(cbs[0].due_at) == last_s {
                // One second holds more than a chunk: take all of it.
                let rows = self
                    .db
                    .query(sql, &[&lo, &(last_s.saturating_add(1).saturating_mul(1000)), &all, &shards, &i64::MAX])
                    .await
                    .map_err(pg_error)?;
                cbs = rows.iter().map(|r| decode_row(r, 1)).collect::<Result<Vec<_>, _>>()?;
                reached = last_s + 1;
            } else {
                cbs.retain(|c| due_second(c.due_at) < last_s);
                reached = last_s;
            }
        }
        let n = cbs.len();
        let entries: Vec<DueEntry> = cbs.iter().map(|c| change::due_entry(&self.cfg, c)).collect();
        self.engine.handle_loaded(entries, reached);
        Ok(n)
    }
}

/// The callback book in PostgreSQL. Cheap to share behind an `Arc`.
pub struct PgBook {
    tx: mpsc::UnboundedSender<Op>,
    /// The connection reads use; replaced when it ends (see [`PgBook::reader`]).
    read: tokio::sync::Mutex<Arc<Client>>,
    opts: PgOptions,
    /// The writer thread's runtime, which drives every connection of the book.
    rt: tokio::runtime::Handle,
    writer: Option<JoinHandle<()>>,
    notify: Arc<Notify>,
    waiting: Arc<AtomicUsize>,
    recovered: usize,
}

impl std::fmt::Debug for PgBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBook").finish_non_exhaustive()
    }
}

impl PgBook {
    /// Connects, applies the migrations, closes attempts a previous run
    /// left in progress (a single node: all of them; in cluster mode the
    /// lease loop hands over shards as they are claimed), and starts the
    /// writer on a thread of its own. Blocking: call it off async threads
    /// or before the runtime is busy.
    pub fn open(opts: PgOptions, clock: Arc<dyn Clock>, cfg: Arc<Config>) -> Result<PgBook, StoreError> {
        let book_opts = opts.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("redial-pg-book".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::io(Path::new("tokio runtime"), e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let opened = async {
                        let (listen_tx, listen_rx) = mpsc::unbounded_channel();
                        let mut db = writer_connection(&opts).await?;
                        schema::migrate(&mut db, opts.shards).await.map_err(|e| match e {
                            schema::MigrateError::Db(e) => pg_error(e),
                            other => StoreError::Postgres(other.to_string().into()),
                        })?;
                        let read = connect(&opts, None).await?;
                        let listen = if opts.ownership.is_some() { Some(listen_to(&opts, &listen_tx).await?) } else { None };
                        let now = clock.now_ms();
                        let holds_db = if opts.ownership.is_some() { Some(connect(&opts, None).await?) } else { None };
                        let mut w = Writer {
                            db,
                            holds_db,
                            listen,
                            listen_tx,
                            opts: opts.clone(),
                            cfg: cfg.clone(),
                            clock: clock.clone(),
                            engine: Engine::new(cfg.clone(), now),
                            shards: opts.shards.max(1),
                            own: opts.ownership.clone(),
                            generation: 0,
                            notify: Arc::new(Notify::new()),
                            waiting: Arc::default(),
                            us_per_mark: INITIAL_US_PER_MARK,
                            armed_until: Millis::MIN,
                            bus: opts.bus.clone(),
                            unconfirmed: Vec::new(),
                            since_prune: 0,
                        };
                        let recovered = if opts.ownership.is_none() { w.recover(&[]).await? } else { 0 };
                        if recovered > 0 {
                            tracing::warn!(recovered, "closed attempts left in progress by the previous run");
                        }
                        Ok::<_, StoreError>((w, read, recovered, listen_rx))
                    }
                    .await;
                    match opened {
                        Ok((w, read, recovered, listen_rx)) => {
                            let (tx, rx) = mpsc::unbounded_channel();
                            let rt = tokio::runtime::Handle::current();
                            let _ = ready_tx.send(Ok((tx, read, rt, w.notify.clone(), w.waiting.clone(), recovered)));
                            w.run(rx, listen_rx).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| StoreError::io(Path::new("redial-pg-book thread"), e))?;
        match ready_rx.recv() {
            Ok(Ok((tx, read, rt, notify, waiting, recovered))) => {
                Ok(PgBook { tx, read: tokio::sync::Mutex::new(Arc::new(read)), opts: book_opts, rt, writer: Some(writer), notify, waiting, recovered })
            }
            Ok(Err(e)) => {
                let _ = writer.join();
                Err(e)
            }
            Err(_) => {
                let _ = writer.join();
                Err(StoreError::Closed)
            }
        }
    }

    async fn call<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op, closed: T) -> T {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(op(tx)).is_err() {
            return closed;
        }
        rx.await.unwrap_or(closed)
    }

    /// The read connection, connected again if it ended (on the writer's
    /// runtime, like the first).
    async fn reader(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.read.lock().await;
        if slot.is_closed() {
            let opts = self.opts.clone();
            let c = self.rt.spawn(async move { connect(&opts, None).await }).await.map_err(|_| StoreError::Closed)??;
            *slot = Arc::new(c);
        }
        Ok(slot.clone())
    }

    async fn get_now(&self, id: CallbackId) -> Result<Option<Callback>, StoreError> {
        let row = self.reader().await?.query_opt("SELECT id, record FROM redial_callbacks WHERE id = $1", &[&id_i64(id)]).await.map_err(pg_error)?;
        row.map(|r| decode_row(&r, 1)).transpose()
    }

    async fn list_now(&self, filter: &ListFilter, limit: usize, cursor: Option<&str>) -> Result<Page<Callback>, StoreError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let from: i64 = match cursor {
            None => 0,
            // The cursor is the last id of the previous page; an invalid
            // one is past the end.
            Some(c) => match CallbackId::parse(c) {
                Some(id) => id_i64(id).saturating_add(1),
                None => return Ok(Page { items: vec![], next_cursor: None }),
            },
        };
        let status = filter.status.map(|s| s.code() as i16);
        // The columns narrow the rows; the rest of the filter (any of several
        // owners, origin, reason, confidence) lives in the record and is
        // matched here, reading on in chunks until the page is full.
        let chunk = (limit as i64 + 1).max(256);
        let mut items = Vec::new();
        let mut from = from;
        loop {
            let rows = self
                .reader()
                .await?
                .query(
                    "SELECT id, record FROM redial_callbacks
                      WHERE id >= $1 AND ($2::smallint IS NULL OR status = $2) AND ($3::text IS NULL OR queue = $3)
                        AND ($4::text IS NULL OR phone = $4)
                      ORDER BY id LIMIT $5",
                    &[&from, &status, &filter.queue, &filter.phone, &chunk],
                )
                .await
                .map_err(pg_error)?;
            for r in &rows {
                let c = decode_row(r, 1)?;
                if filter.matches(&c) {
                    items.push(c);
                }
            }
            if items.len() > limit || (rows.len() as i64) < chunk {
                break;
            }
            from = rows.last().map_or(i64::MAX, |r| r.get::<_, i64>(0).saturating_add(1));
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|c| c.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn attempts_now(&self, id: CallbackId) -> Result<Option<Vec<Attempt>>, StoreError> {
        if self.get_now(id).await?.is_none() {
            return Ok(None);
        }
        let rows = self
            .reader()
            .await?
            .query("SELECT record FROM redial_attempts WHERE callback = $1 ORDER BY attempt", &[&id_i64(id)])
            .await
            .map_err(pg_error)?;
        let out = rows
            .iter()
            .map(|r| decode_attempt(r.get::<_, &[u8]>(0)).map_err(|source| StoreError::Decode { id, source }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(out))
    }

    async fn stats_now(&self, queue: Option<&str>) -> Result<Stats, StoreError> {
        let rows = self
            .reader()
            .await?
            .query(
                "SELECT status, count(*), coalesce(sum(first_delay), 0)::bigint FROM redial_callbacks
                  WHERE ($1::text IS NULL OR queue = $1) GROUP BY status",
                &[&queue],
            )
            .await
            .map_err(pg_error)?;
        let mut c = Counters::default();
        for r in rows {
            let (status, n, delay): (i16, i64, i64) = (r.get(0), r.get(1), r.get(2));
            c.requested += n as u64;
            if let Some(slot) = c.by_status.get_mut(status as usize) {
                *slot += n as u64;
            }
            c.delay_sum_ms += delay;
        }
        Ok(c.stats())
    }

    /// Counts by origin. The origin lives only in the record, so this reads
    /// the records of the queues asked for (no column to group by).
    async fn stats_by_origin_now(&self, queue: Option<&str>, origin: Option<Origin>) -> Result<(Stats, Vec<(Origin, Stats)>), StoreError> {
        let rows = self
            .reader()
            .await?
            .query("SELECT id, record FROM redial_callbacks WHERE ($1::text IS NULL OR queue = $1)", &[&queue])
            .await
            .map_err(pg_error)?;
        let mut split: Vec<(Origin, Counters)> = Origin::ALL.iter().map(|o| (*o, Counters::default())).collect();
        for r in rows {
            let c = decode_row(&r, 1)?;
            if let Some((_, ct)) = split.iter_mut().find(|(o, _)| *o == c.origin) {
                ct.created(c.status, c.first_due_at - c.created_at);
            }
        }
        let total = match origin {
            Some(o) => split.iter().find(|(x, _)| *x == o).map(|(_, c)| c.stats()).unwrap_or_default(),
            None => self.stats_now(queue).await?,
        };
        Ok((total, split.into_iter().map(|(o, c)| (o, c.stats())).collect()))
    }

    async fn audit_page_now(&self, limit: usize, before: Option<u64>) -> Result<AuditPage, StoreError> {
        let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        let rows = self
            .reader()
            .await?
            .query("SELECT seq, entry FROM redial_audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2", &[&before, &(limit as i64 + 1)])
            .await
            .map_err(pg_error)?;
        let mut page = AuditPage::default();
        for r in rows {
            let Ok(e) = serde_json::from_slice::<AuditEntry>(r.get::<_, &[u8]>(1)) else { continue };
            if page.items.len() == limit {
                page.next_cursor = page.items.last().map(|(k, _)| *k);
                break;
            }
            page.items.push((r.get::<_, i64>(0) as u64, e));
        }
        Ok(page)
    }

    async fn audit_for_now(&self, target: &str, limit: usize, horizon: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .reader()
            .await?
            .query(
                "SELECT entry FROM (SELECT seq, target, entry FROM redial_audit ORDER BY seq DESC LIMIT $2) t
                  WHERE target = $1 ORDER BY seq DESC LIMIT $3",
                &[&target, &(horizon as i64), &(limit as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().filter_map(|r| serde_json::from_slice::<AuditEntry>(r.get::<_, &[u8]>(0)).ok()).collect())
    }

    /// Every column agrees with the record it indexes, one active callback
    /// per phone and queue, and every attempt row belongs to an attempt.
    async fn check_now(&self) -> Result<Result<(), Vec<Inconsistency>>, StoreError> {
        let rows = self
            .reader()
            .await?
            .query("SELECT id, record, shard, status, phone, queue, owner, interaction_id, due_at, first_delay, displaced FROM redial_callbacks", &[])
            .await
            .map_err(pg_error)?;
        let mut bad = Vec::new();
        let mut columns = 0;
        let mut active = HashSet::new();
        let mut dupes = 0;
        let mut attempts: HashMap<i64, u32> = HashMap::new();
        for r in &rows {
            let c = decode_row(r, 1)?;
            let same = r.get::<_, i16>(3) == c.status.code() as i16
                && r.get::<_, &str>(4) == c.phone
                && r.get::<_, &str>(5) == c.queue
                && r.get::<_, Option<&str>>(6) == c.owner.as_deref()
                && r.get::<_, Option<&str>>(7) == c.interaction_id.as_deref()
                && r.get::<_, i64>(8) == c.due_at
                && r.get::<_, i64>(9) == c.first_due_at - c.created_at;
            if !same {
                columns += 1;
            }
            // A displaced callback (its follow-up holds the slot) is not counted.
            if c.status.is_active() && !r.get::<_, bool>(10) && !active.insert((c.phone.clone(), c.queue.clone())) {
                dupes += 1;
            }
            attempts.insert(r.get(0), c.attempts);
        }
        if columns > 0 {
            bad.push(Inconsistency { table: "redial_callbacks", problem: "columns differ from the record", count: columns });
        }
        if dupes > 0 {
            bad.push(Inconsistency { table: "redial_callbacks", problem: "more than one active callback per phone and queue", count: dupes });
        }
        let mut orphans = 0;
        for r in self.reader().await?.query("SELECT callback, attempt FROM redial_attempts", &[]).await.map_err(pg_error)? {
            let (id, n): (i64, i32) = (r.get(0), r.get(1));
            match attempts.get(&id) {
                Some(&made) if n >= 1 && n as u32 <= made => {}
                _ => orphans += 1,
            }
        }
        if orphans > 0 {
            bad.push(Inconsistency { table: "redial_attempts", problem: "rows without a matching attempt", count: orphans });
        }
        Ok(if bad.is_empty() { Ok(()) } else { Err(bad) })
    }

    fn stop(&mut self) {
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

impl Drop for PgBook {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Book for PgBook {
    fn schedule_noted(&self, req: NewCallback, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, ScheduleError>> {
        Box::pin(self.call(move |tx| Op::Schedule(req, audit, tx), Err(StoreError::Closed.into())))
    }

    fn reschedule_noted(&self, id: CallbackId, changes: CallbackChanges, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, ScheduleError>> {
        Box::pin(self.call(move |tx| Op::Reschedule(id, changes, audit, tx), Err(StoreError::Closed.into())))
    }

    fn cancel_noted(&self, id: CallbackId, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, CancelError>> {
        Box::pin(self.call(move |tx| Op::Cancel(id, audit, tx), Err(StoreError::Closed.into())))
    }

    fn report_outcome(&self, id: CallbackId, attempt: u32, outcome: AttemptOutcome) -> BookFuture<'_, Result<Callback, ReportError>> {
        Box::pin(self.call(move |tx| Op::Report(id, attempt, outcome, tx), Err(StoreError::Closed.into())))
    }

    fn tick_ahead(&self, avail: Arc<dyn Availability>, max: usize, ahead_ms: Millis) -> BookFuture<'_, Result<Tick, StoreError>> {
        Box::pin(self.call(move |tx| Op::Tick(avail, max, ahead_ms, tx), Err(StoreError::Closed)))
    }

    fn skip_reached<'a>(&'a self, phone: &'a str, queue: &'a str, interaction: &'a str) -> BookFuture<'a, Result<Option<Callback>, StoreError>> {
        let (p, q, i) = (phone.to_string(), queue.to_string(), interaction.to_string());
        Box::pin(self.call(move |tx| Op::Skip(p, q, i, tx), Err(StoreError::Closed)))
    }

    fn audit_append(&self, entries: Vec<AuditEntry>) -> BookFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            self.call(move |tx| Op::Audit(entries, tx), Err(StoreError::Closed)).await
        })
    }

    fn flush(&self) -> BookFuture<'_, ()> {
        Box::pin(self.call(Op::Flush, ()))
    }

    fn get(&self, id: CallbackId) -> BookFuture<'_, Result<Option<Callback>, StoreError>> {
        Box::pin(self.get_now(id))
    }

    fn find_active<'a>(&'a self, phone: &'a str, queue: &'a str) -> BookFuture<'a, Result<Option<Callback>, StoreError>> {
        Box::pin(async move {
            let row = self
                .reader()
                .await?
                .query_opt("SELECT id, record FROM redial_callbacks WHERE phone = $1 AND queue = $2 AND status IN (0, 1) AND NOT displaced", &[&phone, &queue])
                .await
                .map_err(pg_error)?;
            row.map(|r| decode_row(&r, 1)).transpose()
        })
    }

    fn list<'a>(&'a self, filter: &'a ListFilter, limit: usize, cursor: Option<&'a str>) -> BookFuture<'a, Result<Page<Callback>, StoreError>> {
        Box::pin(self.list_now(filter, limit, cursor))
    }

    fn attempts(&self, id: CallbackId) -> BookFuture<'_, Result<Option<Vec<Attempt>>, StoreError>> {
        Box::pin(self.attempts_now(id))
    }

    fn stats<'a>(&'a self, queue: Option<&'a str>) -> BookFuture<'a, Result<Stats, StoreError>> {
        Box::pin(self.stats_now(queue))
    }

    fn stats_by_origin<'a>(&'a self, queue: Option<&'a str>, origin: Option<Origin>) -> BookFuture<'a, Result<(Stats, Vec<(Origin, Stats)>), StoreError>> {
        Box::pin(self.stats_by_origin_now(queue, origin))
    }

    fn audit_page(&self, limit: usize, before: Option<u64>) -> BookFuture<'_, Result<AuditPage, StoreError>> {
        Box::pin(self.audit_page_now(limit, before))
    }

    fn audit_for<'a>(&'a self, target: &'a str, limit: usize, horizon: usize) -> BookFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(self.audit_for_now(target, limit, horizon))
    }

    fn check_consistency(&self) -> BookFuture<'_, Result<Result<(), Vec<Inconsistency>>, StoreError>> {
        Box::pin(self.check_now())
    }

    fn backup(&self, _dest: &Path) -> Result<BackupReport, StoreError> {
        Err(StoreError::Unsupported("a PostgreSQL book is backed up with PostgreSQL's own tools (pg_dump, base backups), not `redial backup`"))
    }

    fn waiting_for_agent(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn recovered(&self) -> usize {
        self.recovered
    }

    fn changed(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

/// The outbox shared by the nodes ([`super::outbox`]), when the book was
/// opened with [`PgOptions::outbox`]: writes go through the writer (in its
/// next batch's transaction), reads straight to the read connection.
impl Outbox for PgBook {
    fn publish(&self, kind: Kind, at: Millis, payload: Payload) {
        self.send_outbox(OutboxOp::Publish(kind, at, payload));
    }

    fn after(&self, after: u64, limit: usize) -> OutboxFuture<'_, Result<Vec<Event>, StoreError>> {
        Box::pin(async move { outbox::after(&*self.reader().await?, after, limit).await })
    }

    fn next_seq(&self) -> OutboxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { outbox::next_seq(&*self.reader().await?).await })
    }

    fn cursor<'a>(&'a self, endpoint: &'a str) -> OutboxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move { outbox::cursor(&*self.reader().await?, endpoint).await })
    }

    fn save_cursor(&self, endpoint: &str, seq: u64) {
        self.send_outbox(OutboxOp::Cursor(endpoint.to_string(), seq));
    }

    fn park(&self, parked: Parked) {
        self.send_outbox(OutboxOp::Park(parked));
    }

    fn parked(&self, limit: usize, after: Option<u64>) -> OutboxFuture<'_, Result<Vec<Parked>, StoreError>> {
        Box::pin(async move { outbox::parked(&*self.reader().await?, limit, after).await })
    }

    fn parked_get(&self, id: u64) -> OutboxFuture<'_, Result<Option<Parked>, StoreError>> {
        Box::pin(async move { outbox::parked_get(&*self.reader().await?, id).await })
    }

    fn parked_count(&self) -> OutboxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { outbox::parked_count(&*self.reader().await?).await })
    }

    fn record_text(&self, text: TextRecord) {
        self.send_outbox(OutboxOp::Text(text));
    }

    fn texts(&self, callback: u64) -> OutboxFuture<'_, Result<Vec<TextRecord>, StoreError>> {
        Box::pin(async move { outbox::texts(&*self.reader().await?, callback).await })
    }

    fn retried(&self, id: u64, outcome: RetryOutcome) -> OutboxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.call(move |tx| Op::Outbox(OutboxOp::Retried(id, outcome, tx)), Err(StoreError::Closed)))
    }

    fn save_backoff(&self, endpoint: &str, backoff: Option<Backoff>) {
        self.send_outbox(OutboxOp::Backoff(endpoint.to_string(), backoff));
    }

    fn backoff<'a>(&'a self, endpoint: &'a str) -> OutboxFuture<'a, Result<Option<Backoff>, StoreError>> {
        Box::pin(async move { outbox::backoff(&*self.reader().await?, endpoint).await })
    }

    /// A lease per task in `redial_outbox_turns`, as long as the shard
    /// leases. This node counts it as its own for two thirds of the lease
    /// from when it asked (the database's lease starts later, at the
    /// statement), so it stops before another node can take over; a
    /// question the database does not answer within a third of the lease
    /// counts as failed, so a hung connection cannot outlast that deadline.
    fn turn<'a>(&'a self, name: &'a str) -> OutboxFuture<'a, Result<Turn, StoreError>> {
        Box::pin(async move {
            let Some(own) = &self.opts.ownership else { return Ok(Turn::Always) };
            let ask = async { outbox::take_turn(&*self.reader().await?, name, &own.node, own.lease).await };
            match tokio::time::timeout(own.lease / 3, ask).await {
                Err(_) => Err(StoreError::Unavailable("no answer to a turn's renewal".into())),
                Ok(Ok(true)) => Ok(Turn::For(own.lease * 2 / 3)),
                Ok(Ok(false)) => Ok(Turn::Elsewhere(own.lease / 3)),
                Ok(Err(e)) => Err(e),
            }
        })
    }

    fn end_turn<'a>(&'a self, name: &'a str) -> OutboxFuture<'a, ()> {
        Box::pin(async move {
            let Some(own) = &self.opts.ownership else { return };
            let end = async { outbox::end_turn(&*self.reader().await?, name, &own.node).await };
            match tokio::time::timeout(own.lease / 3, end).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(task = name, error = %e, "could not give the turn back; it lapses"),
                Err(_) => tracing::warn!(task = name, "no answer giving the turn back; it lapses"),
            }
        })
    }
}

impl PgBook {
    /// Hands outbox work to the writer (applied in its next batch).
    fn send_outbox(&self, op: OutboxOp) {
        if self.tx.send(Op::Outbox(op)).is_err() {
            tracing::warn!("the book is closed; outbox work dropped");
        }
    }
}
