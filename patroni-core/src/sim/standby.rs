//! Standby clusters in the simulator: the remote primary a standby cluster follows, modelled as
//! an outside WAL source that always runs and keeps writing, and the operator's promotion.

use crate::sim::config::SimConfig;
use crate::sim::db::{Process, Segment, SimDb};
use crate::sim::world::World;
use crate::{DbRole, Lsn, OutcomeResult, REMOTE_MEMBER};

/// The remote primary: its own system and branch (1, which no promotion in the world opens).
pub(crate) fn remote_primary() -> SimDb {
    SimDb {
        process: Process::Running,
        initialized: true,
        role: DbRole::Primary,
        system_id: Some("remote-primary".into()),
        timeline: 1,
        lineage: vec![Segment {
            branch: 1,
            start: Lsn::ZERO,
        }],
        wal: Lsn(0x0300_0000),
        ..SimDb::default()
    }
}

impl SimConfig {
    /// [`three_nodes`](SimConfig::three_nodes) as a standby cluster of a remote primary
    /// (`standby_cluster` in `bootstrap.dcs`); two runs in three the operator promotes it at a
    /// seeded moment within the faults.
    pub fn standby_cluster(seed: u64) -> Self {
        let mut cfg = SimConfig::three_nodes(seed);
        // The simulated receiver reports its upstream by name on port 5432.
        cfg.dynamic.extra.insert(
            "standby_cluster".into(),
            serde_json::json!({"host": REMOTE_MEMBER, "port": 5432}),
        );
        cfg
    }
}

impl World {
    /// The operator removes `standby_cluster` from `/config` (`PATCH /config`); tried again a
    /// second later while the DCS cannot take it.
    pub(crate) fn promote_standby_cluster(&mut self) {
        if self.now < self.dcs_down_until {
            self.promote_standby_at = Some(self.dcs_down_until);
            return;
        }
        self.edit_config(|c| {
            c.extra.remove("standby_cluster");
        });
        if self.dynamic.is_standby_cluster() {
            self.promote_standby_at = Some(self.now + 1_000);
            return;
        }
        self.promote_standby_at = None;
        self.log("world", "operator promoted the standby cluster".into());
    }

    /// Completes a copy of the remote primary (a standby cluster's bootstrap).
    pub(crate) fn copy_remote(&mut self, i: usize, remote: &SimDb) -> OutcomeResult {
        let db = &mut self.dbs[i];
        db.copy_from(remote);
        if db.cannot_start {
            db.process = Process::Crashed;
            return OutcomeResult::Failed("could not start the copied server".into());
        }
        db.role = DbRole::Standby;
        db.upstream = Some(REMOTE_MEMBER.into());
        db.process = Process::Running;
        OutcomeResult::Done
    }
}
