//! Transaction layer throughput with hundreds of thousands of live transactions, in virtual
//! time (no sockets). Run: `cargo bench --bench sip_transactions` (about 30 s).
//!
//! (a) OPTIONS server transactions created and answered per second while 300,000 stay live in
//!     Completed (Timer J, 32 s over UDP): the 10,000 OPTIONS/s steady state.
//! (b) `poll_timeout` + `handle_timeout` with 1,000,000 live transactions, and the heap bytes a
//!     live Completed transaction holds (a counting allocator).
//! (c) INVITE client transactions that are never answered, through Timer A's whole schedule
//!     (7 sends) to Timer B.
//! (d) The longest single driver steps (one request answered, due timers fired) while the
//!     layer grows at 32,000 answered transactions per virtual second (16,000 digest
//!     REGISTER/s) for 40 virtual seconds, past the first Timer J expiries: every step over
//!     2 ms is printed with the live transactions then, to show stalls of the endpoint task.
//!
//! Wall time is read only to measure; the layer itself sees virtual `Instant`s.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Header, Headers, Request, Response, SipMessage, StatusCode};

use redial::config::SipTimers;
use redial::sip::transaction::{response_for, TransactionEvent, TransactionLayer};
use redial::sip::{Peer, Transport};

/// Counts live heap bytes, to report memory per transaction.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn udp(port: u16) -> Peer {
    Peer { addr: format!("127.0.0.1:{port}").parse().unwrap(), transport: Transport::Udp }
}

/// A typical OPTIONS/INVITE as a peer sends it; `with_branch` makes each one a new transaction.
struct Template {
    request: Request,
}

impl Template {
    fn new(method: &str) -> Self {
        let text = format!(
            "{method} sip:redial@10.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-template;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:monitor@10.0.0.2>;tag=3f2a9c81\r\n\
             To: <sip:redial@10.0.0.1>\r\n\
             Call-ID: 5d1b7e0c-4a52-4d3a-9a1e-7b6c2f0e9d11@10.0.0.2\r\n\
             CSeq: 1 {method}\r\n\
             Contact: <sip:monitor@10.0.0.2:5060>\r\n\
             User-Agent: bench\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Self { request: Request::try_from(text.as_str()).expect("template parses") }
    }

    fn with_branch(&self, n: u64) -> Request {
        let mut headers = Headers::default();
        for h in self.request.headers.iter() {
            match h {
                Header::Via(_) => headers.push(Header::Via(rsip::headers::Via::new(format!(
                    "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK{n:016x};rport"
                )))),
                other => headers.push(other.clone()),
            }
        }
        Request { headers, ..self.request.clone() }
    }
}

fn ok_for(req: &Request) -> Response {
    let mut resp = response_for(req, StatusCode::OK);
    resp.to_header_mut().unwrap().mut_tag(rsip::param::Tag::new("r3d1al")).unwrap();
    resp
}

/// Drains everything; answers each new request 200 at once (the way the endpoint answers
/// OPTIONS). Returns the number of transmits.
fn drain_and_answer(layer: &mut TransactionLayer, now: Instant) -> usize {
    let mut sent = 0;
    loop {
        let mut progressed = false;
        while layer.poll_transmit().is_some() {
            sent += 1;
            progressed = true;
        }
        while let Some(ev) = layer.poll_event() {
            progressed = true;
            if let TransactionEvent::Request { key, request, .. } = ev {
                layer.send_response(now, &key, ok_for(&request)).expect("answer");
            }
        }
        if !progressed {
            return sent;
        }
    }
}

/// One driver step: fire due timers, drain, as the endpoint does after each input.
fn timers_step(layer: &mut TransactionLayer, now: Instant) {
    if layer.poll_timeout().is_some_and(|at| at <= now) {
        layer.handle_timeout(now);
    }
    drain_and_answer(layer, now);
}

/// Creates `n` answered OPTIONS transactions at `rate` per virtual second, ending at the
/// returned instant; no timer runs meanwhile (all stay in Completed as long as n/rate < 32 s).
fn fill(layer: &mut TransactionLayer, tpl: &Template, t0: Instant, first: u64, n: u64, rate: u64) -> Instant {
    let step = Duration::from_nanos(1_000_000_000 / rate);
    let mut now = t0;
    for i in first..first + n {
        now += step;
        layer.handle_message(now, SipMessage::Request(tpl.with_branch(i)), udp(5060));
        drain_and_answer(layer, now);
    }
    now
}

fn bench_a() {
    const LIVE_TXNS: u64 = 300_000;
    const RATE: u64 = 10_000;
    let tpl = Template::new("OPTIONS");
    let mut layer = TransactionLayer::new(SipTimers::default());
    let t0 = Instant::now();
    let fill_start = Instant::now();
    // 300,000 at 10,000/s: the first is 30 s old, i.e. 2 s before its Timer J.
    let mut now = fill(&mut layer, &tpl, t0, 0, LIVE_TXNS, RATE);
    let fill_wall = fill_start.elapsed();
    println!(
        "(a) setup: {LIVE_TXNS} OPTIONS created+answered with no timer calls in {:.2} s ({:.0}/s)",
        fill_wall.as_secs_f64(),
        LIVE_TXNS as f64 / fill_wall.as_secs_f64()
    );
    // Steady state: each new OPTIONS is one driver step (message, answer, poll_timeout,
    // handle_timeout when due); the oldest transactions expire on Timer J meanwhile.
    let step = Duration::from_nanos(1_000_000_000 / RATE);
    let budget = Duration::from_secs(8);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < budget && done < 400_000 {
        now += step;
        layer.handle_message(now, SipMessage::Request(tpl.with_branch(LIVE_TXNS + done)), udp(5060));
        drain_and_answer(&mut layer, now);
        timers_step(&mut layer, now);
        done += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "(a) steady state: {done} OPTIONS in {wall:.2} s wall = {:.0} transactions/s with {} live at the end \
         (virtual {:.1} s)",
        done as f64 / wall,
        layer.len(),
        (now - t0).as_secs_f64()
    );
}

/// What the bench itself spends outside the layer (building each request and its 200), and
/// what the layer's key lookup costs (the default SipHash over branch and sent-by), to tell
/// whether a faster hasher would matter.
fn bench_overheads() {
    let tpl = Template::new("OPTIONS");
    let n = 100_000u64;
    let start = Instant::now();
    let mut bytes = 0usize;
    for i in 0..n {
        let req = tpl.with_branch(i);
        bytes += ok_for(&req).headers.iter().count() + req.headers.iter().count();
    }
    let per = start.elapsed() / n as u32;
    println!("(a') building one request + its 200 outside the layer: {per:?} ({bytes})");
    let mut layer = TransactionLayer::new(SipTimers::default());
    let t0 = Instant::now();
    let mut keys = std::collections::HashSet::new();
    for i in 0..n {
        layer.handle_message(t0, SipMessage::Request(tpl.with_branch(i)), udp(5060));
        while let Some(ev) = layer.poll_event() {
            if let TransactionEvent::Request { key, .. } = ev {
                keys.insert(key);
            }
        }
    }
    let probe: Vec<_> = keys.iter().cloned().collect();
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..10 {
        hits += probe.iter().filter(|k| keys.contains(*k)).count();
    }
    let per = start.elapsed() / hits as u32;
    println!("(a') one TransactionKey lookup in a HashMap of 100k (SipHash): {per:?}");
    // The same lookups with a multiply-rotate hasher (FxHash's scheme, a few lines here rather
    // than a dependency for a measurement) tell hashing apart from cache misses.
    let fx: std::collections::HashSet<_, std::hash::BuildHasherDefault<Fx>> = probe.iter().cloned().collect();
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..10 {
        hits += probe.iter().filter(|k| fx.contains(*k)).count();
    }
    let per = start.elapsed() / hits as u32;
    println!("(a') the same lookup with an Fx-style hasher: {per:?}");
}

#[derive(Default)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn bench_b() {
    const LIVE_TXNS: u64 = 1_000_000;
    let tpl = Template::new("OPTIONS");
    let before = live_bytes();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let t0 = Instant::now();
    // 1,000,000 over 31 s of virtual time (the REGISTER-with-401 case).
    fill(&mut layer, &tpl, t0, 0, LIVE_TXNS, 32_258);
    let bytes = live_bytes() - before;
    println!(
        "(b) {} live Completed OPTIONS transactions hold {:.0} MB of heap = {:.0} bytes each",
        layer.len(),
        bytes as f64 / 1e6,
        bytes as f64 / LIVE_TXNS as f64
    );
    // poll_timeout alone, nothing due.
    let calls = 200;
    let start = Instant::now();
    let mut sink = 0u64;
    for _ in 0..calls {
        sink += layer.poll_timeout().map_or(0, |at| (at - t0).as_nanos() as u64 & 1);
    }
    let per = start.elapsed() / calls;
    println!("(b) poll_timeout with 1M live, nothing due: {:?} per call ({sink})", per);
    // Driver steps every 1 ms of virtual time across the Timer J expiry of the oldest
    // transactions: each step expires ~32 of them.
    let budget = Duration::from_secs(6);
    let start = Instant::now();
    let live_before = layer.len();
    let mut steps = 0u32;
    let mut now = t0 + Duration::from_secs(32);
    while start.elapsed() < budget && steps < 20_000 {
        now += Duration::from_millis(1);
        timers_step(&mut layer, now);
        steps += 1;
    }
    let wall = start.elapsed();
    println!(
        "(b) poll_timeout+handle_timeout every 1 ms virtual with ~1M live: {steps} steps, {} expired, {:?} per step",
        live_before - layer.len(),
        wall / steps
    );
}

fn bench_c() {
    const N: u64 = 10_000;
    let tpl = Template::new("INVITE");
    let mut layer = TransactionLayer::new(SipTimers::default());
    let t0 = Instant::now();
    let start = Instant::now();
    let mut now;
    let mut sent = 0usize;
    // N INVITEs over one virtual second, then run every timer until all have timed out.
    for i in 0..N {
        now = t0 + Duration::from_nanos(i * 1_000_000_000 / N);
        if layer.poll_timeout().is_some_and(|at| at <= now) {
            layer.handle_timeout(now);
        }
        layer.send_request(now, tpl.with_branch(i), udp(5080)).expect("send");
        sent += drain_and_answer(&mut layer, now);
    }
    let mut timeouts = 0usize;
    let mut wakeups = 0usize;
    while let Some(at) = layer.poll_timeout() {
        now = at;
        layer.handle_timeout(now);
        wakeups += 1;
        while layer.poll_transmit().is_some() {
            sent += 1;
        }
        while let Some(ev) = layer.poll_event() {
            timeouts += matches!(ev, TransactionEvent::Timeout { .. }) as usize;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "(c) {N} unanswered INVITE client transactions: {sent} sends, {timeouts} Timer B timeouts, {wakeups} wake-ups, \
         {wall:.2} s wall = {:.0} transactions/s, {:.0} sends/s",
        N as f64 / wall,
        sent as f64 / wall
    );
}

fn bench_d() {
    const RATE: u64 = 32_000;
    const SECS: u64 = 40;
    let tpl = Template::new("REGISTER");
    let mut layer = TransactionLayer::new(SipTimers::default());
    let step = Duration::from_nanos(1_000_000_000 / RATE);
    let t0 = Instant::now();
    let mut now = t0;
    let mut slow = Vec::new();
    let mut total = Duration::ZERO;
    let mut longest = (Duration::ZERO, 0);
    for i in 0..RATE * SECS {
        now += step;
        let wall = Instant::now();
        let before = layer.len();
        layer.handle_message(now, SipMessage::Request(tpl.with_branch(i)), udp(5060));
        drain_and_answer(&mut layer, now);
        timers_step(&mut layer, now);
        let took = wall.elapsed();
        total += took;
        if took > longest.0 {
            longest = (took, before);
        }
        if took >= Duration::from_millis(2) {
            slow.push((took, before, (now - t0).as_secs_f64()));
        }
    }
    println!(
        "(d) {} steps at {RATE}/s virtual: {:.2} s wall, mean {:.2} µs, longest {:.1} ms at {} live; steps over 2 ms: {}",
        RATE * SECS,
        total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / (RATE * SECS) as f64,
        longest.0.as_secs_f64() * 1e3,
        longest.1,
        slow.len()
    );
    for (took, live, at) in slow.iter().take(20) {
        println!("(d)   {:.1} ms with {live} live at virtual {at:.2} s", took.as_secs_f64() * 1e3);
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse. `-- overheads` runs only that part,
    // `-- stalls` only (d).
    if std::env::args().any(|a| a == "overheads") {
        bench_overheads();
        return;
    }
    if std::env::args().any(|a| a == "stalls") {
        bench_d();
        return;
    }
    bench_a();
    bench_overheads();
    bench_b();
    bench_c();
    bench_d();
}
