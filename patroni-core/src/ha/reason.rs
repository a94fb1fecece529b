//! Why a cycle decided what it did: one named [`Reason`] per branch of the state machine.
//!
//! A reason's `Display` is the one-line status in Patroni's words, the text operators grep logs
//! and `GET /patroni` for; where Patroni has such a line it is kept word for word. The decision
//! table in [`crate::decisions`] lists every variant with when it is taken and what it does.

use std::fmt;
use std::time::Duration;

use crate::action::ActionKind;
use crate::Timestamp;

/// Which kind of `/failover` request a leader handles, as its messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A planned handover (`/failover` names the current leader).
    Switchover,
    /// A manual failover (the request names no leader).
    Failover,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Switchover => "switchover",
            RequestKind::Failover => "failover",
        })
    }
}

/// Why quorum mode keeps a candidate from promoting: the votes of `/sync` it could count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumShortfall {
    /// Votes counted (itself when in the set, plus members of the set not ahead of it).
    pub votes: u32,
    /// Votes needed: `/sync`'s quorum plus one.
    pub need: u32,
    /// The leader `/sync` names.
    pub leader: String,
    /// The voters `/sync` names.
    pub voters: Vec<String>,
    /// A member of the set that is ahead of the candidate, if one answered.
    pub ahead: Option<String>,
}

impl fmt::Display for QuorumShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quorum not reached: {} of the {} votes needed from /sync (leader {}, voters [{}])",
            self.votes,
            self.need,
            self.leader,
            self.voters.join(",")
        )?;
        if let Some(a) = &self.ahead {
            write!(f, ", {a} is ahead")?;
        }
        Ok(())
    }
}

/// The branch a cycle's [`Decision`](crate::Decision) came from, named in code; its `Display`
/// is the status line logged each cycle and shown by `GET /patroni`.
///
/// Variants carry the data their line prints (member names, seconds left). New branches add
/// variants, so matches outside this crate need a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The cluster is paused: the inner reason, prefixed `PAUSE: `.
    Paused(Box<Reason>),

    // --- a slow action runs
    /// A task runs and we hold the lock: renew it.
    RenewedDuringTask {
        /// What runs.
        task: ActionKind,
    },
    /// A start that may come up writable runs while the lock was lost or taken: stop it.
    StoppedStartingLockLost,
    /// A running primary lost the lock while a task runs: demote.
    LostLockDuringTask {
        /// What runs.
        task: ActionKind,
    },
    /// A task runs and nothing else is to be done.
    TaskInProgress {
        /// What runs.
        task: ActionKind,
    },

    // --- operator requests
    /// `POST /restart` for this node.
    RestartRequested,
    /// `POST /reinitialize` while the cluster is paused: refused.
    ReinitializeInPause,
    /// `POST /reinitialize`: wipe and copy from the leader.
    ReinitializeFromLeader {
        /// The lock holder copied from.
        leader: String,
    },

    // --- watchdog
    /// `watchdog.mode: required` without a working watchdog, while running as a primary.
    WatchdogDemote,
    /// `watchdog.mode: required` without a working watchdog: never take or keep the lock.
    WatchdogNotPromoting,

    // --- lockless primary
    /// A writable primary without the lock: demote at once.
    DemoteNoLock,

    // --- leader race (nobody holds the lock)
    /// A policy rule (`nofailover`, pause, another candidate named) keeps us out of the race.
    NotAllowedToPromote,
    /// Another member is healthier, or we are ineligible (lag, timeline, backoff).
    NotHealthiest,
    /// Paused with no leader, and no failover request names us.
    SecondaryNoLeader {
        /// This node.
        me: String,
    },
    /// Our database is not running as a standby, so we do not race.
    NotRunningAsStandby,
    /// A promotion of ours failed recently: sit the race out for `ttl`.
    PromoteBackoff,
    /// A running primary in pause whose system ID differs from `/initialize`.
    SystemIdDiffersNoLock,
    /// A running primary in pause leaves the free lock to the member a failover request names.
    ManualFailoverPending {
        /// The member named.
        candidate: String,
    },
    /// A running primary took the free lock.
    AcquiredLock,
    /// A running primary on a stale timeline found the lock free: demote.
    DemoteNotHealthiest,
    /// Ask the other members' agents before racing.
    CheckingPeers,
    /// The leader we saw while paused never confirmed the resume and does not answer.
    PausedLeaderUnconfirmed {
        /// That leader.
        former: String,
    },
    /// Paused, a failover request names us, but a member did not answer the probe.
    SilentMemberInPause,
    /// A peer answered that its database runs as a writable primary.
    PrimaryStillAlive {
        /// That peer.
        primary: String,
    },
    /// Our receiver streams from a server no member key or memory names.
    UnnamedUpstream {
        /// Where it streams from.
        upstream: String,
    },
    /// Won the race in a standby cluster: stream from the remote primary as standby leader.
    PromotedStandbyLeader,
    /// Won the race: promote.
    PromotedByRace,
    /// Just resumed without a leader and a member is silent: wait out its fence.
    AfterResume {
        /// Until the race (shown in whole seconds, rounded up).
        left: Duration,
    },
    /// `primary_race_backoff`: WAL still arrives, let the most advanced standby win.
    RaceBackoff {
        /// This node.
        me: String,
        /// Until the race (shown in whole seconds, rounded up).
        left: Duration,
    },
    /// Quorum mode: not enough voters of `/sync` vouch for us.
    QuorumNotReached(QuorumShortfall),

    // --- bootstrap and data directory
    /// The local data directory belongs to another cluster than `/initialize` says.
    SystemIdMismatch {
        /// The system ID in `/initialize`.
        dcs: String,
        /// The local data directory's system ID.
        local: String,
    },
    /// A freshly started agent finds no `/initialize` and a running replica.
    AbortJoin,
    /// Our bootstrap (or standby-cluster copy) failed: give `/initialize` back.
    BootstrapFailed,
    /// Our bootstrap finished with a running database: take the lock.
    InitializedCluster,
    /// Our bootstrap finished; the database is still recovering.
    WaitingEndOfRecovery,
    /// We hold the lock over a data directory of another cluster: let go.
    ReleasedSystemIdMismatch,
    /// We hold the lock and the data directory became unreadable.
    ReleasedDataDirUnreadable,
    /// We hold the lock and the data directory is empty.
    ReleasedDataDirEmpty,
    /// The data directory cannot be read.
    DataDirUnreadable {
        /// The adapter's error.
        error: String,
    },
    /// The data directory emptied under a running postmaster: stop it.
    StoppedDataDirEmpty,
    /// An empty data directory, and nothing to do about it now (paused, or no postmaster).
    EmptyDataDir,
    /// Another member won `/initialize`.
    InitializeLockLost,
    /// We may bootstrap: take `/initialize` and run `initdb`.
    Bootstrapping,
    /// Clone from a `clonefrom` replica.
    CloningFromReplica {
        /// The replica copied from.
        member: String,
    },
    /// Clone from the leader.
    CloningFromLeader {
        /// The leader copied from.
        leader: String,
    },
    /// Create the data directory with a replica method that needs no leader.
    CloningWithoutLeader,
    /// Someone else bootstraps, or nobody may: wait.
    WaitingForBootstrap,
    /// `/initialize` has said "bootstrapping" for a `ttl` with nobody doing it.
    RemovedStaleInitialize,

    // --- failsafe mode
    /// DCS down, failsafe on: ask the `/failsafe` members to confirm us.
    FailsafeAsking,
    /// DCS down, every failsafe member confirmed: keep running as primary.
    FailsafeKept,
    /// A failsafe leader we confirmed may still run: do not race.
    FollowingFailsafeLeader {
        /// That leader.
        leader: String,
    },
    /// Within `ttl` of the agent's start with failsafe on: do not race.
    FailsafeStartWait,
    /// Not in `/failsafe`, and a member listed there does not answer.
    FailsafeSilentMember {
        /// The silent member.
        member: String,
    },

    // --- leader (we hold the lock)
    /// A running primary with the lock, nothing else to report.
    LeaderWithLock {
        /// This node.
        me: String,
    },
    /// The leader removed an unreadable `/failover`.
    CleanedUnreadableFailover {
        /// The unreadable value.
        value: String,
    },
    /// The leader restored an emptied `/config`.
    RestoredConfig {
        /// The unreadable value.
        value: String,
    },
    /// A promotion is running or finished but not visible yet.
    WaitingForPromotion,
    /// Paused, we hold the lock with a database that is not a primary.
    ReleasedNotPrimary,
    /// We hold the lock; the database's role is not known yet.
    RoleUnknown,
    /// Our promotion failed: release the lock.
    ReleasedPromoteFailed,
    /// We hold the lock with a standby database: promote.
    PromotedWithLock,
    /// The renewal was refused in pause: the primary keeps running.
    KeptPrimaryLockLost,
    /// The renewal was refused: demote.
    DemotedLockLost,
    /// The renewal was refused and we are no primary.
    NotPromotingLockLost,

    // --- standby cluster
    /// A standby cluster's lock holder runs as a primary, but the cluster is paused.
    StandbyClusterPaused,
    /// A standby cluster's lock holder runs as a primary: demote it.
    DemoteStandbyCluster,
    /// The standby leader with the lock, nothing else to report.
    StandbyLeaderWithLock {
        /// This node.
        me: String,
    },
    /// The standby leader points its receiver at the remote primary.
    StandbyLeaderFollowsRemote,
    /// Bootstrap a standby cluster by copying the remote primary.
    BootstrappingStandbyLeader,
    /// Bootstrap a standby cluster with a replica method that needs no leader.
    BootstrappingStandbyLeaderWithoutLeader,
    /// A standby cluster with no host and no leaderless replica method cannot bootstrap.
    StandbyClusterNoSource,

    // --- switchover and manual failover, leader side
    /// Paused: only a failover to a named member is carried out.
    FailoverNeedsCandidateInPause,
    /// A scheduled request is not due yet.
    AwaitingScheduled {
        /// Switchover or failover.
        kind: RequestKind,
        /// When it is due.
        at: Timestamp,
        /// Until then (shown in whole seconds, rounded up).
        left: Duration,
    },
    /// A scheduled request was missed by more than one and a half loops: drop it.
    StaleRequest {
        /// Switchover or failover.
        kind: RequestKind,
        /// When it was due.
        at: Timestamp,
    },
    /// A request names another member as the leader: drop it.
    RequestFromOtherLeader {
        /// Switchover or failover.
        kind: RequestKind,
        /// The leader the request names.
        leader: String,
        /// This node, the actual leader.
        me: String,
    },
    /// A request names us as the candidate: drop it.
    RequestForSelf {
        /// Switchover or failover.
        kind: RequestKind,
        /// This node.
        me: String,
    },
    /// A healthy candidate exists: demote and release the lock.
    HandingOver {
        /// Switchover or failover.
        kind: RequestKind,
    },
    /// No candidate is healthy: drop the request.
    NoHealthyMembers {
        /// Switchover or failover.
        kind: RequestKind,
    },

    // --- database down or starting
    /// A primary's crash recovery outlasted `primary_start_timeout` with a failover possible.
    StartupTimeoutDuringTask,
    /// The lock holder's start outlasted `primary_start_timeout`, or a requested restart's
    /// `timeout`: stop and release.
    StoppedStartupTimeout,
    /// The start outlasted the timeout, but nobody could take over.
    StartTimedOutNoFailover,
    /// The server runs but answers none of our SQL.
    RunningButRefused {
        /// Why, from the adapter.
        problem: crate::SqlProblem,
        /// Until `primary_start_timeout` (shown in whole seconds, rounded up).
        left: Duration,
    },
    /// The server is starting.
    StillStarting {
        /// Until `primary_start_timeout` (shown in whole seconds, rounded up).
        left: Duration,
    },
    /// Paused, we hold the lock and the database is down.
    ReleasedNotRunningInPause,
    /// The database is down and nothing is done about it (paused).
    PostgresNotRunning,
    /// The lock holder failed to start its database.
    ReleasedStartFailed,
    /// `primary_start_timeout: 0`: fail over at once after a crash.
    FailoverAfterCrash,
    /// The lock holder's database stayed down beyond `primary_start_timeout`.
    ReleasedStartTimeout,
    /// The standby leader starts its database.
    StartingStandbyLeader,
    /// The lock holder starts its database as a primary.
    StartingPrimary,
    /// Starts failed; wait before the next one.
    StartBackoff {
        /// Consecutive failed starts.
        failures: u32,
        /// Until the next one (shown in whole seconds, rounded up).
        left: Duration,
    },
    /// Start the database as a standby.
    StartingSecondary,

    // --- DCS outage
    /// DCS down, the lease still lasts: keep running as primary.
    DcsDownKeepingLease {
        /// How long the lease surely lasts (shown in whole seconds, rounded down: the safe side).
        left: Duration,
    },
    /// DCS down and the lease may end: demote.
    DemotedDcsDown {
        /// Failsafe members that refused to confirm us, and why.
        refused: Vec<(String, String)>,
    },
    /// DCS down and we are no primary.
    DcsDown,

    // --- follower (someone else holds the lock)
    /// Paused, our standby cannot follow the leader: no rebuild.
    CannotFollowInPause {
        /// The leader.
        leader: String,
        /// Why we cannot follow.
        detail: String,
    },
    /// Our standby cannot follow and the leader is not running.
    CannotFollowLeaderNotRunning {
        /// The leader.
        leader: String,
    },
    /// Rewind from the leader.
    Rewinding {
        /// The rewind tool.
        tool: String,
        /// The leader.
        leader: String,
    },
    /// Rebuild from the leader by copying: no rewind tool.
    CopyingNoRewindTool {
        /// The leader.
        leader: String,
    },
    /// Rebuild by a full copy (another system ID, or an incremental rebuild failed).
    ReinitializingDiverged,
    /// Paused, a primary without the lock keeps running.
    KeptPrimaryNoLock,
    /// A standby that already follows its upstream.
    Following {
        /// This node.
        me: String,
        /// The lock holder.
        leader: String,
    },
    /// Point the receiver at a new leader.
    FollowingNewLeader {
        /// The lock holder.
        leader: String,
    },
    /// Point the receiver at the `replicatefrom` member.
    FollowingReplicatefrom {
        /// The member streamed from.
        upstream: String,
        /// The lock holder.
        leader: String,
    },
    /// Tagged `nostream` with a receiver still streaming: restart with no upstream.
    NostreamStopping,
}

/// Whole seconds for a status line, rounded up: "1 seconds" until something 1 ms away, never 0.
fn secs_up(d: Duration) -> u128 {
    d.as_millis().div_ceil(1000)
}

/// The name a running task goes by in status messages, as Patroni names its async actions.
fn task_name(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Bootstrap => "bootstrap",
        ActionKind::CloneFrom => "creating replica",
        ActionKind::Start => "starting",
        ActionKind::Restart => "restart",
        ActionKind::Promote => "promote",
        ActionKind::Demote => "demote",
        ActionKind::Rebuild => "rebuild",
        ActionKind::Stop => "stopping",
        _ => "a background task",
    }
}

impl Reason {
    /// This reason in pause: prefixed `PAUSE: ` once, however often it is asked.
    pub fn paused(self) -> Reason {
        match self {
            Reason::Paused(_) => self,
            r => Reason::Paused(Box::new(r)),
        }
    }

    /// The reason without a pause prefix, for matching on the branch.
    pub fn branch(&self) -> &Reason {
        match self {
            Reason::Paused(r) => r.branch(),
            r => r,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason as R;
        match self {
            R::Paused(r) => write!(f, "PAUSE: {r}"),
            R::RenewedDuringTask { task } => {
                write!(f, "updated leader lock during {}", task_name(*task))
            }
            R::StoppedStartingLockLost => {
                f.write_str("stopped PostgreSQL while starting up because leader key was lost")
            }
            R::LostLockDuringTask { task } => {
                write!(f, "lost leader lock during {}", task_name(*task))
            }
            R::TaskInProgress { task } => write!(f, "{} in progress", task_name(*task)),
            R::RestartRequested => f.write_str("restarting after request"),
            R::ReinitializeInPause => {
                f.write_str("reinitialize is not done while the cluster is paused")
            }
            R::ReinitializeFromLeader { leader } => {
                write!(f, "reinitializing from leader '{leader}'")
            }
            R::WatchdogDemote => {
                f.write_str("Demoting self because watchdog could not be activated")
            }
            R::WatchdogNotPromoting => {
                f.write_str("Not promoting self because watchdog could not be activated")
            }
            R::DemoteNoLock => {
                f.write_str("demoting self because I do not have the lock and I was a leader")
            }
            R::NotAllowedToPromote => {
                f.write_str("following a different leader because I am not allowed to promote")
            }
            R::NotHealthiest => {
                f.write_str("following a different leader because i am not the healthiest node")
            }
            R::SecondaryNoLeader { me } => write!(
                f,
                "no action. I am ({me}), a secondary, and the cluster has no leader"
            ),
            R::NotRunningAsStandby => f.write_str(
                "not racing for the leader lock: postgres is not running as a standby",
            ),
            R::PromoteBackoff => f.write_str(
                "backoff: skip leader race after pre_promote script failure and releasing the lock voluntarily",
            ),
            R::SystemIdDiffersNoLock => {
                f.write_str("not taking the leader lock: system ID differs from /initialize")
            }
            R::ManualFailoverPending { candidate } => write!(
                f,
                "not taking the leader lock: a manual failover to ({candidate}) is pending"
            ),
            R::AcquiredLock => f.write_str("acquired session lock as a leader"),
            R::DemoteNotHealthiest => {
                f.write_str("demoting self because i am not the healthiest node")
            }
            R::CheckingPeers => f.write_str("checking peers before racing for the leader lock"),
            R::PausedLeaderUnconfirmed { former } => write!(
                f,
                "the cluster was resumed, but {former}, the leader while paused, never confirmed it and does not answer: it may still run as primary without the lock; waiting for it or for a manual failover"
            ),
            R::SilentMemberInPause => f.write_str(
                "not racing for the requested failover: a member did not answer and may still run as primary",
            ),
            R::PrimaryStillAlive { primary } => write!(f, "Primary ({primary}) is still alive"),
            R::UnnamedUpstream { upstream } => write!(
                f,
                "my database still streams from {upstream}, whose agent nobody can ask: it may run as primary without the lock"
            ),
            R::PromotedStandbyLeader => {
                f.write_str("promoted self to a standby leader by acquiring session lock")
            }
            R::PromotedByRace => f.write_str("promoted self to leader by acquiring session lock"),
            R::AfterResume { left } => write!(
                f,
                "the cluster was resumed without a leader; {} seconds until the leader race",
                secs_up(*left)
            ),
            R::RaceBackoff { me, left } => write!(
                f,
                "My ({me}) wal position moved since last heart beat loop, {} seconds until leader race",
                secs_up(*left)
            ),
            R::QuorumNotReached(q) => write!(f, "not promoting: {q}"),
            R::SystemIdMismatch { dcs, local } => write!(
                f,
                "system ID mismatch: the DCS cluster was initialized with {dcs}, the local data directory has {local}; doing nothing"
            ),
            R::AbortJoin => f.write_str(
                "No initialize key in DCS and PostgreSQL is running as replica, aborting start",
            ),
            R::BootstrapFailed => f.write_str("failed to bootstrap cluster"),
            R::InitializedCluster => f.write_str("initialized a new cluster"),
            R::WaitingEndOfRecovery => f.write_str("waiting for end of recovery after bootstrap"),
            R::ReleasedSystemIdMismatch => {
                f.write_str("released leader key voluntarily due to the system ID mismatch")
            }
            R::ReleasedDataDirUnreadable => f.write_str(
                "released leader key voluntarily as data dir not accessible and currently leader",
            ),
            R::ReleasedDataDirEmpty => f.write_str(
                "released leader key voluntarily as data dir empty and currently leader",
            ),
            R::DataDirUnreadable { error } => {
                write!(f, "data directory is not accessible: {error}")
            }
            R::StoppedDataDirEmpty => {
                f.write_str("stopped PostgreSQL because its data directory is empty")
            }
            R::EmptyDataDir => f.write_str("running with empty data directory"),
            R::InitializeLockLost => f.write_str("failed to acquire initialize lock"),
            R::Bootstrapping => f.write_str("trying to bootstrap a new cluster"),
            R::CloningFromReplica { member } => {
                write!(f, "trying to bootstrap from replica '{member}'")
            }
            R::CloningFromLeader { leader } => {
                write!(f, "trying to bootstrap from leader '{leader}'")
            }
            R::CloningWithoutLeader => f.write_str("trying to bootstrap (without leader)"),
            R::WaitingForBootstrap => f.write_str("waiting for leader to bootstrap"),
            R::RemovedStaleInitialize => f.write_str(
                "removed a stale initialize key: nobody has been bootstrapping for a ttl",
            ),
            R::FailsafeAsking => f.write_str(
                "DCS is not accessible; asking the failsafe members to confirm this leader",
            ),
            R::FailsafeKept => f.write_str(
                "continue to run as a leader because failsafe mode is enabled and all members are accessible",
            ),
            R::FollowingFailsafeLeader { leader } => write!(
                f,
                "following the failsafe leader ({leader}), which may still run"
            ),
            R::FailsafeStartWait => f.write_str(
                "not racing within ttl of the agent's start: a failsafe leader may still run",
            ),
            R::FailsafeSilentMember { member } => write!(
                f,
                "not racing: this member is not in /failsafe and {member}, which is, does not answer (it may run as a failsafe primary)"
            ),
            R::LeaderWithLock { me } => {
                write!(f, "no action. I am ({me}), the leader with the lock")
            }
            R::CleanedUnreadableFailover { value } => {
                write!(f, "cleaned up an unreadable failover key ({value})")
            }
            R::RestoredConfig { value } => {
                write!(f, "restored /config from the last good copy ({value})")
            }
            R::WaitingForPromotion => f.write_str("waiting to become primary after promote..."),
            R::ReleasedNotPrimary => {
                f.write_str("removed leader lock because postgres is not running as primary")
            }
            R::RoleUnknown => {
                f.write_str("holding the leader lock; the database role is not known yet")
            }
            R::ReleasedPromoteFailed => f.write_str("released leader key after failing to promote"),
            R::PromotedWithLock => {
                f.write_str("promoted self to leader because I had the session lock")
            }
            R::KeptPrimaryLockLost => f.write_str(
                "continue to run as primary after failing to update leader lock in DCS",
            ),
            R::DemotedLockLost => {
                f.write_str("demoted self because failed to update leader lock in DCS")
            }
            R::NotPromotingLockLost => {
                f.write_str("not promoting because failed to update leader lock in DCS")
            }
            R::StandbyClusterPaused => f.write_str(
                "this is a standby cluster, but the cluster is paused: continuing to run as primary",
            ),
            R::DemoteStandbyCluster => {
                f.write_str("demoting self because this is a standby cluster")
            }
            R::StandbyLeaderWithLock { me } => {
                write!(f, "no action. I am ({me}), the standby leader with the lock")
            }
            R::StandbyLeaderFollowsRemote => {
                f.write_str("promoted self to a standby leader because i had the session lock")
            }
            R::BootstrappingStandbyLeader => f.write_str("trying to bootstrap a new standby leader"),
            R::BootstrappingStandbyLeaderWithoutLeader => {
                f.write_str("trying to bootstrap a new standby leader (without leader)")
            }
            R::StandbyClusterNoSource => f.write_str(
                "cannot bootstrap the standby cluster: standby_cluster names no host and no replica method works without a leader",
            ),
            R::FailoverNeedsCandidateInPause => f.write_str(
                "Failover is possible only to a specific candidate in a paused state",
            ),
            R::AwaitingScheduled { kind, at, left } => {
                write!(f, "Awaiting {kind} at {at} (in {} seconds)", secs_up(*left))
            }
            R::StaleRequest { kind, at } => {
                write!(f, "cleaned up a stale {kind} request scheduled at {at}")
            }
            R::RequestFromOtherLeader { kind, leader, me } => write!(
                f,
                "cleaned up a {kind} request from leader {leader}: I am ({me}), the leader"
            ),
            R::RequestForSelf { kind, me } => {
                write!(f, "cleaned up a {kind} request to ({me}): already the leader")
            }
            R::HandingOver { kind } => match kind {
                RequestKind::Switchover => f.write_str("switchover: demoting myself"),
                RequestKind::Failover => f.write_str("manual failover: demoting myself"),
            },
            R::NoHealthyMembers { kind } => {
                write!(f, "no healthy members found, {kind} is not possible")
            }
            R::StartupTimeoutDuringTask => {
                f.write_str("terminated crash recovery because of startup timeout")
            }
            R::StoppedStartupTimeout => f.write_str("stopped PostgreSQL because of startup timeout"),
            R::StartTimedOutNoFailover => f.write_str(
                "primary start has timed out, but continuing to wait because failover is not possible",
            ),
            R::RunningButRefused { problem, left } => write!(
                f,
                "PostgreSQL is running but {problem}; {} seconds until timeout",
                secs_up(*left)
            ),
            R::StillStarting { left } => write!(
                f,
                "PostgreSQL is still starting up, {} seconds until timeout",
                secs_up(*left)
            ),
            R::ReleasedNotRunningInPause => {
                f.write_str("removed leader lock because postgres is not running")
            }
            R::PostgresNotRunning => f.write_str("postgres is not running"),
            R::ReleasedStartFailed => {
                f.write_str("removed leader key after trying and failing to start postgres")
            }
            R::FailoverAfterCrash => f.write_str("stopped PostgreSQL to fail over after a crash"),
            R::ReleasedStartTimeout => f.write_str(
                "released leader key because postgres did not start within primary_start_timeout",
            ),
            R::StartingStandbyLeader => {
                f.write_str("starting as a standby leader because i had the session lock")
            }
            R::StartingPrimary => f.write_str("starting primary after failure"),
            R::StartBackoff { failures, left } => write!(
                f,
                "failed to start postgres ({failures} attempts); retrying in {} seconds",
                secs_up(*left)
            ),
            R::StartingSecondary => f.write_str("starting as a secondary"),
            R::DcsDownKeepingLease { left } => write!(
                f,
                "DCS is not accessible; continuing as the leader while the lease lasts ({} seconds left)",
                left.as_secs()
            ),
            R::DemotedDcsDown { refused } => {
                f.write_str("demoted self because DCS is not accessible and I was a leader")?;
                if !refused.is_empty() {
                    let who: Vec<String> = refused
                        .iter()
                        .map(|(name, why)| format!("{name}: {why}"))
                        .collect();
                    write!(f, " (failsafe members did not confirm: {})", who.join("; "))?;
                }
                Ok(())
            }
            R::DcsDown => f.write_str("DCS is not accessible"),
            R::CannotFollowInPause { leader, detail } => write!(
                f,
                "cannot follow the leader ({leader}): {detail}; not rebuilding while paused"
            ),
            R::CannotFollowLeaderNotRunning { leader } => write!(
                f,
                "cannot follow the leader ({leader}), waiting for it to run before rebuilding"
            ),
            R::Rewinding { tool, leader } => write!(f, "running {tool} from {leader}"),
            R::CopyingNoRewindTool { leader } => write!(
                f,
                "reinitializing from {leader}: no rewind tool configured, the data will be copied"
            ),
            R::ReinitializingDiverged => f.write_str("reinitializing due to diverged timelines"),
            R::KeptPrimaryNoLock => f.write_str("continue to run as primary without lock"),
            R::Following { me, leader } => write!(
                f,
                "no action. I am ({me}), a secondary, and following a leader ({leader})"
            ),
            R::FollowingNewLeader { leader } => write!(f, "following a new leader ({leader})"),
            R::FollowingReplicatefrom { upstream, leader } => write!(
                f,
                "following ({upstream}) as replicatefrom; the leader is ({leader})"
            ),
            R::NostreamStopping => f.write_str("nostream is set: not streaming from anyone"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variant names of `Reason`, read from this file's source.
    fn variants() -> Vec<&'static str> {
        let src = include_str!("reason.rs");
        let body = &src[src.find("pub enum Reason {").unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        body.lines()
            .filter_map(|l| l.strip_prefix("    "))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
            .map(|l| {
                l.split(|c: char| !c.is_ascii_alphanumeric())
                    .next()
                    .unwrap()
            })
            .collect()
    }

    /// The reasons the decision table has a row for.
    fn rows() -> Vec<&'static str> {
        include_str!("decisions.md")
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|l| l.split('`').next().unwrap())
            .collect()
    }

    #[test]
    fn the_decision_table_has_a_row_for_every_reason_and_no_other() {
        let variants = variants();
        let rows = rows();
        assert!(variants.len() > 90, "{variants:?}");
        for v in &variants {
            assert!(rows.contains(v), "decisions.md has no row for Reason::{v}");
        }
        for r in &rows {
            assert!(variants.contains(r), "decisions.md names no Reason: {r}");
        }
        let mut once = rows.clone();
        once.sort();
        once.dedup();
        assert_eq!(once.len(), rows.len(), "a reason has two rows");
    }

    #[test]
    fn pause_prefixes_once() {
        let r = Reason::DcsDown.paused().paused();
        assert_eq!(r.to_string(), "PAUSE: DCS is not accessible");
        assert_eq!(r.branch(), &Reason::DcsDown);
    }

    #[test]
    fn lines_with_data_keep_patroni_words() {
        let me = "n1".to_string();
        assert_eq!(
            Reason::LeaderWithLock { me: me.clone() }.to_string(),
            "no action. I am (n1), the leader with the lock"
        );
        assert_eq!(
            Reason::Following {
                me,
                leader: "n2".into()
            }
            .to_string(),
            "no action. I am (n1), a secondary, and following a leader (n2)"
        );
        assert_eq!(
            Reason::RenewedDuringTask {
                task: ActionKind::CloneFrom
            }
            .to_string(),
            "updated leader lock during creating replica"
        );
        assert_eq!(
            Reason::DemotedDcsDown {
                refused: vec![("n2".into(), "no answer".into())]
            }
            .to_string(),
            "demoted self because DCS is not accessible and I was a leader (failsafe members did not confirm: n2: no answer)"
        );
    }
}
