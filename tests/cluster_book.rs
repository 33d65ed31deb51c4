//! The book's contract against the PostgreSQL backend: the same test files
//! as the redb book (`scheduler_rules`, `scheduler_rules2`,
//! `scheduler_events`, `scheduler_prop`), compiled into this target, where `open_book` opens a
//! PostgreSQL book (a throw-away server run as an unprivileged user; each
//! book in a schema of its own). Missing PostgreSQL binaries fail the tests
//! with the package to install; nothing is skipped.
//!
//! Not here: `scheduler_crash` SIGKILLs a child holding a redb file and
//! checks redb's own recovery (its PostgreSQL counterpart is the cluster
//! SIGKILL test); `a_newer_schema_is_refused_with_a_clear_error` in
//! `scheduler_rules` writes a redb file by hand, so it checks redb here too.

#[path = "scheduler_rules.rs"]
mod rules;

#[path = "scheduler_rules2.rs"]
mod rules2;

#[path = "scheduler_events.rs"]
mod events;

#[path = "scheduler_prop.rs"]
mod prop;

#[path = "scheduler_util.rs"]
mod util;

/// The files above really reach PostgreSQL here: only that book refuses a
/// file backup (it is backed up with PostgreSQL's tools).
#[tokio::test]
async fn the_contract_runs_against_postgresql() {
    assert!(util::postgres_backend());
    let h = util::Harness::new(util::MONDAY_NOON, util::config(|_| {}));
    h.schedule_at("+15550001", h.now() + util::HOUR).await;
    let e = h.book().backup(&h.dir.path().join("copy")).unwrap_err();
    assert!(e.to_string().contains("pg_dump"), "{e}");
}

/// The audit log (which the contract files reach only through the API
/// tests): entries page newest first, and a change carries its entry into
/// its own commit while a refused one records nothing.
#[tokio::test]
async fn audit_entries_page_newest_first_and_ride_with_their_change() {
    use redial::scheduler::book::{AuditEntry, AuditNote};
    use redial::scheduler::model::Callback;
    let h = util::Harness::new(util::MONDAY_NOON, util::config(|_| {}));
    let b = h.book();
    let entry = |i: i64, target: &str| AuditEntry { at: i, actor: "boss".into(), action: "callback.cancel".into(), target: target.into(), detail: String::new() };
    b.audit_append((1..=5).map(|i| entry(i, if i % 2 == 0 { "cb_even" } else { "cb_odd" })).collect()).await.unwrap();
    let p1 = b.audit_page(2, None).await.unwrap();
    assert_eq!(p1.items.iter().map(|(_, e)| e.at).collect::<Vec<_>>(), vec![5, 4]);
    let p2 = b.audit_page(2, p1.next_cursor).await.unwrap();
    assert_eq!(p2.items.iter().map(|(_, e)| e.at).collect::<Vec<_>>(), vec![3, 2]);
    let p3 = b.audit_page(2, p2.next_cursor).await.unwrap();
    assert_eq!((p3.items.len(), p3.next_cursor), (1, None));
    assert_eq!(b.audit_for("cb_even", 10, 100).await.unwrap().iter().map(|e| e.at).collect::<Vec<_>>(), vec![4, 2]);
    let note = AuditNote::new("boss", "callback.create", |cb: &Callback| format!("{} due {}", cb.phone, cb.due_at));
    let cb = b.schedule_noted(h.req("+15550001", None), Some(note)).await.unwrap();
    let top = b.audit_page(1, None).await.unwrap();
    assert_eq!(top.items[0].1.target, cb.id.to_string());
    assert_eq!(top.items[0].1.detail, format!("+15550001 due {}", cb.due_at));
    let note = AuditNote::new("boss", "callback.create", |_: &Callback| String::new());
    assert!(b.schedule_noted(h.req("+15550001", None), Some(note)).await.is_err(), "a duplicate");
    assert_eq!(b.audit_page(100, None).await.unwrap().items.len(), 6, "a refusal records nothing");
}
