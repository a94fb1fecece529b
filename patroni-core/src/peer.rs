//! What other agents answer about themselves, fetched over REST during a leader race.

use crate::{Lsn, MemberRole, MemberState, Tags};

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
    /// The tags it reports: `nofailover` (or priority <= 0) and its answer does not block us,
    /// `failover_priority` breaks ties between equal WAL positions, and custom tags (a `site`,
    /// a `zone`) are what a custom [`FailoverPolicy`](crate::FailoverPolicy) compares.
    pub tags: Tags,
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
            tags: Tags::default(),
            watchdog_failed: false,
            fetched_at,
        }
    }
}
