//! The audit log: every change made through the API or the console, kept in
//! the book's file in its own table, keyed by an increasing sequence so the
//! newest entries are read first.
//!
//! Entries go to the book's writer thread and are appended in its next
//! group-commit transaction: no write transaction of their own (a separate
//! one per change serialised with the writer's and cut the API's durable
//! create rate to a third). An entry is durable with that batch's commit,
//! moments after the change it records.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{RedbBook, StoreError};
use crate::clock::Millis;
use crate::scheduler::model::Callback;

/// Sequence → JSON-encoded [`AuditEntry`]. Created on the first append; a
/// file without it simply has no entries (no schema bump needed).
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// One change: who did what to which object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Millis,
    /// Token name, or `agent:<id>`.
    pub actor: String,
    /// `callback.create`, `callback.cancel`, `callback.reschedule`,
    /// `callback.reassign`, `callback.change`, `agent.state`, `login`, ...
    pub action: String,
    /// The callback or agent id.
    pub target: String,
    /// A short human-readable account (new values, bulk size).
    pub detail: String,
}

/// The audit entry a change carries to the writer: it is appended in the
/// change's own commit, so a change and its record are durable together and
/// cost one commit wait. `detail` is given the changed callback (its id and
/// new due time are only known once the change is made).
pub struct AuditNote {
    /// Token name, or `agent:<id>`.
    pub actor: String,
    pub action: String,
    pub detail: Box<dyn FnOnce(&Callback) -> String + Send>,
}

impl AuditNote {
    pub fn new(actor: impl Into<String>, action: impl Into<String>, detail: impl FnOnce(&Callback) -> String + Send + 'static) -> Self {
        Self { actor: actor.into(), action: action.into(), detail: Box::new(detail) }
    }

    pub(crate) fn entry(self, at: Millis, cb: &Callback) -> AuditEntry {
        AuditEntry { at, actor: self.actor, action: self.action, target: cb.id.to_string(), detail: (self.detail)(cb) }
    }
}

impl std::fmt::Debug for AuditNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditNote").field("actor", &self.actor).field("action", &self.action).finish_non_exhaustive()
    }
}

/// One page of entries, newest first, with the cursor of the next page.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub items: Vec<(u64, AuditEntry)>,
    pub next_cursor: Option<u64>,
}

/// Appends `entries` after the last sequence, in the writer's transaction.
pub(super) fn append(w: &redb::WriteTransaction, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let mut t = w.open_table(AUDIT)?;
    let mut next = t.last()?.map_or(1, |(k, _)| k.value() + 1);
    for e in entries {
        let bytes = serde_json::to_vec(e).unwrap_or_default();
        t.insert(next, bytes.as_slice())?;
        next += 1;
    }
    Ok(())
}

impl RedbBook {
    /// Persists the audit entries not yet made durable (the book calls it when it closes).
    pub(super) fn audit_sync(db: &redb::Database) {
        if let Ok(w) = db.begin_write() {
            if let Err(e) = w.commit() {
                tracing::error!(error = %e, "cannot persist the audit log");
            }
        }
    }

    /// Up to `limit` entries older than `before` (all when `None`), newest first.
    pub fn audit_page(&self, limit: usize, before: Option<u64>) -> Result<AuditPage, StoreError> {
        self.audit_scan(limit, before, |_| true)
    }

    /// The newest `limit` entries about `target`, looking back at most
    /// `horizon` entries (the detail page's trail stays bounded in time).
    pub fn audit_for(&self, target: &str, limit: usize, horizon: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut seen = 0usize;
        let page = self.audit_scan(limit, None, |e| {
            seen += 1;
            seen <= horizon && e.target == target
        })?;
        Ok(page.items.into_iter().map(|(_, e)| e).collect())
    }

    fn audit_scan(&self, limit: usize, before: Option<u64>, mut keep: impl FnMut(&AuditEntry) -> bool) -> Result<AuditPage, StoreError> {
        let r = self.db.begin_read()?;
        let t = match r.open_table(AUDIT) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(AuditPage::default()),
            Err(e) => return Err(e.into()),
        };
        let mut page = AuditPage::default();
        let range = match before {
            Some(b) => t.range(..b)?,
            None => t.range(0..)?,
        };
        for row in range.rev() {
            let (k, v) = row?;
            let Ok(e) = serde_json::from_slice::<AuditEntry>(v.value()) else { continue };
            if !keep(&e) {
                continue;
            }
            if page.items.len() == limit {
                page.next_cursor = page.items.last().map(|(k, _)| *k);
                break;
            }
            page.items.push((k.value(), e));
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::config::Config;
    use crate::scheduler::store::BookOptions;
    use std::sync::Arc;

    fn entry(i: i64, target: &str) -> AuditEntry {
        AuditEntry { at: i, actor: "boss".into(), action: "callback.cancel".into(), target: target.into(), detail: String::new() }
    }

    #[tokio::test]
    async fn entries_page_newest_first_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        let cfg = Arc::new(Config::defaults());
        let book = RedbBook::open(&path, Arc::new(FakeClock::new(0)), cfg.clone(), BookOptions::default()).unwrap();
        assert!(book.audit_page(10, None).unwrap().items.is_empty(), "a book without the table has no entries");
        book.audit_append((1..=5).map(|i| entry(i, if i % 2 == 0 { "cb_even" } else { "cb_odd" })).collect()).await.unwrap();
        let p1 = book.audit_page(2, None).unwrap();
        assert_eq!(p1.items.iter().map(|(_, e)| e.at).collect::<Vec<_>>(), vec![5, 4]);
        let p2 = book.audit_page(2, p1.next_cursor).unwrap();
        assert_eq!(p2.items.iter().map(|(_, e)| e.at).collect::<Vec<_>>(), vec![3, 2]);
        let p3 = book.audit_page(2, p2.next_cursor).unwrap();
        assert_eq!(p3.items.iter().map(|(_, e)| e.at).collect::<Vec<_>>(), vec![1]);
        assert_eq!(p3.next_cursor, None);
        assert_eq!(book.audit_for("cb_even", 10, 100).unwrap().iter().map(|e| e.at).collect::<Vec<_>>(), vec![4, 2]);
        book.close();
        let book = RedbBook::open(&path, Arc::new(FakeClock::new(0)), cfg, BookOptions::default()).unwrap();
        assert_eq!(book.audit_page(10, None).unwrap().items.len(), 5);
    }

    #[tokio::test]
    async fn a_change_carries_its_entry_into_its_own_commit_and_a_refusal_records_nothing() {
        use crate::scheduler::model::NewCallback;
        let dir = tempfile::tempdir().unwrap();
        let book = RedbBook::open(dir.path().join("b.redb"), Arc::new(FakeClock::new(1_000)), Arc::new(Config::defaults()), BookOptions::default()).unwrap();
        let req = NewCallback { phone: "+15550001".into(), queue: "default".into(), ..Default::default() };
        let note = AuditNote::new("boss", "callback.create", |cb: &Callback| format!("{} due {}", cb.phone, cb.due_at));
        let cb = book.schedule(req.clone(), Some(note)).await.unwrap();
        // No flush: the answer itself means the entry is committed.
        let page = book.audit_page(10, None).unwrap();
        assert_eq!(page.items.len(), 1);
        let e = &page.items[0].1;
        assert_eq!((e.at, e.actor.as_str(), e.action.as_str(), e.target.clone()), (1_000, "boss", "callback.create", cb.id.to_string()));
        assert_eq!(e.detail, format!("+15550001 due {}", cb.due_at));
        // The same phone again is a duplicate: refused, so not audited.
        let note = AuditNote::new("boss", "callback.create", |_: &Callback| String::new());
        assert!(book.schedule(req, Some(note)).await.is_err());
        assert_eq!(book.audit_page(10, None).unwrap().items.len(), 1);
    }
}
