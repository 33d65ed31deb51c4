//! Abandoned-call callbacks: an inbound caller who waited at least the
//! queue's `abandoned_callback_after` and hung up before reaching an agent
//! (or booking) gets a queue callback with origin `abandoned`, due from when
//! they joined (so it keeps their place), unless one is active for them.

use crate::clock::Millis;
use crate::config::Queue;
use crate::scheduler::book::Book;
use crate::scheduler::engine::rules::RuleError;
use crate::scheduler::model::{Callback, NewCallback, Origin};
use crate::scheduler::store::ScheduleError;

/// Books the callback of a caller who left `queue` at `now` after joining at
/// `joined`; `None` when the queue does not call them back, they waited less
/// than its threshold, their number is unknown, or one is already active.
pub async fn caller_left(book: &dyn Book, queue: &Queue, phone: Option<&str>, interaction: &str, joined: Millis, now: Millis) -> Option<Callback> {
    let after = queue.abandoned_callback_after?;
    let phone = phone?;
    if now.saturating_sub(joined) < after.as_millis() as Millis {
        return None;
    }
    let req = NewCallback {
        phone: phone.to_string(),
        queue: queue.name.clone(),
        origin: Some(Origin::Abandoned),
        interaction_id: Some(interaction.to_string()),
        joined_at: Some(joined),
        ..NewCallback::default()
    };
    match book.schedule(req).await {
        Ok(cb) => {
            tracing::info!(callback = %cb.id, waited_ms = now - joined, "callback booked for a caller who hung up waiting");
            Some(cb)
        }
        Err(ScheduleError::Rule(RuleError::Duplicate { existing_id })) => {
            tracing::info!(callback = %existing_id, "the caller who hung up already has a callback");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot book the abandoned caller's callback");
            None
        }
    }
}
