//! When a failed delivery is tried again: exponential back-off with jitter,
//! for at most [`GIVE_UP_AFTER`] from the first failure, then the event is
//! parked (kept, visible, and retried only on request).

use crate::clock::Millis;

/// The first retry comes this long after the first failure.
pub const FIRST_DELAY: Millis = 1_000;
/// Retries are never further apart than this.
pub const MAX_DELAY: Millis = 10 * 60 * 1_000;
/// A delivery that has failed for this long is parked.
pub const GIVE_UP_AFTER: Millis = 24 * 3_600 * 1_000;

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAt(Millis),
    Park,
}

/// After failure number `failures` (1 = the first) at `now`, with the first
/// failure at `first_failure`: retry at `now + delay` where the delay doubles
/// from [`FIRST_DELAY`] up to [`MAX_DELAY`] and is spread by ±20 % with
/// `jitter` in `[0, 1)`, so endpoints that failed together do not retry in
/// step; park once the next try would fall past [`GIVE_UP_AFTER`].
pub fn after_failure(now: Millis, first_failure: Millis, failures: u32, jitter: f64) -> Next {
    let exp = failures.saturating_sub(1).min(30);
    let base = FIRST_DELAY.saturating_mul(1i64 << exp).min(MAX_DELAY);
    let spread = (base as f64 * 0.2 * (2.0 * jitter.clamp(0.0, 1.0) - 1.0)) as Millis;
    let at = now + (base + spread).max(1);
    if at - first_failure > GIVE_UP_AFTER {
        Next::Park
    } else {
        Next::RetryAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_within_the_jitter() {
        let mut now = 0;
        let mut last = 0;
        for n in 1..=12 {
            let Next::RetryAt(at) = after_failure(now, 0, n, 0.5) else { panic!("parked at {n}") };
            let d = at - now;
            assert!(d >= last || d == MAX_DELAY, "try {n}: {d} after {last}");
            assert!(d <= MAX_DELAY);
            last = d;
            now = at;
        }
        assert_eq!(last, MAX_DELAY);
        for j in [0.0, 0.999] {
            let Next::RetryAt(at) = after_failure(0, 0, 3, j) else { panic!() };
            assert!((3_200..=4_800).contains(&at), "{at}");
        }
    }

    #[test]
    fn parks_after_a_day_of_failures() {
        let first = 1_000;
        assert_eq!(after_failure(first + GIVE_UP_AFTER - 1, first, 40, 0.5), Next::Park);
        assert!(matches!(after_failure(first + GIVE_UP_AFTER - MAX_DELAY * 2, first, 40, 0.5), Next::RetryAt(_)));
    }
}
