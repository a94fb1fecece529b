//! The two ports the agent drives: the DCS and the local database.
//!
//! The state machine never calls these; the agent runtime (or an embedder, or a test) executes each
//! [`Action`](crate::Action) through them and feeds the results back as an [`Observation`](crate::Observation).

use async_trait::async_trait;

use crate::{
    Cluster, ClusterStatus, DynamicConfig, FailoverRequest, HistoryEntry, LocalDb, Member,
    MemberData, RebuildMode, StartRole, StopMode, SyncState,
};

/// Why a DCS call failed. A lost compare-and-swap is not an error: calls return `Ok(false)` for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DcsError {
    /// No endpoint answered within `retry_timeout`.
    #[error("DCS unreachable: {0}")]
    Unreachable(String),
    /// The DCS answered but refused the request (authentication, permission, malformed request).
    #[error("DCS refused the request: {0}")]
    Rejected(String),
}

/// The distributed configuration store as one agent (or `patronictl`) sees it.
///
/// An implementation is bound to one cluster prefix and one member name with its lease.
/// Every call is bounded by `retry_timeout`; a compare-and-swap that loses returns `Ok(false)`.
#[async_trait]
pub trait Dcs: Send + Sync {
    /// Reads every key under the cluster prefix at one revision; undecodable values become warnings.
    async fn load(&self) -> Result<Cluster, DcsError>;
    /// Creates `/initialize` as `""` only if absent: the bootstrap race.
    async fn take_initialize(&self) -> Result<bool, DcsError>;
    /// Writes the system identifier to `/initialize`.
    async fn set_initialize(&self, system_id: &str) -> Result<(), DcsError>;
    /// Deletes `/initialize` so another member may bootstrap.
    async fn cancel_initialize(&self) -> Result<(), DcsError>;
    /// Writes `/config`: create-only when `version` is `None`, else compare-and-swap on it.
    async fn write_config(
        &self,
        config: &DynamicConfig,
        version: Option<u64>,
    ) -> Result<bool, DcsError>;
    /// Creates the leader key with our name, bound to our lease, only if absent.
    async fn acquire_leader(&self) -> Result<bool, DcsError>;
    /// Keeps our lease alive and checks the leader key is still ours.
    async fn renew_leader(&self) -> Result<bool, DcsError>;
    /// Sets the lease TTL (and loop wait) that later lock writes use: a successful
    /// `acquire_leader`/`renew_leader` after this call has bound our keys to a lease of exactly
    /// `ttl`, granted or kept alive after the call began. The state machine counts its lease
    /// with the same `ttl` ([`Ha::lease_timing`](crate::Ha::lease_timing)).
    async fn set_timing(&self, ttl: std::time::Duration, loop_wait: std::time::Duration);
    /// Deletes the leader key only if its value is our name.
    async fn release_leader(&self) -> Result<bool, DcsError>;
    /// Writes our member key, bound to our lease.
    async fn publish_member(&self, data: &MemberData) -> Result<(), DcsError>;
    /// Writes `/status`.
    async fn write_status(&self, status: &ClusterStatus) -> Result<(), DcsError>;
    /// Writes `/failover`: create-only when `version` is `None`, else compare-and-swap.
    async fn set_failover(
        &self,
        request: &FailoverRequest,
        version: Option<u64>,
    ) -> Result<bool, DcsError>;
    /// Deletes `/failover` if still at `version`.
    async fn clear_failover(&self, version: u64) -> Result<bool, DcsError>;
    /// Writes `/sync`: create-only when `version` is `None`, else compare-and-swap.
    async fn write_sync_state(
        &self,
        state: &SyncState,
        version: Option<u64>,
    ) -> Result<bool, DcsError>;
    /// Replaces `/history`.
    async fn write_history(&self, history: &[HistoryEntry]) -> Result<(), DcsError>;
    /// Replaces `/failsafe` (failsafe mode). Required, with no default: a store (or a wrapper
    /// around one) that silently dropped it would leave a primary in a DCS outage counting on a
    /// topology nobody wrote; one that cannot keep it returns [`DcsError::Rejected`] itself.
    async fn write_failsafe(&self, members: &crate::FailsafeTopology) -> Result<(), DcsError>;
    /// Resolves once the leader key, `/config` or `/failover` changed after the last [`load`](Self::load).
    ///
    /// The caller bounds it with its own timer (`loop_wait`), so implementations need none.
    async fn wait_for_change(&self) -> Result<(), DcsError>;
}

/// Why a database action failed, typed per cause so the operator sees why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A required program is not installed where configured.
    #[error("{binary} not found: {detail}")]
    BinaryMissing {
        /// The program.
        binary: String,
        /// Where it was looked for.
        detail: String,
    },
    /// The data directory belongs to another OS user than the one running the agent.
    #[error("data directory {path} is owned by uid {owner}, but the agent runs as uid {running}")]
    NotOwner {
        /// The data directory.
        path: String,
        /// Its owner.
        owner: u32,
        /// The agent's uid.
        running: u32,
    },
    /// The server did not come up; the log tail says why.
    #[error(
        "database failed to start: {reason}\n--- last lines of the server log ---\n{log_tail}"
    )]
    StartFailed {
        /// The short reason.
        reason: String,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// A command exceeded its timeout and was killed.
    #[error(
        "`{command}` did not finish within {} s and was killed",
        crate::instant::seconds(*.limit)
    )]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout.
        limit: std::time::Duration,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {output}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Exit status as text.
        status: String,
        /// Its relevant output.
        output: String,
    },
    /// A command reported success but re-observation shows it did not happen.
    #[error("{action} reported success but the database is {observed}")]
    NotEffective {
        /// What was attempted.
        action: String,
        /// What was observed afterwards.
        observed: String,
    },
    /// A SQL query failed.
    #[error("query failed: {0}")]
    Query(String),
    /// The server wants an authentication method the client cannot do, with the setting to change.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The adapter cannot do this (e.g. no source to rebuild from).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A local file operation failed.
    #[error("{0}")]
    Io(String),
}

/// The local database server, driven by the agent.
///
/// [`observe`](Self::observe) never fails: what cannot be read is reported as unknown state.
/// Every other method is bounded by the adapter's command timeout.
#[async_trait]
pub trait Database: Send + Sync {
    /// Observes process, role, positions and replication health.
    async fn observe(&self) -> LocalDb;
    /// Initialises a new cluster in the empty data directory and starts it as primary.
    async fn bootstrap(&self) -> Result<(), DbError>;
    /// Copies the data directory from `source` and starts as a standby of it.
    async fn clone_from(&self, source: &Member) -> Result<(), DbError>;
    /// Creates the data directory with no member to copy from (only offered when the node says
    /// [`clone_without_leader`](crate::Node::clone_without_leader)) and starts as a standby of nobody.
    async fn clone_without_leader(&self) -> Result<(), DbError> {
        Err(DbError::Unsupported(
            "this database cannot create a replica without a leader".into(),
        ))
    }
    /// Starts the server in the given role.
    async fn start(&self, role: &StartRole) -> Result<(), DbError>;
    /// Stops the server.
    async fn stop(&self, mode: StopMode) -> Result<(), DbError>;
    /// Restarts the server in its current role.
    async fn restart(&self) -> Result<(), DbError>;
    /// Makes the server re-read its configuration.
    async fn reload(&self) -> Result<(), DbError>;
    /// Promotes the local standby; `timeline` is the new generation (openGauss term), `planned` marks a switchover.
    async fn promote(&self, timeline: u64, planned: bool) -> Result<(), DbError>;
    /// Turns the local primary into a read-only standby with no upstream.
    async fn demote(&self, mode: StopMode) -> Result<(), DbError>;
    /// Points the local standby at `leader`, restarting it only if needed.
    async fn follow(&self, leader: &Member) -> Result<(), DbError>;
    /// Rebuilds the local standby from `source`; a failure never leaves an empty data directory behind.
    async fn rebuild(
        &self,
        source: &Member,
        mode: RebuildMode,
        timeline: u64,
    ) -> Result<(), DbError>;
    /// Sets which standbys commits wait for: `count` of `names`, the first ones in order or, with
    /// `quorum`, any of them (`ANY count (...)`); an empty list turns waiting off.
    async fn set_sync_standbys(
        &self,
        names: &[String],
        count: u32,
        quorum: bool,
    ) -> Result<(), DbError>;
    /// Takes the cluster's server parameters (`postgresql.parameters` in `/config`), merged
    /// with the node's own as [`crate::parameters::effective`] says: kept for every later start
    /// and, on a running server, applied by reload (what needs a restart then shows as
    /// `pending_restart`). Returns whether the server's configuration changed.
    async fn apply_parameters(
        &self,
        cluster: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, DbError>;
    /// Brings the replication slots in line with `plan` (see [`crate::slots`]): kept slots
    /// created, unneeded physical ones dropped, permanent ones advanced on a standby, and the
    /// standby's own slot named in its upstream connection. Returns whether anything changed.
    async fn sync_slots(&self, plan: &crate::slots::SlotPlan) -> Result<bool, DbError>;
}
