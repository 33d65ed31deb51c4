//! The `Book` additions of issues 6 and 8 at the store level (fake clock,
//! no HTTP): skip when reached, find_active, one active callback per live
//! interaction, `when` resolution at the writer's clock, attempt timelines.

#[path = "scheduler_util.rs"]
mod util;

use redial::scheduler::model::{AttemptOutcome, EndReason, NewCallback, Outcome, Status, Timeline};
use redial::scheduler::store::ScheduleError;
use redial::scheduler::when::WhenResolution;
use util::*;

#[tokio::test]
async fn skip_reached_ends_scheduled_only_and_counts() {
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let a = h.schedule_at("+15550100", MONDAY_NOON + HOUR).await;
    assert_eq!(h.book().find_active("+15550100", "q").await.unwrap().map(|c| c.id), Some(a.id));
    assert_eq!(h.book().find_active("+15550100", "default").await.unwrap(), None);
    // Another queue, or nobody scheduled: nothing to skip.
    assert_eq!(h.book().skip_reached("+15550100", "default", "inb-1").await.unwrap(), None);
    assert_eq!(h.book().skip_reached("+15550199", "q", "inb-1").await.unwrap(), None);

    h.clock.advance(MIN);
    let s = h.book().skip_reached("+15550100", "q", "inb-2").await.unwrap().expect("skipped");
    assert_eq!((s.id, s.status, s.end_reason, s.skipped_by.as_deref()), (a.id, Status::Skipped, Some(EndReason::Reached), Some("inb-2")));
    assert_eq!(s.updated_at, MONDAY_NOON + MIN);
    // Durable, final, frees the phone+queue, counted.
    assert_eq!(h.get(a.id).await, s);
    assert_eq!(h.book().find_active("+15550100", "q").await.unwrap(), None);
    assert_eq!(h.book().skip_reached("+15550100", "q", "inb-3").await.unwrap(), None);
    assert_eq!(h.book().stats(Some("q")).await.unwrap().skipped, 1);
    assert_eq!(h.book().stats(None).await.unwrap().pending, 0);
    // It never fires.
    h.clock.advance(2 * HOUR);
    assert!(h.fire_all().await.is_empty());
    h.assert_consistent().await;

    // An in_progress callback is being dialled: left alone.
    let b = h.schedule_at("+15550100", h.now() + 2 * MIN).await;
    h.clock.advance(3 * MIN);
    assert_eq!(ids(&h.fire_all().await), vec![b.id]);
    assert_eq!(h.book().skip_reached("+15550100", "q", "inb-4").await.unwrap(), None);
    assert_eq!(h.get(b.id).await.status, Status::InProgress);
    assert_eq!(h.book().find_active("+15550100", "q").await.unwrap().map(|c| c.status), Some(Status::InProgress));

    // Survives a reopen.
    let mut h = h;
    h.reopen();
    assert_eq!(h.get(a.id).await.status, Status::Skipped);
    assert_eq!(h.book().stats(Some("q")).await.unwrap().skipped, 1);
    h.assert_consistent().await;
}

#[tokio::test]
async fn attempt_timeline_round_trips_through_report_outcome() {
    let mut h = Harness::new(MONDAY_NOON, config(|_| {}));
    let c = h.schedule_at("+15550200", MONDAY_NOON + 2 * MIN).await;
    h.clock.advance(2 * MIN);
    let d = h.fire_all().await;
    assert_eq!(ids(&d), vec![c.id]);
    let t0 = h.now();
    let timeline = Timeline {
        dialed_at: Some(t0 + 20),
        ringing_at: Some(t0 + 900),
        answered_at: Some(t0 + 4_000),
        amd_at: Some(t0 + 6_100),
        agent_ringing_at: Some(t0 + 6_150),
        agent_answered_at: Some(t0 + 8_000),
        bridged_at: Some(t0 + 8_010),
    };
    h.clock.advance(30_000);
    let o = AttemptOutcome { sip_status: Some(200), agent: Some("alice".into()), timeline, ..AttemptOutcome::new(Outcome::Human) };
    let done = h.book().report_outcome(c.id, 1, o).await.unwrap();
    assert_eq!(done.status, Status::Completed);
    let a = h.book().attempts(c.id).await.unwrap().unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].timeline, timeline);
    assert_eq!((a[0].started_at, a[0].ended_at), (t0, t0 + 30_000));

    // A partial timeline, and `AttemptOutcome::new`'s empty one.
    let c2 = h.schedule_at("+15550201", h.now() + 2 * MIN).await;
    h.clock.advance(2 * MIN);
    h.fire_all().await;
    let partial = Timeline { dialed_at: Some(h.now() + 5), ringing_at: Some(h.now() + 700), ..Timeline::default() };
    let o = AttemptOutcome { sip_status: Some(408), timeline: partial, ..AttemptOutcome::new(Outcome::NoAnswer) };
    assert_eq!(h.book().report_outcome(c2.id, 1, o).await.unwrap().status, Status::Scheduled);
    h.clock.advance(11 * MIN);
    h.fire_all().await;
    h.book().report_outcome(c2.id, 2, AttemptOutcome::new(Outcome::Busy)).await.unwrap();
    h.reopen();
    let a2 = h.book().attempts(c2.id).await.unwrap().unwrap();
    assert_eq!(a2.iter().map(|a| a.timeline).collect::<Vec<_>>(), vec![partial, Timeline::default()]);
    assert_eq!(h.book().attempts(c.id).await.unwrap().unwrap()[0].timeline, timeline);
    h.assert_consistent().await;
}

#[tokio::test]
async fn one_active_callback_per_live_interaction() {
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let live = |phone: &str| NewCallback {
        phone: phone.into(),
        queue: "q".into(),
        interaction_id: Some("call-1".into()),
        unique_interaction: true,
        default_delay_ms: Some(30 * MIN),
        ..Default::default()
    };
    let a = h.book().schedule(live("+15550300")).await.unwrap();
    // Live default: now + 30 min (the queue is always open).
    assert_eq!(a.due_at, MONDAY_NOON + 30 * MIN);
    match h.book().schedule(live("+15550301")).await {
        Err(ScheduleError::DuplicateInteraction { existing_id }) => assert_eq!(existing_id, a.id),
        other => panic!("{other:?}"),
    }
    // Without the live rule the same interaction id is just stored.
    let plain = NewCallback { unique_interaction: false, default_delay_ms: None, ..live("+15550302") };
    let b = h.book().schedule(plain).await.unwrap();
    assert_eq!(b.interaction_id.as_deref(), Some("call-1"));
    h.assert_consistent().await;
    // Once both end, the interaction may book again.
    h.book().cancel(a.id).await.unwrap();
    h.book().cancel(b.id).await.unwrap();
    let c = h.book().schedule(live("+15550301")).await.unwrap();
    assert_eq!(c.status, Status::Scheduled);
    h.assert_consistent().await;
}

#[tokio::test]
async fn when_is_resolved_at_the_writers_clock() {
    // Queue q: always open, UTC, retry_delay 10 min.
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let req = |phone: &str, when: &str, tz: Option<&str>| NewCallback {
        phone: phone.into(),
        queue: "q".into(),
        when: Some(when.into()),
        timezone: tz.map(str::to_string),
        ..Default::default()
    };
    let a = h.book().schedule(req("+15550400", "in half an hour", None)).await.unwrap();
    assert_eq!((a.due_at, a.when_resolution, a.when.as_deref()), (MONDAY_NOON + 30 * MIN, Some(WhenResolution::Exact), Some("in half an hour")));
    // 2026-03-03 10:00 in Kolkata (+05:30) = 04:30 UTC.
    let b = h.book().schedule(req("+15550401", "kal subah", Some("Asia/Kolkata"))).await.unwrap();
    assert_eq!((b.due_at, b.when_resolution), (utc("2026-03-03T04:30:00Z"), Some(WhenResolution::Approximate)));
    assert_eq!(b.timezone, "Asia/Kolkata");
    let c = h.book().schedule(req("+15550402", "not now, busy", None)).await.unwrap();
    assert_eq!((c.due_at, c.when_resolution), (MONDAY_NOON + 10 * MIN, Some(WhenResolution::Fallback)));
    // "in 1 minute" is exactly the 60 s minimum: accepted.
    let d = h.book().schedule(req("+15550403", "in 1 minute", None)).await.unwrap();
    assert_eq!(d.due_at, MONDAY_NOON + MIN);
    // Beyond 30 days: the usual rule.
    let e = h.book().schedule(req("+15550404", "in 45 days", None)).await.unwrap_err();
    assert_eq!(e.code(), "too_late");
}

/// A scheduled callback moved to another queue takes its indexes and its
/// counters along, keeps its place in time (clipped to the new window), is
/// refused where the phone already has an active callback or the owner does
/// not serve the new queue, and then fires from its new queue.
#[tokio::test]
async fn moving_to_another_queue_carries_indexes_and_counters() {
    use redial::scheduler::engine::rules::RuleError;
    use redial::scheduler::model::CallbackChanges;
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let a = h.schedule_at("+15550300", MONDAY_NOON + HOUR).await;
    let to = |q: &str| CallbackChanges { queue: Some(q.into()), ..Default::default() };

    let moved = h.book().reschedule(a.id, to("default")).await.unwrap();
    assert_eq!((moved.queue.as_str(), moved.status, moved.due_at), ("default", Status::Scheduled, MONDAY_NOON + HOUR));
    assert_eq!(h.book().find_active("+15550300", "q").await.unwrap(), None);
    assert_eq!(h.book().find_active("+15550300", "default").await.unwrap().map(|c| c.id), Some(a.id));
    let (q, d) = (h.book().stats(Some("q")).await.unwrap(), h.book().stats(Some("default")).await.unwrap());
    assert_eq!((q.requested, q.pending, d.requested, d.pending), (0, 0, 1, 1));
    assert_eq!(d.avg_delay_s, 3600.0, "the delay moves with it");
    let in_default = h.book().list(&redial::scheduler::book::ListFilter { queue: Some("default".into()), ..Default::default() }, 10, None).await.unwrap();
    assert_eq!(in_default.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a.id]);
    h.assert_consistent().await;

    // The phone is already active in `q` again: moving back collides.
    let b = h.schedule_at("+15550300", MONDAY_NOON + 2 * HOUR).await;
    match h.book().reschedule(a.id, to("q")).await {
        Err(ScheduleError::Rule(RuleError::Duplicate { existing_id })) => assert_eq!(existing_id, b.id),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    // An owner who does not serve the new queue, or a queue that does not exist.
    let owned = h.book().reschedule(b.id, CallbackChanges { owner: Some(Some("alice".into())), ..Default::default() }).await.unwrap();
    h.book().cancel(a.id).await.unwrap();
    assert!(matches!(h.book().reschedule(owned.id, to("default")).await, Err(ScheduleError::Rule(RuleError::OwnerNotInQueue { .. }))));
    assert!(matches!(h.book().reschedule(owned.id, to("nope")).await, Err(ScheduleError::Rule(RuleError::UnknownQueue { .. }))));
    assert_eq!(h.get(owned.id).await.queue, "q", "a refused move changes nothing");

    // Counters survive a reopen; the moved callback fires from its new queue.
    let c = h.schedule_at("+15550301", MONDAY_NOON + 10 * MIN).await;
    h.book().reschedule(c.id, to("default")).await.unwrap();
    let mut h = h;
    h.reopen();
    assert_eq!(h.book().stats(Some("default")).await.unwrap().requested, 2);
    h.clock.advance(11 * MIN);
    let fired = h.fire_all().await;
    assert_eq!(fired.iter().map(|d| (d.callback.id, d.callback.queue.as_str())).collect::<Vec<_>>(), vec![(c.id, "default")]);
    h.assert_consistent().await;
}
