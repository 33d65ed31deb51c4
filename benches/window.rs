//! `next_open` cost per call. Run: `cargo bench --bench window`.
//! Prints ns/call for an instant inside the window, a weekday evening, and a
//! Friday evening that moves to Monday, in two timezones.

use std::hint::black_box;
use std::time::Instant;

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use redial::scheduler::window::{next_open, open_until, WeeklyHours};

fn local(tz: Tz, s: &str) -> i64 {
    let n = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    tz.from_local_datetime(&n).single().unwrap().timestamp_millis()
}

fn main() {
    let hours = WeeklyHours::parse(&["mon-fri 09:00-20:00", "sat 10:00-14:00"]).unwrap();
    let weekdays = WeeklyHours::parse(&["mon-fri 09:00-20:00"]).unwrap();
    let cases: [(&str, &WeeklyHours, Tz, &str); 5] = [
        ("inside window       ", &hours, chrono_tz::America::New_York, "2026-11-18 12:00"),
        ("wed evening -> thu  ", &hours, chrono_tz::America::New_York, "2026-11-18 21:00"),
        ("fri evening -> mon  ", &weekdays, chrono_tz::America::New_York, "2026-11-20 21:00"),
        ("fri evening -> mon  ", &weekdays, chrono_tz::Asia::Kolkata, "2026-11-20 21:00"),
        ("across fall-back    ", &weekdays, chrono_tz::America::New_York, "2026-10-30 21:00"),
    ];
    const N: u32 = 200_000;
    for (name, h, tz, at) in cases {
        let at = local(tz, at);
        // Spread instants over a week so the tz lookups are not all identical.
        let t0 = Instant::now();
        let mut acc = 0i64;
        for i in 0..N {
            acc ^= next_open(black_box(h), tz, black_box(at + i64::from(i % 60) * 1000));
        }
        let ns = t0.elapsed().as_nanos() as f64 / f64::from(N);
        black_box(acc);
        println!("next_open  {name} {:<18} {ns:8.1} ns/call", tz.name());
    }
    let at = local(chrono_tz::America::New_York, "2026-11-18 12:00");
    let t0 = Instant::now();
    for i in 0..N {
        black_box(open_until(black_box(&hours), chrono_tz::America::New_York, at + i64::from(i % 60)));
    }
    let ns = t0.elapsed().as_nanos() as f64 / f64::from(N);
    println!("open_until inside window        America/New_York   {ns:8.1} ns/call");
}
