//! What other agents answer about themselves, fetched over REST during a leader race.

use crate::{Lsn, MemberRole, MemberState};

/// One peer's answer to `GET /patroni`, or the fact that it did not answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    /// The peer's member name.
    pub name: String,
    /// Whether it answered within the probe timeout; an unreachable peer is ignored in the race.
    pub reachable: bool,
    /// The role it reports.
    pub role: MemberRole,
    /// The state it reports.
    pub state: MemberState,
    /// Its furthest WAL position (write on a primary, max of received and replayed on a standby).
    pub wal_position: Lsn,
    /// Its timeline or term.
    pub timeline: Option<u64>,
    /// Tagged `nofailover` (or priority <= 0): its answer does not block us.
    pub nofailover: bool,
    /// Its `failover_priority`, which breaks ties between equal WAL positions.
    pub failover_priority: i64,
    /// Its watchdog could not be armed, so it may not promote.
    pub watchdog_failed: bool,
    /// When (our monotonic clock, ms) this answer was received; stale answers do not block forever.
    pub fetched_at: u64,
}

impl PeerStatus {
    /// A peer that did not answer the probe.
    pub fn unreachable(name: impl Into<String>, fetched_at: u64) -> Self {
        PeerStatus {
            name: name.into(),
            reachable: false,
            role: MemberRole::Unknown,
            state: MemberState::Unknown,
            wal_position: Lsn::ZERO,
            timeline: None,
            nofailover: false,
            failover_priority: 1,
            watchdog_failed: false,
            fetched_at,
        }
    }
}
