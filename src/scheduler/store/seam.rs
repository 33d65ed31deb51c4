//! [`RedbBook`] behind the storage seam. Reads answer from a redb snapshot
//! at once (ready futures); changes wait for the writer's commit.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

use super::audit::{AuditEntry, AuditNote, AuditPage};
use super::backup::BackupReport;
use super::query::{Inconsistency, ListFilter, Page};
use super::{CancelError, RedbBook, ReportError, ScheduleError, StoreError, Tick};
use crate::clock::Millis;
use crate::scheduler::book::{Book, BookFuture};
use crate::scheduler::engine::Availability;
use crate::scheduler::model::{Attempt, AttemptOutcome, Callback, CallbackChanges, CallbackId, NewCallback, Origin, Stats};

fn ready<'a, T: Send + 'a>(v: T) -> BookFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

/// A read that may scan many rows (a filtered list) tells a multi-threaded
/// runtime that it blocks, so other tasks move to another worker meanwhile.
fn scan<T>(read: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(read),
        _ => read(),
    }
}

impl Book for RedbBook {
    fn schedule_noted(&self, req: NewCallback, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, ScheduleError>> {
        Box::pin(RedbBook::schedule(self, req, audit))
    }

    fn reschedule_noted(&self, id: CallbackId, changes: CallbackChanges, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, ScheduleError>> {
        Box::pin(RedbBook::reschedule(self, id, changes, audit))
    }

    fn cancel_noted(&self, id: CallbackId, audit: Option<AuditNote>) -> BookFuture<'_, Result<Callback, CancelError>> {
        Box::pin(RedbBook::cancel(self, id, audit))
    }

    fn report_outcome(&self, id: CallbackId, attempt: u32, outcome: AttemptOutcome) -> BookFuture<'_, Result<Callback, ReportError>> {
        Box::pin(RedbBook::report_outcome(self, id, attempt, outcome))
    }

    fn tick_ahead(&self, avail: Arc<dyn Availability>, max: usize, ahead_ms: Millis) -> BookFuture<'_, Result<Tick, StoreError>> {
        Box::pin(RedbBook::tick_ahead(self, avail, max, ahead_ms))
    }

    fn skip_reached<'a>(&'a self, phone: &'a str, queue: &'a str, interaction: &'a str) -> BookFuture<'a, Result<Option<Callback>, StoreError>> {
        Box::pin(RedbBook::skip_reached(self, phone, queue, interaction))
    }

    fn audit_append(&self, entries: Vec<AuditEntry>) -> BookFuture<'_, Result<(), StoreError>> {
        Box::pin(RedbBook::audit_append(self, entries))
    }

    fn flush(&self) -> BookFuture<'_, ()> {
        Box::pin(RedbBook::flush(self))
    }

    fn get(&self, id: CallbackId) -> BookFuture<'_, Result<Option<Callback>, StoreError>> {
        ready(RedbBook::get(self, id))
    }

    fn find_active<'a>(&'a self, phone: &'a str, queue: &'a str) -> BookFuture<'a, Result<Option<Callback>, StoreError>> {
        ready(RedbBook::find_active(self, phone, queue))
    }

    fn list<'a>(&'a self, filter: &'a ListFilter, limit: usize, cursor: Option<&'a str>) -> BookFuture<'a, Result<Page<Callback>, StoreError>> {
        ready(scan(|| RedbBook::list(self, filter, limit, cursor)))
    }

    fn attempts(&self, id: CallbackId) -> BookFuture<'_, Result<Option<Vec<Attempt>>, StoreError>> {
        ready(RedbBook::attempts(self, id))
    }

    fn stats<'a>(&'a self, queue: Option<&'a str>) -> BookFuture<'a, Result<Stats, StoreError>> {
        ready(RedbBook::stats(self, queue))
    }

    fn stats_by_origin<'a>(&'a self, queue: Option<&'a str>, origin: Option<Origin>) -> BookFuture<'a, Result<(Stats, Vec<(Origin, Stats)>), StoreError>> {
        ready(RedbBook::stats_by_origin(self, queue, origin))
    }

    fn audit_page(&self, limit: usize, before: Option<u64>) -> BookFuture<'_, Result<AuditPage, StoreError>> {
        ready(RedbBook::audit_page(self, limit, before))
    }

    fn audit_for<'a>(&'a self, target: &'a str, limit: usize, horizon: usize) -> BookFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        ready(RedbBook::audit_for(self, target, limit, horizon))
    }

    fn check_consistency(&self) -> BookFuture<'_, Result<Result<(), Vec<Inconsistency>>, StoreError>> {
        ready(RedbBook::check_consistency(self))
    }

    fn backup(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        RedbBook::backup(self, dest)
    }

    fn waiting_for_agent(&self) -> usize {
        RedbBook::waiting_for_agent(self)
    }

    fn recovered(&self) -> usize {
        RedbBook::recovered(self)
    }

    fn changed(&self) -> Arc<Notify> {
        RedbBook::changed(self)
    }
}
