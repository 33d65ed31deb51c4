//! The redb tables, the schema version and opening (docs/design.md has the
//! layout and why).

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition, WriteTransaction};

use super::StoreError;

/// Records by id: id → encoded [`Callback`](crate::scheduler::model::Callback).
pub const CALLBACKS: TableDefinition<u64, &[u8]> = TableDefinition::new("callbacks");
/// Scheduled callbacks by due second: (due second, id) → due ms.
pub const DUE: TableDefinition<(u64, u64), u64> = TableDefinition::new("due");
/// Far-future scheduled callbacks not yet merged into [`DUE`]: id → due ms.
/// A schedule due more than [`STAGE_AFTER_MS`] ahead lands here, at the
/// table's right edge (ids grow), instead of in a random leaf of `due`; the
/// writer merges the staged entries into `due` in key order when there are
/// [`MERGE_AT`] of them or the earliest comes within [`MERGE_BEFORE_MS`],
/// so each `due` leaf is rewritten once per merge rather than once per
/// schedule. `due` ∪ `due_later` holds every scheduled callback.
pub const DUE_LATER: TableDefinition<u64, u64> = TableDefinition::new("due_later");
/// Schedules due further ahead than this are staged in [`DUE_LATER`].
pub const STAGE_AFTER_MS: i64 = 3_600_000;
/// Staged entries are merged, [`MERGE_CHUNK`] at a time, while there are
/// this many and the writer is idle (twice this many: in any batch)...
pub const MERGE_AT: usize = 65_536;
/// How many staged entries one batch merges (the smallest due keys).
pub const MERGE_CHUNK: usize = 4_096;
/// ...or when the earliest is due within this much (well before the
/// engine's few-seconds look-ahead reads `due`).
pub const MERGE_BEFORE_MS: i64 = 1_800_000;
/// (status code, id) → ().
pub const BY_STATUS: TableDefinition<(u8, u64), ()> = TableDefinition::new("by_status");
/// (queue, id) → ().
pub const BY_QUEUE: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_queue");
/// (owner, id) → (), only callbacks with an owner.
pub const BY_OWNER: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_owner");
/// (phone, id) → ().
pub const BY_PHONE: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_phone");
/// The uniqueness index: (phone, queue) → id of the active callback.
pub const ACTIVE: TableDefinition<(&str, &str), u64> = TableDefinition::new("active");
/// Active callbacks that carry an interaction id: (interaction id, id) → ()
/// (one active callback per live-call interaction). Opened (and so
/// created) by the writer on files made before it; callbacks still active
/// from before it are not in it.
pub const ACTIVE_BY_INTERACTION: TableDefinition<(&str, u64), ()> = TableDefinition::new("active_by_interaction");
/// (id, attempt number) → encoded [`Attempt`](crate::scheduler::model::Attempt).
pub const ATTEMPTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("attempts");
/// Per-queue counters for stats: queue → encoded counters.
pub const STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("stats");
/// `schema_version`, `next_seq`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The schema this build writes. Bump it with a migration step in
/// [`migrate`] whenever a table's key or value layout changes.
pub const SCHEMA_VERSION: u64 = 2;

/// Opens (or creates) the database and brings its schema to
/// [`SCHEMA_VERSION`]; refuses a file written by a newer build.
pub fn open(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(path, e))?;
        }
    }
    let db = Database::builder().set_cache_size(cache_bytes).create(path)?;
    let found = {
        let r = db.begin_read()?;
        match r.open_table(META) {
            Ok(t) => t.get("schema_version")?.map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        }
    };
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema { found: v, supported: SCHEMA_VERSION });
        }
        Some(v) if v == SCHEMA_VERSION => {}
        other => {
            let mut w = db.begin_write()?;
            w.set_quick_repair(true);
            migrate(&w, other)?;
            w.commit()?;
        }
    }
    Ok(db)
}

/// Creates the tables of a new file, or migrates from `from`. Each version
/// adds one arm that rewrites what changed, then the version is stored in
/// the same transaction.
fn migrate(w: &WriteTransaction, from: Option<u64>) -> Result<(), StoreError> {
    match from {
        // 2 added the (empty at first) staging table `due_later`; a build
        // that knows only 1 would not see staged callbacks, hence the bump.
        Some(1) => {
            w.open_table(DUE_LATER)?;
        }
        None => {
            w.open_table(CALLBACKS)?;
            w.open_table(DUE)?;
            w.open_table(DUE_LATER)?;
            w.open_table(BY_STATUS)?;
            w.open_table(BY_QUEUE)?;
            w.open_table(BY_OWNER)?;
            w.open_table(BY_PHONE)?;
            w.open_table(ACTIVE)?;
            w.open_table(ATTEMPTS)?;
            w.open_table(ACTIVE_BY_INTERACTION)?;
            w.open_table(STATS)?;
            let mut meta = w.open_table(META)?;
            meta.insert("next_seq", 1)?;
        }
        Some(v) => return Err(StoreError::NoMigration { from: v, to: SCHEMA_VERSION }),
    }
    w.open_table(META)?.insert("schema_version", SCHEMA_VERSION)?;
    Ok(())
}
