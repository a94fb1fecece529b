//! What a node's fence must do after a cycle: one rule for the daemon's fence process and the
//! simulator's model of it, so the campaigns prove the fencing that ships.

use std::time::Duration;

use crate::instant;

/// The fence's order after a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceOrder {
    /// Stop the database at this instant (the caller's monotonic ms) unless told otherwise before.
    ArmUntil(u64),
    /// Keep the last deadline: a primary without a renewed lease must not outlive the old one.
    Keep,
    /// Nothing to fence (not a primary, or paused: the operator decides).
    Disarm,
}

/// The order for this cycle, at `now`: armed until `margin` before the lease ends while we
/// lead; the old deadline kept for a primary without a lease (it must not outlive it); disarmed
/// otherwise.
///
/// In pause a primary may run without a valid lease (that is what pause is for: no failover
/// while, say, etcd is serviced), so the deadline follows the agent's own liveness instead: a
/// `ttl - margin` from every cycle. An agent that stalls in pause then cannot leave a writable
/// primary behind for longer than that, which is what members wait for after a resume before
/// they race ([`Ha`](crate::Ha)).
pub fn fence_order(
    now: u64,
    leader_expiry: Option<u64>,
    running_primary: bool,
    paused: bool,
    ttl: Duration,
    margin: Duration,
) -> FenceOrder {
    match (paused, leader_expiry) {
        (true, _) if running_primary => {
            FenceOrder::ArmUntil(instant::before(instant::after(now, ttl), margin))
        }
        (true, _) => FenceOrder::Disarm,
        (false, Some(expiry)) => FenceOrder::ArmUntil(instant::before(expiry, margin)),
        (false, None) if running_primary => FenceOrder::Keep,
        (false, None) => FenceOrder::Disarm,
    }
}

/// How long before a lease of `ttl` ends the fence stops the database: `safety_margin`
/// (Patroni's default 5 s), `None` for Patroni's `-1` (half the lease). Never so much that
/// the deadline comes before the next renewal of a healthy agent (`loop_wait` plus a second).
pub fn fence_margin(
    safety_margin: Option<Duration>,
    ttl: Duration,
    loop_wait: Duration,
) -> Duration {
    let wanted = safety_margin.unwrap_or(ttl / 2);
    wanted.min(ttl.saturating_sub(loop_wait.saturating_add(Duration::from_secs(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn orders_follow_the_lease() {
        let order = |expiry, primary, paused| {
            fence_order(1_000, expiry, primary, paused, secs(30), secs(5))
        };
        assert_eq!(
            order(Some(30_000), true, false),
            FenceOrder::ArmUntil(25_000)
        );
        assert_eq!(order(None, true, false), FenceOrder::Keep);
        assert_eq!(order(None, false, false), FenceOrder::Disarm);
        // In pause the agent's own liveness counts, lease or not.
        assert_eq!(order(None, true, true), FenceOrder::ArmUntil(26_000));
        assert_eq!(order(Some(30_000), false, true), FenceOrder::Disarm);
    }

    #[test]
    fn margins() {
        assert_eq!(fence_margin(Some(secs(5)), secs(30), secs(10)), secs(5));
        assert_eq!(fence_margin(None, secs(30), secs(10)), secs(15));
        // ttl 10, loop_wait 8: the deadline must not come before the next renewal.
        assert_eq!(fence_margin(Some(secs(5)), secs(10), secs(8)), secs(1));
        assert_eq!(fence_margin(Some(secs(5)), secs(4), secs(4)), secs(0));
    }
}
