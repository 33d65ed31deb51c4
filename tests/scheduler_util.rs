//! Shared helpers of the scheduler tests (included with `#[path]`).
//!
//! These tests are the book's contract: they reach the book only through
//! the storage seam ([`Book`]), and [`open_book`] is the one place that
//! picks a backend: redb, or PostgreSQL when `REDIAL_TEST_BOOK=postgres` is
//! set or the files are compiled into the `cluster_book` target (which
//! runs them all against PostgreSQL in `cargo test`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use redial::clock::{Clock, FakeClock, Millis};
use redial::config::{Agent, Config, Queue};
use redial::scheduler::engine::Availability;
use redial::scheduler::model::{Callback, CallbackId, Dispatch, NewCallback};
use redial::scheduler::book::Book;
use redial::scheduler::store::{BookOptions, RedbBook};

/// 2026-03-02 12:00:00 UTC, a Monday.
pub const MONDAY_NOON: Millis = 1_772_452_800_000;
pub const MIN: Millis = 60_000;
pub const HOUR: Millis = 3_600_000;
pub const DAY: Millis = 86_400_000;

/// Milliseconds of a UTC date-time given as "YYYY-MM-DDTHH:MM:SSZ".
pub fn utc(s: &str) -> Millis {
    chrono::DateTime::parse_from_rfc3339(s).expect("rfc3339").timestamp_millis()
}

/// Agents as counts per queue plus a set of free owners; reservations are
/// taken from the counts, like a dialler's registry would.
#[derive(Debug, Default)]
pub struct Agents {
    free: Mutex<HashMap<String, usize>>,
    owners: Mutex<HashMap<String, bool>>,
}

impl Agents {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn set_free(&self, queue: &str, n: usize) {
        self.free.lock().unwrap().insert(queue.to_string(), n);
    }
    pub fn set_owner_free(&self, agent: &str, free: bool) {
        self.owners.lock().unwrap().insert(agent.to_string(), free);
    }
}

impl Availability for Agents {
    fn reserve(&self, _now: Millis, queue: &str, owner: Option<&str>) -> Option<String> {
        match owner {
            Some(o) => {
                let mut owners = self.owners.lock().unwrap();
                let free = owners.get_mut(o)?;
                if !*free {
                    return None;
                }
                *free = false;
                Some(o.to_string())
            }
            None => {
                let mut f = self.free.lock().unwrap();
                let n = f.get_mut(queue)?;
                if *n == 0 {
                    return None;
                }
                *n -= 1;
                Some(format!("{queue}-agent"))
            }
        }
    }
    fn release(&self, _agent: &str) {}
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub clock: FakeClock,
    pub cfg: Arc<Config>,
    pub book: Option<Arc<dyn Book>>,
}

/// A configuration with queue `q` (UTC, always open, 3 attempts, 10 min
/// retry, 4 h ownership) and agents alice and bob in it; `edit` adjusts it.
pub fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut cfg = Config::defaults();
    cfg.queues = vec![Queue::default_queue(), Queue::named("q")];
    cfg.agents = vec![
        Agent { id: "alice".into(), password: "a".into(), queues: vec!["q".into()] },
        Agent { id: "bob".into(), password: "b".into(), queues: vec!["q".into()] },
        Agent { id: "carol".into(), password: "c".into(), queues: vec!["default".into()] },
    ];
    edit(&mut cfg);
    cfg
}

impl Harness {
    pub fn new(start: Millis, cfg: Config) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = Self { dir, clock: FakeClock::new(start), cfg: Arc::new(cfg), book: None };
        h.reopen();
        h
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("book.redb")
    }

    pub fn book(&self) -> &dyn Book {
        &**self.book.as_ref().expect("open")
    }

    /// Closes (dropping the writer) and opens the book again.
    pub fn reopen(&mut self) {
        if let Some(b) = self.book.take() {
            drop(b);
        }
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        self.book = Some(open_book(&self.path(), clock, self.cfg.clone(), None).expect("open book"));
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    pub fn req(&self, phone: &str, at: Option<Millis>) -> NewCallback {
        NewCallback { phone: phone.into(), queue: "q".into(), scheduled_at: at, ..Default::default() }
    }

    pub async fn schedule_at(&self, phone: &str, at: Millis) -> Callback {
        self.book().schedule(self.req(phone, Some(at))).await.expect("schedule")
    }

    /// Ticks until nothing more is due now; returns every dispatch.
    pub async fn fire(&self, avail: Arc<dyn Availability>) -> Vec<Dispatch> {
        let mut out = Vec::new();
        for _ in 0..100 {
            let t = self.book().tick(avail.clone(), 10_000).await.expect("tick");
            out.extend(t.dispatches);
            if !t.more {
                break;
            }
        }
        out
    }

    /// Fires with every agent free.
    pub async fn fire_all(&self) -> Vec<Dispatch> {
        self.fire(Arc::new(redial::scheduler::engine::Unlimited)).await
    }

    pub async fn get(&self, id: CallbackId) -> Callback {
        self.book().get(id).await.expect("get").expect("present")
    }

    pub async fn assert_consistent(&self) {
        self.book().check_consistency().await.expect("read").expect("consistent");
    }
}

/// Opens the backend under test at `path` (the redb book), publishing its
/// changes on `bus` when given. Errors are the backend's opening errors.
pub fn open_book(path: &std::path::Path, clock: Arc<dyn Clock>, cfg: Arc<Config>, bus: Option<Arc<redial::events::Bus>>) -> Result<Arc<dyn Book>, redial::scheduler::book::StoreError> {
    if postgres_backend() {
        return pg_book::open(path, clock, cfg, bus);
    }
    let opts = BookOptions { bus, ..BookOptions::default() };
    RedbBook::open(path, clock, cfg, opts).map(|b| Arc::new(b) as Arc<dyn Book>)
}

/// Whether the contract runs against PostgreSQL: asked for in the
/// environment, or compiled into the `cluster_book` target.
pub fn postgres_backend() -> bool {
    module_path!().starts_with("cluster_book::") || std::env::var("REDIAL_TEST_BOOK").is_ok_and(|v| v == "postgres")
}

#[path = "common/pg.rs"]
mod pg;

/// The PostgreSQL backend of the contract: one throw-away server per test
/// process (started on first use, stopped when the process exits), one
/// schema per book path, so reopening a path finds its book again.
mod pg_book {
    use std::path::Path;
    use std::sync::{Arc, Mutex, OnceLock};

    use redial::clock::Clock;
    use redial::cluster::book::{PgBook, PgOptions};
    use redial::config::Config;
    use redial::scheduler::book::{Book, StoreError};

    use super::pg;

    static SERVER: OnceLock<Mutex<Option<pg::Postgres>>> = OnceLock::new();

    extern "C" fn stop_server() {
        if let Some(m) = SERVER.get() {
            drop(m.lock().unwrap_or_else(|p| p.into_inner()).take());
        }
    }

    fn url() -> String {
        let m = SERVER.get_or_init(|| {
            // SAFETY: registers a plain function to run at process exit.
            unsafe { libc::atexit(stop_server) };
            Mutex::new(Some(pg::Postgres::start()))
        });
        m.lock().unwrap_or_else(|p| p.into_inner()).as_ref().expect("the test server runs until exit").url()
    }

    /// A schema name of the book at `path` (stable for the path).
    fn schema_of(path: &Path) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in path.as_os_str().as_encoded_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("book_{h:016x}")
    }

    pub fn open(path: &Path, clock: Arc<dyn Clock>, cfg: Arc<Config>, bus: Option<Arc<redial::events::Bus>>) -> Result<Arc<dyn Book>, StoreError> {
        // With the durable outbox, as cluster nodes run: the events contract
        // then holds for sequences taken from the shared counter.
        let opts = PgOptions { schema: Some(schema_of(path)), bus, outbox: true, ..PgOptions::new(url()) };
        PgBook::open(opts, clock, cfg).map(|b| Arc::new(b) as Arc<dyn Book>)
    }
}

pub fn ids(d: &[Dispatch]) -> Vec<CallbackId> {
    d.iter().map(|d| d.callback.id).collect()
}
