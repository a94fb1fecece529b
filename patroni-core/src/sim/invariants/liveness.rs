//! (e) Liveness: once faults stop and the DCS is reachable, a writable primary exists within
//! `ttl + 2 * loop_wait + promote time` (plus `primary_start_timeout` when a crashed primary may
//! first be restarted in place), and every healthy standby streams from it soon after.

use super::{Invariant, Snapshot};

/// The deadlines, measured from the moment the world healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Whether a primary can be demanded at all (false when the faults may leave no eligible candidate).
    pub expect_primary: bool,
    /// Time allowed until a writable primary exists, ms.
    pub primary_within_ms: u64,
    /// Further time allowed until every healthy standby streams from it, ms.
    pub standbys_within_ms: u64,
}

impl Invariant for Liveness {
    fn name(&self) -> &'static str {
        "liveness"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let Some(healed) = s.healed_at else {
            return Ok(());
        };
        if !self.expect_primary || s.config.pause || s.now < healed + self.primary_within_ms {
            return Ok(());
        }
        let w = s.writable();
        let [primary] = w[..] else {
            return Err(format!(
                "{} writable primaries {:.1}s after the faults stopped (bound {:.1}s)",
                w.len(),
                (s.now - healed) as f64 / 1000.0,
                self.primary_within_ms as f64 / 1000.0
            ));
        };
        if s.now < healed + self.primary_within_ms + self.standbys_within_ms {
            return Ok(());
        }
        let leader = &s.names[primary];
        for (i, db) in s.dbs.iter().enumerate() {
            if i == primary || s.broken[i] {
                continue;
            }
            let ok = db.is_running_standby()
                && db.streaming
                && db.upstream.as_deref() == Some(leader.as_str());
            if !ok {
                return Err(format!(
                    "healthy standby {} is not streaming from {leader} {:.1}s after the faults stopped (process {:?}, role {:?}, upstream {:?}, streaming {}, cannot_follow {})",
                    s.names[i],
                    (s.now - healed) as f64 / 1000.0,
                    db.process,
                    db.role,
                    db.upstream,
                    db.streaming,
                    db.cannot_follow
                ));
            }
        }
        Ok(())
    }

    fn deadline(&self, s: &Snapshot<'_>) -> Option<u64> {
        let healed = s.healed_at?;
        let a = healed + self.primary_within_ms;
        let b = a + self.standbys_within_ms;
        [a, b].into_iter().find(|&t| t > s.now)
    }
}
