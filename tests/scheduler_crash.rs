//! Crash safety with a real process: a child (this test binary re-invoked)
//! schedules callbacks from many concurrent producers and prints each
//! acknowledged one; it is SIGKILLed at random moments, several rounds. Then
//! the book must hold every acknowledged callback with identical fields,
//! none lost or duplicated; a child firing them is killed too, and across
//! the crash every attempt is handed over at most once.
//!
//! The checker ([`check_acknowledged`]) only needs the acknowledged records,
//! so the HTTP API's crash test can reuse it.

#[path = "scheduler_util.rs"]
mod util;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use redial::clock::{Clock, FakeClock, Millis, SystemClock};
use redial::config::Config;
use redial::scheduler::engine::Unlimited;
use redial::scheduler::model::{Callback, CallbackId, NewCallback, Status};
use redial::scheduler::book::Book;

const ENV_DB: &str = "REDIAL_CRASH_CHILD_DB";
const ENV_MODE: &str = "REDIAL_CRASH_CHILD_MODE";
const ENV_BASE: &str = "REDIAL_CRASH_CHILD_BASE";
/// The firing child runs its clock this far ahead so everything is due.
const FIRE_AHEAD_MS: Millis = 3_600_000;

#[derive(Debug)]
struct AheadClock(Millis);
impl Clock for AheadClock {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.0
    }
}

fn cfg() -> Arc<Config> {
    Arc::new(util::config(|_| {}))
}

/// The child: does its job until killed. Not a test unless the env says so.
#[test]
fn crash_child() {
    let Ok(db) = std::env::var(ENV_DB) else { return };
    let mode = std::env::var(ENV_MODE).unwrap_or_default();
    let base: u64 = std::env::var(ENV_BASE).ok().and_then(|b| b.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let ahead = if mode == "fire" { FIRE_AHEAD_MS } else { 0 };
        let book = util::open_book(std::path::Path::new(&db), Arc::new(AheadClock(ahead)), cfg(), None).unwrap();
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        if mode == "fire" {
            loop {
                let t = book.tick(Arc::new(Unlimited), 16).await.unwrap();
                {
                    let mut o = out.lock().unwrap();
                    for d in &t.dispatches {
                        writeln!(o, "FIRE {} {}", d.callback.id, d.attempt).unwrap();
                    }
                    o.flush().unwrap();
                }
                if t.dispatches.is_empty() && !t.more {
                    writeln!(out.lock().unwrap(), "IDLE").unwrap();
                    // Nothing due: pace the polling loop until the kill.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        let counter = Arc::new(AtomicU64::new(base));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (book, out, counter) = (book.clone(), out.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let req = NewCallback {
                        phone: format!("+1999{n:08}"),
                        queue: "q".into(),
                        scheduled_at: Some(SystemClock.now_ms() + 61_000 + (n % 600) as Millis * 1000),
                        notes: Some(format!("note {n}")),
                        owner: (n % 7 == 0).then(|| "bob".to_string()),
                        ..Default::default()
                    };
                    let cb = book.schedule(req).await.unwrap();
                    let line = serde_json::to_string(&cb).unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {line}").unwrap();
                    o.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Runs the child in `mode` and SIGKILLs it after `kill_after`; returns its
/// stdout lines with the given prefix (only complete lines count).
fn run_child(db: &Path, mode: &str, base: u64, kill_after: Duration, prefix: &str) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(ENV_DB, db)
        .env(ENV_MODE, mode)
        .env(ENV_BASE, base.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let prefix = prefix.to_string();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix(&prefix) {
                lines.push(rest.to_string());
            }
        }
        lines
    });
    // The kill lands at a seeded moment of the run: time is what is tested.
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Every acknowledged callback is in `book` with identical fields (as
/// acknowledged, unless it has moved on since), and no phone has two.
pub async fn check_acknowledged(book: &dyn Book, acked: &[Callback]) {
    let mut ids = HashSet::new();
    for a in acked {
        assert!(ids.insert(a.id), "id {} acknowledged twice", a.id);
        let got = book.get(a.id).await.unwrap().unwrap_or_else(|| panic!("acknowledged {} lost", a.id));
        if got.status == Status::Scheduled && got.attempts == 0 {
            assert_eq!(&got, a, "fields changed");
        } else {
            assert_eq!((&got.phone, got.created_at, &got.notes), (&a.phone, a.created_at, &a.notes));
        }
    }
    let mut phones: HashMap<String, CallbackId> = HashMap::new();
    let mut cursor = None;
    loop {
        let p = book.list(&Default::default(), 500, cursor.as_deref()).await.unwrap();
        for c in p.items {
            if let Some(prev) = phones.insert(c.phone.clone(), c.id) {
                panic!("phone {} booked twice: {prev} and {}", c.phone, c.id);
            }
        }
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    book.check_consistency().await.unwrap().expect("indexes consistent");
}

#[test]
fn sigkill_loses_nothing_acknowledged_and_fires_each_attempt_once() {
    if std::env::var(ENV_DB).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("book.redb");
    let mut rng = rand::rng();
    let mut acked: Vec<Callback> = Vec::new();
    for round in 0..4u64 {
        let kill = Duration::from_millis(rng.random_range(300..1_200));
        let lines = run_child(&db, "schedule", round * 10_000_000, kill, "ACK ");
        acked.extend(lines.iter().map(|l| serde_json::from_str::<Callback>(l).unwrap()));
    }
    assert!(acked.len() > 500, "only {} acknowledged", acked.len());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let book = util::open_book(&db, Arc::new(SystemClock), cfg(), None).unwrap();
        check_acknowledged(&*book, &acked).await;
    });
    // Fire with a child, killed mid-way, twice.
    let mut fired: Vec<(String, u32)> = Vec::new();
    for _ in 0..2 {
        let kill = Duration::from_millis(rng.random_range(400..1_000));
        let lines = run_child(&db, "fire", 0, kill, "FIRE ");
        eprintln!("fire child handed over {} before SIGKILL at {kill:?}", lines.len());
        for l in lines {
            let (id, n) = l.split_once(' ').unwrap();
            fired.push((id.to_string(), n.parse().unwrap()));
        }
    }
    // Then fire the rest here, after the retry delay of recovered attempts.
    let clock = FakeClock::new(SystemClock.now_ms() + 2 * FIRE_AHEAD_MS);
    let book = util::open_book(&db, Arc::new(clock.clone()), cfg(), None).unwrap();
    rt.block_on(async {
        // Twice: attempts the children started but never printed were
        // closed at this open and come back after the retry delay.
        for _ in 0..2 {
            loop {
                let t = book.tick(Arc::new(Unlimited), 10_000).await.unwrap();
                fired.extend(t.dispatches.iter().map(|d| (d.callback.id.to_string(), d.attempt)));
                if t.dispatches.is_empty() && !t.more {
                    break;
                }
            }
            clock.advance(11 * 60_000);
        }
    let mut once = HashSet::new();
    for f in &fired {
        assert!(once.insert(f.clone()), "attempt {f:?} handed over twice");
    }
    let acked_ids: HashSet<String> = acked.iter().map(|c| c.id.to_string()).collect();
    let fired_ids: HashSet<String> = fired.iter().map(|f| f.0.clone()).collect();
    for id in &acked_ids {
        assert!(fired_ids.contains(id), "{id} never fired");
        let cb = book.get_str(id).await.unwrap().unwrap();
        assert_eq!(cb.status, Status::InProgress, "{cb:?} fired {:?}", fired.iter().filter(|f| &f.0 == id).collect::<Vec<_>>());
        let max_fired = fired.iter().filter(|f| &f.0 == id).map(|f| f.1).max().unwrap();
        // The last attempt is the one in progress; earlier ones were closed
        // by recovery (printed or not before the kill), never re-used.
        assert_eq!(cb.attempts, max_fired, "{id}");
        let closed = book.attempts(cb.id).await.unwrap().unwrap();
        assert_eq!(closed.len() as u32, cb.attempts - 1, "{id}");
    }
    book.check_consistency().await.unwrap().expect("indexes consistent");
    let retried = fired.iter().filter(|f| f.1 > 1).count();
    eprintln!("acknowledged {}, attempts handed over {}, after recovery {retried}", acked.len(), fired.len());
    });
}
