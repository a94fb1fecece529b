//! What the HA loop shares with the REST API: the last cycle's view and a queue of operator requests.
//!
//! The loop owns the state machine; REST handlers read a snapshot, so a slow or hostile client
//! can never block a cycle.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use patroni_core::{
    Cluster, Dcs, DynamicConfig, LocalDb, LocalRequest, MemberData, Node, Outcome, RunningTask,
    Timestamp,
};
use tokio::sync::Notify;

use crate::config::Credentials;

/// A monotonic millisecond clock, the `now` of every observation.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }
}

impl Clock {
    /// Milliseconds since the agent started; starts at 1 so 0 can mean "never".
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// The wall clock, for scheduled switchovers and history.
    pub fn wall(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// The last cycle as the REST API reports it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The local database at the last observation.
    pub local: LocalDb,
    /// The last cluster view the DCS answered with.
    pub cluster: Option<Cluster>,
    /// Wall-clock time the DCS last answered.
    pub dcs_last_seen: Option<Timestamp>,
    /// Monotonic ms of the last finished cycle, `None` before the first.
    pub last_cycle: Option<u64>,
    /// Our lease end as the state machine counts it.
    pub leader_expiry: Option<u64>,
    /// The last decision's message.
    pub message: String,
    /// The slow action running now.
    pub task: Option<RunningTask>,
    /// The member data published last.
    pub member: Option<MemberData>,
    /// Outcomes of recently finished slow actions (newest last, a few kept) for REST callers waiting on them.
    pub finished: Vec<Outcome>,
    /// A restart scheduled with `POST /restart`: kept by the agent, not the DCS, as Patroni does;
    /// set and cleared by the REST API, carried out and cleared by the HA loop.
    pub scheduled_restart: Option<crate::scheduled::ScheduledRestart>,
    /// The leader this agent last accepted a `POST /failsafe` from: set by the REST API, read
    /// by the HA loop into each observation.
    pub failsafe_leader: Option<patroni_core::FailsafeLeader>,
    /// Until when a confirmed failsafe round keeps us a primary (the state machine's count).
    pub failsafe_until: Option<u64>,
}

impl Snapshot {
    /// Whether we hold the leader lock at `now`, by our own lease count (survives a short DCS outage).
    pub fn is_leader(&self, now: u64) -> bool {
        self.leader_expiry.is_some_and(|e| now < e)
    }

    /// The dynamic configuration in force: the DCS's, else the node's bootstrap one.
    pub fn dynamic_config(&self, node: &Node) -> DynamicConfig {
        self.with_dynamic_config(node, DynamicConfig::clone)
    }

    /// Reads the dynamic configuration in force without copying it.
    pub fn with_dynamic_config<T>(&self, node: &Node, f: impl FnOnce(&DynamicConfig) -> T) -> T {
        match self.cluster.as_ref().and_then(|c| c.config.as_ref()) {
            Some(v) => f(&v.value),
            None => f(&node.bootstrap_config),
        }
    }

    /// Whether the cluster is in maintenance mode.
    pub fn paused(&self, node: &Node) -> bool {
        self.with_dynamic_config(node, |c| c.pause)
    }

    /// Patroni's `failsafe_mode_is_active`: on a primary, a confirmed failsafe round keeps it
    /// running; on another member, it accepted a failsafe leader within `ttl`.
    pub fn failsafe_active(&self, node: &Node, now: u64) -> bool {
        let ttl = self.with_dynamic_config(node, DynamicConfig::ttl_duration);
        self.failsafe_until.is_some_and(|u| now < u)
            || self
                .failsafe_leader
                .as_ref()
                .is_some_and(|l| l.is_fresh(now, ttl))
    }
}

/// State shared by the HA loop, the REST API and the signal handlers.
pub struct Shared {
    /// The cluster name (for `/patroni` and metrics).
    pub scope: String,
    /// This node; replaced on reload.
    pub node: RwLock<Node>,
    /// The DCS, for REST verbs that write keys.
    pub dcs: Arc<dyn Dcs>,
    /// The clock all components use.
    pub clock: Clock,
    /// The last cycle.
    pub snapshot: RwLock<Snapshot>,
    /// Operator requests waiting for the next cycle.
    pub requests: Mutex<Vec<LocalRequest>>,
    /// Wakes the loop early (a request arrived).
    pub wake: Notify,
    /// Asks the runtime to re-read its configuration file.
    pub reload: Notify,
    /// Basic-auth credentials for unsafe REST verbs.
    pub auth: Option<Credentials>,
    /// Decisions and role changes for whoever subscribed (an embedding program).
    pub events: tokio::sync::broadcast::Sender<crate::events::AgentEvent>,
}

impl Shared {
    /// Shared state for a fresh agent.
    pub fn new(
        scope: impl Into<String>,
        node: Node,
        dcs: Arc<dyn Dcs>,
        auth: Option<Credentials>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            scope: scope.into(),
            node: RwLock::new(node),
            dcs,
            clock: Clock::default(),
            snapshot: RwLock::new(Snapshot::default()),
            requests: Mutex::new(Vec::new()),
            wake: Notify::new(),
            reload: Notify::new(),
            auth,
            events: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// Reads part of the last snapshot without copying the rest (the HA loop's readers want
    /// one field each, every cycle).
    pub fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// A copy of the last snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A copy of this node.
    pub fn node(&self) -> Node {
        self.node.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues an operator request and wakes the loop.
    pub fn push_request(&self, r: LocalRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r);
        self.wake.notify_one();
    }

    /// Takes the queued requests.
    pub fn take_requests(&self) -> Vec<LocalRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Updates the snapshot in place.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.snapshot.write().unwrap_or_else(|p| p.into_inner()))
    }
}
