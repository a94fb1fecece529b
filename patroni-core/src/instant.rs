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

/// A length of time in seconds as messages show it: whole seconds bare (`5`), a fraction exactly
/// (`0.5`), so a sub-second limit never reads as `0`.
pub fn seconds(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return d.as_secs().to_string();
    }
    let fraction = format!("{nanos:09}");
    format!("{}.{}", d.as_secs(), fraction.trim_end_matches('0'))
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

    #[test]
    fn seconds_are_whole_or_exact_fractions() {
        assert_eq!(seconds(Duration::from_secs(5)), "5");
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
        assert_eq!(seconds(Duration::from_millis(1_250)), "1.25");
        assert_eq!(seconds(Duration::from_nanos(1)), "0.000000001");
    }
}
