//! The sans-IO scheduler core: which callbacks are due, in what order they
//! go to agents, and when to be woken.
//!
//! - [`rules`]: validation, window clipping and the retry policy, as pure
//!   functions.
//! - [`Engine`] (this file): the near future in memory. It holds the
//!   callbacks whose due second is below [`Engine::loaded_until_s`] (loaded
//!   from the store's due index a few seconds ahead); far-future ones live
//!   only in the store. It never reads the clock nor touches the store: the
//!   store's writer thread feeds it ([`Engine::handle_loaded`],
//!   [`Engine::handle_upsert`], [`Engine::handle_removed`]) and applies the
//!   [`Action`]s it returns from [`Engine::poll_actions`] durably.
//!
//! A due callback becomes *ready*: it waits for an agent in priority order
//! (first attempts before retries, then earliest due) and keeps its place
//! while it waits. A ready callback whose window closes goes back to waiting
//! for the next opening ([`Action::Defer`], or [`Action::CloseWindow`] when
//! the queue cancels at close); an owned one whose ownership period ends
//! produces [`Action::ExpireOwnership`].

pub mod rules;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono_tz::Tz;

use crate::clock::Millis;
use crate::config::{Config, WindowClose};
use crate::scheduler::model::{Callback, CallbackId, Channel, OwnerMode};
use crate::window::{self, NEVER_CLOSES};
use crate::scheduler::wheel::TimerWheel;

/// The engine asks for more of the due index when what it holds ends less
/// than this far ahead. Longer than [`MAX_ARM_AHEAD_MS`], so a herd is in
/// memory before it has to be armed.
pub const LOOKAHEAD_MS: Millis = 3_000;
/// How far ahead one load reaches (bounded by [`LOAD_CHUNK`] entries).
pub const LOAD_AHEAD_MS: Millis = 5_000;
/// Arming never reaches further ahead than this, however many are due
/// (see [`Engine::arm_horizon`]).
pub const MAX_ARM_AHEAD_MS: Millis = 2_000;
/// At most this many entries per load, so a load never stalls the writer.
pub const LOAD_CHUNK: usize = 1_024;

/// When marking must start so that the `count`-th callback, due at `due`,
/// is durable `ahead` ms before it.
fn mark_start(due: Millis, ahead: Millis, count: u64, us_per_mark: u32) -> Millis {
    due - ahead - (count.saturating_mul(u64::from(us_per_mark)) / 1000) as Millis
}

/// The due-index bucket of a due time: whole seconds.
pub fn due_second(due_at: Millis) -> i64 {
    due_at.div_euclid(1000)
}

/// Agents, as the dialler sees them. Called from the store's writer thread
/// while it fires: answers must be quick and must not block.
pub trait Availability: Send + Sync {
    /// Reserves a free agent for a callback of `queue` handed over at `now`:
    /// `owner` when given (only that agent may take it), else any free agent
    /// of the queue. `None` when no suitable agent is free at `now`.
    fn reserve(&self, now: Millis, queue: &str, owner: Option<&str>) -> Option<String>;
    /// Gives back a reservation that was not handed over after all.
    fn release(&self, agent: &str);
    /// The earliest time at which a refusal that only time lifts (a
    /// calls-per-second limit refilling) ends, recorded since the last call,
    /// which forgets it. The driver rounds again by then; refusals that an
    /// event lifts (an agent freed, a call ended) wake it through that event.
    fn take_retry_at(&self) -> Option<Millis> {
        None
    }
}

/// Every agent is always free (benchmarks, and a dialler that reserves
/// agents itself after the hand-over). Reports the owner, or `"any"`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

impl Availability for Unlimited {
    fn reserve(&self, _now: Millis, _queue: &str, owner: Option<&str>) -> Option<String> {
        Some(owner.unwrap_or("any").to_string())
    }
    fn release(&self, _agent: &str) {}
}

/// What the engine needs of a scheduled callback.
#[derive(Debug, Clone, PartialEq)]
pub struct DueEntry {
    pub id: CallbackId,
    pub due_at: Millis,
    /// Not the first attempt: ranks after first attempts.
    pub retry: bool,
    pub queue: String,
    /// The agents who may take it, best first; empty = the queue's.
    pub owners: Vec<String>,
    pub owner_until: Option<Millis>,
    /// `preferred` ownership: if no owner is free when it becomes due, it
    /// goes to the queue at once instead of waiting out the period.
    pub preferred: bool,
    pub tz: Tz,
    /// A `"channel": "sms"` callback: a text at its due time needs no agent,
    /// so it fires as soon as it is due inside its window.
    pub sms: bool,
}

impl DueEntry {
    /// The entry of a scheduled callback; `None` when its timezone no longer
    /// parses (then the queue's is used by the caller).
    pub fn of(cb: &Callback, fallback_tz: Tz) -> Self {
        Self {
            id: cb.id,
            due_at: cb.due_at,
            retry: cb.attempts > 0,
            queue: cb.queue.clone(),
            owners: cb.all_owners().into_iter().map(str::to_string).collect(),
            owner_until: cb.owner.as_ref().and(cb.owner_until),
            preferred: cb.owner_mode == OwnerMode::Preferred,
            tz: rules::parse_tz(&cb.timezone).unwrap_or(fallback_tz),
            sms: cb.channel == Channel::Sms,
        }
    }
}

/// What the writer must apply durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Mark in progress with the next attempt number and hand over, with
    /// the reserved agent (empty for a text, which needs none).
    Fire { id: CallbackId, agent: String },
    /// The window is closed: wait for its next opening (same attempt).
    Defer { id: CallbackId, due_at: Millis },
    /// The ownership period ended: to the queue or cancelled, per
    /// `on_ownership_expiry`.
    ExpireOwnership { id: CallbackId },
    /// The window closed while it waited and the queue cancels at close.
    CloseWindow { id: CallbackId },
}

type Prio = (bool, Millis, CallbackId);

#[derive(Debug)]
enum Place {
    /// In the wheel, waiting for its due time.
    Pending,
    /// Due, waiting for an agent; woken at `deadline` (window close or
    /// ownership end) if still waiting.
    Ready { deadline: Option<Millis> },
}

#[derive(Debug)]
struct Entry {
    e: DueEntry,
    place: Place,
}

impl Entry {
    fn prio(&self) -> Prio {
        (self.e.retry, self.e.due_at, self.e.id)
    }
}

/// The in-memory near future. See the module docs for the contract.
#[derive(Debug)]
pub struct Engine {
    cfg: Arc<Config>,
    entries: HashMap<CallbackId, Entry>,
    wheel: TimerWheel<CallbackId>,
    deadlines: BTreeSet<(Millis, CallbackId)>,
    by_queue: HashMap<String, BTreeSet<Prio>>,
    by_owner: HashMap<String, BTreeSet<Prio>>,
    /// Ready `preferred` callbacks that no owner has taken yet.
    preferred_ready: BTreeSet<CallbackId>,
    /// Due seconds below this are all in memory.
    loaded_until_s: i64,
    /// How many `Pending` entries are due at each millisecond: what
    /// [`Engine::arm_horizon`] walks to see a herd coming.
    pending: BTreeMap<Millis, u32>,
    windows: WindowCache,
}

/// The last window answer per (timezone, queue): valid for every instant
/// from where it was computed to the end of that open (or closed) period,
/// so a herd of callbacks due together costs one window computation.
#[derive(Debug, Default)]
struct WindowCache(HashMap<&'static str, HashMap<String, WindowState>>);

#[derive(Debug, Clone, Copy)]
enum WindowState {
    Open { from: Millis, until: Millis },
    Closed { from: Millis, opens: Millis },
}

impl WindowCache {
    /// `(open_until, next_open)` at `now`: `Some(end)` while open (then
    /// `next_open` is `now`), `None` and the next opening while closed.
    fn at(&mut self, cfg: &Config, queue: &str, tz: Tz, now: Millis) -> (Option<Millis>, Millis) {
        if let Some(st) = self.0.get(tz.name()).and_then(|m| m.get(queue)) {
            match *st {
                WindowState::Open { from, until } if from <= now && now < until => return (Some(until), now),
                WindowState::Closed { from, opens } if from <= now && now < opens => return (None, opens),
                _ => {}
            }
        }
        // A queue removed from the configuration: no window to respect.
        let Some(q) = cfg.queue(queue) else { return (Some(NEVER_CLOSES), now) };
        let hours = q.calling_hours();
        let (r, st) = match window::open_until(&hours, tz, now) {
            Some(until) => ((Some(until), now), WindowState::Open { from: now, until }),
            None => {
                let opens = window::next_open(&hours, tz, now);
                ((None, opens), WindowState::Closed { from: now, opens })
            }
        };
        self.0.entry(tz.name()).or_default().insert(queue.to_string(), st);
        r
    }
}

impl Engine {
    /// An empty engine; `now` is the wheel's origin.
    pub fn new(cfg: Arc<Config>, now: Millis) -> Self {
        Self {
            cfg,
            entries: HashMap::new(),
            wheel: TimerWheel::new(now),
            deadlines: BTreeSet::new(),
            by_queue: HashMap::new(),
            by_owner: HashMap::new(),
            preferred_ready: BTreeSet::new(),
            loaded_until_s: i64::MIN,
            pending: BTreeMap::new(),
            windows: WindowCache::default(),
        }
    }

    /// The configuration a reload applied: queues' hours, `window_close` and
    /// the rest apply from the next decision. Every callback already waiting
    /// for an agent is rechecked at the next poll (`now`), so one whose window
    /// the new hours closed goes back to waiting for the next opening.
    pub fn set_config(&mut self, cfg: Arc<Config>, now: Millis) {
        self.cfg = cfg;
        self.windows = WindowCache::default();
        for (&id, entry) in &self.entries {
            if matches!(entry.place, Place::Ready { .. }) {
                self.deadlines.insert((now, id));
            }
        }
    }

    /// Forgets everything, so the next [`Self::needs_load`] reloads from the
    /// store (after a failed commit left memory ahead of the disk).
    pub fn reset(&mut self, now: Millis) {
        let cfg = self.cfg.clone();
        *self = Self::new(cfg, now);
    }

    /// How many callbacks are in memory.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many are due and waiting for an agent.
    pub fn ready_len(&self) -> usize {
        self.by_queue.values().chain(self.by_owner.values()).map(BTreeSet::len).sum()
    }

    /// Due seconds below this are in memory; the rest only in the store.
    pub fn loaded_until_s(&self) -> i64 {
        self.loaded_until_s
    }

    /// `Some(until_s)` when the store's due index should be read from
    /// [`Self::loaded_until_s`] up to (excluding) second `until_s`; the
    /// caller loads at most [`LOAD_CHUNK`] entries and reports the second it
    /// reached with [`Self::handle_loaded`].
    pub fn needs_load(&self, now: Millis) -> Option<i64> {
        let target = due_second(now + LOOKAHEAD_MS);
        (self.loaded_until_s <= target).then(|| due_second(now + LOAD_AHEAD_MS) + 1)
    }

    /// Entries read from the due index (every entry with a due second in
    /// `[loaded_until_s, until_s)`); afterwards those seconds are in memory.
    pub fn handle_loaded(&mut self, entries: impl IntoIterator<Item = DueEntry>, until_s: i64) {
        for e in entries {
            self.insert(e);
        }
        self.loaded_until_s = self.loaded_until_s.max(until_s);
    }

    /// A callback was (re)scheduled durably: keep it if its due second is
    /// already in memory's range, else the store holds it until loaded.
    pub fn handle_upsert(&mut self, e: DueEntry) {
        self.handle_removed(e.id);
        if due_second(e.due_at) < self.loaded_until_s {
            self.insert(e);
        }
    }

    /// A callback is no longer scheduled (fired, cancelled, finished).
    pub fn handle_removed(&mut self, id: CallbackId) {
        let Some(entry) = self.entries.remove(&id) else { return };
        match entry.place {
            Place::Pending => {
                self.wheel.remove(&id);
                self.unpend(entry.e.due_at);
            }
            Place::Ready { deadline } => {
                if let Some(d) = deadline {
                    self.deadlines.remove(&(d, id));
                }
                let prio = entry.prio();
                let keys: Vec<(bool, &String)> = if entry.e.owners.is_empty() {
                    vec![(false, &entry.e.queue)]
                } else {
                    entry.e.owners.iter().map(|o| (true, o)).collect()
                };
                for (owned, key) in keys {
                    let map = if owned { &mut self.by_owner } else { &mut self.by_queue };
                    if let Some(set) = map.get_mut(key) {
                        set.remove(&prio);
                        if set.is_empty() {
                            map.remove(key);
                        }
                    }
                }
                self.preferred_ready.remove(&id);
            }
        }
    }

    fn insert(&mut self, e: DueEntry) {
        let id = e.id;
        self.wheel.insert(id, e.due_at);
        *self.pending.entry(e.due_at).or_default() += 1;
        self.entries.insert(id, Entry { e, place: Place::Pending });
    }

    /// One `Pending` entry due at `due_at` left the wheel.
    fn unpend(&mut self, due_at: Millis) {
        if let Some(n) = self.pending.get_mut(&due_at) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&due_at);
            }
        }
    }

    /// How far ahead of `now` a firing round should arm: at least `ahead`
    /// ms (the commit's own time), and further when more is due soon than
    /// can be marked in time at `us_per_mark` µs per callback — a callback
    /// due at `d` with `c` callbacks due at or before it must start being
    /// marked by `d - ahead - c·us_per_mark`. So a 100k herd is armed a
    /// second or so early instead of draining for a second after its due
    /// time. Never more than [`MAX_ARM_AHEAD_MS`] (or `ahead` if larger).
    pub fn arm_horizon(&self, now: Millis, ahead: Millis, us_per_mark: u32) -> Millis {
        let cap = MAX_ARM_AHEAD_MS.max(ahead);
        let mut horizon = ahead;
        let mut count: u64 = 0;
        for (&d, &n) in self.pending.range(..=now.saturating_add(cap)) {
            count += u64::from(n);
            if mark_start(d, ahead, count, us_per_mark) <= now {
                horizon = horizon.max(d - now);
            }
        }
        horizon.min(cap)
    }

    /// When the next arming round must run, for rounds that arm `ahead` ms
    /// ahead at `us_per_mark` (see [`Self::arm_horizon`]): the earliest
    /// marking start of what is pending, or [`Self::poll_timeout`] moved
    /// `ahead` earlier, whichever comes first. Call again after every round
    /// and every change.
    pub fn poll_arm_timeout(&self, now: Millis, ahead: Millis, us_per_mark: u32) -> Option<Millis> {
        let mut first: Option<Millis> = None;
        let mut count: u64 = 0;
        for (&d, &n) in self.pending.range(..=now.saturating_add(MAX_ARM_AHEAD_MS.max(ahead) + ahead)) {
            count += u64::from(n);
            let start = mark_start(d, ahead, count, us_per_mark);
            first = Some(first.map_or(start, |f| f.min(start)));
        }
        [first, self.poll_timeout().map(|t| t - ahead)].into_iter().flatten().min()
    }

    /// When [`Self::poll_actions`] must be called next: the earliest due
    /// time, window close or ownership end in memory, or the time to load
    /// more of the due index. Callbacks waiting for an agent set no timeout:
    /// call `poll_actions` again when agents become free.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let load = self.loaded_until_s.saturating_mul(1000).saturating_sub(LOOKAHEAD_MS);
        [self.wheel.next_deadline(), self.deadlines.first().map(|d| d.0), Some(load)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Moves due callbacks to the ready sets, handles window closes and
    /// ownership ends, then reserves agents in priority order. Returns at
    /// most `max` actions; every callback named in an action has left the
    /// engine (the writer re-inserts it with `handle_upsert` if it stays
    /// scheduled). Call again while it returns `max` actions.
    pub fn poll_actions(&mut self, now: Millis, avail: &dyn Availability, max: usize) -> Vec<Action> {
        let mut out = Vec::new();
        for id in self.wheel.poll_expired(now) {
            self.make_ready(now, id, &mut out);
        }
        while let Some(&(d, id)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.remove(&(d, id));
            if let Some(Entry { place: Place::Ready { deadline }, .. }) = self.entries.get_mut(&id) {
                *deadline = None;
            }
            self.recheck_ready(now, id, &mut out);
        }
        self.dispatch(now, avail, max, &mut out);
        out
    }

    fn make_ready(&mut self, now: Millis, id: CallbackId, out: &mut Vec<Action>) {
        let Some(entry) = self.entries.get(&id) else { return };
        let (open_end, next_open) = self.windows.at(&self.cfg, &entry.e.queue, entry.e.tz, now);
        // Due while closed (a downtime, a changed window): wait for the
        // next opening whatever `window_close` says, which is about
        // callbacks already waiting when the window closes.
        let Some(end) = open_end else {
            self.handle_removed(id);
            out.push(Action::Defer { id, due_at: next_open });
            return;
        };
        if entry.e.owner_until.is_some_and(|t| t <= now) {
            self.handle_removed(id);
            out.push(Action::ExpireOwnership { id });
            return;
        }
        if entry.e.sms {
            self.handle_removed(id);
            out.push(Action::Fire { id, agent: String::new() });
            return;
        }
        let deadline = [Some(end).filter(|&e| e != NEVER_CLOSES), entry.e.owner_until].into_iter().flatten().min();
        let prio = entry.prio();
        let keys: Vec<(bool, String)> = if entry.e.owners.is_empty() {
            vec![(false, entry.e.queue.clone())]
        } else {
            entry.e.owners.iter().map(|o| (true, o.clone())).collect()
        };
        if entry.e.preferred && !entry.e.owners.is_empty() {
            self.preferred_ready.insert(id);
        }
        let due_at = entry.e.due_at;
        self.unpend(due_at);
        let entry = self.entries.get_mut(&id).expect("present");
        entry.place = Place::Ready { deadline };
        if let Some(d) = deadline {
            self.deadlines.insert((d, id));
        }
        for (owned, key) in keys {
            let map = if owned { &mut self.by_owner } else { &mut self.by_queue };
            map.entry(key).or_default().insert(prio);
        }
    }

    /// A ready callback reached its deadline: the window closed or the
    /// ownership ended (or neither, when the window was extended).
    fn recheck_ready(&mut self, now: Millis, id: CallbackId, out: &mut Vec<Action>) {
        let Some(entry) = self.entries.get(&id) else { return };
        let cancel_at_close = self.cfg.queue(&entry.e.queue).is_some_and(|q| q.window_close == WindowClose::Cancel);
        let (open, next_open) = self.windows.at(&self.cfg, &entry.e.queue, entry.e.tz, now);
        match open {
            None if cancel_at_close => {
                self.handle_removed(id);
                out.push(Action::CloseWindow { id });
            }
            None => {
                self.handle_removed(id);
                out.push(Action::Defer { id, due_at: next_open });
            }
            Some(_) if entry.e.owner_until.is_some_and(|t| t <= now) => {
                self.handle_removed(id);
                out.push(Action::ExpireOwnership { id });
            }
            Some(end) => {
                // Still open (the period continued past the expected close).
                let deadline = [Some(end).filter(|&e| e != NEVER_CLOSES), entry.e.owner_until].into_iter().flatten().min();
                if let Some(d) = deadline {
                    self.deadlines.insert((d, id));
                }
                if let Some(Entry { place: Place::Ready { deadline: slot }, .. }) = self.entries.get_mut(&id) {
                    *slot = deadline;
                }
            }
        }
    }

    /// Owned callbacks go to their owner first (each owner takes its best
    /// one per round); then each queue's unowned callbacks take free agents
    /// in priority order until none is free.
    fn dispatch(&mut self, now: Millis, avail: &dyn Availability, max: usize, out: &mut Vec<Action>) {
        let owners: Vec<String> = self.by_owner.keys().cloned().collect();
        let mut tried_all = true;
        for owner in owners {
            if out.len() >= max {
                tried_all = false;
                break;
            }
            // An owner taken by an earlier owner's pick this round is gone.
            let Some(&(_, _, id)) = self.by_owner.get(&owner).and_then(|s| s.first()) else { continue };
            let queue = self.entries[&id].e.queue.clone();
            if let Some(agent) = avail.reserve(now, &queue, Some(&owner)) {
                self.handle_removed(id);
                out.push(Action::Fire { id, agent });
            }
        }
        // `preferred`: no owner was free at the due time, so the queue
        // takes it now (only once every owner had its chance this round).
        if tried_all {
            let waiting: Vec<CallbackId> = self.preferred_ready.iter().copied().collect();
            for id in waiting {
                if out.len() >= max {
                    break;
                }
                self.handle_removed(id);
                out.push(Action::ExpireOwnership { id });
            }
        }
        let queues: Vec<String> = self.by_queue.keys().cloned().collect();
        for queue in queues {
            while out.len() < max {
                let Some(&(_, _, id)) = self.by_queue.get(&queue).and_then(|s| s.first()) else { break };
                match avail.reserve(now, &queue, None) {
                    Some(agent) => {
                        self.handle_removed(id);
                        out.push(Action::Fire { id, agent });
                    }
                    None => break,
                }
            }
        }
    }

    /// Whether `id` is in memory (tests and consistency checks).
    pub fn contains(&self, id: CallbackId) -> bool {
        self.entries.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// `n` free agents in every queue; owners in `owners` are free.
    struct Free(Mutex<usize>, Vec<&'static str>);

    impl Availability for Free {
        fn reserve(&self, _now: Millis, _queue: &str, owner: Option<&str>) -> Option<String> {
            if let Some(o) = owner {
                return self.1.contains(&o).then(|| o.to_string());
            }
            let mut n = self.0.lock().unwrap();
            (*n > 0).then(|| {
                *n -= 1;
                "agent".to_string()
            })
        }
        fn release(&self, _agent: &str) {}
    }

    fn entry(id: u64, due_at: Millis, retry: bool, owner: Option<&str>) -> DueEntry {
        DueEntry {
            id: CallbackId(id),
            due_at,
            retry,
            queue: "default".into(),
            owners: owner.map(str::to_string).into_iter().collect(),
            preferred: false,
            owner_until: owner.map(|_| due_at + 1_000),
            tz: chrono_tz::UTC,
            sms: false,
        }
    }

    fn fired(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Fire { id, .. } => Some(id.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn priority_first_attempts_then_earliest_and_owners_apart() {
        let mut e = Engine::new(Arc::new(Config::defaults()), 0);
        e.handle_loaded(
            [entry(1, 10, true, None), entry(2, 30, false, None), entry(3, 20, false, None), entry(4, 5, false, Some("alice"))],
            1,
        );
        // The next load (1 s horizon, 2 s lookahead) is the earliest wake-up.
        assert_eq!(e.poll_timeout(), Some(1_000 - LOOKAHEAD_MS));
        let none = Free(Mutex::new(0), vec![]);
        assert!(e.poll_actions(100, &none, 10).is_empty());
        assert_eq!(e.ready_len(), 4);
        let two = Free(Mutex::new(2), vec![]);
        assert_eq!(fired(&e.poll_actions(101, &two, 10)), vec![3, 2]);
        let one = Free(Mutex::new(1), vec!["alice"]);
        assert_eq!(fired(&e.poll_actions(102, &one, 10)), vec![4, 1]);
        assert!(e.is_empty());
    }

    #[test]
    fn a_text_fires_when_due_without_an_agent_but_not_outside_its_window() {
        let mut cfg = Config::defaults();
        cfg.queues[0].hours = crate::window::WeeklyHours::parse(&["09:00-17:00"]).unwrap();
        let mut e = Engine::new(Arc::new(cfg), 0);
        let nine = 9 * 3_600_000;
        // Due at 08:00 UTC (window closed), and at 10:00.
        e.handle_loaded([DueEntry { sms: true, ..entry(1, nine - 3_600_000, false, None) }], i64::MAX / 1000);
        e.handle_upsert(DueEntry { sms: true, ..entry(2, nine + 3_600_000, false, None) });
        let none = Free(Mutex::new(0), vec![]);
        assert_eq!(e.poll_actions(nine - 3_600_000, &none, 10), vec![Action::Defer { id: CallbackId(1), due_at: nine }]);
        assert_eq!(e.poll_actions(nine + 3_600_000, &none, 10), vec![Action::Fire { id: CallbackId(2), agent: String::new() }]);
        assert_eq!(e.ready_len(), 0, "a text never waits for an agent");
    }

    #[test]
    fn a_reload_that_closes_the_window_sends_waiting_callbacks_to_the_next_opening() {
        let mut e = Engine::new(Arc::new(Config::defaults()), 0);
        let ten = 10 * 3_600_000;
        e.handle_loaded([entry(1, ten, false, None)], i64::MAX / 1000);
        let none = Free(Mutex::new(0), vec![]);
        assert!(e.poll_actions(ten, &none, 10).is_empty());
        assert_eq!(e.ready_len(), 1, "due and waiting for an agent, window always open");
        let mut cfg = Config::defaults();
        cfg.queues[0].hours = crate::window::WeeklyHours::parse(&["12:00-17:00"]).unwrap();
        e.set_config(Arc::new(cfg), ten + 1);
        assert_eq!(e.poll_timeout(), Some(ten + 1), "rechecked at once");
        assert_eq!(e.poll_actions(ten + 1, &none, 10), vec![Action::Defer { id: CallbackId(1), due_at: 12 * 3_600_000 }]);
        assert!(e.is_empty());
    }

    #[test]
    fn ownership_end_is_a_deadline() {
        let mut e = Engine::new(Arc::new(Config::defaults()), 0);
        e.handle_loaded([entry(7, 10, false, Some("bob"))], 100);
        let none = Free(Mutex::new(0), vec![]);
        assert!(e.poll_actions(10, &none, 10).is_empty());
        assert_eq!(e.poll_timeout(), Some(1_010));
        assert_eq!(e.poll_actions(1_010, &none, 10), vec![Action::ExpireOwnership { id: CallbackId(7) }]);
        assert!(e.is_empty());
    }

    #[test]
    fn upserts_beyond_the_horizon_stay_in_the_store() {
        let mut e = Engine::new(Arc::new(Config::defaults()), 0);
        e.handle_loaded([], 10);
        e.handle_upsert(entry(1, 9_999, false, None));
        e.handle_upsert(entry(2, 10_000, false, None));
        assert!(e.contains(CallbackId(1)) && !e.contains(CallbackId(2)));
        assert_eq!(e.needs_load(6_000), None);
        assert_eq!(e.needs_load(8_000), Some(14));
    }

    #[test]
    fn a_herd_is_armed_early_enough_to_be_marked_before_it_is_due() {
        let mut e = Engine::new(Arc::new(Config::defaults()), 0);
        let due = 10_000;
        // 10,000 due in the same millisecond at 100 µs each: 1 s of marking.
        e.handle_loaded((1..=10_000).map(|i| entry(i, due, false, None)), 20);
        e.handle_loaded([entry(20_000, due + 1_500, false, None)], 20);
        // (A safe lower bound: the wheel's own deadline may come earlier.)
        assert!(e.poll_arm_timeout(0, 100, 100).unwrap() <= due - 100 - 1_000);
        // Before that start, only the plain arm-ahead.
        assert_eq!(e.arm_horizon(due - 1_101, 100, 100), 100);
        // From it, the whole herd (and not the lone one after it).
        let h = e.arm_horizon(due - 1_100, 100, 100);
        assert_eq!(h, 1_100);
        let fired = e.poll_actions(due - 1_100 + h, &Unlimited, usize::MAX);
        assert_eq!(fired.len(), 10_000);
        // The lone one is back to the plain arm-ahead, bounded by the cap.
        assert!(e.poll_arm_timeout(due, 100, 100).unwrap() <= due + 1_500 - 100);
        assert_eq!(e.arm_horizon(due, 100, 100), 100);
        // Light load never arms further than asked.
        let mut e = Engine::new(Arc::new(Config::defaults()), 0);
        e.handle_loaded((1..=50).map(|i| entry(i, 5_000 + i as Millis * 20, false, None)), 20);
        assert_eq!(e.arm_horizon(5_000, 100, 20), 100);
        // Never past the cap, however big the herd.
        let mut e = Engine::new(Arc::new(Config::defaults()), 0);
        e.handle_loaded((1..=100_000).map(|i| entry(i, due, false, None)), 20);
        assert_eq!(e.arm_horizon(due - 5_000, 100, 100), 100);
        assert_eq!(e.arm_horizon(due - MAX_ARM_AHEAD_MS, 100, 100), MAX_ARM_AHEAD_MS);
    }
}
