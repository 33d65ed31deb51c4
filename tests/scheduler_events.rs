//! Every committed change to a callback or an attempt is published once on
//! the event bus, in commit order, with the committed record; refused
//! changes publish nothing.

#[path = "scheduler_util.rs"]
mod util;

use std::sync::Arc;

use redial::clock::Clock;
use redial::events::{Bus, Event, Kind, Payload};
use redial::scheduler::model::{AttemptOutcome, CallbackChanges, Outcome, Status};
use redial::scheduler::book::Book;
use tokio::sync::broadcast;
use util::*;

fn open(h: &Harness, bus: &Arc<Bus>) -> Arc<dyn Book> {
    let clock: Arc<dyn Clock> = Arc::new(h.clock.clone());
    open_book(&h.path(), clock, h.cfg.clone(), Some(bus.clone())).expect("open")
}

fn drain(rx: &mut broadcast::Receiver<Arc<Event>>) -> Vec<Arc<Event>> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

fn kinds(evs: &[Arc<Event>]) -> Vec<&'static str> {
    evs.iter().map(|e| e.kind.name()).collect()
}

#[tokio::test]
async fn a_callbacks_life_is_published_once_per_change_in_order() {
    let mut h = Harness::new(MONDAY_NOON, config(|_| {}));
    h.book = None;
    let bus = Arc::new(Bus::new());
    let mut rx = bus.subscribe();
    let book = open(&h, &bus);

    let cb = book.schedule(h.req("+15550001", Some(MONDAY_NOON + HOUR))).await.unwrap();
    let evs = drain(&mut rx);
    assert_eq!(kinds(&evs), ["callback.created"], "the answer comes after the event");
    let Payload::Callback(c) = &evs[0].payload else { panic!() };
    assert_eq!(**c, cb);
    assert_eq!(evs[0].queue(), Some("q"));

    // A refused change publishes nothing.
    assert!(book.schedule(h.req("+15550001", None)).await.is_err());
    assert!(drain(&mut rx).is_empty());

    let changes = CallbackChanges { notes: Some(Some("call after lunch".into())), scheduled_at: Some(Some(MONDAY_NOON + 2 * MIN)), ..Default::default() };
    book.reschedule(cb.id, changes).await.unwrap();
    h.clock.advance(2 * MIN);
    let fired = {
        let t = book.tick(Arc::new(redial::scheduler::engine::Unlimited), 10).await.unwrap();
        t.dispatches
    };
    assert_eq!(fired.len(), 1);
    book.report_outcome(cb.id, 1, AttemptOutcome::new(Outcome::Busy)).await.unwrap();
    let evs = drain(&mut rx);
    assert_eq!(kinds(&evs), ["callback.updated", "callback.in_progress", "attempt.started", "attempt.ended", "callback.updated"]);
    let Payload::AttemptStarted { attempt, callback } = &evs[2].payload else { panic!() };
    assert_eq!((*attempt, callback.status), (1, Status::InProgress));
    let Payload::AttemptEnded { attempt, callback } = &evs[3].payload else { panic!() };
    assert_eq!((attempt.outcome, callback.status), (Outcome::Busy, Status::Scheduled), "a busy line is retried");
    assert!(evs.windows(2).all(|w| w[1].seq == w[0].seq + 1), "sequence numbers without gaps");

    book.cancel(cb.id).await.unwrap();
    let evs = drain(&mut rx);
    assert_eq!(kinds(&evs), ["callback.cancelled"]);
    assert_eq!(evs[0].callback_id(), Some(cb.id));
}

#[tokio::test]
async fn an_attempt_closed_at_restart_is_published_as_ended() {
    let mut h = Harness::new(MONDAY_NOON, config(|_| {}));
    let cb = h.book().schedule(h.req("+15550002", None)).await.unwrap();
    assert_eq!(h.fire_all().await.len(), 1);
    // The process dies with the attempt in progress.
    h.book = None;
    let bus = Arc::new(Bus::new());
    let mut rx = bus.subscribe();
    let _book = open(&h, &bus);
    let evs = drain(&mut rx);
    assert_eq!(kinds(&evs), ["attempt.ended", "callback.updated"]);
    assert_eq!(evs[0].kind, Kind::AttemptEnded);
    assert_eq!(evs[1].callback().map(|c| (c.id, c.status)), Some((cb.id, Status::Scheduled)));
}
