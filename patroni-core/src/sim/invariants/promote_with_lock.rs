//! (b) A node promotes, or starts its database as primary, only while holding the leader lock.

use super::{Invariant, Snapshot};

/// Checks each promotion against the leader key at the instant the action ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromoteWithLock;

impl Invariant for PromoteWithLock {
    fn name(&self) -> &'static str {
        "promote_with_lock"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        if let Some(p) = s.promotions.iter().find(|p| !p.held_lock) {
            return Err(format!(
                "{} {} without holding the leader lock (held by {})",
                s.names[p.node],
                if p.promote {
                    "promoted"
                } else {
                    "started as primary"
                },
                s.lock.unwrap_or("nobody")
            ));
        }
        Ok(())
    }
}
