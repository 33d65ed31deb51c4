//! A consistent copy of the book while it is in use.
//!
//! redb lets one process open a file, with one writer and any number of readers; a
//! read transaction is a snapshot of the last commit that the writer never changes
//! under it. So the copy is made inside the running process from one read
//! transaction: every table is copied into a new database at a temporary name next
//! to the destination, committed (fsync), then renamed into place. The writer keeps
//! committing meanwhile; the copy has exactly the state of one commit. A byte copy
//! of the file could catch a commit half-written, and a second process cannot open
//! the file at all while redial runs.

use std::path::{Path, PathBuf};

use redb::{Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value, WriteTransaction};

use super::{tables, StoreError};

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    /// Records copied (callbacks).
    pub callbacks: u64,
    /// Size of the copy in bytes.
    pub bytes: u64,
}

/// Copies the snapshot `db` is at now into a new file `dest`, which must not exist.
pub fn backup(db: &Database, dest: &Path) -> Result<BackupReport, StoreError> {
    if dest.exists() {
        return Err(StoreError::io(dest, std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists; a backup never overwrites")));
    }
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(StoreError::io(dest, std::io::Error::new(std::io::ErrorKind::NotFound, "the directory does not exist")));
    }
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.partial"));
    let _ = std::fs::remove_file(&tmp);
    let result = copy_into(db, &tmp);
    let callbacks = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, dest).map_err(|e| StoreError::io(dest, e))?;
    let bytes = std::fs::metadata(dest).map_err(|e| StoreError::io(dest, e))?.len();
    Ok(BackupReport { path: dest.to_path_buf(), callbacks, bytes })
}

fn copy_into(db: &Database, tmp: &Path) -> Result<u64, StoreError> {
    let r = db.begin_read()?;
    let out = Database::create(tmp)?;
    let w = out.begin_write()?;
    let callbacks = copy(&r, &w, tables::CALLBACKS)?;
    copy(&r, &w, tables::DUE)?;
    copy(&r, &w, tables::DUE_LATER)?;
    copy(&r, &w, tables::BY_STATUS)?;
    copy(&r, &w, tables::BY_QUEUE)?;
    copy(&r, &w, tables::BY_OWNER)?;
    copy(&r, &w, tables::BY_PHONE)?;
    copy(&r, &w, tables::ACTIVE)?;
    copy(&r, &w, tables::ACTIVE_BY_INTERACTION)?;
    copy(&r, &w, tables::ATTEMPTS)?;
    copy(&r, &w, tables::STATS)?;
    copy(&r, &w, tables::META)?;
    w.commit()?;
    drop(out);
    // The rename must not overtake the data: redb's commit synced the file itself.
    Ok(callbacks)
}

/// Copies one table; a table the source does not have yet is left out (it is created
/// when the copy is opened, as for any file made before it).
fn copy<K: Key + 'static, V: Value + 'static>(r: &ReadTransaction, w: &WriteTransaction, def: TableDefinition<K, V>) -> Result<u64, StoreError> {
    let src = match r.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut dst = w.open_table(def)?;
    let mut n = 0;
    for e in src.iter()? {
        let (k, v) = e?;
        dst.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_table_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let db = tables::open(&dir.path().join("book.redb"), 1 << 20).unwrap();
        {
            let w = db.begin_write().unwrap();
            w.open_table(tables::CALLBACKS).unwrap().insert(7, b"record".as_slice()).unwrap();
            w.open_table(tables::BY_QUEUE).unwrap().insert(("sales", 7), ()).unwrap();
            w.commit().unwrap();
        }
        let dest = dir.path().join("copy.redb");
        let rep = backup(&db, &dest).unwrap();
        assert_eq!(rep.callbacks, 1);
        assert!(rep.bytes > 0);
        // A write after the backup is not in it.
        {
            let w = db.begin_write().unwrap();
            w.open_table(tables::CALLBACKS).unwrap().insert(8, b"later".as_slice()).unwrap();
            w.commit().unwrap();
        }
        drop(db);
        let copy = tables::open(&dest, 1 << 20).unwrap();
        let r = copy.begin_read().unwrap();
        let t = r.open_table(tables::CALLBACKS).unwrap();
        assert_eq!(t.get(7).unwrap().unwrap().value(), b"record");
        assert!(t.get(8).unwrap().is_none());
        assert!(r.open_table(tables::BY_QUEUE).unwrap().get(("sales", 7)).unwrap().is_some());
        assert_eq!(r.open_table(tables::META).unwrap().get("schema_version").unwrap().map(|v| v.value()), Some(tables::SCHEMA_VERSION));
        drop(r);
        drop(copy);
        let again = tables::open(&dir.path().join("book.redb"), 1 << 20).unwrap();
        assert!(matches!(backup(&again, &dest), Err(StoreError::Io { .. })), "an existing file is kept");
        assert!(matches!(backup(&again, &dir.path().join("missing/x.redb")), Err(StoreError::Io { .. })));
    }
}
