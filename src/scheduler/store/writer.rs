//! The writer thread: the only place that changes the database or the
//! engine. It drains every request waiting in its channel, applies them all
//! in one write transaction, commits once (`Durability::Immediate`, so one
//! fsync for the batch: group commit), and only then answers each request
//! and updates the engine. Serialising every change here is what makes the
//! engine, the indexes and the records agree without locks.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;
use std::sync::Arc;

use rand::Rng;
use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use tokio::sync::{oneshot, Notify};

use super::codec::{decode_callback, encode_attempt, encode_callback};
use super::stats::{origin_key, Counters};
use super::tables::*;
use super::audit::AuditNote;
use super::{CancelError, ReportError, ScheduleError, StoreError, Tick};
use crate::scheduler::reply::Reply;
use crate::clock::{Clock, Millis};
use crate::config::Config;
use super::outbox::{self, OutboxOp};
use crate::events::{Bus, Event, Kind, Payload};
use crate::scheduler::change::{self, action_id};
use crate::scheduler::engine::rules;
use crate::scheduler::engine::{due_second, Action, Availability, DueEntry, Engine, LOAD_CHUNK};
use crate::scheduler::model::{
    AttemptOutcome, Callback, CallbackChanges, CallbackId, Dispatch, NewCallback, Outcome,
    Status,
};

/// A writer idle this long merges a chunk of the stage (when it holds at
/// least `MERGE_AT`); busy batches merge only past twice that.
const IDLE_MERGE_AFTER: Duration = Duration::from_millis(20);

/// Batches up to this size merge a whole staging chunk; bigger ones an
/// eighth of it (measured: docs/scheduler.md, "Staging under load").
const SMALL_BATCH: usize = 64;

/// At most this many requests share one transaction.
const MAX_BATCH: usize = 4096;

pub(super) enum Op {
    Schedule(NewCallback, Option<AuditNote>, oneshot::Sender<Result<Callback, ScheduleError>>),
    Reschedule(CallbackId, CallbackChanges, Option<AuditNote>, oneshot::Sender<Result<Callback, ScheduleError>>),
    Cancel(CallbackId, Option<AuditNote>, oneshot::Sender<Result<Callback, CancelError>>),
    Report(CallbackId, u32, AttemptOutcome, oneshot::Sender<Result<Callback, ReportError>>),
    /// A firing round: (availability, most callbacks, arm-ahead ms, reply).
    Tick(Arc<dyn Availability>, usize, Millis, oneshot::Sender<Result<Tick, StoreError>>),
    /// Answered once everything before it is committed.
    Flush(oneshot::Sender<()>),
    /// (phone, queue, inbound interaction id) reached an agent.
    Skip(String, String, String, oneshot::Sender<Result<Option<Callback>, StoreError>>),
    /// Audit entries, written in the next batch's transaction.
    Audit(Vec<super::audit::AuditEntry>),
    /// Outbox work: an event from outside the book, a webhook cursor, a
    /// parked delivery or a retry's outcome.
    Outbox(OutboxOp),
}

pub(super) struct Tables<'t> {
    pub cb: Table<'t, u64, &'static [u8]>,
    pub due: Table<'t, (u64, u64), u64>,
    pub later: Table<'t, u64, u64>,
    pub status: Table<'t, (u8, u64), ()>,
    pub queue: Table<'t, (&'static str, u64), ()>,
    pub owner: Table<'t, (&'static str, u64), ()>,
    pub phone: Table<'t, (&'static str, u64), ()>,
    pub active: Table<'t, (&'static str, &'static str), u64>,
    pub attempts: Table<'t, (u64, u32), &'static [u8]>,
    pub interaction: Table<'t, (&'static str, u64), ()>,
}

impl<'t> Tables<'t> {
    pub fn open(w: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            cb: w.open_table(CALLBACKS)?,
            due: w.open_table(DUE)?,
            later: w.open_table(DUE_LATER)?,
            status: w.open_table(BY_STATUS)?,
            queue: w.open_table(BY_QUEUE)?,
            owner: w.open_table(BY_OWNER)?,
            phone: w.open_table(BY_PHONE)?,
            active: w.open_table(ACTIVE)?,
            attempts: w.open_table(ATTEMPTS)?,
            interaction: w.open_table(ACTIVE_BY_INTERACTION)?,
        })
    }

    fn get(&self, id: CallbackId) -> Result<Option<Callback>, StoreError> {
        match self.cb.get(id.0)? {
            None => Ok(None),
            Some(v) => decode_callback(v.value()).map(Some).map_err(|source| StoreError::Decode { id, source }),
        }
    }
}

fn due_key(c: &Callback) -> (u64, u64) {
    (due_second(c.due_at).max(0) as u64, c.id.0)
}

pub(super) struct Writer {
    pub db: Arc<Database>,
    pub cfg: Arc<Config>,
    /// Where a reload puts the configuration: taken up at the next batch.
    pub live: Option<crate::config::LiveConfig>,
    pub clock: Arc<dyn Clock>,
    pub engine: Engine,
    pub rx: Receiver<Op>,
    pub next_seq: u64,
    pub counters: HashMap<String, Counters>,
    pub notify: Arc<Notify>,
    pub quick_repair: bool,
    /// Due callbacks waiting for an agent, published after every batch for metrics.
    pub waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// Measured cost of marking one callback in progress (apply and commit
    /// of large rounds, moving average), µs: how early a herd is armed.
    pub us_per_mark: u32,
    /// Entries in `due_later`, and a lower bound of their earliest due time.
    pub staged: Staged,
    /// The latest instant a round has armed up to. Rounds never look at an
    /// earlier one: callbacks made ready for a herd's far horizon must still
    /// count as due in the next, nearer-reaching round.
    pub armed_until: Millis,
    /// Where committed changes are published; `None` = nobody listens.
    pub bus: Option<Arc<Bus>>,
    /// `BookOptions::outbox`: false only in a benchmark of the outbox's cost.
    pub keep_events: bool,
    /// The durable outbox every event is written to first.
    pub outbox: outbox::State,
}

/// The staging table's keys in due order, mirrored in memory (≤ about
/// [`MERGE_AT`] entries, 24 bytes each) so a merge takes its chunk without
/// scanning the table and `put` knows which table holds an entry.
#[derive(Debug, Clone, Default)]
pub(super) struct Staged {
    /// (due second, id, due ms), as in `due`.
    pub keys: BTreeSet<(u64, u64, u64)>,
}

/// One change to [`Staged`], undone if its batch fails.
enum StagedUndo {
    Added((u64, u64, u64)),
    Removed((u64, u64, u64)),
}

impl Staged {
    /// Reads the staging table once, at open.
    pub fn read(db: &Database) -> Result<Staged, StoreError> {
        let r = db.begin_read()?;
        let t = match r.open_table(DUE_LATER) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Staged::default()),
            Err(e) => return Err(e.into()),
        };
        let mut s = Staged::default();
        for e in t.iter()? {
            let (k, v) = e?;
            s.keys.insert(staged_key(k.value(), v.value()));
        }
        Ok(s)
    }

    /// `idle`: no request is waiting, so a merge delays nobody.
    fn must_merge(&self, now: Millis, idle: bool) -> bool {
        let limit = if idle { MERGE_AT } else { MERGE_AT * 2 };
        self.keys.len() >= limit || self.keys.first().is_some_and(|k| k.2 as Millis <= now.saturating_add(MERGE_BEFORE_MS))
    }
}

fn staged_key(id: u64, due_ms: u64) -> (u64, u64, u64) {
    (due_second(due_ms as Millis).max(0) as u64, id, due_ms)
}

/// Before any round is measured: a conservative guess for this machine.
pub(super) const INITIAL_US_PER_MARK: u32 = 20;

/// What one batch changed, applied to memory after its commit.
#[derive(Default)]
struct Batch {
    replies: Vec<Reply>,
    /// The final scheduled state of every callback touched.
    engine: HashMap<CallbackId, Option<DueEntry>>,
    dirty_stats: Vec<String>,
    seq_used: bool,
    /// A request from outside the driver changed the book: wake the driver.
    /// Its own ticks must not, or it would wake itself forever.
    wake_driver: bool,
    /// Callbacks marked in progress by the batch's rounds.
    marked: usize,
    /// Something was written that the engine map does not show (a merge).
    wrote: bool,
    staged_undo: Vec<StagedUndo>,
    /// Events to write to the outbox in this transaction and publish once
    /// it is durable, in the order made.
    events: Vec<(Kind, Millis, Payload)>,
    /// Outbox work other than events (cursors, parking, retries).
    outbox: Vec<OutboxOp>,
    /// The events as stored, with their sequences: published after the commit.
    stored: Vec<Event>,
    /// Audit entries to append in this batch's transaction.
    audit: Vec<super::audit::AuditEntry>,
}

impl Batch {
    /// The audit entry of a change that was made, in the change's own
    /// transaction (a refused change records nothing).
    fn note(&mut self, now: Millis, note: Option<AuditNote>, done: Option<&Callback>) {
        if let (Some(note), Some(cb)) = (note, done) {
            self.audit.push(note.entry(now, cb));
        }
    }
}

impl Writer {
    /// A reloaded configuration applies from this batch on: bookings, changes,
    /// outcomes (retry policy) and firing (hours, owners) all read it.
    fn take_reload(&mut self, now: Millis) {
        let Some(live) = &self.live else { return };
        let cfg = live.get();
        if !Arc::ptr_eq(&cfg, &self.cfg) {
            self.engine.set_config(cfg.clone(), now);
            self.cfg = cfg;
        }
    }

    pub fn run(mut self) {
        loop {
            // An idle writer merges the stage a chunk at a time, so bursts
            // of schedules rarely share a batch with a merge.
            let wait = if self.staged.keys.len() >= MERGE_AT { IDLE_MERGE_AFTER } else { Duration::from_secs(3600) };
            let first = match self.rx.recv_timeout(wait) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.process(Vec::new());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut ops = vec![first];
            while ops.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.process(ops);
        }
    }

    fn process(&mut self, ops: Vec<Op>) {
        let now = self.clock.now_ms();
        self.take_reload(now);
        let counters_before = self.counters.clone();
        let seq_before = self.next_seq;
        let events_before = (self.outbox.next, self.outbox.first, self.outbox.cursors.clone());
        let mut batch = Batch::default();
        let started = std::time::Instant::now();
        let result = self.apply_all(now, ops, &mut batch);
        match result {
            Ok(()) => {
                if batch.marked >= 256 {
                    // Timing the writer's own work, not scheduling logic:
                    // it only decides how early herds are armed.
                    let us = (started.elapsed().as_micros() / batch.marked as u128).clamp(1, 1_000) as u32;
                    self.us_per_mark = (self.us_per_mark + us).div_ceil(2);
                }
                for (id, state) in batch.engine.drain() {
                    match state {
                        Some(e) => self.engine.handle_upsert(e),
                        None => self.engine.handle_removed(id),
                    }
                }
                self.publish_waiting();
                self.publish_events(&mut batch.stored);
                for r in batch.replies {
                    r.send(None);
                }
                if batch.wake_driver {
                    self.notify.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduler write failed; batch refused");
                self.counters = counters_before;
                self.next_seq = seq_before;
                (self.outbox.next, self.outbox.first, self.outbox.cursors) = events_before;
                for u in batch.staged_undo.into_iter().rev() {
                    match u {
                        StagedUndo::Added(k) => self.staged.keys.remove(&k),
                        StagedUndo::Removed(k) => self.staged.keys.insert(k),
                    };
                }
                // Memory may be ahead of the disk: reload from the store.
                self.engine.reset(now);
                self.publish_waiting();
                for r in batch.replies {
                    r.send(Some(&e));
                }
                self.notify.notify_one();
            }
        }
    }

    /// After the commit and before any reply, so a caller that got its
    /// answer can already have seen the change's event.
    fn publish_events(&self, stored: &mut Vec<Event>) {
        self.outbox.published_next.store(self.outbox.next, std::sync::atomic::Ordering::Release);
        if let Some(bus) = &self.bus {
            for ev in stored.drain(..) {
                bus.publish(ev);
            }
        }
    }

    /// Writes the batch's events and outbox work in `w` (before its commit).
    fn write_outbox(&mut self, w: &WriteTransaction, batch: &mut Batch) -> Result<(), StoreError> {
        if !self.keep_events {
            batch.events.clear();
        }
        if batch.events.is_empty() && batch.outbox.is_empty() {
            return Ok(());
        }
        let work: Vec<OutboxOp> = batch
            .outbox
            .drain(..)
            .map(|op| match op {
                OutboxOp::Retried(id, outcome, tx) => {
                    batch.replies.push(Reply::Done(tx));
                    OutboxOp::Retried(id, outcome, oneshot::channel().0)
                }
                other => other,
            })
            .collect();
        batch.stored = outbox::append(w, &mut self.outbox, std::mem::take(&mut batch.events), work)?;
        batch.wrote = true;
        Ok(())
    }

    /// Before any reply of the batch is sent, so a caller that got its answer
    /// reads the count that answer produced.
    fn publish_waiting(&self) {
        self.waiting.store(self.engine.ready_len(), std::sync::atomic::Ordering::Relaxed);
    }

    fn apply_all(&mut self, now: Millis, ops: Vec<Op>, batch: &mut Batch) -> Result<(), StoreError> {
        let ops_empty = ops.is_empty();
        let waiting = ops.len();
        let mut w = self.db.begin_write()?;
        // Quick repair: a crash costs a ~10 ms reopen instead of a walk of
        // the whole file (seconds per million callbacks); docs/design.md.
        w.set_quick_repair(self.quick_repair);
        let mut pending_ops = ops.into_iter();
        {
            let mut t = Tables::open(&w)?;
            if self.staged.must_merge(now, ops_empty) {
                // The merge delays every request of the batch: a big batch
                // (many producers waiting) takes a small chunk, an idle
                // writer or a small batch the whole chunk.
                let chunk = if waiting <= SMALL_BATCH { MERGE_CHUNK } else { MERGE_CHUNK / 8 };
                self.merge(now, chunk, &mut t, batch)?;
            }
            for op in pending_ops.by_ref() {
                batch.wake_driver |= !matches!(op, Op::Tick(..) | Op::Flush(_) | Op::Audit(_) | Op::Outbox(_));
                match op {
                    Op::Schedule(req, note, tx) => {
                        let r = self.schedule(now, &mut t, req, batch)?;
                        batch.note(now, note, r.as_ref().ok());
                        batch.replies.push(Reply::Schedule(tx, r));
                    }
                    Op::Reschedule(id, ch, note, tx) => {
                        let r = self.reschedule(now, &mut t, id, &ch, batch)?;
                        batch.note(now, note, r.as_ref().ok());
                        batch.replies.push(Reply::Schedule(tx, r));
                    }
                    Op::Cancel(id, note, tx) => {
                        let r = self.cancel(now, &mut t, id, batch)?;
                        batch.note(now, note, r.as_ref().ok());
                        batch.replies.push(Reply::Cancel(tx, r));
                    }
                    Op::Report(id, n, outcome, tx) => {
                        let r = self.report(now, &mut t, id, n, outcome, None, batch)?;
                        batch.replies.push(Reply::Report(tx, r));
                    }
                    Op::Tick(avail, max, ahead, tx) => {
                        let tick = self.tick(now, ahead, &mut t, &*avail, max, batch);
                        match tick {
                            Ok(tick) => batch.replies.push(Reply::Tick(tx, avail, tick)),
                            Err(e) => {
                                drop(tx.send(Err(e.clone())));
                                return Err(e);
                            }
                        }
                    }
                    Op::Flush(tx) => batch.replies.push(Reply::Flush(tx)),
                    Op::Audit(entries) => batch.audit.extend(entries),
                    Op::Outbox(OutboxOp::Publish(kind, at, payload)) => batch.events.push((kind, at, payload)),
                    Op::Outbox(op) => batch.outbox.push(op),
                    Op::Skip(phone, queue, interaction, tx) => {
                        let r = self.skip(now, &mut t, &phone, &queue, &interaction, batch)?;
                        batch.replies.push(Reply::Skip(tx, r));
                    }
                }
            }
        }
        if batch.seq_used {
            w.open_table(META)?.insert("next_seq", self.next_seq)?;
        }
        self.write_outbox(&w, batch)?;
        if !batch.audit.is_empty() {
            super::audit::append(&w, &batch.audit)?;
            batch.wrote = true;
        }
        if !batch.dirty_stats.is_empty() {
            let mut st = w.open_table(STATS)?;
            batch.dirty_stats.sort();
            batch.dirty_stats.dedup();
            for q in &batch.dirty_stats {
                st.insert(q.as_str(), self.counters[q].encode().as_slice())?;
            }
        }
        if batch.engine.is_empty() && !batch.seq_used && !batch.wrote {
            // Nothing written (reads, refusals, idle rounds): no fsync.
            w.abort()?;
        } else {
            w.commit()?;
        }
        Ok(())
    }

    /// Writes `new` over `old` (none when creating), keeping every index and
    /// counter in step, and records the engine's view of it.
    fn put(&mut self, t: &mut Tables<'_>, old: Option<&Callback>, new: &Callback, batch: &mut Batch) -> Result<(), StoreError> {
        let id = new.id.0;
        t.cb.insert(id, encode_callback(new).as_slice())?;
        let old_status = old.map(|o| o.status);
        if old_status != Some(new.status) {
            if let Some(s) = old_status {
                t.status.remove((s.code(), id))?;
            }
            t.status.insert((new.status.code(), id), ())?;
        }
        let old_due = old.filter(|o| o.status == Status::Scheduled).map(due_key);
        let new_due = (new.status == Status::Scheduled).then(|| due_key(new));
        if old_due != new_due || old.is_some_and(|o| o.due_at != new.due_at) {
            if let Some(k) = old_due {
                let sk = staged_key(id, old.map_or(0, |o| o.due_at.max(0) as u64));
                if self.staged.keys.remove(&sk) {
                    t.later.remove(id)?;
                    batch.staged_undo.push(StagedUndo::Removed(sk));
                } else {
                    t.due.remove(k)?;
                }
            }
            if let Some(k) = new_due {
                // `updated_at` is the time of this change.
                if new.due_at > new.updated_at.saturating_add(STAGE_AFTER_MS) {
                    t.later.insert(id, new.due_at.max(0) as u64)?;
                    let sk = staged_key(id, new.due_at.max(0) as u64);
                    self.staged.keys.insert(sk);
                    batch.staged_undo.push(StagedUndo::Added(sk));
                } else {
                    t.due.insert(k, new.due_at.max(0) as u64)?;
                }
            }
        }
        if old.is_none() {
            t.queue.insert((new.queue.as_str(), id), ())?;
            t.phone.insert((new.phone.as_str(), id), ())?;
        }
        if let Some(o) = old.filter(|o| o.queue != new.queue) {
            // Moved to another queue (only while scheduled): its indexes and
            // counters go with it.
            t.queue.remove((o.queue.as_str(), id))?;
            t.queue.insert((new.queue.as_str(), id), ())?;
            if o.status.is_active() {
                t.active.remove((o.phone.as_str(), o.queue.as_str()))?;
                t.active.insert((new.phone.as_str(), new.queue.as_str()), id)?;
            }
            let delay = o.first_due_at - o.created_at;
            for (from, to) in [(o.queue.clone(), new.queue.clone()), (origin_key(&o.queue, o.origin), origin_key(&new.queue, new.origin))] {
                self.counters.entry(from.clone()).or_default().removed(o.status, delay);
                self.counters.entry(to.clone()).or_default().created(o.status, delay);
                batch.dirty_stats.push(from);
                batch.dirty_stats.push(to);
            }
        }
        let old_owners = old.map(Callback::all_owners).unwrap_or_default();
        let new_owners = new.all_owners();
        if old.is_none() || old_owners != new_owners {
            for o in old_owners {
                t.owner.remove((o, id))?;
            }
            for o in new_owners {
                t.owner.insert((o, id), ())?;
            }
        }
        let was_active = old.is_some_and(|o| o.status.is_active());
        if was_active && !new.status.is_active() {
            // A follow-up booked during this callback's call holds the
            // (phone, queue) slot now: leave it to the follow-up.
            let key = (new.phone.as_str(), new.queue.as_str());
            if t.active.get(key)?.is_some_and(|v| v.value() == id) {
                t.active.remove(key)?;
            }
        } else if !was_active && new.status.is_active() {
            t.active.insert((new.phone.as_str(), new.queue.as_str()), id)?;
        }
        if let Some(i) = new.interaction_id.as_deref() {
            if was_active && !new.status.is_active() {
                t.interaction.remove((i, id))?;
            } else if !was_active && new.status.is_active() {
                t.interaction.insert((i, id), ())?;
            }
        }
        if old_status != Some(new.status) {
            for key in [new.queue.clone(), origin_key(&new.queue, new.origin)] {
                let c = self.counters.entry(key.clone()).or_default();
                match old {
                    Some(o) => c.moved(o.status, new.status),
                    None => c.created(new.status, new.first_due_at - new.created_at),
                }
                batch.dirty_stats.push(key);
            }
        }
        let entry = (new.status == Status::Scheduled).then(|| change::due_entry(&self.cfg, new));
        batch.engine.insert(new.id, entry);
        // Every change is written to the outbox, listened to or not.
        let at = new.updated_at;
        batch.events.extend(change::change_events(old, new).into_iter().map(|(k, p)| (k, at, p)));
        Ok(())
    }

    fn new_id(&mut self, batch: &mut Batch) -> CallbackId {
        let seq = self.next_seq;
        self.next_seq += 1;
        batch.seq_used = true;
        CallbackId::new(seq as u32, rand::rng().random())
    }

    fn schedule(
        &mut self,
        now: Millis,
        t: &mut Tables<'_>,
        mut req: NewCallback,
        batch: &mut Batch,
    ) -> Result<Result<Callback, ScheduleError>, StoreError> {
        let (v, when_resolution) = match change::validate_new(now, &self.cfg, &mut req) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(existing) = t.active.get((req.phone.as_str(), req.queue.as_str()))? {
            let existing_id = CallbackId(existing.value());
            // A follow-up booked on the live call of the callback being
            // dialled replaces nothing: that one is about to end.
            if !self.is_follow_up(t, &req, existing_id)? {
                return Ok(Err(rules::RuleError::Duplicate { existing_id }.into()));
            }
        }
        if let (true, Some(i)) = (req.unique_interaction, req.interaction_id.as_deref()) {
            for e in t.interaction.range((i, 0)..=(i, u64::MAX))? {
                let existing_id = CallbackId(e?.0.value().1);
                if !self.is_follow_up(t, &req, existing_id)? {
                    return Ok(Err(ScheduleError::DuplicateInteraction { existing_id }));
                }
            }
        }
        let id = self.new_id(batch);
        let cb = change::new_record(&self.cfg, now, id, req, v, when_resolution);
        self.put(t, None, &cb, batch)?;
        Ok(Ok(cb))
    }

    /// Whether `existing` is the callback in progress on the live call the
    /// request is a follow-up of (same phone and queue, being dialled now).
    fn is_follow_up(&self, t: &Tables<'_>, req: &NewCallback, existing: CallbackId) -> Result<bool, StoreError> {
        if req.follow_up_of != Some(existing) {
            return Ok(false);
        }
        Ok(t.get(existing)?.is_some_and(|c| c.status == Status::InProgress && c.phone == req.phone && c.queue == req.queue))
    }

    fn reschedule(
        &mut self,
        now: Millis,
        t: &mut Tables<'_>,
        id: CallbackId,
        ch: &CallbackChanges,
        batch: &mut Batch,
    ) -> Result<Result<Callback, ScheduleError>, StoreError> {
        let Some(old) = t.get(id)? else { return Ok(Err(ScheduleError::NotFound)) };
        let new = match change::rescheduled(now, &self.cfg, &old, ch) {
            Ok(new) => new,
            Err(e) => return Ok(Err(e)),
        };
        if new.queue != old.queue {
            // Moved to another queue: one active callback per phone there too.
            if let Some(existing) = t.active.get((old.phone.as_str(), new.queue.as_str()))? {
                let existing_id = CallbackId(existing.value());
                return Ok(Err(rules::RuleError::Duplicate { existing_id }.into()));
            }
        }
        if old.attempts == 0 {
            for key in [new.queue.clone(), origin_key(&new.queue, new.origin)] {
                self.counters.entry(key.clone()).or_default().first_due_moved(new.due_at - old.first_due_at);
                batch.dirty_stats.push(key);
            }
        }
        self.put(t, Some(&old), &new, batch)?;
        Ok(Ok(new))
    }

    fn cancel(
        &mut self,
        now: Millis,
        t: &mut Tables<'_>,
        id: CallbackId,
        batch: &mut Batch,
    ) -> Result<Result<Callback, CancelError>, StoreError> {
        let Some(old) = t.get(id)? else { return Ok(Err(CancelError::NotFound)) };
        let new = match change::cancelled(now, &old) {
            Ok(new) => new,
            Err(e) => return Ok(Err(e)),
        };
        self.put(t, Some(&old), &new, batch)?;
        Ok(Ok(new))
    }

    /// Records the end of attempt `n` and applies the retry policy. `note`
    /// marks an attempt closed by crash recovery.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        now: Millis,
        t: &mut Tables<'_>,
        id: CallbackId,
        n: u32,
        o: AttemptOutcome,
        note: Option<&str>,
        batch: &mut Batch,
    ) -> Result<Result<Callback, ReportError>, StoreError> {
        let Some(old) = t.get(id)? else { return Ok(Err(ReportError::NotFound)) };
        let (new, attempt) = match change::reported(now, &self.cfg, &old, n, o, note) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        t.attempts.insert((id.0, n), encode_attempt(&attempt).as_slice())?;
        // A follow-up booked during this call holds the (phone, queue) slot:
        // this one cannot be scheduled again beside it.
        let mut new = new;
        if new.status == Status::Scheduled && t.active.get((old.phone.as_str(), old.queue.as_str()))?.is_some_and(|v| v.value() != id.0) {
            new.status = Status::Cancelled;
        }
        let (kind, payload) = change::attempt_event(&new, &attempt);
        batch.events.push((kind, now, payload));
        self.put(t, Some(&old), &new, batch)?;
        Ok(Ok(new))
    }

    /// The customer reached an agent of `queue` by calling in; a
    /// `scheduled` callback for them ends `skipped` (an `in_progress` one is
    /// being dialled and is left alone).
    fn skip(
        &mut self,
        now: Millis,
        t: &mut Tables<'_>,
        phone: &str,
        queue: &str,
        interaction: &str,
        batch: &mut Batch,
    ) -> Result<Option<Callback>, StoreError> {
        let Some(id) = t.active.get((phone, queue))?.map(|v| CallbackId(v.value())) else { return Ok(None) };
        let Some(old) = t.get(id)? else { return Ok(None) };
        let Some(new) = change::skipped(now, &old, interaction) else { return Ok(None) };
        self.put(t, Some(&old), &new, batch)?;
        Ok(Some(new))
    }

    /// Closes every attempt left `in_progress` by a previous run as failed
    /// and reschedules it by the retry policy: the dialler may or may not
    /// have dialled, and it will never learn the outcome, so the attempt is
    /// spent and never dialled again under the same number.
    pub fn recover(&mut self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut batch = Batch::default();
        let mut w = self.db.begin_write()?;
        w.set_quick_repair(self.quick_repair);
        let mut n = 0;
        {
            let mut t = Tables::open(&w)?;
            let ids: Vec<u64> = t
                .status
                .range((Status::InProgress.code(), 0)..=(Status::InProgress.code(), u64::MAX))?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            for id in ids {
                let id = CallbackId(id);
                let Some(cb) = t.get(id)? else { continue };
                let o = AttemptOutcome::new(Outcome::Failed);
                let _ = self.report(now, &mut t, id, cb.attempts, o, Some("redial restarted during this attempt"), &mut batch)?;
                n += 1;
            }
        }
        if !batch.dirty_stats.is_empty() {
            let mut st = w.open_table(STATS)?;
            for q in &batch.dirty_stats {
                st.insert(q.as_str(), self.counters[q].encode().as_slice())?;
            }
        }
        self.write_outbox(&w, &mut batch)?;
        w.commit()?;
        self.publish_events(&mut batch.stored);
        Ok(n)
    }

    /// One firing round as if it were `ahead` ms later: what is due by then
    /// is marked now, and the driver hands each over at its due time.
    fn tick(
        &mut self,
        now: Millis,
        ahead: Millis,
        t: &mut Tables<'_>,
        avail: &dyn Availability,
        max: usize,
        batch: &mut Batch,
    ) -> Result<Tick, StoreError> {
        let ahead = ahead.max(0);
        let from = now;
        // Arm further ahead when more is due soon than can be marked in
        // `ahead` ms (a herd); plain ticks (`ahead` 0) fire exactly at `now`.
        let horizon = if ahead > 0 { self.engine.arm_horizon(now, ahead, self.us_per_mark) } else { 0 };
        let now = (now + horizon).max(self.armed_until);
        self.armed_until = now;
        let mut loaded = 0;
        if let Some(until_s) = self.engine.needs_load(now) {
            loaded = self.load(t, until_s)?;
        }
        let mut dispatches = Vec::new();
        let mut more = false;
        let result = (|| -> Result<(), StoreError> {
            loop {
                let budget = max.saturating_sub(dispatches.len());
                if budget == 0 {
                    more = true;
                    break;
                }
                let mut actions: Vec<(usize, Action)> = self.engine.poll_actions(now, avail, budget).into_iter().enumerate().collect();
                let n = actions.len();
                // Apply in id order (ids grow with creation, so the index
                // pages are visited in order: a herd costs far fewer page
                // lookups), then hand over in the engine's priority order.
                actions.sort_by_key(|(_, a)| action_id(a));
                let mut round: Vec<(usize, Dispatch)> = Vec::new();
                for (i, a) in actions {
                    if let Some(d) = self.apply_action(now, from, t, a, avail, batch)? {
                        round.push((i, d));
                    }
                }
                round.sort_by_key(|(i, _)| *i);
                batch.marked += round.len();
                dispatches.extend(round.into_iter().map(|(_, d)| d));
                if n == 0 {
                    break;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            for d in &dispatches {
                avail.release(&d.agent);
            }
            return Err(e);
        }
        // Actions change records (deferrals, ownership ends) whose new state
        // reaches the engine after the commit: look again at once then.
        let changed = batch.engine.values().any(|e| e.as_ref().is_some_and(|e| e.due_at <= now));
        let next_deadline = if ahead > 0 {
            self.engine.poll_arm_timeout(from, ahead, self.us_per_mark)
        } else {
            self.engine.poll_timeout()
        };
        Ok(Tick { dispatches, next_deadline, more: more || changed || loaded > 0 })
    }

    /// Moves the `chunk` (at most [`MERGE_CHUNK`]) staged entries with the smallest due keys
    /// (and any due within [`MERGE_BEFORE_MS`]) into `due`, in key order: a
    /// chunk covers a contiguous stretch of `due`, so each leaf there is
    /// rewritten once per chunk, and a batch waits for one chunk (tens of
    /// ms), never for the whole stage.
    fn merge(&mut self, now: Millis, chunk: usize, t: &mut Tables<'_>, batch: &mut Batch) -> Result<(), StoreError> {
        let near_until = now.saturating_add(MERGE_BEFORE_MS);
        let loaded_until = self.engine.loaded_until_s();
        let mut taken = 0;
        while let Some(&key) = self.staged.keys.first() {
            if taken >= chunk && key.2 as Millis > near_until {
                break;
            }
            self.staged.keys.pop_first();
            batch.staged_undo.push(StagedUndo::Removed(key));
            taken += 1;
            let (s, id, due) = key;
            t.due.insert((s, id), due)?;
            t.later.remove(id)?;
            // Only after a jump of the clock can a staged one be this near.
            if (s as i64) < loaded_until {
                if let Some(cb) = t.get(CallbackId(id))? {
                    let tz = self.cfg.queue(&cb.queue).map_or(chrono_tz::UTC, |q| q.timezone);
                    batch.engine.insert(cb.id, Some(DueEntry::of(&cb, tz)));
                }
            }
        }
        tracing::debug!(merged = taken, left = self.staged.keys.len(), "staged due entries merged");
        batch.wrote = true;
        Ok(())
    }

    /// Reads the due index from the engine's horizon up to `until_s`, at most
    /// about [`LOAD_CHUNK`] entries (whole seconds only).
    fn load(&mut self, t: &mut Tables<'_>, until_s: i64) -> Result<usize, StoreError> {
        let from = self.engine.loaded_until_s().max(0) as u64;
        let mut entries = Vec::new();
        let mut reached = until_s;
        let mut last_s = None;
        for r in t.due.range((from, 0)..(until_s.max(0) as u64, 0))? {
            let (k, _) = r?;
            let (s, id) = k.value();
            if entries.len() >= LOAD_CHUNK && last_s != Some(s) {
                reached = s as i64;
                break;
            }
            last_s = Some(s);
            let id = CallbackId(id);
            if let Some(cb) = t.get(id)? {
                let tz = self.cfg.queue(&cb.queue).map_or(chrono_tz::UTC, |q| q.timezone);
                entries.push(DueEntry::of(&cb, tz));
            }
        }
        let n = entries.len();
        self.engine.handle_loaded(entries, reached);
        Ok(n)
    }

    /// Applies one engine action armed for `now` (possibly ahead of the
    /// clock); `wall` is the clock's time, recorded as the change's time.
    #[allow(clippy::too_many_arguments)]
    fn apply_action(
        &mut self,
        now: Millis,
        wall: Millis,
        t: &mut Tables<'_>,
        a: Action,
        avail: &dyn Availability,
        batch: &mut Batch,
    ) -> Result<Option<Dispatch>, StoreError> {
        let id = action_id(&a);
        let Some(old) = t.get(id)? else { return Ok(None) };
        let applied = change::apply_action(now, wall, &self.cfg, &old, a);
        if let Some(keep) = applied.keep {
            batch.engine.insert(old.id, Some(keep));
        }
        if let Some(agent) = applied.release {
            avail.release(&agent);
        }
        if let Some(new) = applied.write {
            self.put(t, Some(&old), &new, batch)?;
        }
        Ok(applied.dispatch)
    }
}

