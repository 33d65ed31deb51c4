//! Saved registrations in a redb file of their own, beside the book (the book's
//! file belongs to its writer thread). One row per agent: its binding list as
//! JSON; one row per agent who chose `away`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Batch, RegistrationStore, SavedBinding, SavedError, SavedFuture, Snapshot};

const BINDINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("agent_bindings");
const AWAY: TableDefinition<&str, ()> = TableDefinition::new("agent_away");

/// The registrations file for a book at `book`: `redial.redb` → `redial.registrations.redb`.
pub fn path_beside(book: &Path) -> PathBuf {
    let stem = book.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "redial".into());
    book.with_file_name(format!("{stem}.registrations.redb"))
}

pub struct RedbRegistrations {
    path: PathBuf,
    db: Arc<Database>,
}

impl RedbRegistrations {
    /// Opens (or creates) the file and its tables.
    pub fn open(path: &Path) -> Result<Self, SavedError> {
        let err = |e: &dyn std::fmt::Display| SavedError::Redb { path: path.to_path_buf(), message: e.to_string() };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = Database::create(path).map_err(|e| err(&e))?;
        let w = db.begin_write().map_err(|e| err(&e))?;
        w.open_table(BINDINGS).map_err(|e| err(&e))?;
        w.open_table(AWAY).map_err(|e| err(&e))?;
        w.commit().map_err(|e| err(&e))?;
        Ok(Self { path: path.to_path_buf(), db: Arc::new(db) })
    }

    fn err(&self, e: impl std::fmt::Display) -> SavedError {
        SavedError::Redb { path: self.path.clone(), message: e.to_string() }
    }

    fn load_now(&self) -> Result<Snapshot, SavedError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut out = Snapshot::default();
        for row in r.open_table(BINDINGS).map_err(|e| self.err(e))?.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let agent = k.value().to_string();
            let list: Vec<SavedBinding> =
                serde_json::from_slice(v.value()).map_err(|e| SavedError::Corrupt { agent: agent.clone(), message: e.to_string() })?;
            out.bindings.insert(agent, list);
        }
        for row in r.open_table(AWAY).map_err(|e| self.err(e))?.iter().map_err(|e| self.err(e))? {
            let (k, _) = row.map_err(|e| self.err(e))?;
            out.away.insert(k.value().to_string());
        }
        Ok(out)
    }

    fn save_now(&self, batch: &Batch) -> Result<(), SavedError> {
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = w.open_table(BINDINGS).map_err(|e| self.err(e))?;
            for (agent, list) in &batch.bindings {
                if list.is_empty() {
                    t.remove(agent.as_str()).map_err(|e| self.err(e))?;
                } else {
                    let bytes = serde_json::to_vec(list).map_err(|e| self.err(e))?;
                    t.insert(agent.as_str(), bytes.as_slice()).map_err(|e| self.err(e))?;
                }
            }
            let mut a = w.open_table(AWAY).map_err(|e| self.err(e))?;
            for (agent, away) in &batch.away {
                if *away {
                    a.insert(agent.as_str(), ()).map_err(|e| self.err(e))?;
                } else {
                    a.remove(agent.as_str()).map_err(|e| self.err(e))?;
                }
            }
        }
        w.commit().map_err(|e| self.err(e))
    }
}

impl RegistrationStore for RedbRegistrations {
    fn load(&self) -> SavedFuture<'_, Snapshot> {
        let me = Self { path: self.path.clone(), db: self.db.clone() };
        Box::pin(async move { tokio::task::spawn_blocking(move || me.load_now()).await.map_err(|e| SavedError::Redb { path: PathBuf::new(), message: e.to_string() })? })
    }

    fn save(&self, batch: Batch) -> SavedFuture<'_, ()> {
        let me = Self { path: self.path.clone(), db: self.db.clone() };
        // A commit waits for the disk: off the async workers.
        Box::pin(async move { tokio::task::spawn_blocking(move || me.save_now(&batch)).await.map_err(|e| SavedError::Redb { path: PathBuf::new(), message: e.to_string() })? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(contact: &str, at: i64) -> SavedBinding {
        SavedBinding { contact: contact.into(), expires_at: at, source: "127.0.0.1:5070".parse().unwrap() }
    }

    #[tokio::test]
    async fn batches_replace_each_agents_list_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_beside(&dir.path().join("redial.redb"));
        assert_eq!(path.file_name().unwrap(), "redial.registrations.redb");
        {
            let s = RedbRegistrations::open(&path).unwrap();
            let mut batch = Batch::default();
            batch.bindings.insert("alice".into(), vec![b("sip:alice@10.0.0.1", 5), b("sip:alice@10.0.0.2", 6)]);
            batch.bindings.insert("bob".into(), vec![b("sip:bob@10.0.0.3", 7)]);
            batch.away.insert("bob".into(), true);
            s.save(batch).await.unwrap();
            let mut batch = Batch::default();
            batch.bindings.insert("alice".into(), vec![b("sip:alice@10.0.0.9", 8)]);
            batch.bindings.insert("bob".into(), vec![]);
            batch.away.insert("carol".into(), true);
            batch.away.insert("bob".into(), false);
            s.save(batch).await.unwrap();
        }
        let s = RedbRegistrations::open(&path).unwrap();
        let snap = s.load().await.unwrap();
        assert_eq!(snap.bindings.len(), 1);
        assert_eq!(snap.bindings["alice"], vec![b("sip:alice@10.0.0.9", 8)]);
        assert_eq!(snap.away.iter().collect::<Vec<_>>(), vec!["carol"]);
    }
}
