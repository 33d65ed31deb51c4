//! Scheduler benchmark (release build). Prints figures; asserts nothing.
//!
//! ```text
//! sched_bench fill PATH N [PRODUCERS]        N pending spread over 30 days
//! sched_bench throughput PATH PRODUCERS N    durable schedules/s and ack latency
//! sched_bench lateness PATH N [LEAD_S]       N due over one minute from now+LEAD_S; fire lateness
//! sched_bench herd PATH N [LEAD_S]           N due in the same millisecond, LEAD_S after the fill starts
//! sched_bench open PATH                      time to ready (open + first round) and RSS
//! ```
//! Every mode prints the file size per callback at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial::clock::{Clock, Millis, SystemClock};
use redial::config::{Config, Queue};
use redial::scheduler::engine::Unlimited;
use redial::scheduler::model::NewCallback;
use redial::scheduler::book::Book;
use redial::scheduler::store::{BookOptions, RedbBook};

const DAY: Millis = 86_400_000;

fn config() -> Arc<Config> {
    let mut cfg = Config::defaults();
    cfg.queues = vec![Queue::named("q")];
    Arc::new(cfg)
}

/// The real clock shifted by an adjustable offset: the herd is scheduled
/// "61 s ahead" on a clock running 65 s behind, so it is due 4 s after the
/// fill instead of a minute later; firing runs at offset 0 (real time).
#[derive(Debug, Default)]
struct OffsetClock(std::sync::atomic::AtomicI64);
impl Clock for OffsetClock {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.0.load(Ordering::Relaxed)
    }
}

fn open(path: &str) -> Arc<dyn Book> {
    open_with(path, Arc::new(SystemClock))
}

fn open_with(path: &str, clock: Arc<dyn Clock>) -> Arc<dyn Book> {
    // REDIAL_QUICK_REPAIR=0 measures the other side of the trade.
    let quick_repair = std::env::var("REDIAL_QUICK_REPAIR").map_or(true, |v| v != "0");
    // REDIAL_OUTBOX=0 leaves the events out of every commit: the outbox's
    // cost is the difference, measured by one binary in one session.
    let outbox = std::env::var("REDIAL_OUTBOX").map_or(true, |v| v != "0");
    let opts = BookOptions { quick_repair, outbox, ..BookOptions::default() };
    Arc::new(RedbBook::open(path, clock, config(), opts).expect("open book"))
}

/// Wall-clock ms since the epoch with a fractional part.
fn now_ms_f64() -> f64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_micros() as f64 / 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process.
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = s.rsplit_once(')').map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

async fn size_report(path: &str, book: &dyn Book) {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let n = book.stats(None).await.map(|s| s.requested).unwrap_or(0);
    if n > 0 {
        println!("file {:.1} MB, {} callbacks, {:.0} bytes/callback", bytes as f64 / 1e6, n, bytes as f64 / n as f64);
    }
}

/// Schedules `n` callbacks from `producers` concurrent tasks; `at(i)` gives
/// each one's time. Returns (elapsed, sorted ack latencies in ms).
async fn produce(book: &Arc<dyn Book>, n: u64, producers: u64, at: Arc<dyn Fn(u64) -> Millis + Send + Sync>) -> (Duration, Vec<f64>) {
    let run = (SystemClock.now_ms() / 1000) % 100_000;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (book, next, at) = (book.clone(), next.clone(), at.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return lat;
                }
                let req = NewCallback {
                    phone: format!("+2{run:05}{i:09}"),
                    queue: "q".into(),
                    scheduled_at: Some(at(i)),
                    notes: Some("call about invoice 1234".into()),
                    ..Default::default()
                };
                let t = Instant::now();
                book.schedule(req).await.expect("schedule");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut all = Vec::with_capacity(n as usize);
    for t in tasks {
        all.extend(t.await.expect("producer"));
    }
    let el = start.elapsed();
    all.sort_by(f64::total_cmp);
    (el, all)
}

fn spread_30_days(now: Millis) -> Arc<dyn Fn(u64) -> Millis + Send + Sync> {
    Arc::new(move |i: u64| {
        // A cheap, well-spread pseudo-random offset within 30 days.
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        now + 120_000 + (h % (30 * DAY as u64 - 3_600_000)) as Millis
    })
}

fn report_produce(what: &str, n: u64, el: Duration, lat: &[f64]) {
    println!(
        "{what}: {n} schedules in {:.2} s = {:.0}/s; ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64(),
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        percentile(lat, 1.0)
    );
}

async fn fire_and_measure(book: Arc<dyn Book>, n: u64, herd_at: Option<Millis>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cpu0 = cpu_s();
    let t0 = Instant::now();
    let (handle, mut rx) = redial::scheduler::driver::spawn(book.clone(), clock.clone(), Arc::new(Unlimited), 1 << 20);
    let mut late = Vec::with_capacity(n as usize);
    let mut last = 0.0;
    while (late.len() as u64) < n {
        let Some(d) = rx.recv().await else { break };
        // Microsecond precision: the clock's whole milliseconds would hide
        // everything below 1 ms.
        let now = now_ms_f64();
        late.push(now - d.callback.due_at as f64);
        last = now;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    handle.stop().await;
    late.sort_by(f64::total_cmp);
    println!(
        "fired {}: lateness p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; CPU {:.2} s over {:.1} s = {:.2} core",
        late.len(),
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        percentile(&late, 1.0),
        cpu,
        wall,
        cpu / wall
    );
    if let Some(at) = herd_at {
        println!("herd: all {} handed over (durably in_progress) {:.1} ms after their due millisecond", late.len(), last - at as f64);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize, d: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let path = arg(2);
    match arg(1).as_str() {
        "fill" => rt.block_on(async {
            let book = open(&path);
            let (n, p) = (num(3, 1_000_000), num(4, 1024));
            let (el, lat) = produce(&book, n, p, spread_30_days(SystemClock.now_ms())).await;
            report_produce(&format!("fill ({p} producers)"), n, el, &lat);
            size_report(&path, &*book).await;
        }),
        "throughput" => rt.block_on(async {
            let book = open(&path);
            let pending = book.stats(None).await.map(|s| s.pending).unwrap_or(0);
            let (p, n) = (num(3, 1024), num(4, 100_000));
            let (el, lat) = produce(&book, n, p, spread_30_days(SystemClock.now_ms())).await;
            report_produce(&format!("throughput ({p} producers, {pending} pending before)"), n, el, &lat);
            size_report(&path, &*book).await;
        }),
        "lateness" => rt.block_on(async {
            let book = open(&path);
            let (n, lead) = (num(3, 1_000_000), num(4, 100).max(61) as Millis * 1000);
            let base = SystemClock.now_ms() + lead;
            let at: Arc<dyn Fn(u64) -> Millis + Send + Sync> = Arc::new(move |i| base + (i * 60_000 / n) as Millis);
            let (el, lat) = produce(&book, n, 1024, at).await;
            report_produce("lateness fill", n, el, &lat);
            let wait = base - SystemClock.now_ms() - 3_000;
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            fire_and_measure(book.clone(), n, None).await;
            size_report(&path, &*book).await;
        }),
        "herd" => rt.block_on(async {
            let clock = Arc::new(OffsetClock::default());
            clock.0.store(-65_000, Ordering::Relaxed);
            let book = open_with(&path, clock.clone());
            let (n, lead) = (num(3, 100_000), num(4, 8) as Millis * 1000);
            let at_ms = SystemClock.now_ms() + lead;
            let (el, lat) = produce(&book, n, 1024, Arc::new(move |_| at_ms)).await;
            report_produce("herd fill", n, el, &lat);
            clock.0.store(0, Ordering::Relaxed);
            let wait = at_ms - SystemClock.now_ms() - 3_000;
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            fire_and_measure(book.clone(), n, Some(at_ms)).await;
        }),
        "open" => rt.block_on(async {
            let t = Instant::now();
            let book = open(&path);
            let opened = t.elapsed();
            let tick = book.tick(Arc::new(NoAgents), 1).await.expect("tick");
            let ready = t.elapsed();
            println!(
                "open {:.1} ms, ready (first round done) {:.1} ms, recovered {}, next deadline in {:?} ms, RSS {:.1} MB",
                opened.as_secs_f64() * 1000.0,
                ready.as_secs_f64() * 1000.0,
                book.recovered(),
                tick.next_deadline.map(|d| d - SystemClock.now_ms()),
                rss_mb()
            );
            size_report(&path, &*book).await;
        }),
        _ => {
            eprintln!("usage: sched_bench fill|throughput|lateness|herd|open PATH ... (see the source header)");
            std::process::exit(2);
        }
    }
}

/// Readiness is measured without handing anything over.
struct NoAgents;
impl redial::scheduler::engine::Availability for NoAgents {
    fn reserve(&self, _: redial::clock::Millis, _: &str, _: Option<&str>) -> Option<String> {
        None
    }
    fn release(&self, _: &str) {}
}
