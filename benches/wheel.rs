//! Timer wheel throughput with 1M items. Run: `cargo bench --bench wheel`.
//! Prints inserts, removes and expiries per second.

use std::hint::black_box;
use std::time::Instant;

use redial::scheduler::wheel::TimerWheel;

const N: u64 = 1_000_000;
const T0: i64 = 1_790_000_000_000;

/// Deterministic spread of due times over the next 4 hours (xorshift).
fn dues() -> Vec<i64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            T0 + (x % (4 * 3_600_000)) as i64
        })
        .collect()
}

fn rate(label: &str, n: u64, t0: Instant) {
    let s = t0.elapsed().as_secs_f64();
    println!("{label:<34} {:>12.0} /s  ({:.1} ns each)", n as f64 / s, s * 1e9 / n as f64);
}

fn main() {
    let dues = dues();

    let mut w = TimerWheel::new(T0);
    let t = Instant::now();
    for (k, &d) in dues.iter().enumerate() {
        w.insert(k as u64, d);
    }
    rate("insert (1M, spread over 4 h)", N, t);

    let t = Instant::now();
    for k in (0..N).step_by(2) {
        black_box(w.remove(&k));
    }
    rate("remove (500k of 1M)", N / 2, t);

    // Expire the rest by polling once per simulated second over 4 hours.
    let t = Instant::now();
    let mut out = Vec::new();
    let mut fired = 0u64;
    let mut now = T0;
    while now <= T0 + 4 * 3_600_000 {
        w.poll_expired_into(now, &mut out);
        fired += out.len() as u64;
        out.clear();
        now += 1_000;
    }
    assert_eq!(fired, N / 2);
    rate("expire (500k, polled every 1 s)", fired, t);

    // The driver's way: poll exactly at next_deadline.
    let mut w = TimerWheel::new(T0);
    for (k, &d) in dues.iter().enumerate() {
        w.insert(k as u64, d);
    }
    let t = Instant::now();
    let mut fired = 0u64;
    let mut wakes = 0u64;
    while let Some(d) = w.next_deadline() {
        w.poll_expired_into(d, &mut out);
        fired += out.len() as u64;
        out.clear();
        wakes += 1;
    }
    assert_eq!(fired, N);
    rate("expire (1M, at each next_deadline)", fired, t);
    println!("  wakes: {wakes} for {fired} items");

    // Rescheduling: every item moved once.
    let mut w = TimerWheel::new(T0);
    for (k, &d) in dues.iter().enumerate() {
        w.insert(k as u64, d);
    }
    let t = Instant::now();
    for (k, &d) in dues.iter().enumerate() {
        w.insert(k as u64, d + 60_000);
    }
    rate("re-insert (move) 1M", N, t);
    black_box(w.len());
}
