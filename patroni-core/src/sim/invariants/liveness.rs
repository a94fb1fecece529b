//! (e) Liveness: once faults stop and the DCS is reachable, a writable primary exists within
//! `ttl + 2 * loop_wait + promote time` (plus `primary_start_timeout` when a crashed primary may
//! first be restarted in place), and every healthy standby streams from it soon after — or from
//! the `replicatefrom` member its tags name, or from nobody when tagged `nostream`. In a standby
//! cluster the lock holder is instead a standby leader streaming from the remote primary (the
//! only member that does), and the others follow it the same way.

use std::time::Duration;

use super::{Invariant, Snapshot};
use crate::instant;

/// The deadlines, measured from the moment the world healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Whether a primary can be demanded at all (false when the faults may leave no eligible candidate).
    pub expect_primary: bool,
    /// Time allowed until a writable primary exists.
    pub primary_within: Duration,
    /// Further time allowed until every healthy standby streams from it.
    pub standbys_within: Duration,
}

impl Invariant for Liveness {
    fn name(&self) -> &'static str {
        "liveness"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let Some(healed) = s.healed_at else {
            return Ok(());
        };
        if !self.expect_primary
            || s.config.pause
            || s.now < instant::after(healed, self.primary_within)
        {
            return Ok(());
        }
        if s.config.is_standby_cluster() {
            return self.check_standby_cluster(s, healed);
        }
        let w = s.writable();
        let [primary] = w[..] else {
            return Err(format!(
                "{} writable primaries {:.1}s after the faults stopped (bound {:.1}s)",
                w.len(),
                instant::between(healed, s.now).as_secs_f64(),
                self.primary_within.as_secs_f64()
            ));
        };
        if s.now < instant::after(healed, self.primary_within + self.standbys_within) {
            return Ok(());
        }
        self.check_standbys(s, healed, primary)
    }

    fn deadline(&self, s: &Snapshot<'_>) -> Option<u64> {
        let healed = s.healed_at?;
        let a = instant::after(healed, self.primary_within);
        let b = instant::after(a, self.standbys_within);
        [a, b].into_iter().find(|&t| t > s.now)
    }
}

impl Liveness {
    /// In a standby cluster the lock holder is a standby leader streaming from the remote
    /// primary instead of a writable primary, and the others follow it.
    fn check_standby_cluster(&self, s: &Snapshot<'_>, healed: u64) -> Result<(), String> {
        let leader = s.lock.and_then(|l| s.names.iter().position(|n| n == l));
        let streams_remote = |i: usize| {
            let db = &s.dbs[i];
            s.alive[i]
                && db.is_running_standby()
                && db.streaming
                && db.upstream.as_deref() == Some(crate::REMOTE_MEMBER)
        };
        let Some(leader) = leader.filter(|&i| streams_remote(i)) else {
            return Err(format!(
                "no standby leader streaming from the remote primary {:.1}s after the faults stopped (lock {:?}, bound {:.1}s)",
                instant::between(healed, s.now).as_secs_f64(),
                s.lock,
                self.primary_within.as_secs_f64()
            ));
        };
        if s.now < instant::after(healed, self.primary_within + self.standbys_within) {
            return Ok(());
        }
        if let Some(other) = (0..s.dbs.len()).find(|&i| i != leader && streams_remote(i)) {
            return Err(format!(
                "{} streams from the remote primary beside the standby leader {}",
                s.names[other], s.names[leader]
            ));
        }
        self.check_standbys(s, healed, leader)
    }

    /// Every healthy member other than `primary` (the leader) streams from it or its cascade.
    fn check_standbys(&self, s: &Snapshot<'_>, healed: u64, primary: usize) -> Result<(), String> {
        let leader = &s.names[primary];
        for (i, db) in s.dbs.iter().enumerate() {
            if i == primary || s.broken[i] {
                continue;
            }
            let want = expected_upstream(s, i, primary);
            // A standby may stay on the leader while its cascade member is far behind it, and
            // waits (not streaming) while it is only a little ahead of that member.
            let ok = db.is_running_standby()
                && match want {
                    Some(u) => [u, primary].into_iter().any(|up| {
                        db.upstream.as_deref() == Some(s.names[up].as_str())
                            && (db.streaming || db.waits_for(&s.dbs[up]))
                    }),
                    None => db.upstream.is_none(),
                };
            let want = want.map(|u| s.names[u].as_str());
            if !ok {
                return Err(format!(
                    "healthy standby {} is not streaming from {} (leader {leader}) {:.1}s after the faults stopped (process {:?}, role {:?}, upstream {:?}, streaming {}, cannot_follow {})",
                    s.names[i],
                    want.unwrap_or("nobody"),
                    instant::between(healed, s.now).as_secs_f64(),
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
}

/// Whom healthy standby `i` must stream from once the world healed, judged from the world's
/// truth rather than any agent's view: nobody when tagged `nostream`; else the first member of
/// its `replicatefrom` chain while that member's database runs as a standby, is not `nostream`,
/// and the chain does not loop before reaching the primary, a member that cannot serve or a
/// member without the tag; else the primary.
fn expected_upstream(s: &Snapshot<'_>, i: usize, primary: usize) -> Option<usize> {
    let tags = |k: usize| s.nodes.get(k).map(|n| &n.tags);
    if tags(i).is_some_and(|t| t.nostream) {
        return None;
    }
    let index = |name: &str| s.names.iter().position(|n| n.eq_ignore_ascii_case(name));
    let mut seen = vec![i];
    let mut first = None;
    let mut hop = tags(i).and_then(|t| t.replicatefrom.as_deref());
    while let Some(k) = hop.and_then(index) {
        if k == primary {
            break;
        }
        if seen.contains(&k) {
            return Some(primary);
        }
        if !s.alive[k] || s.broken[k] || !s.dbs[k].is_running_standby() {
            break;
        }
        if tags(k).is_some_and(|t| t.nostream) {
            break;
        }
        first.get_or_insert(k);
        seen.push(k);
        hop = tags(k).and_then(|t| t.replicatefrom.as_deref());
    }
    Some(first.unwrap_or(primary))
}
