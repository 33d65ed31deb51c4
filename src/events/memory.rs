//! An [`Outbox`] kept in memory, for a book that has no durable one (the
//! PostgreSQL book in cluster mode): events come from the bus's recent tail,
//! and cursors, parked deliveries and texts live as long as the process.
//! Webhooks and server-sent events work the same, but what was not
//! delivered when the process stops is not delivered after it restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::outbox::{ready, Outbox, OutboxFuture, Parked, RetryOutcome};
use super::{Bus, Event, Kind, Payload};
use crate::clock::Millis;
use crate::scheduler::book::StoreError;
use crate::sms::TextRecord;

pub struct MemoryOutbox {
    bus: Arc<Bus>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    cursors: HashMap<String, u64>,
    parked: Vec<Parked>,
    next_parked: u64,
    texts: HashMap<u64, Vec<TextRecord>>,
}

impl MemoryOutbox {
    pub fn new(bus: Arc<Bus>) -> Self {
        Self { bus, state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Outbox for MemoryOutbox {
    fn publish(&self, kind: Kind, at: Millis, payload: Payload) {
        self.bus.publish_next(kind, at, payload);
    }

    fn after(&self, after: u64, limit: usize) -> OutboxFuture<'_, Result<Vec<Event>, StoreError>> {
        // Events older than the bus keeps are gone: start from its oldest.
        let kept = match self.bus.since(after) {
            Some((events, _)) => events,
            None => self.bus.since(0).map(|(e, _)| e).unwrap_or_default(),
        };
        ready(Ok(kept.iter().filter(|e| e.seq > after).take(limit).map(|e| (**e).clone()).collect()))
    }

    fn next_seq(&self) -> OutboxFuture<'_, Result<u64, StoreError>> {
        ready(Ok(self.bus.next_seq()))
    }

    fn cursor<'a>(&'a self, endpoint: &'a str) -> OutboxFuture<'a, Result<Option<u64>, StoreError>> {
        ready(Ok(self.state().cursors.get(endpoint).copied()))
    }

    fn save_cursor(&self, endpoint: &str, seq: u64) {
        self.state().cursors.insert(endpoint.to_string(), seq);
    }

    fn park(&self, mut parked: Parked) {
        let mut s = self.state();
        s.next_parked += 1;
        parked.id = s.next_parked;
        s.parked.push(parked);
    }

    fn parked(&self, limit: usize, after: Option<u64>) -> OutboxFuture<'_, Result<Vec<Parked>, StoreError>> {
        ready(Ok(self.state().parked.iter().filter(|p| after.is_none_or(|a| p.id > a)).take(limit).cloned().collect()))
    }

    fn parked_get(&self, id: u64) -> OutboxFuture<'_, Result<Option<Parked>, StoreError>> {
        ready(Ok(self.state().parked.iter().find(|p| p.id == id).cloned()))
    }

    fn parked_count(&self) -> OutboxFuture<'_, Result<u64, StoreError>> {
        ready(Ok(self.state().parked.len() as u64))
    }

    fn record_text(&self, text: TextRecord) {
        self.state().texts.entry(text.callback_id).or_default().push(text);
    }

    fn texts(&self, callback: u64) -> OutboxFuture<'_, Result<Vec<TextRecord>, StoreError>> {
        ready(Ok(self.state().texts.get(&callback).cloned().unwrap_or_default()))
    }

    fn retried(&self, id: u64, outcome: RetryOutcome) -> OutboxFuture<'_, Result<(), StoreError>> {
        let mut s = self.state();
        match outcome {
            RetryOutcome::Delivered => s.parked.retain(|p| p.id != id),
            RetryOutcome::Failed { at, error } => {
                if let Some(p) = s.parked.iter_mut().find(|p| p.id == id) {
                    p.failures += 1;
                    p.last_failure = at;
                    p.last_error = error;
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_from_the_bus_and_parked_deliveries_are_kept_until_delivered() {
        let bus = Arc::new(Bus::new());
        let o = MemoryOutbox::new(bus.clone());
        let trunk = crate::sip::endpoint::TrunkStatus { name: "t".into(), register: false, registered: false, expires_at: None, up: true, last_error: None };
        for i in 0..3 {
            o.publish(Kind::TrunkState, i, Payload::Trunk(Box::new(trunk.clone())));
        }
        assert_eq!(futures_util::FutureExt::now_or_never(o.after(1, 10)).unwrap().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(futures_util::FutureExt::now_or_never(o.next_seq()).unwrap().unwrap(), 4);
        o.save_cursor("http://x", 2);
        assert_eq!(futures_util::FutureExt::now_or_never(o.cursor("http://x")).unwrap().unwrap(), Some(2));
        let p = Parked { id: 0, endpoint: "http://x".into(), seq: 3, kind: "agent.state".into(), body: vec![], failures: 1, first_failure: 0, last_failure: 0, last_error: "500".into() };
        o.park(p);
        assert_eq!(futures_util::FutureExt::now_or_never(o.parked_count()).unwrap().unwrap(), 1);
        let id = futures_util::FutureExt::now_or_never(o.parked(10, None)).unwrap().unwrap()[0].id;
        futures_util::FutureExt::now_or_never(o.retried(id, RetryOutcome::Delivered)).unwrap().unwrap();
        assert_eq!(futures_util::FutureExt::now_or_never(o.parked_count()).unwrap().unwrap(), 0);
    }
}
