//! One endpoint's deliveries, sans-IO: events wait in sequence order and go
//! out one at a time, so a receiver sees each callback's events in order; a
//! failure holds the head back until its retry time; a head that has failed
//! for a day is parked and the next one goes. Each endpoint has its own
//! queue, so a slow or dead receiver delays nobody else.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::clock::Millis;

use super::retry::{self, Next};
use crate::events::Backoff;

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event's sequence number.
    pub seq: u64,
    /// The event's type (`callback.created`, ...).
    pub kind: &'static str,
    /// The signed JSON body.
    pub body: Arc<[u8]>,
    /// Failed tries so far.
    pub failures: u32,
    pub first_failure: Option<Millis>,
    pub last_error: Option<String>,
}

impl Delivery {
    pub fn new(seq: u64, kind: &'static str, body: Arc<[u8]>) -> Self {
        Self { seq, kind, body, failures: 0, first_failure: None, last_error: None }
    }
}

/// The queue refused an event because it holds `limit` already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the endpoint's queue is full ({limit} events)")]
pub struct Full {
    pub limit: usize,
}

#[derive(Debug)]
pub struct Queue {
    waiting: VecDeque<Delivery>,
    in_flight: bool,
    retry_at: Option<Millis>,
    limit: usize,
}

impl Queue {
    pub fn new(limit: usize) -> Self {
        Self { waiting: VecDeque::new(), in_flight: false, retry_at: None, limit }
    }

    /// Adds an event behind the others (events arrive in sequence order).
    pub fn push(&mut self, d: Delivery) -> Result<(), Full> {
        if self.waiting.len() >= self.limit {
            return Err(Full { limit: self.limit });
        }
        debug_assert!(self.waiting.back().is_none_or(|b| b.seq < d.seq), "events arrive in sequence order");
        self.waiting.push_back(d);
        Ok(())
    }

    /// The delivery to send now, if one is due and none is in flight. Call
    /// again after each [`Queue::on_delivered`] / [`Queue::on_failed`], after
    /// a push, and at [`Queue::poll_timeout`].
    pub fn poll_send(&mut self, now: Millis) -> Option<Delivery> {
        if self.in_flight || self.retry_at.is_some_and(|at| at > now) {
            return None;
        }
        let head = self.waiting.front()?.clone();
        self.in_flight = true;
        self.retry_at = None;
        Some(head)
    }

    /// The receiver answered 2xx for the head.
    pub fn on_delivered(&mut self) {
        debug_assert!(self.in_flight);
        self.in_flight = false;
        self.waiting.pop_front();
    }

    /// The head failed at `now` (`jitter` in `[0, 1)` spreads the retry).
    /// Returns the delivery when it is parked after a day of failures.
    pub fn on_failed(&mut self, now: Millis, error: String, jitter: f64) -> Option<Delivery> {
        debug_assert!(self.in_flight);
        self.in_flight = false;
        let head = self.waiting.front_mut()?;
        head.failures += 1;
        let first = *head.first_failure.get_or_insert(now);
        head.last_error = Some(error);
        match retry::after_failure(now, first, head.failures, jitter) {
            Next::RetryAt(at) => {
                self.retry_at = Some(at);
                None
            }
            Next::Park => self.waiting.pop_front(),
        }
    }

    /// The head's back-off while it waits for a retry after a failure.
    pub fn backoff(&self) -> Option<Backoff> {
        let head = self.waiting.front().filter(|h| h.failures > 0 && !self.in_flight)?;
        Some(Backoff {
            seq: head.seq,
            failures: head.failures,
            first_failure: head.first_failure?,
            retry_at: self.retry_at?,
            last_error: head.last_error.clone().unwrap_or_default(),
        })
    }

    /// Takes back a back-off saved before a restart: the head waits until
    /// its retry time and keeps its failures and 24 h. Ignored (false) when
    /// the head is another event (that one was delivered or parked since)
    /// or is in flight.
    pub fn restore(&mut self, b: &Backoff) -> bool {
        if self.in_flight {
            return false;
        }
        let Some(head) = self.waiting.front_mut().filter(|h| h.seq == b.seq) else { return false };
        head.failures = b.failures;
        head.first_failure = Some(b.first_failure);
        head.last_error = Some(b.last_error.clone());
        self.retry_at = Some(b.retry_at);
        true
    }

    /// When [`Queue::poll_send`] will next have something, if waiting on a retry.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.in_flight || self.waiting.is_empty() {
            None
        } else {
            self.retry_at
        }
    }

    /// The sequence of the oldest event not yet delivered or parked.
    pub fn head(&self) -> Option<u64> {
        self.waiting.front().map(|d| d.seq)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seq: u64) -> Delivery {
        Delivery::new(seq, "trunk.state", Arc::from(format!("{{\"seq\":{seq}}}").into_bytes()))
    }

    #[test]
    fn sends_one_at_a_time_in_order() {
        let mut q = Queue::new(10);
        for s in 1..=3 {
            q.push(d(s)).unwrap();
        }
        assert_eq!(q.poll_send(0).unwrap().seq, 1);
        assert!(q.poll_send(0).is_none(), "one in flight");
        q.on_delivered();
        assert_eq!(q.poll_send(0).unwrap().seq, 2);
        q.on_delivered();
        assert_eq!(q.poll_send(0).unwrap().seq, 3);
        q.on_delivered();
        assert!(q.poll_send(0).is_none() && q.is_empty());
    }

    #[test]
    fn a_failure_holds_the_head_until_its_retry_time() {
        let mut q = Queue::new(10);
        q.push(d(1)).unwrap();
        q.push(d(2)).unwrap();
        q.poll_send(1_000).unwrap();
        assert!(q.on_failed(1_000, "500".into(), 0.5).is_none());
        let at = q.poll_timeout().unwrap();
        assert_eq!(at, 1_000 + retry::FIRST_DELAY);
        assert!(q.poll_send(at - 1).is_none(), "not before the retry time");
        let again = q.poll_send(at).unwrap();
        assert_eq!((again.seq, again.failures, again.last_error.as_deref()), (1, 1, Some("500")));
        q.on_delivered();
        assert_eq!(q.poll_send(at).unwrap().seq, 2, "the next goes straight after");
    }

    #[test]
    fn a_head_failing_for_a_day_is_parked_and_the_rest_go_on() {
        let mut q = Queue::new(10);
        q.push(d(1)).unwrap();
        q.push(d(2)).unwrap();
        let mut now = 0;
        let parked = loop {
            q.poll_send(now).expect("due");
            if let Some(p) = q.on_failed(now, "refused".into(), 0.5) {
                break p;
            }
            now = q.poll_timeout().unwrap();
        };
        assert_eq!(parked.seq, 1);
        assert!(now <= retry::GIVE_UP_AFTER && parked.failures > 10, "{now} {}", parked.failures);
        assert_eq!(q.poll_send(now).unwrap().seq, 2);
    }

    #[test]
    fn a_saved_back_off_holds_the_same_head_after_a_restart() {
        let mut q = Queue::new(10);
        q.push(d(5)).unwrap();
        q.poll_send(1_000).unwrap();
        assert!(q.backoff().is_none(), "in flight");
        q.on_failed(1_000, "500".into(), 0.5);
        q.poll_send(q.poll_timeout().unwrap()).unwrap();
        q.on_failed(3_000, "timeout".into(), 0.5);
        let saved = q.backoff().expect("waiting on a retry");
        assert_eq!((saved.seq, saved.failures, saved.first_failure, saved.last_error.as_str()), (5, 2, 1_000, "timeout"));
        // A new process: the same head waits out the saved delay, and its
        // 24 h still count from the first failure.
        let mut q = Queue::new(10);
        q.push(d(5)).unwrap();
        assert!(q.restore(&saved));
        assert_eq!(q.poll_timeout(), Some(saved.retry_at));
        assert!(q.poll_send(saved.retry_at - 1).is_none());
        let again = q.poll_send(saved.retry_at).unwrap();
        assert_eq!((again.failures, again.first_failure), (2, Some(1_000)));
        // Another head (the saved one went meanwhile): nothing to restore.
        let mut q = Queue::new(10);
        q.push(d(6)).unwrap();
        assert!(!q.restore(&saved));
        assert_eq!(q.poll_send(0).unwrap().seq, 6);
    }

    #[test]
    fn a_full_queue_refuses_more() {
        let mut q = Queue::new(2);
        q.push(d(1)).unwrap();
        q.push(d(2)).unwrap();
        assert_eq!(q.push(d(3)), Err(Full { limit: 2 }));
    }
}
