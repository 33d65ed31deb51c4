//! Free-text callback times ("tomorrow morning", "kal subah", "in half an
//! hour", "next Tuesday at 3") resolved to due times.
//!
//! [`resolve`] is deterministic: it reads no clock (`now_ms` is an argument)
//! and depends only on the text, `now_ms`, the timezone and the window.
//! Wall-clock times are mapped to instants by the calling-window DST rules
//! ([`window::local_to_instant`]: a time in a spring-forward gap means the
//! first instant after it, a repeated time its first occurrence); relative
//! durations are real elapsed time; "tomorrow" is the next local calendar day.
//!
//! The result is never less than [`MIN_LEAD_MS`] ahead of `now_ms` (the API
//! refuses times closer than 60 s) and is clipped to the window with
//! [`window::next_open`]. The full vocabulary and default times are in
//! `docs/windows-and-times.md`.

mod lexicon;

use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate, NaiveTime};
use chrono_tz::Tz;

use self::lexicon::Daypart;
use crate::clock::Millis;
use crate::config::Config;
use crate::scheduler::model::NewCallback;
/// Re-exported where callers have always found it; defined with the record it
/// describes.
pub use crate::scheduler::model::WhenResolution;
use crate::window::{self, WeeklyHours};

/// How far ahead of `now` a resolved time is at least (the booking rule: a
/// scheduled time is at least 60 s ahead).
pub const MIN_LEAD_MS: Millis = 60_000;

/// Local time used for a day named without a time ("tomorrow", "Tuesday").
pub const DAY_DEFAULT_MINUTE: u32 = 10 * 60;

/// Requests further ahead than this are cut to it (the API refuses anything
/// beyond 30 days; this only keeps the arithmetic in range).
pub const MAX_AHEAD_MS: Millis = 400 * 86_400_000;

/// Minutes for "a few minutes" and hours for "a few hours" / "a couple of".
const FEW: f64 = 10.0;
const FEW_HOURS: f64 = 2.0;

/// The outcome of [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// When to call: the requested time, moved to at least [`MIN_LEAD_MS`]
    /// ahead and into the calling window.
    pub due_ms: Millis,
    pub resolution: WhenResolution,
    /// What the text asked for before the lead and window were applied.
    pub requested_ms: Millis,
}

/// Which day the text named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaySpec {
    /// Days from today (0 today, 1 tomorrow/kal, 2 parso, n "in n days").
    Offset(i64),
    /// The next such weekday after today (0 = Monday).
    Weekday(u32),
}

/// A clock time as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// Fixed: 24-hour (`15:30`), am/pm, noon, or made definite by a daypart.
    /// `minute_of_day` may reach 1440+ for "midnight"/"raat 1 baje".
    Fixed { minute_of_day: u32 },
    /// `at 4`, `3 baje`: hour 1..=12 (plus minutes), am or pm to be chosen.
    Bare { hour: u32, minute: u32 },
}

#[derive(Debug, Default)]
struct Parsed {
    relative_min: Option<f64>,
    fuzzy: bool,
    around: bool,
    day: Option<DaySpec>,
    daypart: Option<Daypart>,
    clock: Option<Clock>,
    /// A bare number not (yet) known to be an hour: "tomorrow 4".
    loose_hour: Option<(u32, u32)>,
    meridiem: Option<bool>, // Some(true) = pm
}

/// Turns a request's `when` (or its live-call default delay) into
/// `scheduled_at` at `now_ms`, in the request's timezone else the queue's,
/// clipped to the queue's window. Returns the resolution when `when` was
/// resolved. Leaves the request alone when the queue or the timezone is
/// unknown: validation then refuses it with the right error. Called by the
/// store's writer at its commit clock, so the 60 s rule sees the same `now`.
pub fn resolve_request(now_ms: Millis, req: &mut NewCallback, cfg: &Config) -> Option<WhenResolution> {
    let queue = cfg.queue(&req.queue)?;
    let tz = match &req.timezone {
        Some(name) => name.parse::<Tz>().ok()?,
        None => queue.timezone,
    };
    if req.scheduled_at.is_some() {
        return None;
    }
    if let Some(text) = &req.when {
        let r = resolve(text, now_ms, tz, &queue.calling_hours(), queue.retry_delay);
        req.scheduled_at = Some(r.due_ms);
        return Some(r.resolution);
    }
    if let Some(d) = req.default_delay_ms {
        req.scheduled_at = Some(window::next_open(&queue.calling_hours(), tz, now_ms.saturating_add(d.max(MIN_LEAD_MS))));
    }
    None
}

/// Resolves `text` said at `now_ms` by a customer in `tz` to a due time in
/// the window `hours`; `fallback` (the queue's `retry_delay`) is used when
/// the text names no time.
pub fn resolve(text: &str, now_ms: Millis, tz: Tz, hours: &WeeklyHours, fallback: Duration) -> Resolution {
    let p = parse(text);
    let earliest = now_ms.saturating_add(MIN_LEAD_MS);
    let finish = |requested: Millis, resolution: WhenResolution| {
        let requested = requested.min(now_ms.saturating_add(MAX_AHEAD_MS));
        Resolution {
            due_ms: window::next_open(hours, tz, requested.max(earliest)),
            resolution,
            requested_ms: requested,
        }
    };
    let graded = |exact: bool| {
        if exact && !p.around && !p.fuzzy {
            WhenResolution::Exact
        } else {
            WhenResolution::Approximate
        }
    };

    if let Some(min) = p.relative_min {
        // `as` saturates: "10^30 minutes" is cut by MAX_AHEAD_MS below.
        let ms = (min * 60_000.0).round() as Millis;
        return finish(now_ms.saturating_add(ms), graded(true));
    }
    if p.day.is_none() && p.daypart.is_none() && p.clock.is_none() {
        let ms = Millis::try_from(fallback.as_millis()).unwrap_or(Millis::MAX);
        return finish(now_ms.saturating_add(ms), WhenResolution::Fallback);
    }

    let today = window::local_date(tz, now_ms);
    let day = p.day.map(|d| day_date(d, today));
    let at = |date: NaiveDate, minute: u32| instant(tz, date, minute);

    match (p.clock, p.daypart) {
        (Some(Clock::Fixed { minute_of_day }), _) => {
            let t = match day {
                Some(d) => at(d, minute_of_day),
                None => {
                    let t = at(today, minute_of_day);
                    if t > now_ms {
                        t
                    } else {
                        at(shift(today, 1), minute_of_day)
                    }
                }
            };
            // A time already past on a named day ("today at 3pm" at 4pm): as soon as possible.
            if t <= now_ms {
                return finish(now_ms, WhenResolution::Approximate);
            }
            finish(t, graded(true))
        }
        (Some(Clock::Bare { hour, minute }), _) => {
            let (first_day, days) = match day {
                Some(d) => (d, 1),
                None => (today, 9),
            };
            match pick_bare(hours, tz, now_ms, first_day, days, hour, minute) {
                Some(t) => finish(t, graded(true)),
                None => finish(now_ms, WhenResolution::Approximate),
            }
        }
        (None, Some(part)) => {
            let (start, end) = part.range();
            let default = part.default_minute();
            let date = day.unwrap_or(today);
            let t = at(date, default);
            if t > now_ms {
                return finish(t, WhenResolution::Approximate);
            }
            // Asked during (or after) the daypart of a named or implied today.
            let now_minute = minute_of(tz, now_ms);
            if date == today && (start..end).contains(&now_minute) {
                return finish(now_ms, WhenResolution::Approximate);
            }
            match day {
                Some(_) => finish(now_ms, WhenResolution::Approximate),
                None => finish(at(shift(today, 1), default), WhenResolution::Approximate),
            }
        }
        (None, None) => {
            let date = day.unwrap_or(today);
            if date == today {
                return finish(now_ms, WhenResolution::Approximate);
            }
            finish(at(date, DAY_DEFAULT_MINUTE), WhenResolution::Approximate)
        }
    }
}

/// The next `hour:minute` (am or pm) from `first_day` on, over `days` days,
/// after `now`, that falls inside the window. A candidate in the night
/// (22:00-06:59) is passed over when the one 12 hours later is also inside
/// the window: nobody means 4 a.m. by "at 4" when 4 p.m. is possible. With
/// no candidate inside the window, the first one after `now` (clipped later).
fn pick_bare(
    hours: &WeeklyHours,
    tz: Tz,
    now: Millis,
    first_day: NaiveDate,
    days: i64,
    hour: u32,
    minute: u32,
) -> Option<Millis> {
    let h = hour % 12;
    let mut first_after_now = None;
    let mut prev: Option<(Millis, bool)> = None; // night candidate inside the window, pending
    for d in 0..days {
        let date = shift(first_day, d);
        for half in [0, 12] {
            let m = (h + half) * 60 + minute;
            let t = instant(tz, date, m);
            if t <= now {
                continue;
            }
            first_after_now.get_or_insert(t);
            let open = window::is_open(hours, tz, t);
            if let Some((pt, _)) = prev.take() {
                // The pending night candidate loses to this one only if it is open.
                return Some(if open { t } else { pt });
            }
            if open {
                let night = !(7 * 60..22 * 60).contains(&m);
                if night {
                    prev = Some((t, true));
                } else {
                    return Some(t);
                }
            }
        }
    }
    prev.map(|(t, _)| t).or(first_after_now)
}

fn day_date(d: DaySpec, today: NaiveDate) -> NaiveDate {
    match d {
        DaySpec::Offset(n) => shift(today, n),
        DaySpec::Weekday(wd) => {
            let cur = today.weekday().num_days_from_monday();
            let ahead = (wd + 7 - cur) % 7;
            shift(today, if ahead == 0 { 7 } else { i64::from(ahead) })
        }
    }
}

fn shift(date: NaiveDate, days: i64) -> NaiveDate {
    date.checked_add_days(Days::new(days.max(0) as u64)).unwrap_or(date)
}

/// The instant of local `minute` (may exceed 1440: the following days) of `date`.
fn instant(tz: Tz, date: NaiveDate, minute: u32) -> Millis {
    let date = shift(date, i64::from(minute / 1440));
    let m = minute % 1440;
    let time = NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap_or(NaiveTime::MIN);
    window::local_to_instant(tz, date.and_time(time))
}

fn minute_of(tz: Tz, at: Millis) -> u32 {
    use chrono::{TimeZone, Timelike};
    let utc = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at).unwrap_or_default();
    let local = tz.from_utc_datetime(&utc.naive_utc());
    local.hour() * 60 + local.minute()
}

/// Reads the features (duration, day, daypart, clock time) out of the text.
fn parse(text: &str) -> Parsed {
    use lexicon::*;
    let toks = tokenize(text);
    let t = |i: usize| toks.get(i).map(String::as_str).unwrap_or("");
    let mut p = Parsed::default();
    let mut i = 0;
    while i < toks.len() {
        let w = t(i);
        let prev = if i > 0 { t(i - 1) } else { "" };

        // Fractions of hours and clock times spoken in Hindi/English.
        match w {
            "half" | "aadha" | "aadhe" | "adha" | "adhe" | "aadhi" => {
                // half an hour / half hour / aadhe ghante
                let j = if matches!(t(i + 1), "an" | "a" | "of") { i + 2 } else { i + 1 };
                if unit_minutes(t(j)) == Some(60.0) {
                    add_rel(&mut p, 30.0);
                    i = j + 1;
                    continue;
                }
                if t(i + 1) == "past" {
                    if let Some((h, n)) = hour_at(&toks, i + 2) {
                        set_bare(&mut p, h, 30);
                        i += 2 + n;
                        continue;
                    }
                }
            }
            "quarter" => {
                let j = if matches!(t(i + 1), "an" | "a" | "of") { i + 2 } else { i + 1 };
                let j = if matches!(t(j), "an" | "a") { j + 1 } else { j };
                if unit_minutes(t(j)) == Some(60.0) {
                    add_rel(&mut p, 15.0);
                    i = j + 1;
                    continue;
                }
                if matches!(t(i + 1), "past" | "to") {
                    if let Some((h, n)) = hour_at(&toks, i + 2) {
                        if t(i + 1) == "past" {
                            set_bare(&mut p, h, 15);
                        } else {
                            set_bare(&mut p, if h == 1 { 12 } else { h - 1 }, 45);
                        }
                        i += 2 + n;
                        continue;
                    }
                }
            }
            "dedh" | "derh" | "dedd" | "dhai" | "dhaai" | "dhaee" | "adhai" | "dhayi" => {
                let v = if matches!(w, "dedh" | "derh" | "dedd") { 1.5 } else { 2.5 };
                if let Some(u) = unit_minutes(t(i + 1)) {
                    add_rel(&mut p, v * u);
                    i += 2;
                    continue;
                }
                set_bare(&mut p, v as u32, 30);
                i += 1;
                continue;
            }
            "saade" | "sade" | "saadhe" | "sadhe" | "sawa" | "sava" | "savaa" | "paune" | "pone" | "paune." => {
                let frac = match w.chars().next() {
                    Some('p') => -0.25,
                    _ if w.starts_with("saw") || w.starts_with("sav") => 0.25,
                    _ => 0.5,
                };
                // `paune ghanta` = 45 min, `sawa ghanta` = 75 min.
                if let Some(u) = unit_minutes(t(i + 1)) {
                    add_rel(&mut p, (1.0 + frac) * u);
                    i += 2;
                    continue;
                }
                if let Some((v, n)) = number_at(&toks, i + 1) {
                    if let Some(u) = unit_minutes(t(i + 1 + n)) {
                        add_rel(&mut p, (v + frac) * u);
                        i += 2 + n;
                        continue;
                    }
                    let h = v as u32;
                    if (1..=12).contains(&h) {
                        let (h, m) =
                            if frac < 0.0 { (if h == 1 { 12 } else { h - 1 }, 45) } else { (h, (frac * 60.0) as u32) };
                        set_bare(&mut p, h, m);
                        i += 1 + n;
                        continue;
                    }
                }
            }
            "couple" | "few" | "kuch" | "several" => {
                let j = if t(i + 1) == "of" { i + 2 } else { i + 1 };
                if let Some(u) = unit_minutes(t(j)) {
                    let n = if u == 60.0 {
                        FEW_HOURS
                    } else if w == "couple" {
                        2.0
                    } else {
                        FEW
                    };
                    add_rel(&mut p, n * u);
                    p.fuzzy = true;
                    i = j + 1;
                    continue;
                }
            }
            "day" if t(i + 1) == "after" && matches!(day_offset(t(i + 2)), Some(1)) => {
                p.day = Some(DaySpec::Offset(2));
                i += 3;
                continue;
            }
            "noon" | "midday" | "dopahar12" => {
                p.clock = Some(Clock::Fixed { minute_of_day: 12 * 60 });
                i += 1;
                continue;
            }
            "midnight" => {
                p.clock = Some(Clock::Fixed { minute_of_day: 24 * 60 });
                i += 1;
                continue;
            }
            "after" | "post" if t(i + 1) == "lunch" => {
                p.daypart = Some(Daypart::AfterLunch);
                i += 2;
                continue;
            }
            "lunch" | "lunchtime" => {
                // `lunch ke baad` = after lunch; `at lunch` = around 13:00.
                if t(i + 1) == "ke" && t(i + 2) == "baad" {
                    p.daypart = Some(Daypart::AfterLunch);
                    i += 3;
                    continue;
                }
                if p.daypart.is_none() {
                    p.daypart = Some(Daypart::Noon);
                    p.clock.get_or_insert(Clock::Fixed { minute_of_day: 13 * 60 });
                    p.around = true;
                }
                i += 1;
                continue;
            }
            // `pm`, or `p m` spelled apart, after an hour.
            "am" | "pm" | "a" | "p"
                if !prev.is_empty()
                    && (p.clock.is_some() || p.loose_hour.is_some())
                    && (matches!(w, "am" | "pm") || t(i + 1) == "m") =>
            {
                p.meridiem = Some(w.starts_with('p'));
                i += if matches!(w, "a" | "p") { 2 } else { 1 };
                continue;
            }
            _ => {}
        }

        if w.contains(':') {
            if let Some(clock) = clock_token(w) {
                p.clock = Some(clock);
            }
            i += 1;
            continue;
        }

        // A number: a duration, a clock time, or a loose hour.
        if let Some((v, n)) = number_at(&toks, i) {
            let after = t(i + n);
            // `an hour and a half`, `2 and a half hours`.
            let (v, n) =
                if after == "and" && t(i + n + 1) == "a" && t(i + n + 2) == "half" { (v + 0.5, n + 3) } else { (v, n) };
            let after = t(i + n);
            if let Some(u) = unit_minutes(after) {
                let mut mins = v * u;
                let mut k = i + n + 1;
                if t(k) == "and" && t(k + 1) == "a" && t(k + 2) == "half" {
                    mins += 0.5 * u;
                    k += 3;
                }
                add_rel(&mut p, mins);
                i = k;
                continue;
            }
            if let Some(d) = unit_days(after) {
                if v.fract() == 0.0 && v >= 1.0 {
                    p.day = Some(DaySpec::Offset((v.min(1000.0) as i64) * d));
                    i += n + 1;
                    continue;
                }
            }
            if let Some(clock) = clock_token(t(i)) {
                p.clock = Some(clock);
                i += n;
                continue;
            }
            if v.fract() == 0.0 && (0.0..=24.0).contains(&v) && t(i).bytes().all(|b| b.is_ascii_digit())
                || (v.fract() == 0.0 && (1.0..=12.0).contains(&v))
            {
                let h = v as u32;
                let definite = is_oclock(after) || matches!(after, "am" | "pm") || introduces_hour(prev);
                let is_word = !t(i).bytes().all(|b| b.is_ascii_digit());
                // Number words ("do", "sat") are only hours next to a clue.
                if definite || !is_word {
                    if definite {
                        set_hour(&mut p, h, 0);
                    } else {
                        p.loose_hour = Some((h, 0));
                    }
                    i += n;
                    if is_oclock(t(i)) {
                        i += 1;
                    }
                    continue;
                }
            }
        }

        if is_around(w) {
            p.around = true;
        } else if let Some(d) = day_offset(w) {
            p.day = Some(DaySpec::Offset(d));
            if matches!(w, "tonight" | "tonite") {
                p.daypart = Some(Daypart::Night);
            }
        } else if let Some(wd) = weekday(w).or((w == "sat").then_some(5)) {
            p.day = Some(DaySpec::Weekday(wd));
        } else if is_next(w) && unit_days(t(i + 1)) == Some(7) {
            // next week / agle hafte: Monday of next week.
            p.day = Some(DaySpec::Weekday(0));
            i += 1;
        } else if let Some(part) = daypart(w) {
            if part == Daypart::Noon {
                p.clock = Some(Clock::Fixed { minute_of_day: 12 * 60 });
            } else {
                p.daypart = Some(part);
            }
        } else if matches!(w, "an" | "a") && unit_minutes(t(i + 1)) == Some(60.0) {
            // "in an hour", "an hour and a half".
            let mut mins = 60.0;
            let mut k = i + 2;
            if t(k) == "and" && t(k + 1) == "a" && t(k + 2) == "half" {
                mins += 30.0;
                k += 3;
            }
            add_rel(&mut p, mins);
            i = k;
            continue;
        }
        i += 1;
    }

    // A loose number becomes an hour when a day or daypart goes with it.
    if p.clock.is_none() {
        if let Some((h, m)) = p.loose_hour {
            if p.day.is_some() || p.daypart.is_some() || p.meridiem.is_some() {
                set_hour(&mut p, h, m);
            }
        }
    }
    apply_meridiem(&mut p);
    p
}

/// A number (digits or words, `twenty five`) at `i`: value and tokens used.
fn number_at(toks: &[String], i: usize) -> Option<(f64, usize)> {
    let w = toks.get(i)?;
    if w.contains(':') {
        return None;
    }
    let v = match w.as_str() {
        "a" | "an" => return None,
        _ => lexicon::simple_number(w)?,
    };
    if lexicon::is_tens(v) {
        if let Some(u) = toks.get(i + 1).and_then(|n| lexicon::simple_number(n)) {
            if (1.0..10.0).contains(&u) {
                return Some((v + u, 2));
            }
        }
    }
    Some((v, 1))
}

/// An hour 1..=12 at `i` (for "half past 3", "quarter to four").
fn hour_at(toks: &[String], i: usize) -> Option<(u32, usize)> {
    let (v, n) = number_at(toks, i)?;
    (v.fract() == 0.0 && (1.0..=12.0).contains(&v)).then_some((v as u32, n))
}

/// `15:30`, `3:30`, `3.30` as a clock time.
fn clock_token(tok: &str) -> Option<Clock> {
    let (h, m) = tok.split_once(':').or_else(|| tok.split_once('.').filter(|(_, m)| m.len() == 2))?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return None;
    }
    Some(if (1..=12).contains(&h) {
        Clock::Bare { hour: h, minute: m }
    } else {
        Clock::Fixed { minute_of_day: h * 60 + m }
    })
}

fn set_hour(p: &mut Parsed, h: u32, m: u32) {
    p.clock = Some(if (1..=12).contains(&h) {
        Clock::Bare { hour: h, minute: m }
    } else {
        Clock::Fixed { minute_of_day: (h % 24) * 60 + m }
    });
}

fn set_bare(p: &mut Parsed, h: u32, m: u32) {
    p.clock = Some(Clock::Bare { hour: h, minute: m });
}

fn add_rel(p: &mut Parsed, minutes: f64) {
    *p.relative_min.get_or_insert(0.0) += minutes;
}

/// am/pm, or else a daypart, makes a bare hour definite.
fn apply_meridiem(p: &mut Parsed) {
    let Some(Clock::Bare { hour, minute }) = p.clock else {
        return;
    };
    let h12 = hour % 12;
    let fixed_hour = match (p.meridiem, p.daypart) {
        (Some(pm), _) => h12 + if pm { 12 } else { 0 },
        (None, Some(Daypart::Morning)) => h12,
        (None, Some(Daypart::Noon | Daypart::Afternoon | Daypart::AfterLunch)) => {
            // "dopahar 12 baje" is noon, "afternoon at 2" is 14:00, but
            // "afternoon at 11" is not a thing: keep 11:00.
            if hour == 12 || hour >= 11 {
                hour % 24
            } else {
                h12 + 12
            }
        }
        (None, Some(Daypart::Evening)) => h12 + 12,
        (None, Some(Daypart::Night)) => match hour {
            12 => 24,           // midnight: the start of the next day
            1..=4 => 24 + hour, // raat 1 baje: after midnight
            _ => h12 + 12,
        },
        (None, None) => return,
    };
    p.clock = Some(Clock::Fixed { minute_of_day: fixed_hour * 60 + minute });
}

#[cfg(test)]
mod tests;
