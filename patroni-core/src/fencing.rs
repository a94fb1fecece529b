//! What a node's fence must do after a cycle: one rule for the daemon's fence process and the
//! simulator's model of it, so the campaigns prove the fencing that ships.

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

/// The order for this cycle, at `now`: armed until `margin_ms` before the lease ends while we
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
    ttl_ms: u64,
    margin_ms: u64,
) -> FenceOrder {
    match (paused, leader_expiry) {
        (true, _) if running_primary => {
            FenceOrder::ArmUntil(now.saturating_add(ttl_ms).saturating_sub(margin_ms))
        }
        (true, _) => FenceOrder::Disarm,
        (false, Some(expiry)) => FenceOrder::ArmUntil(expiry.saturating_sub(margin_ms)),
        (false, None) if running_primary => FenceOrder::Keep,
        (false, None) => FenceOrder::Disarm,
    }
}

/// How long before a lease of `ttl_ms` ends the fence stops the database: `safety_margin`
/// seconds (Patroni's default 5), `None` for Patroni's `-1` (half the lease). Never so much that
/// the deadline comes before the next renewal of a healthy agent (`loop_wait` plus a second).
pub fn fence_margin_ms(safety_margin_s: Option<u64>, ttl_ms: u64, loop_wait_ms: u64) -> u64 {
    let wanted = safety_margin_s.map_or(ttl_ms / 2, |s| s.saturating_mul(1000));
    wanted.min(ttl_ms.saturating_sub(loop_wait_ms.saturating_add(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_follow_the_lease() {
        let order =
            |expiry, primary, paused| fence_order(1_000, expiry, primary, paused, 30_000, 5_000);
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
        assert_eq!(fence_margin_ms(Some(5), 30_000, 10_000), 5_000);
        assert_eq!(fence_margin_ms(None, 30_000, 10_000), 15_000);
        // ttl 10, loop_wait 8: the deadline must not come before the next renewal.
        assert_eq!(fence_margin_ms(Some(5), 10_000, 8_000), 1_000);
        assert_eq!(fence_margin_ms(Some(5), 4_000, 4_000), 0);
    }
}
