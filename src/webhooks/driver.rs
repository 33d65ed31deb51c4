//! The tokio side of webhooks: one task per endpoint reads the events it
//! wants from the durable outbox, after its stored cursor, into a bounded
//! [`Queue`] and sends the head on a blocking thread, so neither a slow
//! receiver nor the HTTP client ever runs on the runtime's own threads or
//! holds up the book or another endpoint.
//!
//! The bus given is the node's event feed: in a cluster it carries every
//! node's events in the outbox's order (`cluster::feed`), otherwise this
//! process's own. It only says "something new was committed" (and saves a
//! read when the task is caught up); the outbox is the source, so a restart, a
//! SIGKILL or a lagging task loses nothing: delivery resumes after the
//! cursor, which is saved at most every [`CURSOR_EVERY`] (a crash repeats
//! at most that much: at least once, never lost).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Webhook;
use crate::events::{Bus, Event, Outbox, Parked, TurnHeld};

use super::queue::{Delivery, Queue};
use super::{body, send, Render};

/// Events held in memory per endpoint (read from the outbox as room frees).
pub const WINDOW: usize = 256;
/// How often a moving cursor is saved.
pub const CURSOR_EVERY: Duration = Duration::from_millis(500);
/// After a failed outbox read, the next try comes this much later.
const READ_RETRY: Duration = Duration::from_secs(1);

/// Starts one delivery task per endpoint; they stop when `stop` turns true
/// (saving their cursors first).
pub fn spawn(hooks: &[Webhook], outbox: Arc<dyn Outbox>, bus: &Bus, render: Render, clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let agent = send::agent();
    hooks
        .iter()
        .enumerate()
        .map(|(i, hook)| {
            let span = tracing::info_span!("webhook", endpoint = i, url = %hook.url);
            let ep = Endpoint {
                hook: Arc::new(hook.clone()),
                outbox: outbox.clone(),
                render: render.clone(),
                clock: clock.clone(),
                agent: agent.clone(),
            };
            // Subscribed before the cursor is read, so nothing committed
            // in between is missed.
            tokio::spawn(ep.run(bus.subscribe(), stop.clone()).instrument(span))
        })
        .collect()
}

struct Endpoint {
    hook: Arc<Webhook>,
    outbox: Arc<dyn Outbox>,
    render: Render,
    clock: Arc<dyn Clock>,
    agent: ureq::Agent,
}

/// Where one endpoint's reading stands.
struct Reading {
    /// The highest sequence read (queued, or skipped as unwanted).
    loaded: u64,
    /// The outbox may hold events after `loaded` that are not queued.
    behind: bool,
}

/// Why one endpoint's delivery stopped.
enum Ended {
    Stopped,
    /// Another node delivers to this endpoint now (cluster mode).
    TurnLost,
    Failed,
}

impl Endpoint {
    /// Delivers while this process has the endpoint's turn: one deliverer
    /// per endpoint across the processes sharing the outbox. A turn lost
    /// is waited for again, and delivery then resumes after the stored
    /// cursor (what the other node delivered in between is not repeated).
    async fn run(self, mut events: broadcast::Receiver<Arc<Event>>, mut stop: watch::Receiver<bool>) {
        let key = self.hook.url.clone();
        loop {
            let Some(mut turn) = TurnHeld::take(&*self.outbox, &key, &mut stop).await else { return };
            match self.deliver(&key, &mut turn, &mut events, &mut stop).await {
                Ended::Stopped => {
                    self.outbox.end_turn(&key).await;
                    return;
                }
                Ended::Failed => return,
                Ended::TurnLost => tracing::info!("webhook delivery stopped here: another node has the endpoint's turn"),
            }
        }
    }

    async fn deliver(&self, key: &str, turn: &mut TurnHeld, events: &mut broadcast::Receiver<Arc<Event>>, stop: &mut watch::Receiver<bool>) -> Ended {
        let key = key.to_string();
        let start = match self.outbox.cursor(&key).await {
            Ok(Some(c)) => c,
            // A new endpoint gets what is committed from now on.
            Ok(None) => match self.outbox.next_seq().await {
                Ok(n) => {
                    let c = n.saturating_sub(1);
                    self.outbox.save_cursor(&key, c);
                    c
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox's sequence; endpoint not served");
                    return Ended::Failed;
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook cursor; endpoint not served");
                return Ended::Failed;
            }
        };
        // The failing head's back-off from before a restart: it waits out
        // its retry time instead of being tried at once.
        let mut saved_backoff = match self.outbox.backoff(&key).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook back-off; the head is tried at once");
                None
            }
        };
        let mut backoff_stored = saved_backoff.is_some();
        tracing::debug!(cursor = start, backoff = ?saved_backoff, "webhook delivery resumes");
        let mut reading = Reading { loaded: start, behind: true };
        let mut saved = start;
        let mut queue = Queue::new(WINDOW);
        let mut in_flight: Option<(u64, JoinHandle<Result<u16, String>>)> = None;
        let mut read_again_at: Option<tokio::time::Instant> = None;
        let mut save_tick = tokio::time::interval(CURSOR_EVERY);
        save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !turn.held() {
                self.save(&key, &queue, &reading, &mut saved);
                return Ended::TurnLost;
            }
            if reading.behind && queue.len() < WINDOW && read_again_at.is_none_or(|t| t <= tokio::time::Instant::now()) {
                read_again_at = None;
                match self.fill(&mut reading, &mut queue).await {
                    Ok(()) => {
                        if let Some(b) = saved_backoff.take() {
                            if queue.restore(&b) {
                                tracing::info!(seq = b.seq, failures = b.failures, "webhook head waits out its back-off from before the restart");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the outbox; trying again shortly");
                        read_again_at = Some(tokio::time::Instant::now() + READ_RETRY);
                    }
                }
            }
            let now = self.clock.now_ms();
            if in_flight.is_none() {
                if let Some(d) = queue.poll_send(now) {
                    in_flight = Some((d.seq, self.start(d)));
                }
            }
            let wait = queue.poll_timeout().map(|at| Duration::from_millis((at - now).max(0) as u64));
            let read_wait = read_again_at;
            let renew_at = turn.renew_at();
            tokio::select! {
                _ = stop.changed() => {
                    // A clean stop lets the request in flight finish (the sender's own
                    // timeout bounds the wait): a receiver that already has the event
                    // would otherwise get it again after the restart.
                    if let Some((_, sending)) = in_flight.take() {
                        if let Ok(Ok(_)) = sending.await {
                            self.delivered(&key, &mut queue, &mut backoff_stored);
                        }
                    }
                    self.save(&key, &queue, &reading, &mut saved);
                    return Ended::Stopped;
                }
                ev = events.recv() => match ev {
                    Ok(ev) => self.offer(&ev, &mut reading, &mut queue),
                    Err(RecvError::Lagged(_)) => reading.behind = true,
                    Err(RecvError::Closed) => return Ended::Failed,
                },
                _ = tokio::time::sleep_until(renew_at.unwrap_or_else(tokio::time::Instant::now)), if renew_at.is_some() => {
                    if !turn.renew(&*self.outbox, &key).await {
                        self.save(&key, &queue, &reading, &mut saved);
                        return Ended::TurnLost;
                    }
                }
                res = async { (&mut in_flight.as_mut().expect("guarded").1).await }, if in_flight.is_some() => {
                    let (seq, _) = in_flight.take().expect("guarded");
                    let now = self.clock.now_ms();
                    match res.unwrap_or_else(|e| Err(format!("sender failed: {e}"))) {
                        Ok(_) => self.delivered(&key, &mut queue, &mut backoff_stored),
                        Err(why) => {
                            tracing::debug!(seq, error = %why, "webhook delivery failed");
                            if let Some(p) = queue.on_failed(now, why, rand::random::<f64>()) {
                                tracing::warn!(seq = p.seq, failures = p.failures, error = ?p.last_error, "webhook delivery parked after a day of failures");
                                self.outbox.park(Parked {
                                    id: 0,
                                    endpoint: key.clone(),
                                    seq: p.seq,
                                    kind: p.kind.to_string(),
                                    body: p.body.to_vec(),
                                    failures: p.failures,
                                    first_failure: p.first_failure.unwrap_or(now),
                                    last_failure: now,
                                    last_error: p.last_error.unwrap_or_default(),
                                });
                            }
                            // Kept durable, so a restart waits out the same delay.
                            match queue.backoff() {
                                Some(b) => {
                                    self.outbox.save_backoff(&key, Some(b));
                                    backoff_stored = true;
                                }
                                None if std::mem::take(&mut backoff_stored) => self.outbox.save_backoff(&key, None),
                                None => {}
                            }
                        }
                    }
                    if queue.is_empty() {
                        // Caught up: say so at once rather than at the next tick.
                        self.save(&key, &queue, &reading, &mut saved);
                    }
                }
                _ = save_tick.tick() => self.save(&key, &queue, &reading, &mut saved),
                _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() && in_flight.is_none() => {}
                _ = tokio::time::sleep_until(read_wait.unwrap_or_else(tokio::time::Instant::now)), if read_wait.is_some() => {}
            }
        }
    }

    /// Reads the next events after `loaded` from the outbox, as many as fit.
    async fn fill(&self, reading: &mut Reading, queue: &mut Queue) -> Result<(), crate::scheduler::book::StoreError> {
        let room = WINDOW - queue.len();
        let evs = self.outbox.after(reading.loaded, room).await?;
        reading.behind = evs.len() == room;
        for ev in evs {
            self.take(&ev, reading, queue);
        }
        Ok(())
    }

    /// A just-published event: queued at once when it is the next one and
    /// there is room; otherwise it is read from the outbox later.
    fn offer(&self, ev: &Event, reading: &mut Reading, queue: &mut Queue) {
        if ev.seq <= reading.loaded {
            return;
        }
        if !reading.behind && ev.seq == reading.loaded + 1 && queue.len() < WINDOW {
            self.take(ev, reading, queue);
        } else {
            reading.behind = true;
        }
    }

    fn take(&self, ev: &Event, reading: &mut Reading, queue: &mut Queue) {
        reading.loaded = ev.seq;
        if self.hook.events.wants(ev.kind) {
            let d = Delivery::new(ev.seq, ev.kind.name(), Arc::from(body(ev, &self.render)));
            if let Err(full) = queue.push(d) {
                // Cannot happen: room is checked first. Read it again later.
                tracing::error!(seq = ev.seq, %full, "webhook queue full");
                reading.loaded = ev.seq - 1;
                reading.behind = true;
            }
        }
    }

    /// The head was delivered: it leaves the queue, and a back-off kept durable for it is
    /// cleared.
    fn delivered(&self, key: &str, queue: &mut Queue, backoff_stored: &mut bool) {
        queue.on_delivered();
        if std::mem::take(backoff_stored) {
            self.outbox.save_backoff(key, None);
        }
    }

    /// Saves the cursor when it moved: every event up to it is delivered,
    /// parked or not wanted.
    fn save(&self, key: &str, queue: &Queue, reading: &Reading, saved: &mut u64) {
        let done = queue.head().map_or(reading.loaded, |h| h - 1);
        if done > *saved {
            self.outbox.save_cursor(key, done);
            *saved = done;
        }
    }

    fn start(&self, d: Delivery) -> JoinHandle<Result<u16, String>> {
        let (agent, hook) = (self.agent.clone(), self.hook.clone());
        tokio::task::spawn_blocking(move || send::post(&agent, &hook.url, &hook.secret, &format!("evt_{}", d.seq), &d.body))
    }
}
