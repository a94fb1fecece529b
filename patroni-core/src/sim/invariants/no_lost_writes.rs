//! (d) In synchronous mode no acknowledged write is lost: every writable primary's WAL history
//! holds every write the client was told is committed.

use super::{Invariant, Snapshot};

/// Compares each writable primary's lineage with the furthest acknowledged write per branch.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLostWrites;

impl Invariant for NoLostWrites {
    fn name(&self) -> &'static str {
        "no_lost_writes"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        if !s.config.synchronous() {
            return Ok(());
        }
        for i in s.writable() {
            let db = &s.dbs[i];
            for &(branch, lsn, id) in &s.oracle.acked_max {
                if !db.contains(branch, lsn) {
                    return Err(format!(
                        "acknowledged write #{id} (branch {branch} at {lsn}) is missing on primary {} (branch {:?} at {})",
                        s.names[i],
                        db.branch(),
                        db.wal
                    ));
                }
            }
        }
        Ok(())
    }
}
