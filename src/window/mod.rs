//! Calling windows: a queue's `hours` (e.g. `mon-fri 09:00-20:00`) in the
//! customer's local time.
//!
//! This file holds the parsed form, its parser and the time arithmetic:
//! [`next_open`], [`open_until`], [`is_open`].
//!
//! # DST rules
//! Each interval of a local day is mapped to a span of real instants:
//! - a boundary (open or close) whose wall-clock time does not exist (the
//!   spring-forward gap) maps to the first instant after the gap, so an
//!   opening at 02:30 on a New York spring-forward day opens at 03:00 EDT;
//!   an interval lying wholly inside the gap is empty that day;
//! - an **opening** at an ambiguous (repeated, fall-back) time maps to the
//!   **earlier** instant and a **close** to the **later** one. The window is
//!   never shortened by a repeated hour: every instant whose wall-clock time
//!   is inside the range, on either pass, is open. An interval stays one
//!   contiguous span, so the price is that it also covers the part of the
//!   repeated hour before the range on the second pass (for `01:30-02:30` in
//!   New York: 01:30 EDT to 02:30 EST, including 01:00-01:30 EST).
//!
//! Intervals touching across midnight (`20:00-24:00`, then `00:00-08:00` the
//! next day) form one open period for [`open_until`].

use std::fmt;

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

use crate::clock::Millis;

/// Minutes since local midnight, 0..=1440.
pub type MinuteOfDay = u16;

/// Open intervals per weekday (index 0 = Monday), each `[start, end)` in
/// minutes of the local day, sorted and merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyHours {
    days: [Vec<(MinuteOfDay, MinuteOfDay)>; 7],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("empty entry")]
    Empty,
    #[error("unknown day `{0}` (use mon, tue, wed, thu, fri, sat, sun)")]
    UnknownDay(String),
    #[error("bad time range `{0}` (use HH:MM-HH:MM, e.g. 09:00-20:00; 24:00 ends the day)")]
    BadRange(String),
    #[error("range `{0}` ends before it starts (ranges cannot cross midnight: split them)")]
    Backwards(String),
    #[error("no hours given: the window would never open")]
    NeverOpen,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl WeeklyHours {
    /// Always open.
    pub fn always() -> Self {
        Self { days: std::array::from_fn(|_| vec![(0, 1440)]) }
    }

    /// Parses entries like `"mon-fri 09:00-20:00"`, `"sat,sun 10:00-14:00"`,
    /// `"09:00-17:00"` (every day) or `"00:00-24:00"`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, HoursError> {
        let mut days: [Vec<(MinuteOfDay, MinuteOfDay)>; 7] = Default::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            let mut parts = entry.split_whitespace();
            let (day_spec, range) = match (parts.next(), parts.next(), parts.next()) {
                (None, _, _) => return Err(HoursError::Empty),
                (Some(r), None, _) => (None, r),
                (Some(d), Some(r), None) => (Some(d), r),
                _ => return Err(HoursError::BadRange(entry.to_string())),
            };
            let span = parse_range(range)?;
            let selected = match day_spec {
                None => [true; 7],
                Some(spec) => parse_days(spec)?,
            };
            for (d, on) in selected.iter().enumerate() {
                if *on && span.0 < span.1 {
                    days[d].push(span);
                }
            }
        }
        for d in days.iter_mut() {
            d.sort_unstable();
            let mut merged: Vec<(MinuteOfDay, MinuteOfDay)> = Vec::with_capacity(d.len());
            for &(s, e) in d.iter() {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            *d = merged;
        }
        if days.iter().all(|d| d.is_empty()) {
            return Err(HoursError::NeverOpen);
        }
        Ok(Self { days })
    }

    /// The open intervals of a weekday (0 = Monday).
    pub fn day(&self, weekday_from_monday: usize) -> &[(MinuteOfDay, MinuteOfDay)] {
        &self.days[weekday_from_monday % 7]
    }

    /// Whether minute `m` of weekday `d` (0 = Monday) is inside the window.
    pub fn contains(&self, weekday_from_monday: usize, m: MinuteOfDay) -> bool {
        self.day(weekday_from_monday).iter().any(|&(s, e)| s <= m && m < e)
    }
}

impl WeeklyHours {
    /// Parses one daily range `HH:MM-HH:MM` (as in an entry without days).
    pub fn parse_daily(range: &str) -> Result<(MinuteOfDay, MinuteOfDay), HoursError> {
        parse_range(range.trim())
    }

    /// These hours, each day cut to `[start, end)`; `None` when nothing is left.
    pub fn within_daily(&self, (start, end): (MinuteOfDay, MinuteOfDay)) -> Option<Self> {
        let days: [Vec<(MinuteOfDay, MinuteOfDay)>; 7] = std::array::from_fn(|d| {
            self.days[d].iter().filter_map(|&(s, e)| {
                let (s, e) = (s.max(start), e.min(end));
                (s < e).then_some((s, e))
            }).collect()
        });
        (!days.iter().all(Vec::is_empty)).then_some(Self { days })
    }
}

impl fmt::Display for WeeklyHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (d, spans) in self.days.iter().enumerate() {
            for (s, e) in spans {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                write!(f, "{} {:02}:{:02}-{:02}:{:02}", DAY_NAMES[d], s / 60, s % 60, e / 60, e % 60)?;
            }
        }
        Ok(())
    }
}

fn parse_days(spec: &str) -> Result<[bool; 7], HoursError> {
    let mut out = [false; 7];
    for item in spec.split(',') {
        let item = item.trim().to_ascii_lowercase();
        let day = |s: &str| {
            DAY_NAMES
                .iter()
                .position(|n| *n == s)
                .ok_or_else(|| HoursError::UnknownDay(s.to_string()))
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                // A range may wrap the week: fri-mon = fri, sat, sun, mon.
                let mut d = a;
                loop {
                    out[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => out[day(&item)?] = true,
        }
    }
    Ok(out)
}

fn parse_range(range: &str) -> Result<(MinuteOfDay, MinuteOfDay), HoursError> {
    let bad = || HoursError::BadRange(range.to_string());
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let minute = |t: &str| -> Result<MinuteOfDay, HoursError> {
        let (h, m) = t.split_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (s, e) = (minute(a)?, minute(b)?);
    if e <= s {
        return Err(HoursError::Backwards(range.to_string()));
    }
    Ok((s, e))
}

/// `open_until` result for a window that never closes (every day open all day).
pub const NEVER_CLOSES: Millis = Millis::MAX;

/// How many local days past the starting day are searched. Any non-empty
/// week opens within 7 days; a spring-forward day can empty an interval
/// (one wholly inside the gap), which pushes the opening one more week at
/// worst only for single-interval weeks, so 16 days covers every case.
const SEARCH_DAYS: i64 = 16;

/// Whether `at_ms` is inside the window, in the customer's local time `tz`.
pub fn is_open(hours: &WeeklyHours, tz: Tz, at_ms: Millis) -> bool {
    let start = local_date(tz, at_ms);
    // An instant's interval is on its local day or the day before (a close at
    // 24:00 that is ambiguous) or after (an opening at an ambiguous time).
    (-1..=1).any(|off| {
        let date = shift(start, off);
        day_spans(hours, tz, date).any(|(o, c)| o <= at_ms && at_ms < c)
    })
}

/// `at_ms` itself when the window is open then, else the next instant it
/// opens. Allocation-free; at most a few days of intervals are converted.
pub fn next_open(hours: &WeeklyHours, tz: Tz, at_ms: Millis) -> Millis {
    let start = local_date(tz, at_ms);
    let mut best: Option<Millis> = None;
    let mut found_on: i64 = i64::MAX;
    for off in -1..=SEARCH_DAYS {
        // Openings on later days are at least ~a day later than ones found on
        // an earlier day; one extra day covers out-of-order DST mappings.
        if off >= 2 && off > found_on.saturating_add(1) {
            break;
        }
        let date = shift(start, off);
        let wd = date.weekday().num_days_from_monday() as usize;
        for &(s, e) in hours.day(wd) {
            // Intervals already over cost one conversion, not two.
            let c = local_to_ms(tz, date, e, Edge::Close);
            if c <= at_ms {
                continue;
            }
            let o = local_to_ms(tz, date, s, Edge::Open);
            if o >= c {
                continue; // wholly inside a spring-forward gap
            }
            if o <= at_ms {
                return at_ms;
            }
            if best.is_none_or(|b| o < b) {
                best = Some(o);
                found_on = found_on.min(off);
            }
        }
    }
    // The parser refuses an empty week, so an opening exists within the
    // search span; the fallback keeps this total for a hand-built value.
    best.unwrap_or(at_ms)
}

/// The end of the open period containing `at_ms`, or `None` when closed.
/// Intervals that touch (across midnight, or across a DST change) are one
/// period. [`NEVER_CLOSES`] when every day is open all day.
pub fn open_until(hours: &WeeklyHours, tz: Tz, at_ms: Millis) -> Option<Millis> {
    let start = local_date(tz, at_ms);
    let mut end: Option<Millis> = None;
    for off in -1..=1 {
        for (o, c) in day_spans(hours, tz, shift(start, off)) {
            if o <= at_ms && at_ms < c {
                end = Some(end.map_or(c, |e| e.max(c)));
            }
        }
    }
    let mut end = end?;
    for off in -1..=SEARCH_DAYS {
        let mut extended = false;
        for (o, c) in day_spans(hours, tz, shift(start, off)) {
            if o <= end && c > end {
                end = c;
                extended = true;
            }
        }
        // Past the starting day, a day that does not continue the period
        // ends it: later days open later still.
        if off >= 1 && !extended {
            return Some(end);
        }
    }
    Some(NEVER_CLOSES)
}

/// The instant of a local wall-clock time by the opening rule: a time in a
/// spring-forward gap maps to the first instant after the gap, a repeated
/// (fall-back) time to its earlier occurrence. Used by the free-text
/// resolver so "tomorrow at 02:30" follows the same rules as a window.
pub fn local_to_instant(tz: Tz, local: NaiveDateTime) -> Millis {
    local_naive_to_ms(tz, local, Edge::Open)
}

/// The local calendar date of an instant.
pub fn local_date(tz: Tz, at_ms: Millis) -> NaiveDate {
    let utc = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
    tz.from_utc_datetime(&utc.naive_utc()).date_naive()
}

fn shift(date: NaiveDate, days: i64) -> NaiveDate {
    let r = if days >= 0 {
        date.checked_add_days(Days::new(days as u64))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    };
    r.unwrap_or(date)
}

/// The day's intervals as real `[open, close)` instants, empty ones dropped.
fn day_spans(hours: &WeeklyHours, tz: Tz, date: NaiveDate) -> impl Iterator<Item = (Millis, Millis)> + '_ {
    let wd = date.weekday().num_days_from_monday() as usize;
    hours.day(wd).iter().filter_map(move |&(s, e)| {
        let o = local_to_ms(tz, date, s, Edge::Open);
        let c = local_to_ms(tz, date, e, Edge::Close);
        (o < c).then_some((o, c))
    })
}

#[derive(Clone, Copy)]
enum Edge {
    Open,
    Close,
}

/// The instant of minute `m` (0..=1440) of local `date`, by the DST rules in
/// the module docs.
fn local_to_ms(tz: Tz, date: NaiveDate, m: MinuteOfDay, edge: Edge) -> Millis {
    let (date, m) = if m >= 1440 { (shift(date, 1), m - 1440) } else { (date, m) };
    let time = NaiveTime::from_hms_opt(u32::from(m / 60), u32::from(m % 60), 0).unwrap_or(NaiveTime::MIN);
    local_naive_to_ms(tz, date.and_time(time), edge)
}

fn local_naive_to_ms(tz: Tz, naive: NaiveDateTime, edge: Edge) -> Millis {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(early, late) => match edge {
            Edge::Open => early.timestamp_millis(),
            Edge::Close => late.timestamp_millis(),
        },
        LocalResult::None => match GapInfo::new(&naive, &tz).and_then(|g| g.end) {
            Some(after_gap) => after_gap.timestamp_millis(),
            // Beyond the tz database's known range: treat the wall time as UTC
            // shifted by the nearest offset (cannot happen for real dates).
            None => naive.and_utc().timestamp_millis(),
        },
    }
}

#[cfg(test)]
mod arithmetic_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_design_example() {
        let h = WeeklyHours::parse(&["mon-fri 09:00-20:00", "sat 10:00-14:00"]).unwrap();
        assert_eq!(h.day(0), &[(540, 1200)]);
        assert_eq!(h.day(4), &[(540, 1200)]);
        assert_eq!(h.day(5), &[(600, 840)]);
        assert!(h.day(6).is_empty());
        assert!(h.contains(2, 540));
        assert!(!h.contains(2, 1200));
    }

    #[test]
    fn whole_day_every_day_and_merge() {
        let h = WeeklyHours::parse(&["00:00-24:00"]).unwrap();
        assert_eq!(h, WeeklyHours::always());
        let h = WeeklyHours::parse(&["mon 09:00-12:00", "mon 11:00-13:00", "mon 13:00-14:00"]).unwrap();
        assert_eq!(h.day(0), &[(540, 840)]);
    }

    #[test]
    fn wrapping_day_range_and_lists() {
        let h = WeeklyHours::parse(&["fri-mon 10:00-11:00", "wed,thu 08:00-09:00"]).unwrap();
        for d in [4, 5, 6, 0] {
            assert_eq!(h.day(d), &[(600, 660)], "day {d}");
        }
        assert!(h.day(1).is_empty());
        assert_eq!(h.day(2), &[(480, 540)]);
    }

    #[test]
    fn rejects_bad_entries() {
        assert_eq!(WeeklyHours::parse(&["funday 09:00-10:00"]), Err(HoursError::UnknownDay("funday".into())));
        assert!(matches!(WeeklyHours::parse(&["mon 9-10"]), Err(HoursError::BadRange(_))));
        assert!(matches!(WeeklyHours::parse(&["mon 20:00-09:00"]), Err(HoursError::Backwards(_))));
        assert!(matches!(WeeklyHours::parse(&["mon 24:30-24:40"]), Err(HoursError::BadRange(_))));
        assert!(matches!(WeeklyHours::parse(&["mon 10:00-11:00 x"]), Err(HoursError::BadRange(_))));
        assert_eq!(WeeklyHours::parse::<&str>(&[]), Err(HoursError::NeverOpen));
    }
}
