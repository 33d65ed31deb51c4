//! The console's charts: callbacks per hour by outcome over the last 24 h,
//! and the distribution of the delay from request to first dial. Counted
//! from the event bus as attempts start and end, in hourly buckets (memory
//! stays bounded however busy redial is), and drawn as inline SVG.
//!
//! [`History`] is a plain value fed events with their commit time; the
//! console keeps one per process, so after a restart the charts cover the
//! time since the start (the caption says so).

use std::collections::BTreeMap;
use std::sync::Mutex;

use maud::{html, Markup};

use crate::clock::Millis;
use crate::events::{Event, Payload};
use crate::scheduler::model::Outcome;

const HOUR: Millis = 3_600_000;
/// Hours the charts look back.
pub const HOURS: usize = 24;

/// The delay buckets' upper bounds (ms) and labels; the last is open-ended.
pub const DELAY_BUCKETS: [(Millis, &str); 7] = [
    (60_000, "< 1 min"),
    (5 * 60_000, "1–5 min"),
    (15 * 60_000, "5–15 min"),
    (HOUR, "15–60 min"),
    (4 * HOUR, "1–4 h"),
    (24 * HOUR, "4–24 h"),
    (Millis::MAX, "> 24 h"),
];

/// Ended attempts per outcome and first dials per delay bucket, by hour.
#[derive(Debug, Clone)]
pub struct History {
    started: Millis,
    ended: BTreeMap<i64, [u64; Outcome::ALL.len()]>,
    delays: BTreeMap<i64, [u64; DELAY_BUCKETS.len()]>,
}

impl History {
    /// An empty history counting from `started`.
    pub fn new(started: Millis) -> Self {
        Self { started, ended: BTreeMap::new(), delays: BTreeMap::new() }
    }

    /// Counts `e` if it is an attempt ending, or a callback's first dial.
    pub fn observe(&mut self, e: &Event) {
        match &e.payload {
            Payload::AttemptEnded { attempt, .. } => self.attempt_ended(attempt.ended_at, attempt.outcome),
            Payload::AttemptStarted { callback, attempt: 1 } => self.first_dial(e.at, e.at - callback.created_at),
            _ => {}
        }
        self.prune(e.at);
    }

    pub fn attempt_ended(&mut self, at: Millis, outcome: Outcome) {
        let slot = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.ended.entry(at.div_euclid(HOUR)).or_default()[slot] += 1;
    }

    pub fn first_dial(&mut self, at: Millis, delay: Millis) {
        let slot = DELAY_BUCKETS.iter().position(|(max, _)| delay.max(0) < *max).unwrap_or(DELAY_BUCKETS.len() - 1);
        self.delays.entry(at.div_euclid(HOUR)).or_default()[slot] += 1;
    }

    fn prune(&mut self, now: Millis) {
        let oldest = now.div_euclid(HOUR) - HOURS as i64 + 1;
        self.ended = self.ended.split_off(&oldest);
        self.delays = self.delays.split_off(&oldest);
    }

    /// The last [`HOURS`] hours up to `now`, oldest first: (hour start,
    /// ended attempts per outcome in [`Outcome::ALL`] order).
    pub fn per_hour(&self, now: Millis) -> Vec<(Millis, [u64; Outcome::ALL.len()])> {
        let last = now.div_euclid(HOUR);
        (last - HOURS as i64 + 1..=last).map(|h| (h * HOUR, self.ended.get(&h).copied().unwrap_or_default())).collect()
    }

    /// First dials per delay bucket over the last [`HOURS`] hours.
    pub fn delay_counts(&self, now: Millis) -> [u64; DELAY_BUCKETS.len()] {
        let oldest = now.div_euclid(HOUR) - HOURS as i64 + 1;
        let mut out = [0; DELAY_BUCKETS.len()];
        for (_, c) in self.delays.range(oldest..) {
            for (o, n) in out.iter_mut().zip(c) {
                *o += n;
            }
        }
        out
    }

    /// Whether the charts cover less than the full 24 h.
    pub fn partial(&self, now: Millis) -> bool {
        now - self.started < HOURS as Millis * HOUR
    }
}

/// The process's history, shared by the feeding task and the pages.
#[derive(Debug)]
pub struct Charts(Mutex<History>);

impl Default for Charts {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Charts {
    pub fn new(started: Millis) -> Self {
        Self(Mutex::new(History::new(started)))
    }

    pub fn observe(&self, e: &Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).observe(e);
    }

    pub fn snapshot(&self) -> History {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Each outcome's colour, in [`Outcome::ALL`] order (distinct in hue and
/// lightness, so the legend still reads for most colour-blind people).
const COLOURS: [&str; Outcome::ALL.len()] = ["#15803d", "#7c3aed", "#f59e0b", "#ea580c", "#db2777", "#b91c1c", "#0891b2", "#1e40af", "#64748b", "#a3e635"];

fn caption(h: &History, now: Millis, what: &str) -> String {
    if h.partial(now) {
        format!("{what}, since redial started")
    } else {
        format!("{what}, last 24 h")
    }
}

/// Ended attempts per hour, stacked by outcome, as inline SVG.
pub fn per_hour_chart(h: &History, now: Millis) -> Markup {
    let hours = h.per_hour(now);
    let max = hours.iter().map(|(_, c)| c.iter().sum::<u64>()).max().unwrap_or(0).max(1);
    let (bw, gap, top, ph) = (14u64, 4u64, 8u64, 100u64);
    let width = HOURS as u64 * (bw + gap) + gap;
    let title = caption(h, now, "Attempts per hour by outcome");
    let used: Vec<usize> = (0..Outcome::ALL.len()).filter(|i| hours.iter().any(|(_, c)| c[*i] > 0)).collect();
    // Each hour's outcomes stacked bottom-up: (x, y, height, outcome, count, hour start).
    let mut segments = Vec::new();
    for (i, (start, counts)) in hours.iter().enumerate() {
        let x = gap + i as u64 * (bw + gap);
        let mut y = top + ph;
        for (k, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let bh = (n * ph / max).max(1);
            y -= bh.min(y);
            segments.push((x, y, bh, k, *n, *start));
        }
    }
    html! {
        figure.chart data-testid="chart-per-hour" {
            figcaption { (title) }
            svg width=(width) height=(top + ph + 18) viewBox={ "0 0 " (width) " " (top + ph + 18) } role="img" aria-label=(title) {
                @for (x, y, bh, k, n, start) in &segments {
                    rect x=(x) y=(y) width=(bw) height=(bh) fill=(COLOURS[*k]) data-outcome=(Outcome::ALL[*k].as_str()) {
                        title { (hour_label(*start)) " UTC: " (n) " " (Outcome::ALL[*k].as_str()) }
                    }
                }
                @for (i, (start, _)) in hours.iter().enumerate().filter(|(i, _)| i % 6 == 0) {
                    text x=(gap + i as u64 * (bw + gap)) y=(top + ph + 13) font-size="9" fill="#475569" { (hour_label(*start)) }
                }
                @if used.is_empty() {
                    text x=(width / 2) y=(top + ph / 2) font-size="11" text-anchor="middle" fill="#475569" { "No attempt ended yet." }
                }
            }
            @if !used.is_empty() {
                ul.legend {
                    @for k in &used { li { span.swatch.(format!("o{k}")) aria-hidden="true" {} (Outcome::ALL[*k].as_str().replace('_', " ")) } }
                }
            }
        }
    }
}

fn hour_label(start: Millis) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(start).map(|t| t.format("%H:00").to_string()).unwrap_or_default()
}

/// The distribution of delay from request to first dial, as inline SVG.
pub fn delay_chart(h: &History, now: Millis) -> Markup {
    let counts = h.delay_counts(now);
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let (bw, gap, top, ph) = (46u64, 8u64, 14u64, 100u64);
    let width = counts.len() as u64 * (bw + gap) + gap;
    let title = caption(h, now, "Delay from request to first dial");
    html! {
        figure.chart data-testid="chart-delay" {
            figcaption { (title) }
            svg width=(width) height=(top + ph + 20) viewBox={ "0 0 " (width) " " (top + ph + 20) } role="img" aria-label=(title) {
                @for (i, n) in counts.iter().enumerate() {
                    @let bh = if *n == 0 { 0 } else { (n * ph / max).max(1) };
                    @let x = gap + i as u64 * (bw + gap);
                    rect x=(x) y=(top + ph - bh) width=(bw) height=(bh) fill="#2563eb" rx="2" { title { (DELAY_BUCKETS[i].1) ": " (n) } }
                    text x=(x + bw / 2) y=(top + ph + 14) font-size="9" text-anchor="middle" fill="#475569" { (DELAY_BUCKETS[i].1) }
                    text x=(x + bw / 2) y=(top + ph - bh - 3) font-size="10" text-anchor="middle" fill="#0f172a" { (n) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_795_000_000_000 / HOUR * HOUR;

    #[test]
    fn attempts_are_counted_per_hour_and_outcome_and_age_out_after_a_day() {
        let mut h = History::new(T0 - 48 * HOUR);
        h.attempt_ended(T0 - 30 * HOUR, Outcome::Human); // older than 24 h
        h.attempt_ended(T0 + 10, Outcome::Human);
        h.attempt_ended(T0 + 20, Outcome::Human);
        h.attempt_ended(T0 + 30, Outcome::NoAnswer);
        h.attempt_ended(T0 - 2 * HOUR, Outcome::Busy);
        let now = T0 + HOUR / 2;
        let hours = h.per_hour(now);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[23].0, T0, "the newest bucket is the current hour");
        let human = Outcome::ALL.iter().position(|o| *o == Outcome::Human).unwrap();
        let no_answer = Outcome::ALL.iter().position(|o| *o == Outcome::NoAnswer).unwrap();
        assert_eq!((hours[23].1[human], hours[23].1[no_answer]), (2, 1));
        assert_eq!(hours.iter().map(|(_, c)| c.iter().sum::<u64>()).sum::<u64>(), 4, "the 30-hour-old one is outside");
        assert!(!h.partial(now));

        let svg = per_hour_chart(&h, now).into_string();
        assert_eq!(svg.matches("<rect").count(), 3, "one segment per outcome per hour: human+no_answer now, busy 2 h ago");
        // The busiest hour (3) fills the 100 px plot: 2 human = 66 px, 1 no_answer = 33 px, stacked.
        assert!(svg.contains("height=\"66\" fill=\"#15803d\" data-outcome=\"human\""), "{svg}");
        assert!(svg.contains("y=\"9\" width=\"14\" height=\"33\""), "stacked on top: {svg}");
        assert!(svg.contains("data-testid=\"chart-per-hour\"") && svg.contains("last 24 h"));
        assert!(!svg.contains("style="), "no inline style (the CSP forbids it)");
    }

    #[test]
    fn first_dials_fall_in_delay_buckets_and_an_empty_history_says_so() {
        let mut h = History::new(T0);
        for d in [0, 59_999, 60_000, 10 * 60_000, 2 * HOUR, 3 * 24 * HOUR] {
            h.first_dial(T0 + 1000, d);
        }
        assert_eq!(h.delay_counts(T0 + 2000), [2, 1, 1, 0, 1, 0, 1]);
        let svg = delay_chart(&h, T0 + 2000).into_string();
        assert_eq!(svg.matches("<rect").count(), 7);
        assert!(svg.contains("<title>&lt; 1 min: 2</title>"), "{svg}");
        assert!(svg.contains("height=\"100\""), "the biggest bucket fills the plot");
        assert!(svg.contains("since redial started"), "a history younger than a day says so");

        let empty = per_hour_chart(&History::new(T0), T0 + 1).into_string();
        assert!(empty.contains("No attempt ended yet."));
    }
}
