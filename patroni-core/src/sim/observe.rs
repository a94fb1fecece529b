//! What an agent observes: its local database as the adapter reports it, and its peers' answers.

use crate::sim::db::Process;
use crate::sim::world::World;
use crate::{
    DbRole, MemberRole, MemberState, PeerStatus, ReplicationRow, SenderState, StandbySync,
};

impl World {
    /// What node `i`'s adapter would observe, with its standbys as `pg_stat_replication` rows.
    pub(crate) fn observe_local(&self, i: usize) -> crate::LocalDb {
        let me = &self.names[i];
        let rows = (0..self.dbs.len())
            .filter(|&k| k != i && self.alive[k])
            .filter(|&k| {
                let s = &self.dbs[k];
                s.is_running_standby() && s.streaming && s.upstream.as_deref() == Some(me.as_str())
            })
            .map(|k| {
                let s = &self.dbs[k];
                let sync = self.dbs[i]
                    .sync_names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&self.names[k]));
                ReplicationRow {
                    application_name: self.names[k].clone(),
                    state: SenderState::Streaming,
                    sync_state: match (sync, self.dbs[i].sync_any) {
                        (false, _) => StandbySync::Async,
                        (true, false) => StandbySync::Sync,
                        (true, true) => StandbySync::Quorum,
                    },
                    flush_lsn: Some(s.wal),
                    replay_lsn: Some(s.wal),
                }
            })
            .collect();
        self.dbs[i].observe(rows)
    }

    /// Answers `GET /patroni` for each named peer that node `i` can reach.
    pub(crate) fn peer_statuses(&self, i: usize, members: &[String]) -> Vec<PeerStatus> {
        let now = self.now;
        members
            .iter()
            .map(|name| {
                let Some(k) = self.index_of(name) else {
                    return PeerStatus::unreachable(name.clone(), now);
                };
                if k == i || !self.peers_connected(i, k) || self.agents[k].stalled_until > now {
                    return PeerStatus::unreachable(name.clone(), now);
                }
                let db = &self.dbs[k];
                let tags = &self.agents[k].node.tags;
                PeerStatus {
                    name: name.clone(),
                    reachable: true,
                    role: match (db.process, db.role) {
                        (Process::Running, DbRole::Primary) => MemberRole::Primary,
                        (_, DbRole::Standby) | (Process::Busy, _) => MemberRole::Replica,
                        _ if db.initialized => MemberRole::Replica,
                        _ => MemberRole::Uninitialized,
                    },
                    state: match db.process {
                        Process::Running => MemberState::Running,
                        Process::Busy => MemberState::Starting,
                        Process::Stopped => MemberState::Stopped,
                        Process::Crashed => MemberState::Crashed,
                    },
                    wal_position: db.wal,
                    timeline: db.initialized.then_some(db.timeline),
                    tags: tags.clone(),
                    watchdog_failed: false,
                    fetched_at: now,
                }
            })
            .collect()
    }
}
