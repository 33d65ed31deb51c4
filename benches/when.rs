//! Free-text resolver throughput (it runs on every booking).
//! Run: `cargo bench --bench when`. Prints phrases/s and µs/phrase.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::DateTime;
use redial::scheduler::when::resolve;
use redial::scheduler::window::WeeklyHours;

const PHRASES: &[&str] = &[
    "in 30 min",
    "half an hour",
    "an hour and a half",
    "kal subah",
    "tomorrow at 3pm",
    "next Tuesday at 3",
    "kal 3 baje",
    "do ghante baad",
    "around 10",
    "after lunch",
    "day after tomorrow evening",
    "later",
    "please call me back tomorrow morning around 11, thanks",
    "parso shaam 5 baje",
];

fn main() {
    let hours = WeeklyHours::parse(&["mon-fri 09:00-20:00", "sat 10:00-14:00"]).unwrap();
    let now = DateTime::parse_from_rfc3339("2026-11-18T10:00:00+05:30").unwrap().timestamp_millis();
    for (name, tz) in [("Asia/Kolkata", chrono_tz::Asia::Kolkata), ("America/New_York", chrono_tz::America::New_York)] {
        const ROUNDS: usize = 20_000;
        let t = Instant::now();
        for i in 0..ROUNDS {
            for p in PHRASES {
                black_box(resolve(black_box(p), now + i as i64, tz, &hours, Duration::from_secs(600)));
            }
        }
        let n = (ROUNDS * PHRASES.len()) as f64;
        let s = t.elapsed().as_secs_f64();
        println!(
            "resolve {name:<17} {:>10.0} phrases/s  ({:.2} µs/phrase, mixed set of {})",
            n / s,
            s * 1e6 / n,
            PHRASES.len()
        );
    }
}
