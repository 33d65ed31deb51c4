//! The texts that follow callback events: `sms_confirm` on
//! `callback.created`, `sms_on_exhausted` on `callback.exhausted`, sent
//! through the callback's queue trunk. The task reads the durable outbox
//! after its own cursor ([`CURSOR`]), so a committed booking gets its text
//! even when redial restarts in between; the cursor is saved after each
//! text, so a crash repeats at most the text in flight.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::{send, template, TextRecord};
use crate::clock::Clock;
use crate::config::Config;
use crate::events::{Event, Kind, Outbox, TurnHeld};
use crate::sip::calls::CallControl;

/// The outbox cursor of this task.
pub const CURSOR: &str = "sms:notify";
const PAGE: usize = 64;

pub struct Notifier {
    /// Queues' texts as the last reload left them, read per event.
    pub cfg: crate::config::LiveConfig,
    pub outbox: Arc<dyn Outbox>,
    pub calls: CallControl,
    pub clock: Arc<dyn Clock>,
}

/// When the customer's quiet hours (`[compliance] quiet_hours`, in their
/// local time) end, if `ev` calls for a text and `now` is inside them.
pub fn quiet_until(cfg: &Config, ev: &Event, now: crate::clock::Millis) -> Option<crate::clock::Millis> {
    let allowed = crate::window::WeeklyHours::always().within_daily(cfg.calling_hours?)?;
    let cb = ev.callback()?;
    let queue = cfg.queue(&cb.queue)?;
    let wants = match ev.kind {
        Kind::CallbackCreated => queue.sms_confirm.is_some(),
        Kind::CallbackExhausted => queue.sms_on_exhausted.is_some(),
        _ => false,
    };
    if !wants {
        return None;
    }
    let tz = crate::scheduler::engine::rules::parse_tz(&cb.timezone).unwrap_or(queue.timezone);
    let at = crate::window::next_open(&allowed, tz, now);
    (at > now).then_some(at)
}

/// Whether any queue sends texts on events (else the task is not started).
pub fn wanted(cfg: &Config) -> bool {
    cfg.queues.iter().any(|q| q.sms_confirm.is_some() || q.sms_on_exhausted.is_some())
}

impl Notifier {
    /// Runs until `stop` turns true. `events` (subscribed before the call)
    /// only wakes it; the outbox is the source.
    ///
    /// Texts go out from one process only: in a cluster the nodes take
    /// turns ([`Outbox::turn`]), and a node that takes over resumes after
    /// the stored cursor.
    pub async fn run(self, mut events: broadcast::Receiver<Arc<Event>>, mut stop: watch::Receiver<bool>) {
        loop {
            let Some(mut turn) = TurnHeld::take(&*self.outbox, CURSOR, &mut stop).await else { return };
            if self.follow(&mut turn, &mut events, &mut stop).await {
                self.outbox.end_turn(CURSOR).await;
                return;
            }
            tracing::info!("texts on events stopped here: another node has the turn");
        }
    }

    /// Sends texts while this process has the turn; true when it stopped
    /// for good (`stop`, or the outbox could not be read at all).
    async fn follow(&self, turn: &mut TurnHeld, events: &mut broadcast::Receiver<Arc<Event>>, stop: &mut watch::Receiver<bool>) -> bool {
        let mut cursor = match self.outbox.cursor(CURSOR).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let c = match self.outbox.next_seq().await {
                    Ok(n) => n.saturating_sub(1),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the outbox's sequence; no texts on events");
                        return true;
                    }
                };
                self.outbox.save_cursor(CURSOR, c);
                c
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the texts' outbox cursor; no texts on events");
                return true;
            }
        };
        loop {
            if turn.renew_at().is_some_and(|t| t <= tokio::time::Instant::now()) && !turn.renew(&*self.outbox, CURSOR).await {
                return false;
            }
            let page = match self.outbox.after(cursor, PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox; trying again shortly");
                    tokio::select! {
                        _ = stop.changed() => return true,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if page.is_empty() {
                tokio::select! {
                    _ = stop.changed() => return true,
                    // The node's event feed: in a cluster, every node's events.
                    ev = events.recv() => if let Err(RecvError::Closed) = ev { return true },
                }
                continue;
            }
            for ev in page {
                if *stop.borrow() {
                    return true;
                }
                if !turn.held() {
                    self.outbox.save_cursor(CURSOR, cursor);
                    return false;
                }
                // `[compliance] quiet_hours`: no text in the customer's
                // quiet hours. Texts go out in outbox order, so one held
                // until morning holds those after it too.
                if let Some(at) = quiet_until(&self.cfg.get(), &ev, self.clock.now_ms()) {
                    let wait = Duration::from_millis((at - self.clock.now_ms()).max(0) as u64);
                    tracing::info!(seq = ev.seq, wait_s = wait.as_secs(), "text held until the customer's quiet hours end");
                    tokio::select! {
                        _ = stop.changed() => return true,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    // A long wait outlasts a shared turn: send only if it is still ours.
                    if turn.renew_at().is_some() && !turn.renew(&*self.outbox, CURSOR).await {
                        self.outbox.save_cursor(CURSOR, cursor);
                        return false;
                    }
                }
                let sent = self.on_event(&ev).await;
                cursor = ev.seq;
                if sent {
                    self.outbox.save_cursor(CURSOR, cursor);
                }
            }
            self.outbox.save_cursor(CURSOR, cursor);
        }
    }

    /// Sends the text `ev` calls for, if any; whether one was tried.
    async fn on_event(&self, ev: &Event) -> bool {
        let Some(cb) = ev.callback() else { return false };
        let (cfg, addrs) = self.cfg.snapshot();
        let Some(queue) = cfg.queue(&cb.queue) else { return false };
        let (purpose, text) = match ev.kind {
            Kind::CallbackCreated => ("confirm", queue.sms_confirm.as_deref()),
            Kind::CallbackExhausted => ("exhausted", queue.sms_on_exhausted.as_deref()),
            _ => return false,
        };
        let Some(text) = text else { return false };
        let text = template::render(text, cb, queue.timezone);
        let sent = send::send(&cfg, &self.calls, &crate::calls::peers(&cfg, &addrs), cb, &text).await;
        self.outbox.record_text(TextRecord::of(cb, purpose, text, sent, self.clock.now_ms()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Payload;
    use crate::scheduler::model::Callback;

    #[test]
    fn a_text_waits_for_the_end_of_the_customers_quiet_hours() {
        let mut cfg = Config::defaults();
        cfg.calling_hours = Some(crate::window::WeeklyHours::parse_daily("08:00-21:00").unwrap());
        cfg.queues[0].sms_confirm = Some("We will call you {when}".into());
        let cb = Callback { queue: "default".into(), timezone: "America/New_York".into(), ..Callback::sample() };
        let ev = |kind| Event { seq: 1, kind, at: 0, payload: Payload::Callback(Box::new(cb.clone())), rendered: Default::default() };
        // 2026-03-02 03:00 UTC = 22:00 in New York (EST): quiet until 08:00 EST = 13:00 UTC.
        let late = chrono::DateTime::parse_from_rfc3339("2026-03-02T03:00:00Z").unwrap().timestamp_millis();
        let morning = chrono::DateTime::parse_from_rfc3339("2026-03-02T13:00:00Z").unwrap().timestamp_millis();
        assert_eq!(quiet_until(&cfg, &ev(Kind::CallbackCreated), late), Some(morning));
        // 15:00 UTC = 10:00 in New York: sent at once.
        assert_eq!(quiet_until(&cfg, &ev(Kind::CallbackCreated), morning + 2 * 3_600_000), None);
        // No text for this event, or no quiet hours: nothing to wait for.
        assert_eq!(quiet_until(&cfg, &ev(Kind::CallbackExhausted), late), None);
        cfg.calling_hours = None;
        assert_eq!(quiet_until(&cfg, &ev(Kind::CallbackCreated), late), None);
    }
}
