//! The tokio driver around the scheduler core: sleeps until the next
//! deadline, wakes on new or changed callbacks and on agent availability
//! changes, and hands due callbacks to the dialler over a channel.
//!
//! Every callback it sends is already durably `in_progress` with its attempt
//! number; if the dialler's receiver is gone, the driver stops (those
//! attempts are closed by recovery at the next start).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::engine::Availability;
use super::model::Dispatch;
use super::store::Book;
use crate::clock::{Clock, Millis};

/// Callbacks marked per round; bounds one transaction's size.
const ROUND: usize = 20_000;
/// Rounds mark callbacks due within this many ms and hand each over at its
/// due time: the durable commit happens before the due time, not after it.
/// Small against any calling window, so a window cannot close in between in
/// practice; the engine checks windows at the armed time.
pub const ARM_AHEAD_MS: Millis = 50;
/// Longest sleep without a deadline: a safety net against a lost wake-up.
const IDLE_MS: Millis = 1_000;

/// Controls a running driver.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl SchedulerHandle {
    /// Agents became free (or anything else changed): look again now.
    pub fn agents_changed(&self) {
        self.wake.notify_one();
    }

    /// Stops the driver after its current round and waits for it.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// Starts the driver. `capacity` bounds the hand-over channel; a full
/// channel makes the driver wait (callbacks stay due, in order).
pub fn spawn(
    book: Arc<Book>,
    clock: Arc<dyn Clock>,
    availability: Arc<dyn Availability>,
    capacity: usize,
) -> (SchedulerHandle, mpsc::Receiver<Dispatch>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let wake = book.changed();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(book, clock, availability, tx, wake.clone(), stop_rx));
    (SchedulerHandle { wake, stop: stop_tx, task: Arc::new(std::sync::Mutex::new(Some(task))) }, rx)
}

async fn run(
    book: Arc<Book>,
    clock: Arc<dyn Clock>,
    avail: Arc<dyn Availability>,
    tx: mpsc::Sender<Dispatch>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let tick = match book.tick_ahead(avail.clone(), ROUND, ARM_AHEAD_MS).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "scheduler round failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(IDLE_MS as u64)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        let mut armed = tick.dispatches;
        // Hand over in due order (ties keep the engine's priority order).
        armed.sort_by_key(|d| d.callback.due_at);
        for d in armed {
            let early = d.callback.due_at - clock.now_ms();
            if early > 0 {
                tokio::time::sleep(Duration::from_millis(early.min(ARM_AHEAD_MS) as u64)).await;
            }
            if tx.send(d).await.is_err() {
                tracing::warn!("dialler gone; scheduler driver stops");
                return;
            }
        }
        if tick.more {
            continue;
        }
        let now = clock.now_ms();
        let wait = tick.next_deadline.map_or(IDLE_MS, |d| (d - now).clamp(0, IDLE_MS));
        if wait == 0 {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
