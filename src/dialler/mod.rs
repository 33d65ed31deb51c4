//! The dialler: turns each due callback the scheduler hands over into calls
//! and reports how the attempt ended.
//!
//! One tokio task per attempt runs the queue's flow to its end:
//! - [`customer_first`]: dial the customer, run AMD, ring the reserved agent
//!   while the customer hears the hold prompt, bridge.
//! - [`agent_first`]: ring the agent, then dial the customer while the agent
//!   hears the call progress, bridge.
//! - [`text`]: a `"channel": "sms"` callback: the queue's text through the
//!   trunk instead of a call, with no agent.
//!
//! The pieces they share:
//! - [`flow`]: the events and actions of the flow machines, and the driver
//!   that performs them on the real legs.
//! - [`party`]: dialling the customer through the queue's trunk.
//! - [`crate::calls`] (shared with inbound calls): call legs, ringing an
//!   agent, bridging, the held agent, the live-call table.
//! - [`attempt`]: the attempt's timeline and its report to the book.
//! - [`outcome`]: SIP final statuses to attempt outcomes.
//! - [`gate`]: per-trunk and per-queue call limits, applied where the
//!   scheduler reserves an agent.

mod agent_first;
pub mod attempt;
mod customer_first;
pub mod flow;
pub mod gate;
pub mod outcome;
pub mod party;
mod text;

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::calls::{new_interaction_id, CallKit};
use crate::config::DialMode;
use crate::events::Outbox;
use crate::scheduler::book::ReportError;
use crate::scheduler::model::{AttemptOutcome, Channel, Dispatch};

pub use gate::Gate;

/// Everything a flow needs, shared by every attempt: what every call uses,
/// and the call limits.
pub struct Dialler {
    pub kit: Arc<CallKit>,
    pub gate: Arc<Gate>,
    /// Where the texts of `"channel": "sms"` callbacks are recorded.
    pub outbox: Arc<dyn Outbox>,
}

impl Deref for Dialler {
    type Target = CallKit;
    fn deref(&self) -> &CallKit {
        &self.kit
    }
}

impl Dialler {
    /// Runs every dispatch to its end until the scheduler's channel closes,
    /// then waits for the attempts in progress.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Dispatch>) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => {
                        let this = self.clone();
                        tasks.spawn(async move { this.attempt(d).await });
                    }
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// One attempt, in a span naming it.
    async fn attempt(&self, d: Dispatch) {
        let cb = &d.callback;
        // The customer's Call-ID is recorded once dialled, a second agent once
        // held.
        let span = tracing::info_span!("attempt", callback = %cb.id, attempt = d.attempt, queue = %cb.queue, agent = %d.agent, call_id = tracing::field::Empty);
        self.run_attempt(d).instrument(span).await
    }

    /// Runs the queue's flow, frees what it held, reports the outcome.
    async fn run_attempt(&self, d: Dispatch) {
        let cb = &d.callback;
        if cb.channel == Channel::Sms {
            return self.run_text(d).await;
        }
        tracing::info!(callback = %cb.id, attempt = d.attempt, agent = %d.agent, "callback due: dialling");
        self.metrics.fired(self.clock.now_ms() - cb.due_at);
        self.metrics.calls_active_add(1);
        let mut log = attempt::AttemptLog::new(self.clock.clone(), &d.agent);
        let interaction = new_interaction_id();
        self.agents.assign(&d.agent, &cb.id.to_string());
        // The queue as it is now: a reload applies from the next attempt.
        let cfg = self.live_cfg.get();
        let finish = match cfg.queue(&cb.queue) {
            Some(q) => match cb.mode {
                DialMode::CustomerFirst => customer_first::run(self, &d, q, &interaction, &mut log).await,
                DialMode::AgentFirst => agent_first::run(self, &d, q, &interaction, &mut log).await,
            },
            None => attempt::Finish::failed_no_retry("queue no longer configured"),
        };
        self.live.remove(&interaction);
        self.gate.call_ended(&d.agent, &cb.queue);
        self.metrics.calls_active_add(-1);
        self.metrics.attempt_ended(finish.outcome.as_str());
        tracing::info!(callback = %cb.id, attempt = d.attempt, outcome = finish.outcome.as_str(), sip = ?finish.sip_status, "attempt ended");
        let report = log.into_outcome(finish);
        self.record(&d, report).await;
    }

    /// Records how the attempt ended. A storage error (the database out of
    /// reach) is retried, backing off up to 5 s, until the book takes it:
    /// an outcome never recorded would leave the callback `in_progress` for
    /// good. A book that refuses it (the attempt is no longer in progress,
    /// or the callback is gone) ends the matter.
    async fn record(&self, d: &Dispatch, report: AttemptOutcome) {
        let id = d.callback.id;
        let mut wait = std::time::Duration::from_millis(100);
        for tries in 1u32.. {
            match self.book.report_outcome(id, d.attempt, report.clone()).await {
                Ok(_) => return,
                Err(ReportError::Store(e)) => {
                    tracing::warn!(callback = %id, attempt = d.attempt, tries, error = %e, "cannot record the attempt's outcome yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(callback = %id, attempt = d.attempt, error = %e, "the book refused the attempt's outcome");
                    return;
                }
            }
        }
    }

    /// A text instead of a call: no agent was reserved, no call is up.
    async fn run_text(&self, d: Dispatch) {
        let cb = &d.callback;
        tracing::info!(callback = %cb.id, attempt = d.attempt, "callback due: texting");
        self.metrics.fired(self.clock.now_ms() - cb.due_at);
        let report = text::run(self, &d).await;
        self.metrics.attempt_ended(report.outcome.as_str());
        tracing::info!(callback = %cb.id, attempt = d.attempt, outcome = report.outcome.as_str(), sip = ?report.sip_status, "attempt ended");
        self.record(&d, report).await;
    }
}
