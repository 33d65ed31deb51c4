//! The durable outbox in the book's file: every event is appended by the
//! writer in the same transaction as the change it reports (no commit of
//! its own), with a sequence kept in `meta` so it survives restarts and
//! pruning. Webhook cursors and parked deliveries live beside it.
//!
//! An event is stored in the book's own binary encoding (the callback and
//! attempt records as in their tables), not as rendered JSON, so the writer
//! pays a few hundred nanoseconds per event; readers render it as the REST
//! routes do. Agents' and trunks' snapshots, rare and not book records, are
//! stored as JSON.
//!
//! Pruning keeps the newest [`RETAIN`] events (for server-sent events'
//! resumption) and never drops one a configured endpoint has not yet got
//! past; a parked delivery keeps its own body, so pruning loses nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::codec::{decode_attempt, decode_callback, encode_attempt, encode_callback, DecodeError, Reader, Writer};
use super::tables::META;
use super::{RedbBook, StoreError};
use crate::agents::{AgentInfo, AgentState, Registration};
use crate::clock::Millis;
use crate::events::outbox::{ready, OutboxFuture, RetryOutcome};
use crate::events::{Backoff, Event, Kind, Outbox, Parked, Payload};
use crate::scheduler::model::CallbackId;
use crate::sip::endpoint::TrunkStatus;
use crate::sms::TextRecord;

/// Sequence → encoded event. Created on first use (a file without it has no
/// events; no schema bump needed).
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Webhook endpoint URL → the sequence delivery has got past.
pub const WEBHOOK_CURSORS: TableDefinition<&str, u64> = TableDefinition::new("webhook_cursors");
/// Parked delivery id → JSON-encoded [`Parked`].
pub const WEBHOOK_PARKED: TableDefinition<u64, &[u8]> = TableDefinition::new("webhook_parked");

/// Webhook endpoint URL → JSON-encoded [`Backoff`] of its failing head.
pub const WEBHOOK_BACKOFF: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_backoff");

/// (callback id, number) → JSON-encoded [`TextRecord`]: the texts sent for a callback.
pub const TEXTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("texts");

/// `meta` key of the next event sequence.
const NEXT_EVENT: &str = "next_event";
/// The newest events kept whatever the cursors say (resumption of `/v1/events`).
pub const RETAIN: u64 = 50_000;
/// Most events one batch prunes, so pruning never delays a batch much.
const PRUNE_CHUNK: u64 = 4_096;

/// Outbox work handed to the writer, applied in its next transaction.
pub enum OutboxOp {
    Publish(Kind, Millis, Payload),
    Cursor(String, u64),
    Park(Parked),
    Retried(u64, RetryOutcome, oneshot::Sender<Result<(), StoreError>>),
    Text(TextRecord),
    Backoff(String, Option<Backoff>),
}

/// The writer's view of the outbox.
#[derive(Debug)]
pub(super) struct State {
    /// The sequence the next event gets.
    pub next: u64,
    /// The oldest stored sequence (== `next` when empty).
    pub first: u64,
    pub cursors: HashMap<String, u64>,
    /// The configured endpoints: only their cursors hold events back.
    pub endpoints: Vec<String>,
    /// `next` as of the last commit, for readers.
    pub published_next: Arc<AtomicU64>,
    /// The newest events always kept ([`RETAIN`]; smaller in tests).
    pub retain: u64,
}

impl State {
    pub fn read(db: &Database, endpoints: Vec<String>) -> Result<State, StoreError> {
        let r = db.begin_read()?;
        let meta_next = match r.open_table(META) {
            Ok(t) => t.get(NEXT_EVENT)?.map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let (first, last) = match r.open_table(OUTBOX) {
            Ok(t) => (t.first()?.map(|(k, _)| k.value()), t.last()?.map(|(k, _)| k.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => (None, None),
            Err(e) => return Err(e.into()),
        };
        let next = meta_next.unwrap_or(1).max(last.map_or(1, |l| l + 1));
        let mut cursors = HashMap::new();
        match r.open_table(WEBHOOK_CURSORS) {
            Ok(t) => {
                for row in t.iter()? {
                    let (k, v) = row?;
                    cursors.insert(k.value().to_string(), v.value());
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(State { next, first: first.unwrap_or(next), cursors, endpoints, published_next: Arc::new(AtomicU64::new(next)), retain: RETAIN })
    }

    /// Where pruning may go up to (exclusive).
    fn prune_limit(&self) -> u64 {
        let mut limit = self.next.saturating_sub(self.retain);
        for e in &self.endpoints {
            if let Some(c) = self.cursors.get(e) {
                limit = limit.min(c + 1);
            }
        }
        limit
    }
}

/// Appends `events` (in order) with the next sequences, applies the batch's
/// cursor, park and retry work, and prunes a chunk when due, all in `w`.
/// Returns the stored events; `state.next` is advanced (the caller restores
/// it if the commit fails).
pub(super) fn append(
    w: &WriteTransaction,
    state: &mut State,
    events: Vec<(Kind, Millis, Payload)>,
    work: Vec<OutboxOp>,
) -> Result<Vec<Event>, StoreError> {
    let mut out = Vec::with_capacity(events.len());
    if !events.is_empty() {
        let mut t = w.open_table(OUTBOX)?;
        for (kind, at, payload) in events {
            let ev = Event { seq: state.next, kind, at, payload, rendered: Default::default() };
            t.insert(ev.seq, encode_event(&ev).as_slice())?;
            state.next += 1;
            out.push(ev);
        }
        w.open_table(META)?.insert(NEXT_EVENT, state.next)?;
    }
    for op in work {
        match op {
            OutboxOp::Publish(..) => unreachable!("publications are events"),
            OutboxOp::Cursor(endpoint, seq) => {
                w.open_table(WEBHOOK_CURSORS)?.insert(endpoint.as_str(), seq)?;
                state.cursors.insert(endpoint, seq);
            }
            OutboxOp::Park(mut p) => {
                let mut t = w.open_table(WEBHOOK_PARKED)?;
                p.id = t.last()?.map_or(1, |(k, _)| k.value() + 1);
                t.insert(p.id, serde_json::to_vec(&p).unwrap_or_default().as_slice())?;
            }
            OutboxOp::Backoff(endpoint, b) => {
                let mut t = w.open_table(WEBHOOK_BACKOFF)?;
                match b {
                    Some(b) => {
                        t.insert(endpoint.as_str(), serde_json::to_vec(&b).unwrap_or_default().as_slice())?;
                    }
                    None => {
                        t.remove(endpoint.as_str())?;
                    }
                }
            }
            OutboxOp::Text(rec) => {
                let mut t = w.open_table(TEXTS)?;
                let n = t.range((rec.callback_id, 0)..=(rec.callback_id, u32::MAX))?.next_back().transpose()?.map_or(1, |(k, _)| k.value().1 + 1);
                t.insert((rec.callback_id, n), serde_json::to_vec(&rec).unwrap_or_default().as_slice())?;
            }
            OutboxOp::Retried(id, outcome, _) => {
                let mut t = w.open_table(WEBHOOK_PARKED)?;
                let found = t.get(id)?.and_then(|v| serde_json::from_slice::<Parked>(v.value()).ok());
                match (outcome, found) {
                    (_, None) => {}
                    (RetryOutcome::Delivered, Some(_)) => {
                        t.remove(id)?;
                    }
                    (RetryOutcome::Failed { at, error }, Some(mut p)) => {
                        p.failures += 1;
                        p.last_failure = at;
                        p.last_error = error;
                        t.insert(id, serde_json::to_vec(&p).unwrap_or_default().as_slice())?;
                    }
                }
            }
        }
    }
    let limit = state.prune_limit();
    if limit > state.first && state.next - state.first > state.retain + (PRUNE_CHUNK / 4).min(state.retain) {
        let upto = limit.min(state.first + PRUNE_CHUNK);
        let mut t = w.open_table(OUTBOX)?;
        for seq in state.first..upto {
            t.remove(seq)?;
        }
        tracing::debug!(from = state.first, upto, "outbox pruned");
        state.first = upto;
    }
    Ok(out)
}

const EVENT_VERSION: u8 = 1;

fn blob(w: &mut Writer, b: &[u8]) {
    w.var(b.len() as u64);
    w.0.extend_from_slice(b);
}

fn read_blob<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let n = r.var()? as usize;
    if r.0.len() < n {
        return Err(DecodeError::Truncated);
    }
    let (b, rest) = r.0.split_at(n);
    r.0 = rest;
    Ok(b)
}

/// An agent's snapshot as stored.
#[derive(Serialize, Deserialize)]
struct AgentRow {
    id: String,
    state: String,
    queues: Vec<String>,
    registrations: Vec<(String, Millis)>,
    reserved_for: Option<String>,
}

/// A trunk's state as stored (the registration's remaining time as of the event).
#[derive(Serialize, Deserialize)]
struct TrunkRow {
    name: String,
    register: bool,
    registered: bool,
    expires_in_ms: Option<u64>,
    up: bool,
    last_error: Option<String>,
}

/// `[version][kind][at][payload tag][payload]`.
pub fn encode_event(ev: &Event) -> Vec<u8> {
    let mut w = Writer::with_capacity(160);
    w.u8(EVENT_VERSION);
    w.u8(Kind::ALL.iter().position(|k| *k == ev.kind).unwrap_or(0) as u8);
    w.time(ev.at);
    match &ev.payload {
        Payload::Callback(c) => {
            w.u8(0);
            blob(&mut w, &encode_callback(c));
        }
        Payload::AttemptStarted { callback, attempt } => {
            w.u8(1);
            w.var(u64::from(*attempt));
            blob(&mut w, &encode_callback(callback));
        }
        Payload::AttemptEnded { callback, attempt } => {
            w.u8(2);
            blob(&mut w, &encode_attempt(attempt));
            blob(&mut w, &encode_callback(callback));
        }
        Payload::Agent(a) => {
            w.u8(3);
            let row = AgentRow {
                id: a.id.clone(),
                state: a.state.as_str().into(),
                queues: a.queues.clone(),
                registrations: a.registrations.iter().map(|r| (r.contact.clone(), r.expires_at)).collect(),
                reserved_for: a.reserved_for.clone(),
            };
            blob(&mut w, &serde_json::to_vec(&row).unwrap_or_default());
        }
        Payload::Trunk(t) => {
            w.u8(4);
            let now = Instant::now();
            let row = TrunkRow {
                name: t.name.clone(),
                register: t.register,
                registered: t.registered,
                expires_in_ms: t.expires_at.map(|e| e.saturating_duration_since(now).as_millis() as u64),
                up: t.up,
                last_error: t.last_error.clone(),
            };
            blob(&mut w, &serde_json::to_vec(&row).unwrap_or_default());
        }
        Payload::Text(t) => {
            w.u8(5);
            blob(&mut w, &serde_json::to_vec(&**t).unwrap_or_default());
        }
    }
    w.0
}

pub fn decode_event(seq: u64, b: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader(b);
    let v = r.u8()?;
    if v != EVENT_VERSION {
        return Err(DecodeError::Version(v));
    }
    let k = r.u8()?;
    let kind = *Kind::ALL.get(k as usize).ok_or(DecodeError::Code("event kind", k))?;
    let at = r.time()?;
    let tag = r.u8()?;
    let payload = match tag {
        0 => Payload::Callback(Box::new(decode_callback(read_blob(&mut r)?)?)),
        1 => {
            let attempt = r.var()? as u32;
            Payload::AttemptStarted { attempt, callback: Box::new(decode_callback(read_blob(&mut r)?)?) }
        }
        2 => {
            let attempt = Box::new(decode_attempt(read_blob(&mut r)?)?);
            Payload::AttemptEnded { attempt, callback: Box::new(decode_callback(read_blob(&mut r)?)?) }
        }
        3 => {
            let row: AgentRow = serde_json::from_slice(read_blob(&mut r)?).map_err(|_| DecodeError::Code("agent row", 3))?;
            let state = AgentState::ALL.iter().copied().find(|s| s.as_str() == row.state).ok_or(DecodeError::Code("agent state", 0))?;
            Payload::Agent(Box::new(AgentInfo {
                id: row.id,
                state,
                queues: row.queues,
                registrations: row.registrations.into_iter().map(|(contact, expires_at)| Registration { contact, expires_at }).collect(),
                reserved_for: row.reserved_for,
            }))
        }
        4 => {
            let row: TrunkRow = serde_json::from_slice(read_blob(&mut r)?).map_err(|_| DecodeError::Code("trunk row", 4))?;
            Payload::Trunk(Box::new(TrunkStatus {
                name: row.name,
                register: row.register,
                registered: row.registered,
                expires_at: row.expires_in_ms.map(|ms| Instant::now() + Duration::from_millis(ms)),
                up: row.up,
                last_error: row.last_error,
            }))
        }
        5 => Payload::Text(Box::new(serde_json::from_slice(read_blob(&mut r)?).map_err(|_| DecodeError::Code("text row", 5))?)),
        other => return Err(DecodeError::Code("event payload", other)),
    };
    Ok(Event { seq, kind, at, payload, rendered: Default::default() })
}

impl Outbox for RedbBook {
    fn publish(&self, kind: Kind, at: Millis, payload: Payload) {
        self.send_outbox(OutboxOp::Publish(kind, at, payload));
    }

    fn after(&self, after: u64, limit: usize) -> OutboxFuture<'_, Result<Vec<Event>, StoreError>> {
        ready(self.after_now(after, limit))
    }

    fn next_seq(&self) -> OutboxFuture<'_, Result<u64, StoreError>> {
        ready(Ok(self.events_next.load(Ordering::Acquire)))
    }

    fn cursor<'a>(&'a self, endpoint: &'a str) -> OutboxFuture<'a, Result<Option<u64>, StoreError>> {
        ready(self.cursor_now(endpoint))
    }

    fn save_cursor(&self, endpoint: &str, seq: u64) {
        self.send_outbox(OutboxOp::Cursor(endpoint.to_string(), seq));
    }

    fn park(&self, parked: Parked) {
        self.send_outbox(OutboxOp::Park(parked));
    }

    fn save_backoff(&self, endpoint: &str, backoff: Option<Backoff>) {
        self.send_outbox(OutboxOp::Backoff(endpoint.to_string(), backoff));
    }

    fn backoff<'a>(&'a self, endpoint: &'a str) -> OutboxFuture<'a, Result<Option<Backoff>, StoreError>> {
        ready(self.backoff_now(endpoint))
    }

    fn parked(&self, limit: usize, after: Option<u64>) -> OutboxFuture<'_, Result<Vec<Parked>, StoreError>> {
        ready(self.parked_now(limit, after))
    }

    fn parked_get(&self, id: u64) -> OutboxFuture<'_, Result<Option<Parked>, StoreError>> {
        ready(self.parked_get_now(id))
    }

    fn parked_count(&self) -> OutboxFuture<'_, Result<u64, StoreError>> {
        ready(self.parked_count_now())
    }

    fn record_text(&self, text: TextRecord) {
        self.send_outbox(OutboxOp::Text(text));
    }

    fn texts(&self, callback: u64) -> OutboxFuture<'_, Result<Vec<TextRecord>, StoreError>> {
        ready(self.texts_now(callback))
    }

    fn retried(&self, id: u64, outcome: RetryOutcome) -> OutboxFuture<'_, Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send_outbox(OutboxOp::Retried(id, outcome, tx));
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
        })
    }
}

/// The outbox's reads: redb reads are short and never wait for the writer,
/// so they run where they are asked.
impl RedbBook {
    fn after_now(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let r = self.db.begin_read()?;
        let t = match r.open_table(OUTBOX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.range(after.saturating_add(1)..)?.take(limit) {
            let (k, v) = row?;
            let seq = k.value();
            // A record this build cannot read is reported, not skipped silently.
            let ev = decode_event(seq, v.value()).map_err(|source| StoreError::Decode { id: CallbackId(0), source })?;
            out.push(ev);
        }
        Ok(out)
    }

    fn cursor_now(&self, endpoint: &str) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read()?;
        match r.open_table(WEBHOOK_CURSORS) {
            Ok(t) => Ok(t.get(endpoint)?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn backoff_now(&self, endpoint: &str) -> Result<Option<Backoff>, StoreError> {
        let r = self.db.begin_read()?;
        match r.open_table(WEBHOOK_BACKOFF) {
            // A record this build cannot read is dropped: the head is then tried at once.
            Ok(t) => Ok(t.get(endpoint)?.and_then(|v| serde_json::from_slice(v.value()).ok())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn parked_now(&self, limit: usize, after: Option<u64>) -> Result<Vec<Parked>, StoreError> {
        let r = self.db.begin_read()?;
        let t = match r.open_table(WEBHOOK_PARKED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.range(after.map_or(0, |a| a + 1)..)?.take(limit) {
            let (_, v) = row?;
            if let Ok(p) = serde_json::from_slice::<Parked>(v.value()) {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn parked_get_now(&self, id: u64) -> Result<Option<Parked>, StoreError> {
        let r = self.db.begin_read()?;
        match r.open_table(WEBHOOK_PARKED) {
            Ok(t) => Ok(t.get(id)?.and_then(|v| serde_json::from_slice(v.value()).ok())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn parked_count_now(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read()?;
        match r.open_table(WEBHOOK_PARKED) {
            Ok(t) => Ok(t.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn texts_now(&self, callback: u64) -> Result<Vec<TextRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let t = match r.open_table(TEXTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.range((callback, 0)..=(callback, u32::MAX))? {
            let (_, v) = row?;
            if let Ok(rec) = serde_json::from_slice(v.value()) {
                out.push(rec);
            }
        }
        Ok(out)
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::{Attempt, Outcome};

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("o.redb")).unwrap();
        (dir, db)
    }

    fn trunk(name: &str) -> (Kind, Millis, Payload) {
        let t = TrunkStatus { name: name.into(), register: true, registered: true, expires_at: None, up: false, last_error: Some("408".into()) };
        (Kind::TrunkState, 5, Payload::Trunk(Box::new(t)))
    }

    fn write(db: &Database, state: &mut State, events: Vec<(Kind, Millis, Payload)>, work: Vec<OutboxOp>) -> Vec<Event> {
        let w = db.begin_write().unwrap();
        let out = append(&w, state, events, work).unwrap();
        w.commit().unwrap();
        out
    }

    fn stored(db: &Database) -> Vec<u64> {
        let r = db.begin_read().unwrap();
        let t = r.open_table(OUTBOX).unwrap();
        t.iter().unwrap().map(|e| e.unwrap().0.value()).collect()
    }

    #[tokio::test]
    async fn a_change_is_in_the_outbox_when_acknowledged_and_every_payload_round_trips() {
        use crate::clock::FakeClock;
        use crate::config::Config;
        use crate::scheduler::model::NewCallback;
        use crate::scheduler::store::BookOptions;
        let dir = tempfile::tempdir().unwrap();
        let book = RedbBook::open(dir.path().join("b.redb"), Arc::new(FakeClock::new(1_000)), Arc::new(Config::defaults()), BookOptions::default()).unwrap();
        let req = NewCallback { phone: "+15550001".into(), queue: "default".into(), ..Default::default() };
        let cb = book.schedule(req, None).await.unwrap();
        // No flush: the answer itself means the event is committed.
        let evs = book.after(0, 10).await.unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!((evs[0].seq, evs[0].kind, evs[0].at), (1, Kind::CallbackCreated, 1_000));
        assert!(matches!(&evs[0].payload, Payload::Callback(c) if **c == cb));
        assert_eq!(book.next_seq().await.unwrap(), 2);

        let attempt = Attempt { attempt: 2, started_at: 1, ended_at: 9, outcome: Outcome::Busy, sip_status: Some(486), amd: None, agent: Some("alice".into()), note: None, timeline: Default::default() };
        let agent = AgentInfo {
            id: "alice".into(),
            state: AgentState::Away,
            queues: vec!["support".into()],
            registrations: vec![Registration { contact: "sip:alice@127.0.0.1".into(), expires_at: 77 }],
            reserved_for: Some("cb_x".into()),
        };
        let payloads = [
            (Kind::AttemptStarted, Payload::AttemptStarted { callback: Box::new(cb.clone()), attempt: 3 }),
            (Kind::AttemptEnded, Payload::AttemptEnded { callback: Box::new(cb.clone()), attempt: Box::new(attempt) }),
            (Kind::AgentState, Payload::Agent(Box::new(agent))),
            (Kind::TrunkState, trunk("carrier").2),
            (
                Kind::SmsReceived,
                Payload::Text(Box::new(crate::sms::InboundText { at: 7, trunk: "carrier".into(), from: "+15557654321".into(), to: "+15550100".into(), text: "STOP ✋".into() })),
            ),
        ];
        for (kind, payload) in payloads {
            let ev = Event { seq: 42, kind, at: -3, payload, rendered: Default::default() };
            let back = decode_event(42, &encode_event(&ev)).unwrap();
            assert_eq!((back.seq, back.kind, back.at), (42, kind, -3));
            match (&ev.payload, &back.payload) {
                (Payload::AttemptStarted { callback: a, attempt: n }, Payload::AttemptStarted { callback: b, attempt: m }) => assert_eq!((a, n), (b, m)),
                (Payload::AttemptEnded { callback: a, attempt: x }, Payload::AttemptEnded { callback: b, attempt: y }) => assert_eq!((a, x), (b, y)),
                (Payload::Agent(a), Payload::Agent(b)) => assert_eq!(a, b),
                (Payload::Trunk(a), Payload::Trunk(b)) => assert_eq!((&a.name, a.up, &a.last_error), (&b.name, b.up, &b.last_error)),
                (Payload::Text(a), Payload::Text(b)) => assert_eq!(a, b),
                (a, b) => panic!("{a:?} came back as {b:?}"),
            }
        }
        assert!(decode_event(1, &[9, 0]).is_err(), "a newer format is refused");
    }

    #[test]
    fn sequences_continue_and_pruning_waits_for_every_endpoint() {
        let (_d, db) = db();
        let mut st = State::read(&db, vec!["http://a".into(), "http://b".into()]).unwrap();
        st.retain = 4;
        let at_start = vec![OutboxOp::Cursor("http://a".into(), 0), OutboxOp::Cursor("http://b".into(), 0)];
        let evs = write(&db, &mut st, (0..10).map(|i| trunk(&i.to_string())).collect(), at_start);
        assert_eq!(stored(&db).len(), 10, "nothing an endpoint still needs is pruned");
        assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
        // Endpoint a is at 8, b has not got past 2: only 1..=2 may go.
        write(&db, &mut st, vec![trunk("x")], vec![OutboxOp::Cursor("http://a".into(), 8), OutboxOp::Cursor("http://b".into(), 2)]);
        assert_eq!(stored(&db), (3..=11).collect::<Vec<_>>());
        // b catches up: the newest `retain` stay.
        write(&db, &mut st, vec![trunk("y")], vec![OutboxOp::Cursor("http://b".into(), 11)]);
        assert_eq!(stored(&db), (9..=12).collect::<Vec<_>>());
        // Reopened: the sequence and cursors are read back.
        let st2 = State::read(&db, vec![]).unwrap();
        assert_eq!((st2.next, st2.first, st2.cursors.get("http://b").copied()), (13, 9, Some(11)));
    }

    #[test]
    fn a_parked_delivery_stays_until_a_retry_delivers_it() {
        let (_d, db) = db();
        let mut st = State::read(&db, vec![]).unwrap();
        let p = Parked { id: 0, endpoint: "http://a".into(), seq: 7, kind: "callback.created".into(), body: b"{}".to_vec(), failures: 40, first_failure: 1, last_failure: 2, last_error: "HTTP 500".into() };
        write(&db, &mut st, vec![], vec![OutboxOp::Park(p.clone()), OutboxOp::Park(p.clone())]);
        let read = |db: &Database| -> Vec<Parked> {
            let r = db.begin_read().unwrap();
            let t = r.open_table(WEBHOOK_PARKED).unwrap();
            t.iter().unwrap().map(|e| serde_json::from_slice(e.unwrap().1.value()).unwrap()).collect()
        };
        assert_eq!(read(&db).iter().map(|p| p.id).collect::<Vec<_>>(), vec![1, 2]);
        let (tx, _rx) = oneshot::channel();
        write(&db, &mut st, vec![], vec![OutboxOp::Retried(1, RetryOutcome::Failed { at: 99, error: "refused".into() }, tx)]);
        let after = read(&db);
        assert_eq!((after[0].failures, after[0].last_failure, after[0].last_error.as_str()), (41, 99, "refused"));
        let (tx, _rx) = oneshot::channel();
        write(&db, &mut st, vec![], vec![OutboxOp::Retried(1, RetryOutcome::Delivered, tx)]);
        assert_eq!(read(&db).iter().map(|p| p.id).collect::<Vec<_>>(), vec![2]);
    }
}
