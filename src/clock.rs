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

/// The real clock plus an offset that only grows: the clock `redial serve`
/// runs on when a test asks for one (`REDIAL_TEST_CLOCK`), so an end-to-end
/// test can let an hour or a day pass in a moment. Forward only: every
/// reader of the clock may assume time never runs backwards.
#[derive(Debug)]
pub struct OffsetClock {
    offset: AtomicI64,
    /// The offset after each jump, for those that turned monotonic deadlines
    /// into wall-clock times and must do it again (agents' registrations).
    jumps: tokio::sync::watch::Sender<Millis>,
}

impl Default for OffsetClock {
    fn default() -> Self {
        Self { offset: AtomicI64::new(0), jumps: tokio::sync::watch::channel(0).0 }
    }
}

impl OffsetClock {
    /// Moves the clock `ms` forward (negative or zero: refused, `None`) and
    /// returns the new offset.
    pub fn advance(&self, ms: Millis) -> Option<Millis> {
        if ms <= 0 {
            return None;
        }
        let offset = self.offset.fetch_add(ms, Ordering::SeqCst) + ms;
        self.jumps.send_replace(offset);
        Some(offset)
    }

    /// How far ahead of the real clock this one runs.
    pub fn offset_ms(&self) -> Millis {
        self.offset.load(Ordering::SeqCst)
    }

    /// Changes with every jump.
    pub fn jumps(&self) -> tokio::sync::watch::Receiver<Millis> {
        self.jumps.subscribe()
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.offset_ms()
    }

    fn now_us(&self) -> i64 {
        SystemClock.now_us() + self.offset_ms() * 1000
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
    fn an_offset_clock_only_moves_forward_and_tells_of_each_jump() {
        let c = OffsetClock::default();
        let mut jumps = c.jumps();
        let before = SystemClock.now_ms();
        assert_eq!(c.advance(3_600_000), Some(3_600_000));
        assert!(jumps.has_changed().unwrap());
        assert_eq!(*jumps.borrow_and_update(), 3_600_000);
        assert_eq!(c.advance(0), None);
        assert_eq!(c.advance(-1), None);
        assert!(!jumps.has_changed().unwrap(), "a refused jump is not announced");
        assert_eq!(c.advance(1), Some(3_600_001));
        assert!(c.now_ms() >= before + 3_600_001);
        assert!(c.now_us() / 1000 >= before + 3_600_001);
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
