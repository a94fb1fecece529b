//! Instants and durations: an instant is a `u64` of monotonic milliseconds (the unit of
//! [`Observation::now`](crate::Observation::now)), every length of time is a [`Duration`]; these
//! functions are the one place the two meet.

use std::time::Duration;

/// A duration as whole milliseconds, the unit of instants (saturating: no lease lasts 584 million
/// years).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The instant `d` after `at`, so deadlines are computed one way everywhere.
pub fn after(at: u64, d: Duration) -> u64 {
    at.saturating_add(millis(d))
}

/// The instant `d` before `at` (zero at the earliest), for deadlines that end a margin early.
pub fn before(at: u64, d: Duration) -> u64 {
    at.saturating_sub(millis(d))
}

/// The time from `from` to `to`, zero if `to` is not later, so remaining and elapsed times never
/// wrap.
pub fn between(from: u64, to: u64) -> Duration {
    Duration::from_millis(to.saturating_sub(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturate_at_both_ends() {
        assert_eq!(after(1_000, Duration::from_secs(2)), 3_000);
        assert_eq!(after(u64::MAX - 1, Duration::from_secs(1)), u64::MAX);
        assert_eq!(before(500, Duration::from_secs(1)), 0);
        assert_eq!(between(3_000, 1_000), Duration::ZERO);
        assert_eq!(between(1_000, 3_500), Duration::from_millis(2_500));
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
