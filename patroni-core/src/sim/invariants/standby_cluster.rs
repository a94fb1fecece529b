//! (g) In a standby cluster nobody takes writes: while `/config` holds `standby_cluster`, no
//! member's database is writable and no member promotes (or starts as primary); the lock holder
//! is a standby leader of the remote primary. After the operator promotes the cluster,
//! [`single_primary`](super::single_primary) keeps at most one writable primary.

use super::{Invariant, Snapshot};

/// Watches writability and promotions while the cluster is a standby cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandbyClusterReadOnly;

impl Invariant for StandbyClusterReadOnly {
    fn name(&self) -> &'static str {
        "standby_cluster_read_only"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        if !s.config.is_standby_cluster() {
            return Ok(());
        }
        if let Some(&i) = s.writable().first() {
            return Err(format!(
                "{} accepts writes in a standby cluster",
                s.names[i]
            ));
        }
        if let Some(p) = s.promotions.first() {
            return Err(format!(
                "{} {} in a standby cluster",
                s.names[p.node],
                if p.promote {
                    "promoted"
                } else {
                    "started as primary"
                }
            ));
        }
        Ok(())
    }
}
