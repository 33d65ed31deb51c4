//! Per-queue counters behind `GET /v1/stats`, kept in step with every status
//! change so stats never scan the book.

use super::codec::{DecodeError, Reader, Writer};
use crate::clock::Millis;
use crate::scheduler::model::{Origin, Stats, Status};

/// The stats-table key of one queue's counters for one origin: the queue
/// name, a unit separator (never in a queue name), the origin. Queue-only
/// keys hold the queue's totals; these hold its split by origin.
pub fn origin_key(queue: &str, origin: Origin) -> String {
    format!("{queue}\u{1f}{}", origin.as_str())
}

/// Splits a stats-table key into the queue and, for a by-origin key, the origin.
pub fn split_key(key: &str) -> (&str, Option<Origin>) {
    match key.split_once('\u{1f}') {
        Some((q, o)) => (q, o.parse().ok()),
        None => (key, None),
    }
}

/// Slots per status code; room for statuses added later.
const SLOTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    pub requested: u64,
    /// Callbacks per status code.
    pub by_status: [u64; SLOTS],
    /// Sum over every callback of its first due time minus its creation.
    pub delay_sum_ms: i64,
}

impl Counters {
    pub fn created(&mut self, s: Status, delay_ms: Millis) {
        self.requested += 1;
        self.by_status[s.code() as usize] += 1;
        self.delay_sum_ms += delay_ms;
    }

    /// Undoes [`created`](Self::created): the callback left for another queue.
    pub fn removed(&mut self, s: Status, delay_ms: Millis) {
        self.requested = self.requested.saturating_sub(1);
        let n = &mut self.by_status[s.code() as usize];
        *n = n.saturating_sub(1);
        self.delay_sum_ms -= delay_ms;
    }

    pub fn moved(&mut self, from: Status, to: Status) {
        let f = &mut self.by_status[from.code() as usize];
        *f = f.saturating_sub(1);
        self.by_status[to.code() as usize] += 1;
    }

    pub fn first_due_moved(&mut self, delta_ms: Millis) {
        self.delay_sum_ms += delta_ms;
    }

    pub fn add(&mut self, o: &Counters) {
        self.requested += o.requested;
        for (a, b) in self.by_status.iter_mut().zip(o.by_status.iter()) {
            *a += b;
        }
        self.delay_sum_ms += o.delay_sum_ms;
    }

    pub fn stats(&self) -> Stats {
        let n = |s: Status| self.by_status[s.code() as usize];
        Stats {
            requested: self.requested,
            pending: n(Status::Scheduled) + n(Status::InProgress),
            completed: n(Status::Completed),
            cancelled: n(Status::Cancelled),
            exhausted: n(Status::Exhausted),
            failed: n(Status::Failed),
            skipped: n(Status::Skipped),
            avg_delay_s: if self.requested == 0 { 0.0 } else { self.delay_sum_ms as f64 / self.requested as f64 / 1000.0 },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        w.u8(1);
        w.var(self.requested);
        w.time(self.delay_sum_ms);
        w.var(SLOTS as u64);
        for v in self.by_status {
            w.var(v);
        }
        w.0
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(b);
        let v = r.u8()?;
        if v != 1 {
            return Err(DecodeError::Version(v));
        }
        let mut c = Counters { requested: r.var()?, delay_sum_ms: r.time()?, ..Default::default() };
        let n = r.var()? as usize;
        for i in 0..n {
            let v = r.var()?;
            if i < SLOTS {
                c.by_status[i] = v;
            }
        }
        Ok(c)
    }
}
