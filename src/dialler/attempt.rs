//! One attempt's record: the moments of its timeline as they happen, and
//! how it ended, reported to the book as an [`AttemptOutcome`].

use std::sync::Arc;

use crate::clock::{Clock, Millis};
use crate::scheduler::model::{Amd, AttemptOutcome, Outcome, Timeline};

use super::outcome::Failure;

/// How a flow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub outcome: Outcome,
    pub sip_status: Option<u16>,
    /// A `failed` outcome that is still retried (5xx, transport errors).
    pub retry: bool,
    /// Why, in a few words, when the outcome alone does not say.
    pub note: Option<String>,
}

impl Finish {
    pub fn new(outcome: Outcome, sip_status: Option<u16>) -> Self {
        Self { outcome, sip_status, retry: false, note: None }
    }

    pub fn failed_no_retry(note: &str) -> Self {
        Self { outcome: Outcome::Failed, sip_status: None, retry: false, note: Some(note.to_string()) }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

impl From<Failure> for Finish {
    fn from(f: Failure) -> Self {
        let note = f.retry.then(|| match f.sip_status {
            Some(s) => format!("carrier answered {s}; retried"),
            None => "no final response; retried".to_string(),
        });
        Self { outcome: f.outcome, sip_status: f.sip_status, retry: f.retry, note }
    }
}

/// The attempt as it unfolds.
pub struct AttemptLog {
    clock: Arc<dyn Clock>,
    pub timeline: Timeline,
    pub amd: Option<Amd>,
    /// The agent who took part last (the reserved one, or the second one
    /// tried after it did not answer).
    pub agent: String,
}

impl AttemptLog {
    pub fn new(clock: Arc<dyn Clock>, agent: &str) -> Self {
        Self { clock, timeline: Timeline::default(), amd: None, agent: agent.to_string() }
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Sets a moment once: the first occurrence is the one that counts.
    pub fn mark(&mut self, field: fn(&mut Timeline) -> &mut Option<Millis>) {
        let now = self.now();
        let slot = field(&mut self.timeline);
        if slot.is_none() {
            *slot = Some(now);
        }
    }

    pub fn into_outcome(self, f: Finish) -> AttemptOutcome {
        AttemptOutcome {
            outcome: f.outcome,
            sip_status: f.sip_status,
            amd: self.amd,
            agent: Some(self.agent),
            timeline: self.timeline,
            retry: f.retry,
            note: f.note,
        }
    }
}
