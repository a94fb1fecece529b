//! What an agent feeds the state machine each cycle.

use std::time::Duration;

use crate::action::ActionKind;
use crate::{Cluster, DynamicConfig, LocalDb, Outcome, PeerStatus, Tags, Timestamp};

/// This node's fixed identity and local settings, from its YAML file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique member name.
    pub name: String,
    /// libpq URL peers use to reach this database.
    pub conn_url: String,
    /// URL of this agent's `GET /patroni`.
    pub api_url: String,
    /// This member's tags.
    pub tags: Tags,
    /// `bootstrap.dcs`: the dynamic configuration to seed `/config` with, and to use until it exists.
    pub bootstrap_config: DynamicConfig,
    /// Whether this node may initialise a new cluster (it has a `bootstrap` section).
    pub can_bootstrap: bool,
    /// Whether the database adapter can create a replica with no leader running (a replica
    /// method marked `no_leader`, restoring from a backup): Patroni then clones without a leader.
    pub clone_without_leader: bool,
    /// Agent version reported in the member key.
    pub version: String,
    /// `watchdog.mode: required`: never hold the lock as a primary without working fencing
    /// (reported each cycle in [`Observation::watchdog_ready`]).
    pub watchdog_required: bool,
    /// What an [`RebuildMode::Auto`](crate::RebuildMode) rebuild runs before it falls back to a
    /// full copy (`pg_rewind`, `gs_ctl build`), named in the status line; `None` when the adapter
    /// always copies everything (PostgreSQL with `use_pg_rewind` off).
    pub rewind_tool: Option<String>,
}

impl Node {
    /// A node with default tags and configuration, convenient for tests and embedders.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Node {
            conn_url: format!("postgres://{name}:5432/postgres"),
            api_url: format!("http://{name}:8008/patroni"),
            name,
            tags: Tags::default(),
            bootstrap_config: DynamicConfig::default(),
            can_bootstrap: true,
            clone_without_leader: false,
            version: env!("CARGO_PKG_VERSION").to_string(),
            rewind_tool: Some("pg_rewind".into()),
            watchdog_required: false,
        }
    }
}

/// The DCS read at the start of the cycle: a cluster view, or the fact that the DCS could not be reached.
///
/// "Unreachable" is a different input from a lost compare-and-swap (reported in
/// [`Observation::outcomes`]): a primary may ride out the first while its lease lasts, never the second.
// Built once per cycle and moved rarely; boxing would only complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DcsView {
    /// The DCS answered.
    Ok(Cluster),
    /// No DCS endpoint answered within `retry_timeout`; the reason is for the log.
    Unreachable(String),
}

/// An operator request for this node, received over REST since the last cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRequest {
    /// Restart the database in its current role.
    Restart {
        /// `POST /restart`'s `timeout`: how long this restart's start may take before a
        /// lock holder gives way, in place of `primary_start_timeout` (Patroni's
        /// `set_start_timeout`).
        timeout: Option<Duration>,
    },
    /// Wipe and re-clone this standby from the leader.
    Reinitialize {
        /// Even if the database runs.
        force: bool,
    },
}

/// A slow action the agent is still running in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningTask {
    /// What it is.
    pub kind: ActionKind,
    /// When it started (monotonic ms).
    pub since: u64,
}

/// Everything one cycle of [`Ha::step`](crate::Ha::step) decides from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Monotonic milliseconds from the caller's clock; leases and timeouts are measured on it.
    pub now: u64,
    /// Wall-clock time, only for scheduled switchovers and history timestamps.
    pub wall_clock: Timestamp,
    /// The DCS as read this cycle.
    pub dcs: DcsView,
    /// The local database as observed this cycle.
    pub local: LocalDb,
    /// Peers' answers when the previous decision asked for them ([`Action::FetchPeerStatus`](crate::Action::FetchPeerStatus)), else `None`.
    pub peers: Option<Vec<PeerStatus>>,
    /// How the actions of the previous decision ended.
    pub outcomes: Vec<Outcome>,
    /// A slow action still running, if any.
    pub task: Option<RunningTask>,
    /// Operator requests for this node.
    pub requests: Vec<LocalRequest>,
    /// Whether the node's fencing (fence process, watchdog device) works; only consulted when
    /// [`Node::watchdog_required`] is set.
    pub watchdog_ready: bool,
    /// Fields the agent adds to its member key as they are (a scheduled restart, as Patroni
    /// publishes it), so that the key is written again whenever they change.
    pub member_extra: serde_json::Map<String, serde_json::Value>,
    /// Failsafe mode: the answers to this cycle's `POST /failsafe` round, and the leader this
    /// member last accepted one from.
    pub failsafe: crate::FailsafeInput,
}

impl Observation {
    /// A quiet cycle's observation: no peer answers, outcomes, task or requests, fencing ready,
    /// no extra member fields, no failsafe round. Callers set what their cycle has with struct
    /// update syntax (`Observation { task, ..Observation::quiet(..) }`), so a new field needs
    /// a default here only.
    pub fn quiet(now: u64, wall_clock: Timestamp, dcs: DcsView, local: LocalDb) -> Observation {
        Observation {
            now,
            wall_clock,
            dcs,
            local,
            peers: None,
            outcomes: Vec::new(),
            task: None,
            requests: Vec::new(),
            watchdog_ready: true,
            member_extra: serde_json::Map::new(),
            failsafe: crate::FailsafeInput::default(),
        }
    }

    /// The cluster view, if the DCS answered.
    pub fn cluster(&self) -> Option<&Cluster> {
        match &self.dcs {
            DcsView::Ok(c) => Some(c),
            DcsView::Unreachable(_) => None,
        }
    }
}
