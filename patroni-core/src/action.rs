//! What the state machine asks the agent to do: effects as data.

use crate::policy::Ineligible;
use crate::{DynamicConfig, HistoryEntry, Lsn, Member, MemberData, Reason, SyncState};

/// How to stop the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopMode {
    /// Disconnect clients, checkpoint, shut down cleanly (`-m fast`).
    Fast,
    /// Kill at once without a checkpoint (`-m immediate`); crash recovery runs on the next start.
    Immediate,
}

/// The role to start the database in.
// Built once per cycle and moved rarely; boxing would only complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StartRole {
    /// Writable primary, on the same timeline (a restart in place after a crash).
    Primary,
    /// Read-only standby streaming from `upstream`; `None` starts it read-only with no upstream
    /// (openGauss `-M pending`), the safe mode while the leader is unknown.
    Standby {
        /// The member to stream from.
        upstream: Option<Member>,
    },
}

/// How to rebuild a standby that cannot follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RebuildMode {
    /// Rewind in place when possible (pg_rewind, openGauss incremental build), else a full copy.
    Auto,
    /// Wipe and copy everything from the source.
    Full,
}

/// One effect, executed by the agent in list order.
///
/// Lock actions and stops are guards: when one fails or loses its compare-and-swap, the agent
/// skips the rest of the list and reports that in the next
/// [`Observation::outcomes`](crate::Observation::outcomes).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Create `/initialize` only if absent (the bootstrap race). Guard.
    TakeInitialize,
    /// Write the system identifier to `/initialize` once bootstrap or adoption is done.
    SetInitialize {
        /// The local system identifier.
        system_id: String,
    },
    /// Delete `/initialize` after a failed bootstrap so another member may try.
    CancelInitialize,
    /// Seed `/config` when the DCS has none (`version` `None`: create-only), or restore it when it
    /// is empty or unreadable (compare-and-swap on the version read).
    WriteConfig {
        /// The configuration to write.
        config: DynamicConfig,
        /// The version read, `None` to create.
        version: Option<u64>,
    },
    /// Create the leader key bound to our lease, only if absent. Guard.
    AcquireLeader,
    /// Keep our leader key alive; fails when it is no longer ours. Guard.
    RenewLeader,
    /// Delete the leader key if it is ours, so the race starts now instead of after `ttl`.
    ReleaseLeader,
    /// Write our member key.
    PublishMember(MemberData),
    /// Publish the primary's WAL position in `/status` for standbys' lag checks.
    WriteStatus {
        /// The primary's write position.
        optime: Lsn,
    },
    /// Remove a handled (or stale) `/failover` request, compare-and-swap on its version.
    ClearFailover {
        /// The version read.
        version: u64,
    },
    /// Record the synchronous standbys in `/sync`, compare-and-swap on the version read. Guard.
    WriteSyncState {
        /// The new state.
        state: SyncState,
        /// The version read, `None` to create.
        version: Option<u64>,
    },
    /// Append to `/history` after a promotion.
    WriteHistory(Vec<HistoryEntry>),
    /// Ask the agent for peers' `GET /patroni` answers and to step again in the same cycle.
    FetchPeerStatus {
        /// Members to probe.
        members: Vec<String>,
    },
    /// Write `/failsafe` (failsafe mode): the members, by REST API URL, a primary must hear
    /// from to keep running through a DCS outage.
    WriteFailsafe(crate::FailsafeTopology),
    /// Failsafe mode while the DCS is unreachable: `POST /failsafe` to each of these members
    /// (name, REST API URL) in parallel with a short timeout, and step again in the same cycle
    /// with the answers in [`Observation::failsafe`](crate::Observation::failsafe). Done when
    /// all accepted.
    ConfirmFailsafe {
        /// Members to ask.
        members: Vec<(String, String)>,
    },
    /// Initialise a new cluster in the empty data directory.
    Bootstrap,
    /// Copy the data directory from a running member (base backup) and start as its standby.
    CloneFrom {
        /// The member to copy from.
        source: Member,
    },
    /// With no leader running, create the data directory by a method that needs none (a restore
    /// from backup) and start as a standby of nobody; its kind is [`ActionKind::CloneFrom`].
    CloneWithoutLeader,
    /// Start the database.
    Start(StartRole),
    /// Stop the database.
    Stop(StopMode),
    /// Stop then start in the same role (pending parameters, operator request).
    Restart,
    /// Re-read configuration files.
    Reload,
    /// Make the local standby writable.
    Promote {
        /// The generation the promotion opens (PostgreSQL picks its own timeline; openGauss gets it as `-T`).
        timeline: u64,
        /// A planned switchover (the old primary handed over cleanly) rather than a failover.
        planned: bool,
    },
    /// Turn a primary into a read-only standby with no upstream yet.
    Demote(StopMode),
    /// Point a standby at a (new) leader.
    Follow {
        /// The member to stream from.
        leader: Member,
    },
    /// Rebuild a standby that cannot follow from `source`.
    Rebuild {
        /// The member to copy from.
        source: Member,
        /// Rewind or full copy.
        mode: RebuildMode,
        /// The cluster's current generation (openGauss `build -T`).
        timeline: u64,
    },
    /// Make the database wait for these standbys (`synchronous_standby_names`); empty turns waiting off.
    SetSyncStandbys {
        /// Standby names in order.
        names: Vec<String>,
        /// How many must acknowledge.
        count: u32,
        /// `ANY count (...)` (quorum commit) rather than `FIRST count (...)`.
        quorum: bool,
    },
}

/// The kind of an [`Action`] without its data, to report outcomes and name running tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum ActionKind {
    TakeInitialize,
    SetInitialize,
    CancelInitialize,
    WriteConfig,
    AcquireLeader,
    RenewLeader,
    ReleaseLeader,
    PublishMember,
    WriteStatus,
    ClearFailover,
    WriteSyncState,
    WriteHistory,
    FetchPeerStatus,
    WriteFailsafe,
    ConfirmFailsafe,
    Bootstrap,
    CloneFrom,
    Start,
    Stop,
    Restart,
    Reload,
    Promote,
    Demote,
    Follow,
    Rebuild,
    SetSyncStandbys,
}

impl Action {
    /// This action's kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::TakeInitialize => ActionKind::TakeInitialize,
            Action::SetInitialize { .. } => ActionKind::SetInitialize,
            Action::CancelInitialize => ActionKind::CancelInitialize,
            Action::WriteConfig { .. } => ActionKind::WriteConfig,
            Action::AcquireLeader => ActionKind::AcquireLeader,
            Action::RenewLeader => ActionKind::RenewLeader,
            Action::ReleaseLeader => ActionKind::ReleaseLeader,
            Action::PublishMember(_) => ActionKind::PublishMember,
            Action::WriteStatus { .. } => ActionKind::WriteStatus,
            Action::ClearFailover { .. } => ActionKind::ClearFailover,
            Action::WriteSyncState { .. } => ActionKind::WriteSyncState,
            Action::WriteHistory(_) => ActionKind::WriteHistory,
            Action::FetchPeerStatus { .. } => ActionKind::FetchPeerStatus,
            Action::WriteFailsafe(_) => ActionKind::WriteFailsafe,
            Action::ConfirmFailsafe { .. } => ActionKind::ConfirmFailsafe,
            Action::Bootstrap => ActionKind::Bootstrap,
            Action::CloneFrom { .. } | Action::CloneWithoutLeader => ActionKind::CloneFrom,
            Action::Start(_) => ActionKind::Start,
            Action::Stop(_) => ActionKind::Stop,
            Action::Restart => ActionKind::Restart,
            Action::Reload => ActionKind::Reload,
            Action::Promote { .. } => ActionKind::Promote,
            Action::Demote(_) => ActionKind::Demote,
            Action::Follow { .. } => ActionKind::Follow,
            Action::Rebuild { .. } => ActionKind::Rebuild,
            Action::SetSyncStandbys { .. } => ActionKind::SetSyncStandbys,
        }
    }
}

impl ActionKind {
    /// Whether a failure of this action must stop the rest of the list: lock and CAS writes, and a
    /// stop (nothing after a stop, such as releasing the lock, may run while the database may
    /// still accept writes).
    pub fn is_guard(self) -> bool {
        matches!(
            self,
            ActionKind::TakeInitialize
                | ActionKind::AcquireLeader
                | ActionKind::RenewLeader
                | ActionKind::WriteSyncState
                | ActionKind::Stop
        )
    }

    /// Whether the agent runs this in the background while the loop keeps renewing the lock.
    pub fn is_slow(self) -> bool {
        matches!(
            self,
            ActionKind::Bootstrap
                | ActionKind::CloneFrom
                | ActionKind::Start
                | ActionKind::Restart
                | ActionKind::Promote
                | ActionKind::Demote
                | ActionKind::Rebuild
        )
    }
}

/// How one executed action ended, fed back in the next observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeResult {
    /// It did what it said.
    Done,
    /// The DCS answered but the compare-and-swap or create-only write lost (someone else holds it).
    Lost,
    /// The DCS could not be reached within `retry_timeout`.
    DcsUnreachable(String),
    /// The database command failed, with the reason (log tail, exit status, timeout).
    Failed(String),
    /// Not run because an earlier guard in the same list failed.
    Skipped,
}

/// One executed action and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was run.
    pub kind: ActionKind,
    /// How it ended.
    pub result: OutcomeResult,
    /// When it was started (monotonic ms): a renewal counts from when it was sent, the safe side.
    pub started_at: u64,
}

/// The result of one [`Ha::step`](crate::Ha::step).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Effects, in the order they must run.
    pub actions: Vec<Action>,
    /// The branch that decided, named; its `Display` is the one line in Patroni's words logged
    /// each cycle (`no action. I am (node1), the leader with the lock`).
    pub reason: Reason,
    /// Why members could not be promoted, when that shaped the decision: "no good candidates" is never unexplained.
    pub ineligible: Vec<(String, Ineligible)>,
}

impl Decision {
    /// A decision with these actions, for this reason, that names no ineligible member.
    pub fn new(actions: Vec<Action>, reason: Reason) -> Self {
        Decision {
            actions,
            reason,
            ineligible: Vec::new(),
        }
    }

    /// A decision with no actions, only its reason.
    pub fn because(reason: Reason) -> Self {
        Decision::new(Vec::new(), reason)
    }

    /// Whether the decision contains an action of this kind.
    pub fn has(&self, kind: ActionKind) -> bool {
        self.actions.iter().any(|a| a.kind() == kind)
    }
}
