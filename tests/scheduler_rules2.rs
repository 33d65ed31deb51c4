//! The callback rules of turn 2 with a fake clock: several owners, the
//! preferred owner mode, the ownership bounds and booking horizon, declines,
//! follow-ups and the counters by origin.

#[path = "scheduler_util.rs"]
mod util;

use std::time::Duration;

use redial::config::OwnershipExpiry;
use redial::scheduler::engine::rules::RuleError;
use redial::scheduler::model::{
    AttemptOutcome, CallbackChanges, Confidence, EndReason, NewCallback, Origin, Outcome, OwnerMode, Status, TimezoneSource,
};
use redial::scheduler::store::{ListFilter, ScheduleError};
use util::*;

fn rule(e: ScheduleError) -> RuleError {
    match e {
        ScheduleError::Rule(r) => r,
        other => panic!("expected a rule error, got {other:?}"),
    }
}

fn owned(h: &Harness, owners: &[&str], mode: Option<OwnerMode>) -> NewCallback {
    NewCallback { owners: owners.iter().map(|s| s.to_string()).collect(), owner_mode: mode, ..h.req("+15550001", Some(h.now() + MIN)) }
}

#[tokio::test]
async fn the_first_free_of_several_owners_takes_it() {
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let agents = Agents::new();
    agents.set_owner_free("alice", false);
    agents.set_owner_free("bob", false);
    agents.set_free("q", 5);
    let cb = h.book().schedule(owned(&h, &["alice", "bob"], None)).await.unwrap();
    assert_eq!((cb.owner.as_deref(), cb.owners.len(), cb.owner_mode), (Some("alice"), 2, OwnerMode::Strict));
    assert_eq!(cb.owner_until, Some(cb.due_at + 4 * HOUR));
    // Both listed owners find it.
    for who in ["alice", "bob"] {
        let l = h.book().list(&ListFilter { owner: Some(who.into()), ..Default::default() }, 10, None).await.unwrap();
        assert_eq!(l.items.len(), 1, "{who}");
    }
    h.clock.set(cb.due_at);
    assert!(h.fire(agents.clone()).await.is_empty(), "strict: waits for an owner although the queue has agents");
    agents.set_owner_free("bob", true);
    let d = h.fire(agents.clone()).await;
    assert_eq!((ids(&d), d[0].agent.as_str()), (vec![cb.id], "bob"));
    h.assert_consistent().await;
}

#[tokio::test]
async fn preferred_goes_to_the_queue_at_once_when_no_owner_is_free() {
    let h = Harness::new(MONDAY_NOON, config(|c| c.queues[1].on_ownership_expiry = OwnershipExpiry::Cancel));
    let agents = Agents::new();
    agents.set_owner_free("alice", false);
    agents.set_free("q", 1);
    let cb = h.book().schedule(owned(&h, &["alice"], Some(OwnerMode::Preferred))).await.unwrap();
    h.clock.set(cb.due_at);
    // The owner is busy at the due time: the queue takes it now, whatever
    // the queue does with expired strict ownerships.
    let mut d = h.fire(agents.clone()).await;
    if d.is_empty() {
        d = h.fire(agents.clone()).await;
    }
    assert_eq!((ids(&d), d[0].agent.as_str()), (vec![cb.id], "q-agent"));
    assert_eq!((d[0].callback.owner.as_deref(), d[0].callback.owners.len()), (None, 0));
    h.assert_consistent().await;

    // A free owner at the due time takes it.
    let agents = Agents::new();
    agents.set_owner_free("bob", true);
    agents.set_free("q", 1);
    let cb2 = h.book().schedule(NewCallback { phone: "+15550002".into(), ..owned(&h, &["bob"], Some(OwnerMode::Preferred)) }).await.unwrap();
    h.clock.set(cb2.due_at);
    let d = h.fire(agents.clone()).await;
    assert_eq!((ids(&d), d[0].agent.as_str()), (vec![cb2.id], "bob"));
    h.assert_consistent().await;
}

#[tokio::test]
async fn strict_ownership_expires_to_the_queue_after_the_period_over_days() {
    let h = Harness::new(MONDAY_NOON, config(|c| c.queues[1].ownership_period = Duration::from_secs(2 * 86_400)));
    let agents = Agents::new();
    agents.set_owner_free("alice", false);
    agents.set_owner_free("bob", false);
    agents.set_free("q", 1);
    let cb = h.book().schedule(owned(&h, &["alice", "bob"], Some(OwnerMode::Strict))).await.unwrap();
    assert_eq!(cb.owner_until, Some(cb.due_at + 2 * DAY));
    h.clock.set(cb.due_at + 2 * DAY - 1);
    assert!(h.fire(agents.clone()).await.is_empty());
    h.clock.set(cb.due_at + 2 * DAY);
    let d = h.fire(agents.clone()).await;
    assert_eq!((ids(&d), d[0].agent.as_str()), (vec![cb.id], "q-agent"));
    assert!(d[0].callback.owners.is_empty());
    h.assert_consistent().await;
}

#[tokio::test]
async fn owner_rules_are_validated() {
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let b = h.book();
    let e = rule(b.schedule(owned(&h, &["alice", "zed"], None)).await.unwrap_err());
    assert_eq!((e.code(), e.field()), ("unknown_owner", Some("owners")));
    let e = rule(b.schedule(owned(&h, &["carol"], None)).await.unwrap_err());
    assert_eq!((e.code(), e.field()), ("owner_not_in_queue", Some("owners")));
    let e = rule(b.schedule(NewCallback { owner: Some("alice".into()), ..owned(&h, &["bob"], None) }).await.unwrap_err());
    assert_eq!((e.code(), e.field()), ("conflicting_fields", Some("owners")));
    let e = rule(b.schedule(owned(&h, &[], Some(OwnerMode::Preferred))).await.unwrap_err());
    assert_eq!((e.code(), e.field()), ("owner_mode_without_owner", Some("owner_mode")));
    // Owned: at most 7 days ahead by default (edges included); unowned: 30 days.
    let at = |d: i64| Some(h.now() + d);
    let ok = b.schedule(NewCallback { scheduled_at: at(7 * DAY), ..owned(&h, &["alice"], None) }).await.unwrap();
    b.cancel(ok.id).await.unwrap();
    let e = rule(b.schedule(NewCallback { scheduled_at: at(7 * DAY + 1), ..owned(&h, &["alice"], None) }).await.unwrap_err());
    assert_eq!((e.code(), e.field()), ("beyond_owned_horizon", Some("scheduled_at")));
    let free = b.schedule(h.req("+15550001", at(20 * DAY))).await.unwrap();
    // Reassigning it to an owner that far ahead breaks the same rule.
    let e = rule(b.reschedule(free.id, CallbackChanges { owner: Some(Some("alice".into())), ..Default::default() }).await.unwrap_err());
    assert_eq!(e.code(), "beyond_owned_horizon");
    // caller_name / reason lengths are in characters.
    let e = rule(b.schedule(NewCallback { caller_name: Some("é".repeat(65)), ..h.req("+15550003", None) }).await.unwrap_err());
    assert_eq!((e.code(), e.field()), ("too_long", Some("caller_name")));
    let e = rule(b.schedule(NewCallback { reason: Some("a\nb".into()), ..h.req("+15550003", None) }).await.unwrap_err());
    assert_eq!(e.field(), Some("reason"));
}

#[tokio::test]
async fn ownership_bounds_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for (key, v) in [("ownership_period", "30m"), ("ownership_period", "31d"), ("owned_booking_horizon", "59m")] {
        let p = dir.path().join("redial.toml");
        std::fs::write(&p, format!("[[queues]]\nname = \"q\"\n{key} = \"{v}\"\n")).unwrap();
        let e = redial::config::Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("redial.toml") && e.contains(&format!("queues[0].{key}")) && e.contains("1h to 30d"), "{key} = {v}: {e}");
    }
}

#[tokio::test]
async fn a_decline_ends_the_callback_unless_the_queue_retries_declines() {
    for (retry, want) in [(false, Status::Failed), (true, Status::Scheduled)] {
        let h = Harness::new(MONDAY_NOON, config(|c| c.queues[1].retry_declined = retry));
        let cb = h.book().schedule(h.req("+15550001", None)).await.unwrap();
        let d = h.fire_all().await;
        assert_eq!(ids(&d), vec![cb.id]);
        let o = AttemptOutcome { sip_status: Some(603), ..AttemptOutcome::new(Outcome::Declined) };
        let after = h.book().report_outcome(cb.id, 1, o).await.unwrap();
        assert_eq!(after.status, want, "retry_declined = {retry}");
        assert_eq!(after.end_reason, (!retry).then_some(EndReason::Declined));
        h.assert_consistent().await;
    }
}

#[tokio::test]
async fn a_follow_up_of_the_callback_in_progress_is_not_its_duplicate() {
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let b = h.book();
    let cb = b.schedule(h.req("+15550001", None)).await.unwrap();
    assert_eq!(ids(&h.fire_all().await), vec![cb.id]);
    let next = || NewCallback { follow_up_of: Some(cb.id), origin: Some(Origin::Agent), ..h.req("+15550001", Some(h.now() + HOUR)) };
    // Without naming the live callback it is a duplicate.
    let e = rule(b.schedule(NewCallback { follow_up_of: None, ..next() }).await.unwrap_err());
    assert_eq!(e.code(), "duplicate");
    let f = b.schedule(next()).await.unwrap();
    // Only one follow-up.
    let e = rule(b.schedule(next()).await.unwrap_err());
    assert_eq!(e, RuleError::Duplicate { existing_id: f.id });
    h.assert_consistent().await;
    // The call ends; the follow-up keeps the slot.
    let done = b.report_outcome(cb.id, 1, AttemptOutcome::new(Outcome::Human)).await.unwrap();
    assert_eq!(done.status, Status::Completed);
    let e = rule(b.schedule(h.req("+15550001", None)).await.unwrap_err());
    assert_eq!(e, RuleError::Duplicate { existing_id: f.id });
    h.assert_consistent().await;
    let st = b.stats_by_origin(Some("q"), None).await.unwrap();
    assert_eq!((st.0.requested, st.0.completed, st.0.pending), (2, 1, 1));
    let by = |o: Origin| st.1.iter().find(|(x, _)| *x == o).unwrap().1;
    assert_eq!((by(Origin::Api).completed, by(Origin::Agent).pending, by(Origin::Inbound).requested), (1, 1, 0));
    let only_agent = b.stats_by_origin(None, Some(Origin::Agent)).await.unwrap().0;
    assert_eq!(only_agent.requested, 1);
}

#[tokio::test]
async fn a_retry_beside_a_follow_up_is_not_scheduled_again() {
    let h = Harness::new(MONDAY_NOON, config(|_| {}));
    let b = h.book();
    let cb = b.schedule(h.req("+15550001", None)).await.unwrap();
    h.fire_all().await;
    let f = b.schedule(NewCallback { follow_up_of: Some(cb.id), ..h.req("+15550001", Some(h.now() + HOUR)) }).await.unwrap();
    let after = b.report_outcome(cb.id, 1, AttemptOutcome::new(Outcome::AgentNoAnswer)).await.unwrap();
    assert_eq!(after.status, Status::Cancelled);
    assert_eq!(h.get(f.id).await.status, Status::Scheduled);
    h.assert_consistent().await;
}

#[tokio::test]
async fn new_fields_are_stored_and_returned() {
    let mut h = Harness::new(MONDAY_NOON, config(|_| {}));
    let req = NewCallback {
        caller_name: Some("Acme Support".into()),
        reason: Some("driving".into()),
        confidence: Confidence::from_f64(0.875),
        ..h.req("+15550001", None)
    };
    let cb = h.book().schedule(req).await.unwrap();
    assert_eq!(cb.timezone_source, Some(TimezoneSource::Queue));
    let tz = h.book().schedule(NewCallback { timezone: Some("Europe/Paris".into()), ..h.req("+15550002", None) }).await.unwrap();
    assert_eq!(tz.timezone_source, Some(TimezoneSource::Request));
    h.reopen();
    let back = h.get(cb.id).await;
    assert_eq!((back.caller_name.as_deref(), back.reason.as_deref()), (Some("Acme Support"), Some("driving")));
    assert_eq!(back.confidence.map(Confidence::as_f64), Some(0.875));
    let l = h.book().list(&ListFilter { reason: Some("DRIV".into()), ..Default::default() }, 10, None).await.unwrap();
    assert_eq!(l.items.len(), 1);
    let l = h.book().list(&ListFilter { min_confidence: Confidence::from_f64(0.9), ..Default::default() }, 10, None).await.unwrap();
    assert!(l.items.is_empty());
}

/// Queue `q` in `queue_tz`, always open, with quiet hours 08:00-21:00.
fn quiet(queue_tz: chrono_tz::Tz, infer: bool) -> redial::config::Config {
    config(|c| {
        c.queues[1].timezone = queue_tz;
        c.queues[1].quiet = Some((8 * 60, 21 * 60));
        c.queues[1].infer_timezone = infer;
    })
}

#[tokio::test]
async fn quiet_hours_move_a_due_time_to_their_end_across_dst_changes() {
    for (now, want) in [
        // Saturday 23:00 EST, the night New York springs forward: 08:00 EDT.
        ("2026-03-08T04:00:00Z", "2026-03-08T12:00:00Z"),
        // Saturday 22:00 EDT, the night it falls back: 08:00 EST.
        ("2026-11-01T02:00:00Z", "2026-11-01T13:00:00Z"),
        // 07:59 EST: one minute later.
        ("2026-01-12T12:59:00Z", "2026-01-12T13:00:00Z"),
    ] {
        let h = Harness::new(utc(now), quiet(chrono_tz::UTC, false));
        let req = NewCallback { timezone: Some("America/New_York".into()), ..h.req("+15550001", None) };
        let cb = h.book().schedule(req).await.unwrap();
        assert_eq!(cb.due_at, utc(want), "booked at {now}");
        // Asked for inside quiet hours: moved too.
        let at = NewCallback { timezone: Some("America/New_York".into()), ..h.req("+15550002", Some(utc(now) + 2 * MIN)) };
        assert_eq!(h.book().schedule(at).await.unwrap().due_at, utc(want).max(utc(now) + 2 * MIN), "asked at {now}");
    }
}

#[tokio::test]
async fn quiet_hours_hold_at_dial_time_and_for_retries() {
    // Monday 20:50 EST.
    let h = Harness::new(utc("2026-01-13T01:50:00Z"), quiet(chrono_tz::UTC, false));
    let agents = Agents::new();
    let cb = h.book().schedule(NewCallback { timezone: Some("America/New_York".into()), ..h.req("+15550001", None) }).await.unwrap();
    assert_eq!(cb.due_at, h.now());
    // No agent before 21:00 local: it is not dialled after, but deferred to 08:00.
    assert!(h.fire(agents.clone()).await.is_empty());
    h.clock.set(utc("2026-01-13T02:00:00Z"));
    agents.set_free("q", 1);
    assert!(h.fire(agents.clone()).await.is_empty());
    assert_eq!(h.get(cb.id).await.due_at, utc("2026-01-13T13:00:00Z"));
    // At 08:00 local it goes; a retry that would fall at 21:05 waits for 08:00 again.
    h.clock.set(utc("2026-01-13T13:00:00Z"));
    let d = h.fire(agents.clone()).await;
    assert_eq!(ids(&d), vec![cb.id]);
    h.clock.set(utc("2026-01-14T01:55:00Z"));
    let after = h.book().report_outcome(cb.id, 1, AttemptOutcome::new(Outcome::NoAnswer)).await.unwrap();
    assert_eq!((after.status, after.due_at), (Status::Scheduled, utc("2026-01-14T13:00:00Z")));
    h.assert_consistent().await;
}

#[tokio::test]
async fn the_timezone_is_inferred_from_the_number_when_the_queue_asks() {
    // Monday 10:00 in London, 05:00 in New York.
    let h = Harness::new(utc("2026-01-12T10:00:00Z"), quiet(chrono_tz::Europe::London, true));
    let b = h.book();
    let ny = b.schedule(h.req("+12125550100", None)).await.unwrap();
    assert_eq!((ny.timezone.as_str(), ny.timezone_source), ("America/New_York", Some(TimezoneSource::Number)));
    // The customer's zone, not the queue's, decides the quiet hours: 08:00 in New York.
    assert_eq!(ny.due_at, utc("2026-01-12T13:00:00Z"));
    let uk = b.schedule(h.req("+442071838750", None)).await.unwrap();
    assert_eq!((uk.timezone.as_str(), uk.timezone_source, uk.due_at), ("Europe/London", Some(TimezoneSource::Number), h.now()));
    // An area code spanning zones is not guessed: the queue's zone.
    let idaho = b.schedule(h.req("+12085550100", None)).await.unwrap();
    assert_eq!((idaho.timezone.as_str(), idaho.timezone_source), ("Europe/London", Some(TimezoneSource::Queue)));
    // In such an area code an exchange the numbering data places in one zone
    // is placed exactly (the Florida panhandle's 850-200 is Central time):
    // quiet hours end at 08:00 in Chicago.
    let pensacola = b.schedule(h.req("+18502005555", None)).await.unwrap();
    assert_eq!((pensacola.timezone.as_str(), pensacola.timezone_source), ("America/Chicago", Some(TimezoneSource::Number)));
    assert_eq!(pensacola.due_at, utc("2026-01-12T14:00:00Z"));
    // An exchange the data does not place keeps the queue's zone.
    let unplaced = b.schedule(h.req("+18509995555", None)).await.unwrap();
    assert_eq!((unplaced.timezone.as_str(), unplaced.timezone_source), ("Europe/London", Some(TimezoneSource::Queue)));
    let given = b.schedule(NewCallback { timezone: Some("Asia/Kolkata".into()), ..h.req("+12135550100", None) }).await.unwrap();
    assert_eq!((given.timezone.as_str(), given.timezone_source), ("Asia/Kolkata", Some(TimezoneSource::Request)));
    // Without the queue key nothing is inferred.
    let h2 = Harness::new(utc("2026-01-12T10:00:00Z"), quiet(chrono_tz::Europe::London, false));
    let plain = h2.book().schedule(h2.req("+12125550100", None)).await.unwrap();
    assert_eq!((plain.timezone.as_str(), plain.timezone_source), ("Europe/London", Some(TimezoneSource::Queue)));
}

#[tokio::test]
async fn a_bad_quiet_hours_string_stops_the_start_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("redial.toml");
    for bad in ["8am-9pm", "21:00-08:00", "08:00"] {
        std::fs::write(&p, format!("[compliance]\nquiet_hours = \"{bad}\"\n")).unwrap();
        let e = redial::config::Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("redial.toml") && e.contains("compliance.quiet_hours"), "{bad}: {e}");
    }
    std::fs::write(&p, "[compliance]\nquiet_hours = \"09:00-17:00\"\n[[queues]]\nname = \"night\"\nhours = [\"18:00-23:00\"]\n").unwrap();
    let e = redial::config::Config::load(Some(&p)).unwrap_err().to_string();
    assert!(e.contains("queues[0].hours") && e.contains("quiet_hours"), "{e}");
    std::fs::write(&p, "[compliance]\nquiet_hours = \"08:00-21:00\"\n[[queues]]\nname = \"q\"\ninfer_timezone = true\n").unwrap();
    let cfg = redial::config::Config::load(Some(&p)).unwrap();
    assert_eq!(cfg.queue("q").unwrap().quiet, Some((480, 1260)));
    assert!(cfg.queue("q").unwrap().infer_timezone);
}

#[tokio::test]
async fn a_single_day_queue_refuses_later_days_and_cancels_retries_past_the_close() {
    let h = Harness::new(
        utc("2026-03-02T15:00:00Z"),
        config(|c| {
            c.queues[1].hours = redial::scheduler::window::WeeklyHours::parse(&["09:00-17:00"]).unwrap();
            c.queues[1].window_close = redial::config::WindowClose::Cancel;
            c.queues[1].retry_delay = Duration::from_secs(3600);
        }),
    );
    let b = h.book();
    let e = rule(b.schedule(h.req("+15550001", Some(h.now() + DAY))).await.unwrap_err());
    assert_eq!((e.code(), e.field()), ("single_day_queue", Some("scheduled_at")));
    let e = rule(b.schedule(NewCallback { when: Some("tomorrow at 10am".into()), ..h.req("+15550001", None) }).await.unwrap_err());
    assert_eq!(e.code(), "single_day_queue");
    // Today is fine; a retry that would fall after today's close is cancelled.
    let cb = b.schedule(h.req("+15550001", None)).await.unwrap();
    assert_eq!(ids(&h.fire_all().await), vec![cb.id]);
    let first = b.report_outcome(cb.id, 1, AttemptOutcome::new(Outcome::NoAnswer)).await.unwrap();
    assert_eq!((first.status, first.due_at), (Status::Scheduled, utc("2026-03-02T16:00:00Z")));
    h.clock.set(first.due_at);
    assert_eq!(ids(&h.fire_all().await), vec![cb.id]);
    let second = b.report_outcome(cb.id, 2, AttemptOutcome::new(Outcome::Busy)).await.unwrap();
    assert_eq!((second.status, second.end_reason), (Status::Cancelled, Some(EndReason::WindowClosed)));
    // Moving one to another day is refused too.
    let c2 = b.schedule(h.req("+15550002", None)).await.unwrap();
    let e = rule(b.reschedule(c2.id, CallbackChanges { scheduled_at: Some(Some(h.now() + DAY)), ..Default::default() }).await.unwrap_err());
    assert_eq!(e.code(), "single_day_queue");
    h.assert_consistent().await;
}

#[tokio::test]
async fn a_caller_who_hung_up_waiting_gets_a_callback_keeping_their_place() {
    let h = Harness::new(MONDAY_NOON, config(|c| c.queues[1].abandoned_callback_after = Some(Duration::from_secs(30))));
    let q = h.cfg.queue("q").unwrap().clone();
    let now = h.now();
    use redial::ops::abandoned::caller_left;
    // Waited 29 s, or no number: nothing.
    assert!(caller_left(h.book(), &q, Some("+15550001"), "call_1", now - 29_000, now).await.is_none());
    assert!(caller_left(h.book(), &q, None, "call_2", now - 60_000, now).await.is_none());
    // Waited 30 s: a queue callback due from when they joined.
    let cb = caller_left(h.book(), &q, Some("+15550001"), "call_3", now - 30_000, now).await.unwrap();
    assert_eq!((cb.origin, cb.owner.as_deref(), cb.due_at, cb.status), (Origin::Abandoned, None, now - 30_000, Status::Scheduled));
    // One is active: not a second.
    assert!(caller_left(h.book(), &q, Some("+15550001"), "call_4", now - 90_000, now).await.is_none());
    // A queue without the key never calls back.
    let plain = h.cfg.queue("default").unwrap().clone();
    assert!(caller_left(h.book(), &plain, Some("+15550002"), "call_5", now - 3_600_000, now).await.is_none());
    let st = h.book().stats_by_origin(Some("q"), Some(Origin::Abandoned)).await.unwrap().0;
    assert_eq!(st.requested, 1);
    h.assert_consistent().await;
}
