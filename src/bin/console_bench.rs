//! Console benchmark (release build). Prints figures; asserts nothing.
//!
//! ```text
//! console_bench page PATH N [ROUNDS]     fill PATH to N callbacks, then render filtered list pages
//! console_bench sse CONSUMERS RATE SECS  CONSUMERS readers of /v1/events while RATE changes/s happen
//! ```
//!
//! `page` renders through [`redial::console::list::page`], the function the
//! `/console` route calls, over a real redb book: server time per page,
//! without the HTTP round trip. `sse` serves the API in this process on
//! loopback, schedules RATE callbacks a second straight into the book (each
//! one a `callback.created` event), and has every consumer parse every
//! event: the lag is the time from the change's `updated_at` to its arrival.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial::api::{start_api, ConfiguredTrunks, LiveCalls, NoLiveCalls};
use redial::clock::{Clock, Millis, SystemClock};
use redial::config::{Agent, Config, Queue, Scope};
use redial::console::charts::History;
use redial::console::list::{self, Sources};
use redial::console::pages::{Frame, ListParams};
use redial::ops::Actor;
use redial::scheduler::book::Book;
use redial::scheduler::model::NewCallback;
use redial::scheduler::store::{BookOptions, RedbBook};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DAY: Millis = 86_400_000;
const QUEUES: usize = 4;
const OWNERS: usize = 16;

fn page_config() -> Arc<Config> {
    let mut cfg = Config::defaults();
    cfg.queues = (0..QUEUES)
        .map(|q| {
            let mut q = Queue::named(&format!("q{q}"));
            // The fill books owned callbacks up to 30 days ahead.
            q.owned_booking_horizon = Duration::from_secs(30 * 86_400);
            q
        })
        .collect();
    let queues: Vec<String> = cfg.queues.iter().map(|q| q.name.clone()).collect();
    cfg.agents = (0..OWNERS).map(|a| Agent { id: format!("a{a}"), password: "pw".into(), queues: queues.clone() }).collect();
    Arc::new(cfg)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// User + system CPU seconds of this process.
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = s.rsplit_once(')').map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn now_ms_f64() -> f64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_micros() as f64 / 1000.0
}

/// Fills the book to `n` callbacks: queue `i % 4`, owner `i % 16`, due over 30 days.
async fn fill(book: &Arc<dyn Book>, n: u64) {
    let have = book.stats(None).await.map(|s| s.requested).unwrap_or(0);
    if have >= n {
        println!("book already holds {have} callbacks");
        return;
    }
    let next = Arc::new(AtomicU64::new(have));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (book, next) = (book.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
                let req = NewCallback {
                    phone: format!("+3{i:010}"),
                    queue: format!("q{}", i as usize % QUEUES),
                    owner: Some(format!("a{}", i as usize % OWNERS)),
                    // From each schedule's own now: a long fill must not make early ones too soon.
                    scheduled_at: Some(SystemClock.now_ms() + 120_000 + (h % (30 * DAY as u64 - 3_600_000)) as Millis),
                    notes: Some("call about invoice 1234, prefers mornings".into()),
                    ..Default::default()
                };
                book.schedule(req).await.expect("schedule");
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    println!("filled {} callbacks in {:.1} s", n - have, start.elapsed().as_secs_f64());
}

async fn page_bench(path: &str, n: u64, rounds: usize) {
    let cfg = page_config();
    let book: Arc<dyn Book> = Arc::new(RedbBook::open(path, Arc::new(SystemClock), cfg.clone(), BookOptions::default()).expect("open book"));
    fill(&book, n).await;
    book.flush().await;
    let actor = Actor::Token { name: "bench".into(), scopes: vec![Scope::Admin] };
    let frame = Frame { actor: &actor, csrf: "0123456789abcdef0123456789abcdef01234567", flash: None, nav: "callbacks" };
    let history = History::new(SystemClock.now_ms());
    let p = |tab: &str, queue: &str, owner: &str, phone: &str| ListParams { tab: tab.into(), queue: queue.into(), owner: owner.into(), phone: phone.into(), cursor: None };
    let cases = [
        ("all, no filter", p("all", "", "", "")),
        ("scheduled, queue q2", p("scheduled", "q2", "", "")),
        ("all, queue q1 + owner a5", p("all", "q1", "a5", "")),
        ("phone search", p("all", "", "", "+30000123457")),
        ("cancelled, owner a3 (matches none)", p("cancelled", "", "a3", "")),
        // Owner a3's callbacks are all in q3: two dense indexes, no common id.
        ("all, queue q1 + owner a3 (matches none)", p("all", "q1", "a3", "")),
    ];
    let mut all = Vec::new();
    println!("{} callbacks in the book; {rounds} renders per filter", book.stats(None).await.map(|s| s.requested).unwrap_or(0));
    for (name, params) in &cases {
        let mut ms = Vec::with_capacity(rounds);
        let mut bytes = 0;
        let mut rows = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let src = Sources { book: &*book, cfg: &cfg, agents: &[], trunks: &[], history: &history, now: SystemClock.now_ms() };
            let html = list::page(&src, &frame, params).await.expect("render").into_string();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = html.len();
            rows = html.matches("data-testid=\"callback-row\"").count();
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{name}: {rows} rows, {:.0} KB; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            bytes as f64 / 1024.0,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            percentile(&ms, 1.0)
        );
        all.extend(ms);
    }
    all.sort_by(f64::total_cmp);
    println!("all filters: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", percentile(&all, 0.5), percentile(&all, 0.99), percentile(&all, 1.0));
}

const TOKEN: &str = "bench-secret-0001";

async fn sse_bench(consumers: usize, rate: u64, secs: u64) {
    let dir = std::env::temp_dir().join(format!("redial-console-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sip-profiles")).expect("mkdir");
    let toml = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[profiles]\ndir = \"{}\"\n\
         [[tokens]]\nname = \"bench\"\nsecret = \"{TOKEN}\"\nscopes = [\"admin\"]\n\
         [[queues]]\nname = \"q\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 00:00-24:00\"]\n",
        dir.join("data/bench.redb").display(),
        dir.join("sip-profiles").display()
    );
    std::fs::write(dir.join("redial.toml"), toml).expect("config");
    let cfg = Arc::new(Config::load(Some(&dir.join("redial.toml"))).expect("config"));
    let trunks = Arc::new(ConfiguredTrunks::new(&cfg));
    let api = start_api(cfg, Arc::new(SystemClock) as Arc<dyn Clock>, trunks, Arc::new(NoLiveCalls) as Arc<dyn LiveCalls>).await.expect("start");
    let addr = api.addr;
    let total = rate * secs;

    // Consumers: each reads the stream and records (lag ms) per created event.
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(consumers.max(1));
    for _ in 0..consumers {
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let req = format!("GET /v1/events?types=callback.created HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n");
            s.write_all(req.as_bytes()).await.expect("send");
            let mut r = BufReader::new(s);
            let mut line = String::new();
            let (mut lags, mut lagged) = (Vec::with_capacity(total as usize), 0u64);
            let mut said_ready = false;
            loop {
                line.clear();
                let got = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await;
                let Ok(Ok(n)) = got else { break };
                if n == 0 {
                    break;
                }
                if !said_ready && line == "\r\n" {
                    // The response head is complete: this consumer is subscribed.
                    said_ready = true;
                    let _ = ready.send(()).await;
                    continue;
                }
                if line.starts_with("event: lagged") || line.starts_with("event:lagged") {
                    lagged += 1;
                }
                let Some(data) = line.trim_end().strip_prefix("data:") else { continue };
                // Only the change's time is read: the consumers share this
                // process with the server, so they stay as cheap as a reader can be.
                let at = data.split_once("\"updated_at\":\"").and_then(|(_, rest)| rest.split_once('"')).map(|(t, _)| t);
                if let Some(at) = at.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
                    lags.push(now_ms_f64() - at.timestamp_millis() as f64);
                    if lags.len() as u64 == total {
                        break;
                    }
                }
            }
            (lags, lagged)
        }));
    }
    drop(ready_tx);
    for _ in 0..consumers {
        ready_rx.recv().await.expect("a consumer connected");
    }

    // Producer: RATE schedules a second, each awaited in its own task.
    let book = api.book();
    let cpu0 = cpu_s();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let book = book.clone();
        writes.push(tokio::spawn(async move {
            book.schedule(NewCallback { phone: format!("+4{i:010}"), queue: "q".into(), scheduled_at: Some(SystemClock.now_ms() + DAY), ..Default::default() })
                .await
                .expect("schedule")
        }));
    }
    for w in writes {
        w.await.expect("write");
    }
    let produced_in = start.elapsed();
    let mut lags = Vec::new();
    let (mut min_got, mut max_got, mut lagged) = (u64::MAX, 0u64, 0u64);
    for r in readers {
        let (l, lg) = r.await.expect("reader");
        min_got = min_got.min(l.len() as u64);
        max_got = max_got.max(l.len() as u64);
        lagged += lg;
        lags.extend(l);
    }
    let el = start.elapsed();
    let cpu = cpu_s() - cpu0;
    lags.sort_by(f64::total_cmp);
    println!("{total} changes in {:.2} s ({:.0}/s) to {consumers} consumers", produced_in.as_secs_f64(), total as f64 / produced_in.as_secs_f64());
    if consumers > 0 {
        println!("each consumer received {min_got}..={max_got} of {total}; `lagged` notices: {lagged}");
        println!("lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", percentile(&lags, 0.5), percentile(&lags, 0.99), percentile(&lags, 1.0));
    }
    println!("CPU {:.2} s over {:.2} s = {:.2} cores (server, producer and consumers in this process)", cpu, el.as_secs_f64(), cpu / el.as_secs_f64());
    api.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The API's per-token rate limit is for clients, not for this measurement
    // (set before any thread starts).
    std::env::set_var("REDIAL_API_RATE", "0");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let arg = |i: usize, d: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    match args.get(1).map(String::as_str) {
        Some("page") if args.len() >= 4 => rt.block_on(page_bench(&args[2], arg(3, 1_000_000), arg(4, 200) as usize)),
        Some("sse") => rt.block_on(sse_bench(arg(2, 100) as usize, arg(3, 1000), arg(4, 10))),
        _ => eprintln!("usage: console_bench page PATH N [ROUNDS] | console_bench sse CONSUMERS RATE SECS"),
    }
}
