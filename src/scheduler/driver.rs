//! The driver around the scheduler core, in two halves that run at once:
//!
//! - the **arming task** (tokio) asks the book for firing rounds ahead of
//!   time ([`Book::tick_ahead`], [`ARM_AHEAD_MS`] or further for a herd),
//!   sleeping until the next round is needed and waking on new or changed
//!   callbacks, on agent availability changes and when a rate limit that
//!   held callbacks back refills ([`Availability::take_retry_at`]);
//! - the **hand-over thread** holds what is armed in memory and gives each
//!   callback to the dialler at its due time.
//!
//! Running them apart is what keeps the commit off the firing path: while
//! one round's callbacks wait for their due time, the next round is already
//! being committed. (When the two ran in turn, each round's commit started
//! only after the previous round was handed over, so every round was late
//! by its own commit.) The hand-over is a plain thread because tokio's
//! timer has 1 ms granularity and fires up to a millisecond late; the
//! thread sleeps straight to the due millisecond's boundary, computed from
//! the clock's microseconds (`Clock::now_us`), so it wakes once per due
//! time, late only by the kernel's timer slack (≈ 50 µs).
//!
//! Every callback the dialler receives is already durably `in_progress`
//! with its attempt number. If the dialler's receiver is gone, the driver
//! stops (armed attempts are closed by recovery at the next start).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::engine::Availability;
use super::model::Dispatch;
use super::book::Book;
use crate::clock::{Clock, Millis};

/// Callbacks marked per round; bounds one transaction's size.
const ROUND: usize = 20_000;
/// Rounds mark callbacks due within at least this many ms, and the
/// hand-over thread gives each over at its due time, so the durable commit
/// (two fsyncs with quick repair, p99 ≈ 17 ms each on the development disk)
/// happens before the due time, not after it. Small against any calling
/// window; the engine checks windows at the armed time.
pub const ARM_AHEAD_MS: Millis = 250;
/// Longest sleep without a deadline: a safety net against a lost wake-up.
const IDLE_MS: Millis = 1_000;
/// The shortest sleep of the hand-over thread: a clock that answers whole
/// milliseconds (a fake one) must not make it spin.
const MIN_SLEEP_US: u64 = 50;

/// Controls a running driver.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
    handover: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl SchedulerHandle {
    /// Agents became free (or anything else changed): look again now.
    pub fn agents_changed(&self) {
        self.wake.notify_one();
    }

    /// Stops arming after the current round and waits until what is
    /// already armed has been handed over (at most the arm-ahead time).
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
        let thread = self.handover.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Starts the driver. `capacity` bounds the hand-over channel; a full
/// channel makes the driver wait (callbacks stay due, in order): arming
/// pauses while more than `max(capacity, ROUND)` are armed and not yet
/// taken, so a stalled dialler does not turn the book `in_progress`.
pub fn spawn(
    book: Arc<dyn Book>,
    clock: Arc<dyn Clock>,
    availability: Arc<dyn Availability>,
    capacity: usize,
) -> (SchedulerHandle, mpsc::Receiver<Dispatch>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let wake = book.changed();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (armed_tx, armed_rx) = std::sync::mpsc::channel();
    let unsent = Arc::new(AtomicUsize::new(0));
    let room = Arc::new(Notify::new());
    let limit = capacity.max(ROUND);
    let handover = {
        let (clock, unsent, room) = (clock.clone(), unsent.clone(), room.clone());
        std::thread::Builder::new()
            .name("redial-handover".into())
            .spawn(move || hand_over(clock, armed_rx, tx, unsent, room, limit))
            .expect("spawn the hand-over thread")
    };
    let arming = Arming { book, clock, avail: availability, armed: armed_tx, unsent, room, limit, wake: wake.clone() };
    let task = tokio::spawn(arming.run(stop_rx));
    let handle = SchedulerHandle {
        wake,
        stop: stop_tx,
        task: Arc::new(std::sync::Mutex::new(Some(task))),
        handover: Arc::new(std::sync::Mutex::new(Some(handover))),
    };
    (handle, rx)
}

struct Arming {
    book: Arc<dyn Book>,
    clock: Arc<dyn Clock>,
    avail: Arc<dyn Availability>,
    armed: std::sync::mpsc::Sender<Dispatch>,
    /// Armed and not yet taken by the dialler's channel.
    unsent: Arc<AtomicUsize>,
    /// Notified when `unsent` drops below `limit`.
    room: Arc<Notify>,
    limit: usize,
    wake: Arc<Notify>,
}

impl Arming {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let free = self.limit.saturating_sub(self.unsent.load(Ordering::Acquire));
            if free == 0 {
                tokio::select! {
                    _ = self.room.notified() => continue,
                    // The hand-over thread can miss no notification that
                    // matters for longer than this.
                    _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
                    _ = stop.changed() => return,
                }
            }
            let tick = match self.book.tick_ahead(self.avail.clone(), free.min(ROUND), ARM_AHEAD_MS).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler round failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(IDLE_MS as u64)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            self.unsent.fetch_add(tick.dispatches.len(), Ordering::AcqRel);
            for d in tick.dispatches {
                if self.armed.send(d).is_err() {
                    tracing::warn!("dialler gone; scheduler driver stops");
                    return;
                }
            }
            let retry_at = self.avail.take_retry_at();
            if tick.more {
                continue;
            }
            let wait = wait_ms(self.clock.now_ms(), tick.next_deadline, retry_at);
            if wait == 0 {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// How long the arming task sleeps at `now`: until the round's next
/// deadline, or until a rate limit that held callbacks back lifts
/// (`retry_at`, in the engine's time, which runs at least `ARM_AHEAD_MS`
/// ahead of the clock), and at most `IDLE_MS`.
fn wait_ms(now: Millis, next_deadline: Option<Millis>, retry_at: Option<Millis>) -> Millis {
    let retry = retry_at.map(|t| t - ARM_AHEAD_MS);
    [next_deadline, retry].into_iter().flatten().min().map_or(IDLE_MS, |d| (d - now).clamp(0, IDLE_MS))
}

/// One armed callback: hand over when the clock reaches `due_at`, or at
/// `latest` (the same instant by the monotonic clock, plus a millisecond)
/// should the clock not move, as a fake clock in tests does not.
struct Held {
    dispatch: Dispatch,
    latest: Instant,
}

/// The hand-over thread: holds armed callbacks by (due time, arrival) — so
/// ties keep the engine's priority order — and sends each at its due time.
fn hand_over(
    clock: Arc<dyn Clock>,
    armed: std::sync::mpsc::Receiver<Dispatch>,
    tx: mpsc::Sender<Dispatch>,
    unsent: Arc<AtomicUsize>,
    room: Arc<Notify>,
    limit: usize,
) {
    let mut held: BTreeMap<(Millis, u64), Held> = BTreeMap::new();
    let mut seq = 0u64;
    let mut open = true;
    let mut take = |d: Dispatch, held: &mut BTreeMap<(Millis, u64), Held>| {
        let early = (d.callback.due_at - clock.now_ms()).max(0) as u64;
        let latest = Instant::now() + Duration::from_millis(early + 1);
        held.insert((d.callback.due_at, seq), Held { dispatch: d, latest });
        seq += 1;
    };
    loop {
        // Send everything due.
        let now = clock.now_ms();
        let instant = Instant::now();
        while let Some(entry) = held.first_entry() {
            let ((due, _), h) = (entry.key(), entry.get());
            if *due > now && h.latest > instant {
                break;
            }
            let d = entry.remove().dispatch;
            if tx.blocking_send(d).is_err() {
                tracing::warn!("dialler gone; scheduler driver stops");
                return;
            }
            if unsent.fetch_sub(1, Ordering::AcqRel) == limit {
                room.notify_one();
            }
        }
        if !open && held.is_empty() {
            return;
        }
        // Sleep until the next due time's millisecond begins, or until more
        // is armed.
        let timeout = match held.first_key_value() {
            None => Duration::from_millis(IDLE_MS as u64),
            Some((&(due, _), h)) => {
                let by_clock = Duration::from_micros((due * 1000 - clock.now_us()).max(0) as u64).max(Duration::from_micros(MIN_SLEEP_US));
                by_clock.min(h.latest.saturating_duration_since(instant))
            }
        };
        if !open {
            std::thread::sleep(timeout);
            continue;
        }
        match armed.recv_timeout(timeout) {
            Ok(d) => {
                take(d, &mut held);
                while let Ok(d) = armed.try_recv() {
                    take(d, &mut held);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arming_task_wakes_for_the_next_deadline_or_a_lifted_rate_limit() {
        let now = 1_000_000;
        assert_eq!(wait_ms(now, None, None), IDLE_MS, "nothing to wait for: the safety net");
        assert_eq!(wait_ms(now, Some(now + 300), None), 300);
        // A token due 500 ms ahead in the engine's time is armed for
        // `ARM_AHEAD_MS` before it.
        assert_eq!(wait_ms(now, None, Some(now + ARM_AHEAD_MS + 500)), 500);
        assert_eq!(wait_ms(now, Some(now + 300), Some(now + ARM_AHEAD_MS + 100)), 100, "the sooner of the two");
        assert_eq!(wait_ms(now, Some(now + 300), Some(now + ARM_AHEAD_MS + 900)), 300);
        assert_eq!(wait_ms(now, None, Some(now)), 0, "already lifted: round again at once");
        assert_eq!(wait_ms(now, None, Some(now + 60_000)), IDLE_MS);
    }
}
