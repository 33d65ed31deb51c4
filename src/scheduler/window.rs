//! Calling windows: a queue's `hours` (e.g. `mon-fri 09:00-20:00`) in the
//! customer's local time.
//!
//! This file holds the parsed form and its parser; the time arithmetic
//! (next opening across DST changes) lives beside it.

use std::fmt;

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
