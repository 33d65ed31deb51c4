//! The event bus: every committed change to a callback, an attempt, an agent's
//! state or a trunk's state, published once, from where it is committed, as a
//! typed [`Event`] with a sequence number that only ever increases.
//!
//! Every event is first written to the durable [`outbox`] in the same commit
//! as the change it reports, which assigns its sequence (unique for the life
//! of the book, across restarts); only then is it published here.
//! Consumers (the console's live tiles, server-sent events, webhooks)
//! subscribe with [`Bus::subscribe`]; nothing polls the book to notice
//! changes. The bus keeps the last [`Bus::RECENT`] events in memory so a
//! subscriber that reconnects with the last sequence it saw can catch up
//! ([`Bus::since`]); older history is read back from the outbox.
//!
//! The payloads are domain types; adapters render them (the HTTP API renders
//! each as the same JSON object its REST routes return).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

pub mod outbox;
pub use outbox::{Backoff, Outbox, Parked, TurnHeld};

use crate::agents::AgentInfo;
use crate::clock::Millis;
use crate::scheduler::model::{Attempt, Callback, CallbackId};
use crate::sip::endpoint::TrunkStatus;
use crate::sms::InboundText;

/// What happened. [`Kind::name`] is the public event type
/// (`callback.created`, `attempt.ended`, `agent.state`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    CallbackCreated,
    /// Rescheduled, reassigned, notes changed, or moved back to `scheduled`
    /// for a retry.
    CallbackUpdated,
    CallbackInProgress,
    CallbackCompleted,
    CallbackCancelled,
    CallbackExhausted,
    CallbackFailed,
    CallbackSkipped,
    AttemptStarted,
    AttemptEnded,
    AgentState,
    TrunkState,
    /// A customer's text reached us through a carrier (inbound SIP MESSAGE).
    SmsReceived,
}

impl Kind {
    /// In storage-code order: a new kind is only ever appended.
    pub const ALL: [Kind; 13] = [
        Kind::CallbackCreated,
        Kind::CallbackUpdated,
        Kind::CallbackInProgress,
        Kind::CallbackCompleted,
        Kind::CallbackCancelled,
        Kind::CallbackExhausted,
        Kind::CallbackFailed,
        Kind::CallbackSkipped,
        Kind::AttemptStarted,
        Kind::AttemptEnded,
        Kind::AgentState,
        Kind::TrunkState,
        Kind::SmsReceived,
    ];

    /// The public event type.
    pub fn name(self) -> &'static str {
        match self {
            Kind::CallbackCreated => "callback.created",
            Kind::CallbackUpdated => "callback.updated",
            Kind::CallbackInProgress => "callback.in_progress",
            Kind::CallbackCompleted => "callback.completed",
            Kind::CallbackCancelled => "callback.cancelled",
            Kind::CallbackExhausted => "callback.exhausted",
            Kind::CallbackFailed => "callback.failed",
            Kind::CallbackSkipped => "callback.skipped",
            Kind::AttemptStarted => "attempt.started",
            Kind::AttemptEnded => "attempt.ended",
            Kind::AgentState => "agent.state",
            Kind::TrunkState => "trunk.state",
            Kind::SmsReceived => "sms.received",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The stream it belongs to: the server-sent event's `event:` field.
    pub fn topic(self) -> Topic {
        match self {
            Kind::AttemptStarted | Kind::AttemptEnded => Topic::Attempt,
            Kind::AgentState => Topic::Agent,
            Kind::TrunkState => Topic::Trunk,
            Kind::SmsReceived => Topic::Sms,
            _ => Topic::Callback,
        }
    }
}

/// The streams of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Callback,
    Attempt,
    Agent,
    Trunk,
    Sms,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Callback => "callback",
            Topic::Attempt => "attempt",
            Topic::Agent => "agent",
            Topic::Trunk => "trunk",
            Topic::Sms => "sms",
        }
    }
}

/// The object an event carries.
#[derive(Debug, Clone)]
pub enum Payload {
    /// The callback as committed by the change.
    Callback(Box<Callback>),
    /// An attempt began: the callback as it is now `in_progress`, and the
    /// attempt's number.
    AttemptStarted { callback: Box<Callback>, attempt: u32 },
    /// An attempt ended: its record, and the callback after the outcome was
    /// applied.
    AttemptEnded { callback: Box<Callback>, attempt: Box<Attempt> },
    Agent(Box<AgentInfo>),
    Trunk(Box<TrunkStatus>),
    /// A text from a customer.
    Text(Box<InboundText>),
}

/// One published change.
#[derive(Debug, Clone)]
pub struct Event {
    /// Assigned by the outbox when the event is committed: 1, 2, 3, ...
    /// without gaps, for the life of the book.
    pub seq: u64,
    pub kind: Kind,
    /// When the change was committed (clock milliseconds).
    pub at: Millis,
    pub payload: Payload,
    /// Its `data:` line for server-sent events, rendered by the first
    /// stream that sends it and shared by every other (one JSON rendering per
    /// event, not one per subscriber).
    pub rendered: std::sync::OnceLock<Arc<str>>,
}

impl Event {
    /// The event's unique id (`evt_<seq>`; the sequence is unique for the
    /// life of the book).
    pub fn id(&self) -> String {
        format!("evt_{}", self.seq)
    }

    /// The queue the change concerns, for filtering (agents and trunks have none).
    pub fn queue(&self) -> Option<&str> {
        self.callback().map(|c| c.queue.as_str())
    }

    /// The callback the change concerns, if any.
    pub fn callback(&self) -> Option<&Callback> {
        match &self.payload {
            Payload::Callback(c) | Payload::AttemptStarted { callback: c, .. } | Payload::AttemptEnded { callback: c, .. } => Some(c),
            Payload::Agent(_) | Payload::Trunk(_) | Payload::Text(_) => None,
        }
    }

    pub fn callback_id(&self) -> Option<CallbackId> {
        self.callback().map(|c| c.id)
    }
}

/// What [`Bus::since`] hands a reconnecting subscriber: the kept events it
/// missed, oldest first, and a receiver of every later one.
pub type CatchUp = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// Publishes events to every subscriber; cheap to clone behind an `Arc`.
pub struct Bus {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
}

struct Inner {
    /// The sequence after the last one published.
    next_seq: u64,
    recent: VecDeque<Arc<Event>>,
}

impl Bus {
    /// Events kept in memory for subscribers that reconnect.
    pub const RECENT: usize = 4096;
    /// Events buffered per subscriber before a slow one starts missing them
    /// (it then sees [`broadcast::error::RecvError::Lagged`] and should
    /// resynchronise with [`Bus::since`]).
    pub const CAPACITY: usize = 8192;

    pub fn new() -> Self {
        Self::starting_at(1)
    }

    /// A bus expecting `first` as the next sequence (the outbox's next one).
    pub fn starting_at(first: u64) -> Self {
        let (tx, _) = broadcast::channel(Self::CAPACITY);
        Bus { inner: Mutex::new(Inner { next_seq: first.max(1), recent: VecDeque::with_capacity(Self::RECENT) }), tx }
    }

    /// Sends a committed event (its sequence assigned by the outbox, higher
    /// than every one sent before) to every subscriber. The outbox calls it
    /// once per event, after the commit, in sequence order.
    pub fn publish(&self, ev: Event) -> Arc<Event> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        debug_assert!(ev.seq >= inner.next_seq || inner.recent.is_empty(), "events are published in sequence order");
        self.send_locked(&mut inner, Arc::new(ev))
    }

    fn send_locked(&self, inner: &mut Inner, ev: Arc<Event>) -> Arc<Event> {
        inner.next_seq = ev.seq + 1;
        if inner.recent.len() == Self::RECENT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(ev.clone());
        // Sent under the lock so every subscriber sees sequence order.
        let _ = self.tx.send(ev.clone());
        ev
    }

    /// Publishes with the next in-memory sequence: for a book that keeps no
    /// outbox (a PostgreSQL book opened without one, as in its contract
    /// tests), whose sequences restart with the process.
    pub fn publish_next(&self, kind: Kind, at: Millis, payload: Payload) -> Arc<Event> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let ev = Arc::new(Event { seq: inner.next_seq, kind, at, payload, rendered: Default::default() });
        self.send_locked(&mut inner, ev)
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// The kept events after `seq`, oldest first, and a receiver of every
    /// later one, taken atomically so nothing falls between them. `None` when
    /// events after `seq` have already been dropped from memory.
    pub fn since(&self, seq: u64) -> Option<CatchUp> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let oldest = inner.recent.front().map(|e| e.seq).unwrap_or(inner.next_seq);
        if seq + 1 < oldest {
            return None;
        }
        Some((inner.recent.iter().filter(|e| e.seq > seq).cloned().collect(), rx))
    }

    /// The sequence after the last one published.
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).next_seq
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("next_seq", &self.next_seq()).field("subscribers", &self.tx.receiver_count()).finish()
    }
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(name: &str) -> Payload {
        Payload::Trunk(Box::new(TrunkStatus {
            name: name.into(),
            register: false,
            registered: false,
            expires_at: None,
            up: true,
            last_error: None,
        }))
    }

    fn ev(seq: u64, at: Millis, name: &str) -> Event {
        Event { seq, kind: Kind::TrunkState, at, payload: trunk(name), rendered: Default::default() }
    }

    #[test]
    fn events_reach_every_subscriber_in_sequence_order() {
        let bus = Bus::starting_at(10);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        for i in 0..3 {
            bus.publish(ev(10 + i, i as Millis, "t"));
        }
        for rx in [&mut a, &mut b] {
            let seqs: Vec<u64> = (0..3).map(|_| rx.try_recv().unwrap().seq).collect();
            assert_eq!(seqs, vec![10, 11, 12]);
        }
        assert_eq!(bus.next_seq(), 13);
    }

    #[test]
    fn since_returns_the_kept_tail_and_refuses_what_was_dropped() {
        let bus = Bus::new();
        for i in 0..(Bus::RECENT as u64 + 5) {
            bus.publish(ev(i + 1, i as Millis, "t"));
        }
        let (tail, _rx) = bus.since(Bus::RECENT as u64).unwrap();
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), (Bus::RECENT as u64 + 1..=Bus::RECENT as u64 + 5).collect::<Vec<_>>());
        assert!(bus.since(1).is_none(), "events 2..=5 were dropped");
        let (tail, mut rx) = bus.since(bus.next_seq() - 1).unwrap();
        assert!(tail.is_empty());
        bus.publish(ev(Bus::RECENT as u64 + 6, 0, "u"));
        assert_eq!(rx.try_recv().unwrap().seq, Bus::RECENT as u64 + 6);
    }

    #[test]
    fn kinds_round_trip_through_their_public_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        assert_eq!(Kind::AttemptEnded.topic().as_str(), "attempt");
        assert_eq!(Kind::CallbackSkipped.topic(), Topic::Callback);
        assert_eq!(Kind::parse("callback.nope"), None);
    }
}
