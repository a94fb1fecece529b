//! Pure high-availability decisions for openGauss and PostgreSQL clusters.
//!
//! `patroni-core` does no I/O: no sockets, no processes, no clocks. An agent reads the cluster
//! from the DCS and its local database, packs that into an [`Observation`] with the current time,
//! and asks [`Ha::step`] what to do; the answer is a [`Decision`] — ordered [`Action`]s plus a
//! one-line status in Patroni's words. The agent executes the actions through the [`Dcs`] and
//! [`Database`] ports and reports how they ended in the next observation.
//!
//! Failover preference is a [`FailoverPolicy`]; [`PatroniPolicy`] is Patroni's rules.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod action;
mod cluster;
mod config;
#[doc = include_str!("ha/decisions.md")]
pub mod decisions {}
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "db-conformance"))]
pub mod db_conformance;
#[cfg(any(test, feature = "conformance", feature = "db-conformance"))]
mod deadline;
mod endpoint;
pub mod executor;
mod failsafe;
mod fencing;
mod ha;
pub mod instant;
pub mod keyspace;
mod local;
mod lsn;
mod member;
mod memory_dcs;
mod observation;
pub mod parameters;
mod peer;
mod policy;
mod ports;
#[cfg(feature = "sim")]
pub mod sim;
pub mod slots;
mod standby;
mod store;
mod tags;
mod timestamp;
pub mod topology;

pub use action::{
    Action, ActionKind, Decision, Outcome, OutcomeResult, RebuildMode, StartRole, StopMode,
};
pub use cluster::{
    Cluster, ClusterStatus, FailoverRequest, HistoryEntry, Leader, SyncState, Versioned,
};
pub use config::{ConfigError, DynamicConfig, DynamicPostgresql, SynchronousMode};
pub use endpoint::{Endpoint, DEFAULT_PORT};
pub use failsafe::{
    answer as failsafe_answer, FailsafeInput, FailsafeLeader, FailsafePost, FailsafeRound,
    FailsafeTopology,
};
pub use fencing::{fence_margin, fence_order, FenceOrder};
pub use ha::{needs_restep, Ha, QuorumShortfall, Reason, RequestKind, MAX_RESTEPS};
pub use local::{
    CannotFollow, CannotFollowReason, CopyProgress, DataDirState, DbRole, LocalDb, ProcessState,
    ReceiverStatus, ReplicationRow, SenderState, SqlProblem, StandbySync, StatusReport, WalSender,
};
pub use lsn::{Lsn, LsnParseError};
pub use member::{Member, MemberData, MemberRole, MemberState};
pub use memory_dcs::{Clock, MemoryDcs, SharedStore};
pub use observation::{DcsView, LocalRequest, Node, Observation, RunningTask};
pub use peer::PeerStatus;
pub use policy::{Candidate, FailoverPolicy, Ineligible, PatroniPolicy, RaceContext};
pub use ports::{Database, DbError, Dcs, DcsError};
pub use standby::{StandbyCluster, StandbyClusterError, REMOTE_MEMBER};
pub use store::{KeyValue, LeaseId, MemoryStore};
pub use tags::Tags;
pub use timestamp::{Timestamp, TimestampParseError};
