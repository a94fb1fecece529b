//! What one simulated run is made of: nodes, timings, the policy and the watchdog.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::sim::db::DbTimings;
use crate::{DynamicConfig, FailoverPolicy, Tags};

/// Builds a fresh policy for each agent (and again when an agent restarts).
pub type PolicyFactory = Arc<dyn Fn() -> Box<dyn FailoverPolicy> + Send + Sync>;

/// One simulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Member name.
    pub name: String,
    /// Its tags (`nofailover`, `failover_priority`, custom `site`...).
    pub tags: Tags,
}

impl NodeSpec {
    /// A node with default tags.
    pub fn new(name: impl Into<String>) -> Self {
        NodeSpec {
            name: name.into(),
            tags: Tags::default(),
        }
    }
}

/// Everything that shapes one run besides the fault schedule.
#[derive(Clone)]
pub struct SimConfig {
    /// Seeds loop phases and jitter; the same seed and schedule replay the same timeline.
    pub seed: u64,
    /// The nodes, in index order (faults name nodes by index).
    pub nodes: Vec<NodeSpec>,
    /// `bootstrap.dcs`: the dynamic configuration the first leader writes.
    pub dynamic: DynamicConfig,
    /// How long database operations take.
    pub timings: DbTimings,
    /// Whether each node runs the fence process, as the daemon does by default: it stops the
    /// database (not the agent) when the agent's deadline passes, and is disarmed in pause.
    pub fence: bool,
    /// Whether each node has a hardware watchdog that resets it when its agent stops pinging.
    pub watchdog: bool,
    /// The fence and the watchdog fire `safety_margin` before the lease ends (Patroni's default 5 s).
    pub safety_margin: Duration,
    /// How often the client writes.
    pub write_interval: Duration,
    /// Bytes of WAL each client write produces.
    pub write_bytes: u64,
    /// Fault-free time for bootstrap before the schedule's clock starts.
    pub warmup: Duration,
    /// Whether to keep the readable timeline (off in benches).
    pub trace: bool,
    /// Time between an agent's DCS read and its writes landing. At zero a cycle reads and acts
    /// in one instant and no other agent can act in between; above 0 two agents can decide from
    /// the same view and one of them loses its compare-and-swap, as on a real network.
    pub dcs_rtt: Duration,
    /// The failover policy under test; `None` uses Patroni's rules.
    pub policy: Option<PolicyFactory>,
}

impl SimConfig {
    /// A 3-node cluster (`node0`..`node2`) with Patroni's timing defaults and the daemon's
    /// default fencing (the fence process, no hardware watchdog),
    /// `primary_start_timeout` shortened to 30 s so a dead primary is replaced within minutes.
    pub fn three_nodes(seed: u64) -> Self {
        SimConfig {
            seed,
            nodes: (0..3).map(|i| NodeSpec::new(format!("node{i}"))).collect(),
            dynamic: DynamicConfig {
                primary_start_timeout: 30,
                ..DynamicConfig::default()
            },
            timings: DbTimings::default(),
            fence: true,
            watchdog: false,
            safety_margin: Duration::from_secs(5),
            write_interval: Duration::from_secs(1),
            write_bytes: 16 * 1024,
            warmup: Duration::from_secs(60),
            trace: true,
            dcs_rtt: Duration::ZERO,
            policy: None,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("nodes", &self.nodes)
            .field("dynamic", &self.dynamic)
            .field("timings", &self.timings)
            .field("fence", &self.fence)
            .field("watchdog", &self.watchdog)
            .field("policy", &self.policy.as_ref().map(|p| p()))
            .finish_non_exhaustive()
    }
}
