//! In pause mode the agents take no automatic action on the database:
//! no start, stop, restart, promotion, demotion or rebuild unless an operator asked for a
//! switchover or failover, which Patroni still carries out while paused.

use super::{Invariant, Snapshot};

/// Checks each database action decided from a view that showed the pause.
#[derive(Debug, Clone, Copy, Default)]
pub struct PauseRespected;

impl Invariant for PauseRespected {
    fn name(&self) -> &'static str {
        "pause_respected"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        if let Some(a) = s.paused_actions.iter().find(|a| !a.requested) {
            return Err(format!(
                "{} ran {:?} on its database while it saw the cluster paused",
                s.names[a.node], a.kind
            ));
        }
        Ok(())
    }
}
