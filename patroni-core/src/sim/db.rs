//! A simulated database server: process state, role, WAL lineage, replication and its timings.
//!
//! WAL identity is modelled as a lineage: a list of segments, each a globally unique branch id
//! and the position where this node's history entered it. A promotion opens a new branch, as
//! PostgreSQL opens a new timeline; a standby can follow an upstream only when its own history is
//! a prefix of the upstream's, which is exactly when `pg_rewind` would not be needed.

use std::time::Duration;

use crate::{
    CannotFollow, CannotFollowReason, DataDirState, DbRole, LocalDb, Lsn, OutcomeResult,
    ProcessState, ReceiverStatus, ReplicationRow,
};

/// How long database operations take, in virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbTimings {
    /// `initdb` and first start.
    pub bootstrap: Duration,
    /// Base backup of a new member.
    pub clone: Duration,
    /// Start (or restart) until it accepts connections.
    pub start: Duration,
    /// Promotion of a standby until it is writable.
    pub promote: Duration,
    /// Demotion of a primary to a read-only standby.
    pub demote: Duration,
    /// Rebuild (rewind or full copy) of a standby.
    pub rebuild: Duration,
}

impl Default for DbTimings {
    fn default() -> Self {
        let secs = Duration::from_secs;
        DbTimings {
            bootstrap: secs(4),
            clone: secs(6),
            start: secs(3),
            promote: secs(2),
            demote: secs(2),
            rebuild: secs(8),
        }
    }
}

/// One stretch of a node's WAL history: a branch and where this history entered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Globally unique branch id (one per bootstrap or promotion).
    pub branch: u64,
    /// Position at which the history switched onto this branch.
    pub start: Lsn,
}

/// Whether the server process runs, from the simulator's side (finer than [`ProcessState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Cleanly shut down.
    Stopped,
    /// Killed or crashed; crash recovery runs on the next start.
    Crashed,
    /// Starting, demoting or being rebuilt: alive but accepting no writes or connections.
    Busy,
    /// Accepting connections.
    Running,
}

/// The simulated server of one node.
#[derive(Debug, Clone)]
pub struct SimDb {
    /// Process state.
    pub process: Process,
    /// Whether the data directory holds a cluster.
    pub initialized: bool,
    /// Role when running.
    pub role: DbRole,
    /// Cluster system identifier, shared by clones.
    pub system_id: Option<String>,
    /// Reported timeline (the generation given at promotion).
    pub timeline: u64,
    /// WAL history.
    pub lineage: Vec<Segment>,
    /// Furthest WAL position (written on a primary, received on a standby).
    pub wal: Lsn,
    /// The member a standby streams from.
    pub upstream: Option<String>,
    /// Whether the standby's receiver is connected this instant.
    pub streaming: bool,
    /// Set when the upstream's history does not contain ours.
    pub cannot_follow: bool,
    /// Standbys a primary waits for (`synchronous_standby_names`).
    pub sync_names: Vec<String>,
    /// How many of them must acknowledge.
    pub sync_count: u32,
    /// `ANY sync_count (...)` (quorum commit) rather than `FIRST`: standbys report `quorum`.
    pub sync_any: bool,
    /// The server refuses to start (corrupt data directory, full disk).
    pub cannot_start: bool,
    /// Bytes this standby stays behind its upstream (a slow link or disk).
    pub lag_bytes: u64,
    /// The data directory cannot be read (I/O error, permissions, a volume gone) while a running
    /// server may still accept writes through the files it already has open.
    pub data_dir_unreadable: bool,
}

impl Default for SimDb {
    fn default() -> Self {
        SimDb {
            process: Process::Stopped,
            initialized: false,
            role: DbRole::Unknown,
            system_id: None,
            timeline: 0,
            lineage: Vec::new(),
            wal: Lsn::ZERO,
            upstream: None,
            streaming: false,
            cannot_follow: false,
            sync_names: Vec::new(),
            sync_count: 0,
            sync_any: false,
            cannot_start: false,
            lag_bytes: 0,
            data_dir_unreadable: false,
        }
    }
}

impl SimDb {
    /// A start on a database marked unstartable: it stays down as crashed, with the failure the agent reports.
    pub(crate) fn refuse_start(&mut self) -> Option<OutcomeResult> {
        if !self.cannot_start {
            return None;
        }
        self.process = Process::Crashed;
        Some(OutcomeResult::Failed(
            "could not start: FATAL: data directory is corrupt (simulated)".into(),
        ))
    }

    /// Whether this server accepts writes right now: the property invariant (a) counts.
    pub fn writable(&self) -> bool {
        self.process == Process::Running && self.role == DbRole::Primary
    }

    /// Whether it runs as a standby.
    pub fn is_running_standby(&self) -> bool {
        self.process == Process::Running && self.role == DbRole::Standby
    }

    /// The branch this node currently writes or receives on.
    pub fn branch(&self) -> Option<u64> {
        self.lineage.last().map(|s| s.branch)
    }

    /// How far this node's history extends on `branch`, if it contains that branch at all.
    pub fn extent_on(&self, branch: u64) -> Option<Lsn> {
        let i = self.lineage.iter().position(|s| s.branch == branch)?;
        Some(self.lineage.get(i + 1).map_or(self.wal, |next| next.start))
    }

    /// Whether this node's history holds the WAL up to `lsn` on `branch` (an acknowledged write).
    pub fn contains(&self, branch: u64, lsn: Lsn) -> bool {
        self.extent_on(branch).is_some_and(|e| e >= lsn)
    }

    /// Whether a standby with this history can stream from `upstream` without a rewind.
    pub fn can_follow(&self, upstream: &SimDb) -> bool {
        if self.system_id != upstream.system_id || self.lineage.is_empty() {
            return false;
        }
        let k = self.lineage.len();
        if upstream.lineage.len() < k || upstream.lineage[..k] != self.lineage[..] {
            return false;
        }
        match upstream.lineage.get(k) {
            Some(next) => next.start >= self.wal,
            None => upstream.wal >= self.wal,
        }
    }

    /// Whether this standby is only ahead of `upstream` on the same line of history (a cascade
    /// member that lags): PostgreSQL retries until the upstream passes our position, nothing
    /// diverged and no rewind is needed.
    pub fn waits_for(&self, upstream: &SimDb) -> bool {
        self.system_id == upstream.system_id
            && !self.lineage.is_empty()
            && upstream.lineage == self.lineage
            && upstream.wal < self.wal
    }

    /// Takes a full copy of `source`: data, history and position, and its
    /// `synchronous_standby_names`, which lives in the copied `postgresql.auto.conf`.
    pub fn copy_from(&mut self, source: &SimDb) {
        self.sync_names.clone_from(&source.sync_names);
        self.sync_count = source.sync_count;
        self.sync_any = source.sync_any;
        self.initialized = true;
        self.system_id = source.system_id.clone();
        self.timeline = source.timeline;
        self.lineage = source.lineage.clone();
        self.wal = source.wal;
        self.cannot_follow = false;
    }

    /// Pulls WAL from `upstream` (already checked reachable): up to its position minus our lag.
    pub fn replicate_from(&mut self, upstream: &SimDb) {
        if !self.can_follow(upstream) {
            self.streaming = false;
            self.cannot_follow = !self.waits_for(upstream);
            return;
        }
        self.cannot_follow = false;
        self.streaming = true;
        let target = Lsn(upstream.wal.0.saturating_sub(self.lag_bytes));
        if target > self.wal || upstream.lineage.len() > self.lineage.len() {
            self.lineage = upstream.lineage.clone();
            self.timeline = self.timeline.max(upstream.timeline);
            self.wal = self.wal.max(target);
        }
    }

    /// What the adapter would observe: the [`LocalDb`] the agent feeds to `Ha::step`.
    pub fn observe(&self, standbys: Vec<ReplicationRow>) -> LocalDb {
        let process = match self.process {
            Process::Stopped => ProcessState::Stopped,
            Process::Crashed => ProcessState::Crashed,
            Process::Busy => ProcessState::Starting,
            Process::Running => ProcessState::Running,
        };
        if self.data_dir_unreadable {
            // What the PostgreSQL adapter sees: the postmaster it knew is alive, nothing else.
            return LocalDb {
                process,
                data_dir: DataDirState::Unreadable(
                    "Input/output error (simulated unreadable data directory)".into(),
                ),
                ..LocalDb::default()
            };
        }
        let running = self.process == Process::Running;
        let primary = running && self.role == DbRole::Primary;
        let standby = running && self.role == DbRole::Standby;
        LocalDb {
            process,
            data_dir: if self.initialized {
                DataDirState::Initialized
            } else {
                DataDirState::Empty
            },
            role: if running { self.role } else { DbRole::Unknown },
            system_id: self.system_id.clone(),
            timeline: self.initialized.then_some(self.timeline),
            write_lsn: (primary || (!running && self.initialized)).then_some(self.wal),
            receive_lsn: standby.then_some(self.wal),
            replay_lsn: standby.then_some(self.wal),
            replication: if primary { standbys } else { Vec::new() },
            receiver: standby.then(|| ReceiverStatus {
                streaming: self.streaming,
                upstream_host: self.upstream.clone(),
                upstream_port: self.upstream.as_ref().map(|_| 5432),
            }),
            cannot_follow: (standby && self.cannot_follow).then(|| CannotFollow {
                reason: CannotFollowReason::Diverged,
                detail: "requested timeline is not a child of this server's history".into(),
            }),
            controldata_state: self.initialized.then(|| {
                match self.process {
                    Process::Crashed => "in production",
                    Process::Stopped if self.role == DbRole::Standby => "shut down in recovery",
                    Process::Stopped => "shut down",
                    _ if self.role == DbRole::Standby => "in archive recovery",
                    _ => "in production",
                }
                .to_string()
            }),
            version: Some("15.0-sim".into()),
            pending_restart: false,
            report: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(branch: u64, wal: u64) -> SimDb {
        SimDb {
            process: Process::Running,
            initialized: true,
            role: DbRole::Primary,
            system_id: Some("s".into()),
            timeline: 1,
            lineage: vec![Segment {
                branch,
                start: Lsn::ZERO,
            }],
            wal: Lsn(wal),
            ..Default::default()
        }
    }

    #[test]
    fn follows_a_prefix_and_detects_divergence() {
        let old = primary(1, 100);
        let mut standby = old.clone();
        standby.role = DbRole::Standby;
        standby.wal = Lsn(60);
        // The standby is promoted at 60: a new branch; the old primary had WAL up to 100 there.
        let mut new = standby.clone();
        new.role = DbRole::Primary;
        new.lineage.push(Segment {
            branch: 2,
            start: Lsn(60),
        });
        new.wal = Lsn(80);
        assert!(!old.can_follow(&new), "old primary wrote past the fork");
        let mut behind = old.clone();
        behind.wal = Lsn(50);
        assert!(behind.can_follow(&new));
        behind.replicate_from(&new);
        assert_eq!((behind.wal, behind.branch()), (Lsn(80), Some(2)));
        assert!(behind.contains(1, Lsn(50)) && behind.contains(2, Lsn(80)));
        assert!(!behind.contains(1, Lsn(70)));
        let mut lagging = old.clone();
        lagging.wal = Lsn(10);
        lagging.lag_bytes = 30;
        lagging.replicate_from(&new);
        assert_eq!(lagging.wal, Lsn(50));
    }

    #[test]
    fn observation_matches_the_role() {
        let p = primary(1, 100);
        let l = p.observe(Vec::new());
        assert!(l.is_running_primary());
        assert_eq!(l.write_lsn, Some(Lsn(100)));
        let mut down = p.clone();
        down.process = Process::Crashed;
        let l = down.observe(Vec::new());
        assert_eq!(
            (l.process, l.role, l.controldata_state.as_deref()),
            (
                ProcessState::Crashed,
                DbRole::Unknown,
                Some("in production")
            )
        );
    }
}
