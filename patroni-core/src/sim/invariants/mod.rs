//! The properties checked after every event, one module each (after openraft's tests-turmoil).
//!
//! | module | property |
//! |---|---|
//! | [`single_primary`] | at no instant do two databases accept writes |
//! | [`promote_with_lock`] | a node promotes (or starts as primary) only while holding the leader lock |
//! | [`eligible_promotion`] | no promotion of a `nofailover` node, of one lagging past `maximum_lag_on_failover` (async), or of one not recorded in `/sync` (synchronous mode `on`) |
//! | [`no_lost_writes`] | in synchronous mode (`on` and `quorum`) no acknowledged write is missing from a writable primary |
//! | [`pause_respected`] | in pause mode no agent starts, stops, restarts, promotes, demotes or rebuilds its database unless an operator asked for a switchover or failover |
//! | [`standby_cluster`] | while `standby_cluster` is set, no member accepts writes, promotes or starts as primary |
//! | [`liveness`] | once faults stop, a writable primary appears within the bound and healthy standbys stream from it (directly, or through the running `replicatefrom` member their tags name; `nostream` ones from nobody); in a standby cluster the lock holder instead streams from the remote primary, alone, and the others follow it |

pub mod eligible_promotion;
pub mod liveness;
pub mod no_lost_writes;
pub mod pause_respected;
pub mod promote_with_lock;
pub mod single_primary;
pub mod standby_cluster;

use std::fmt;

use crate::sim::db::SimDb;
use crate::sim::oracle::Oracle;
use crate::DynamicConfig;

/// A promotion (or start as primary) as the world saw it when the agent ran the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// Node index.
    pub node: usize,
    /// When the action ran.
    pub at: u64,
    /// `Promote` (true) or `Start(Primary)` (false, a restart in place).
    pub promote: bool,
    /// A planned switchover.
    pub planned: bool,
    /// Whether the DCS's leader key named this node at that instant (lease still live).
    pub held_lock: bool,
    /// Tagged `nofailover` (or priority <= 0).
    pub nofailover: bool,
    /// Bytes behind the last primary position published in `/status`, if one was published.
    pub lag: Option<u64>,
    /// Whether `/sync` recorded this node as a synchronous standby or as its leader.
    pub in_sync: bool,
}

/// A database action an agent decided while its own view of `/config` said the cluster is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedAction {
    /// Node index.
    pub node: usize,
    /// What it ran.
    pub kind: crate::ActionKind,
    /// Whether the view it decided from held a `/failover` request (manual actions are allowed in pause).
    pub requested: bool,
}

/// What an invariant may look at: the world after one event.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// Virtual time, ms.
    pub now: u64,
    /// Node names by index.
    pub names: &'a [String],
    /// Node specifications (tags) by index.
    pub nodes: &'a [crate::sim::NodeSpec],
    /// Databases by index.
    pub dbs: &'a [SimDb],
    /// Whether each node still exists (not lost).
    pub alive: &'a [bool],
    /// Whether each node is broken for good (lost, or its database can never start).
    pub broken: &'a [bool],
    /// The leader key's holder.
    pub lock: Option<&'a str>,
    /// The dynamic configuration in force.
    pub config: &'a DynamicConfig,
    /// Promotions begun during this event.
    pub promotions: &'a [Promotion],
    /// Database actions decided during this event under pause.
    pub paused_actions: &'a [PausedAction],
    /// The client's record.
    pub oracle: &'a Oracle,
    /// When faults stopped and every link was healed, if they have.
    pub healed_at: Option<u64>,
}

impl Snapshot<'_> {
    /// Indices of the databases accepting writes right now.
    pub fn writable(&self) -> Vec<usize> {
        (0..self.dbs.len())
            .filter(|&i| self.alive[i] && self.dbs[i].writable())
            .collect()
    }
}

/// A broken property, with the time and a sentence saying what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// Virtual time, ms.
    pub at: u64,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant `{}` violated at {:.3}s: {}",
            self.invariant,
            self.at as f64 / 1000.0,
            self.detail
        )
    }
}

/// A property of every reachable state, checked after each event.
pub trait Invariant: fmt::Debug {
    /// Short name used in reports.
    fn name(&self) -> &'static str;
    /// `Err` with a sentence when the property does not hold in `s`.
    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String>;
    /// The next virtual time this invariant needs an event at (deadlines), if any.
    fn deadline(&self, _s: &Snapshot<'_>) -> Option<u64> {
        None
    }
}

/// The safety properties (a)–(d) and pause, for named scenarios that inject faults at chosen moments.
pub fn safety() -> Vec<Box<dyn Invariant>> {
    vec![
        Box::new(single_primary::SinglePrimary),
        Box::new(promote_with_lock::PromoteWithLock),
        Box::new(eligible_promotion::EligiblePromotion),
        Box::new(no_lost_writes::NoLostWrites),
        Box::new(pause_respected::PauseRespected),
        Box::new(standby_cluster::StandbyClusterReadOnly),
    ]
}

/// The full suite, as the harness runs it.
pub fn suite(liveness: liveness::Liveness) -> Vec<Box<dyn Invariant>> {
    let mut all = safety();
    all.push(Box::new(liveness));
    all
}
