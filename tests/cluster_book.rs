//! The book's contract against the PostgreSQL backend: the same test files
//! as the redb book (`scheduler_rules`, `scheduler_events`,
//! `scheduler_prop`), compiled into this target, where `open_book` opens a
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
