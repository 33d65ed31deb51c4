//! The answer to a book change, held by a group-commit writer until its
//! batch's commit is known, then sent: the result when the commit held,
//! the storage error when it failed. Both books (redb and PostgreSQL) use it.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::book::{CancelError, ReportError, ScheduleError, StoreError, Tick};
use super::engine::Availability;
use super::model::Callback;

pub(crate) enum Reply {
    Schedule(oneshot::Sender<Result<Callback, ScheduleError>>, Result<Callback, ScheduleError>),
    Cancel(oneshot::Sender<Result<Callback, CancelError>>, Result<Callback, CancelError>),
    Report(oneshot::Sender<Result<Callback, ReportError>>, Result<Callback, ReportError>),
    Tick(oneshot::Sender<Result<Tick, StoreError>>, Arc<dyn Availability>, Tick),
    Flush(oneshot::Sender<()>),
    Skip(oneshot::Sender<Result<Option<Callback>, StoreError>>, Option<Callback>),
    /// A change with no value of its own (audit entries, a delivery retried).
    Done(oneshot::Sender<Result<(), StoreError>>),
}

impl Reply {
    pub(crate) fn send(self, failed: Option<&StoreError>) {
        match (self, failed) {
            (Reply::Schedule(tx, r), None) => drop(tx.send(r)),
            (Reply::Schedule(tx, _), Some(e)) => drop(tx.send(Err(ScheduleError::Store(e.clone())))),
            (Reply::Cancel(tx, r), None) => drop(tx.send(r)),
            (Reply::Cancel(tx, _), Some(e)) => drop(tx.send(Err(CancelError::Store(e.clone())))),
            (Reply::Report(tx, r), None) => drop(tx.send(r)),
            (Reply::Report(tx, _), Some(e)) => drop(tx.send(Err(ReportError::Store(e.clone())))),
            (Reply::Tick(tx, _, t), None) => drop(tx.send(Ok(t))),
            (Reply::Tick(tx, avail, t), Some(e)) => {
                // Nothing was handed over: give the agents back.
                for d in &t.dispatches {
                    avail.release(&d.agent);
                }
                drop(tx.send(Err(e.clone())));
            }
            (Reply::Flush(tx), _) => drop(tx.send(())),
            (Reply::Skip(tx, r), None) => drop(tx.send(Ok(r))),
            (Reply::Skip(tx, _), Some(e)) => drop(tx.send(Err(e.clone()))),
            (Reply::Done(tx), None) => drop(tx.send(Ok(()))),
            (Reply::Done(tx), Some(e)) => drop(tx.send(Err(e.clone()))),
        }
    }
}
