//! `redial resolve-time TEXT --tz ZONE [--now RFC3339] [--hours SPEC]...
//! [--fallback 10m]`: prints how a free-text callback time resolves, as one
//! JSON line (the same resolution `POST /v1/callbacks` uses for `when`).

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use crate::clock::{Clock, Millis, SystemClock};
use crate::scheduler::when;
use crate::window::{HoursError, WeeklyHours};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the customer said, e.g. "kal subah" or "tomorrow at 3pm".
    pub text: String,
    /// The customer's IANA timezone.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// The time it was said (RFC 3339); default: now.
    #[arg(long)]
    pub now: Option<String>,
    /// Calling window entries like "mon-fri 09:00-20:00" (repeatable); default: always open.
    #[arg(long)]
    pub hours: Vec<String>,
    /// Used when the text names no time (the queue's retry_delay).
    #[arg(long, default_value = "10m")]
    pub fallback: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveTimeError {
    #[error("--tz: unknown timezone `{tz}` (use an IANA name such as Asia/Kolkata)")]
    Timezone { tz: String },
    #[error("--now: `{now}` is not an RFC 3339 time (e.g. 2026-11-18T10:00:00+05:30): {source}")]
    Now { now: String, source: chrono::ParseError },
    #[error("--hours: `{entry}`: {source}")]
    Hours { entry: String, source: HoursError },
    #[error("--fallback: `{value}` is not a duration (e.g. 10m): {source}")]
    Fallback { value: String, source: humantime::DurationError },
}

pub fn run(args: Args) -> ExitCode {
    match render(&args, SystemClock.now_ms()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("redial resolve-time: {e}");
            ExitCode::from(2)
        }
    }
}

/// The JSON line for `args`, with `clock_now` used when `--now` is absent.
pub fn render(args: &Args, clock_now: Millis) -> Result<String, ResolveTimeError> {
    let tz: Tz = args.tz.parse().map_err(|_| ResolveTimeError::Timezone { tz: args.tz.clone() })?;
    let now = match &args.now {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|source| ResolveTimeError::Now { now: s.clone(), source })?
            .timestamp_millis(),
        None => clock_now,
    };
    let hours = if args.hours.is_empty() {
        WeeklyHours::always()
    } else {
        // Parse one by one so the error names the bad entry.
        for entry in &args.hours {
            WeeklyHours::parse(std::slice::from_ref(entry))
                .map_err(|source| ResolveTimeError::Hours { entry: entry.clone(), source })?;
        }
        WeeklyHours::parse(&args.hours)
            .map_err(|source| ResolveTimeError::Hours { entry: args.hours.join(", "), source })?
    };
    let fallback: Duration = humantime::parse_duration(&args.fallback)
        .map_err(|source| ResolveTimeError::Fallback { value: args.fallback.clone(), source })?;
    let r = when::resolve(&args.text, now, tz, &hours, fallback);
    let due = DateTime::<Utc>::from_timestamp_millis(r.due_ms).unwrap_or_default();
    let line = Line {
        text: &args.text,
        due_at: due.to_rfc3339_opts(SecondsFormat::Secs, true),
        local: due.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true),
        when_resolution: r.resolution,
    };
    Ok(serde_json::to_string(&line).unwrap_or_default())
}

/// The output line; a struct so the keys keep this order.
#[derive(serde::Serialize)]
struct Line<'a> {
    text: &'a str,
    due_at: String,
    local: String,
    when_resolution: when::WhenResolution,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str, tz: &str, now: Option<&str>, hours: &[&str]) -> Args {
        Args {
            text: text.into(),
            tz: tz.into(),
            now: now.map(Into::into),
            hours: hours.iter().map(|h| h.to_string()).collect(),
            fallback: "10m".into(),
        }
    }

    #[test]
    fn prints_one_json_line() {
        let a = args("kal subah", "Asia/Kolkata", Some("2026-11-18T10:00:00+05:30"), &["mon-sat 09:00-21:00"]);
        let line = render(&a, 0).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["text"], "kal subah");
        assert_eq!(v["due_at"], "2026-11-19T04:30:00Z");
        assert_eq!(v["local"], "2026-11-19T10:00:00+05:30");
        assert_eq!(v["when_resolution"], "approximate");
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"text":"kal subah","due_at":"#), "{line}");
    }

    #[test]
    fn uses_the_clock_without_now_and_falls_back() {
        let now = DateTime::parse_from_rfc3339("2026-11-18T10:00:00Z").unwrap().timestamp_millis();
        let line = render(&args("busy", "UTC", None, &[]), now).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["due_at"], "2026-11-18T10:10:00Z");
        assert_eq!(v["local"], "2026-11-18T10:10:00Z");
        assert_eq!(v["when_resolution"], "fallback");
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let e = render(&args("x", "Mars/Olympus", None, &[]), 0).unwrap_err();
        assert!(matches!(e, ResolveTimeError::Timezone { .. }));
        assert!(e.to_string().contains("Mars/Olympus"));
        let e = render(&args("x", "UTC", Some("tomorrow"), &[]), 0).unwrap_err();
        assert!(matches!(e, ResolveTimeError::Now { .. }));
        let e = render(&args("x", "UTC", None, &["mon-fri 9-5"]), 0).unwrap_err();
        assert!(matches!(e, ResolveTimeError::Hours { ref entry, .. } if entry == "mon-fri 9-5"));
    }
}
