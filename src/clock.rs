//! Time as an argument (STYLE.md §2).
//!
//! Cores never read the clock: drivers ask a [`Clock`] for "now" in integer
//! milliseconds since the Unix epoch and pass it in. Tests use [`FakeClock`]
//! to cover a 30-day schedule in milliseconds of test time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

/// A source of wall-clock time in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> Millis;

    /// Microseconds since the epoch, for drivers that must hit a millisecond
    /// boundary closely (the scheduler's hand-over). Clocks without finer
    /// time answer whole milliseconds.
    fn now_us(&self) -> i64 {
        self.now_ms() * 1000
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        d.as_millis() as Millis
    }

    fn now_us(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        d.as_micros() as i64
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone, Default)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    pub fn new(start_ms: Millis) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }
    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::new(1_000);
        let shared = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        shared.advance(30 * 86_400_000);
        assert_eq!(c.now_ms(), 1_000 + 30 * 86_400_000);
        c.set(5);
        assert_eq!(shared.now_ms(), 5);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}

/// Renders a time as RFC 3339 UTC with milliseconds
/// (`2026-11-22T09:30:00.000Z`), the one text form redial writes.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time with any offset to milliseconds.
pub fn parse_rfc3339(s: &str) -> Result<Millis, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis())
}
