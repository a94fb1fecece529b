//! The HA state machine: one cycle of Patroni's `run_cycle()` as a pure function of an observation.
//!
//! Branches live in their own modules, in the order a cycle tries them: [`lease`] (outcomes and DCS
//! outage), busy task, [`bootstrap`], [`recover`] (database down or starting), then either the
//! leader race ([`race`]) or the leader ([`leader`], [`switchover`], [`sync`]) and follower
//! ([`follower`]) paths. [`member`] builds the member key every cycle.
//!
//! Each branch names itself with a [`Reason`]; the decision table ([`crate::decisions`]) lists
//! them all. The golden cases of a module sit beside it in `<module>.golden`.

mod bootstrap;
mod failsafe;
mod follower;
mod leader;
mod lease;
mod member;
mod quorum;
mod race;
mod reason;
mod recover;
mod standby;
mod switchover;
mod sync;
#[cfg(test)]
mod tests;

pub use reason::{QuorumShortfall, Reason, RequestKind};

use std::sync::Arc;
use std::time::Duration;

use crate::action::ActionKind;
use crate::policy::{Candidate, FailoverPolicy, PatroniPolicy, RaceContext};
use crate::{
    Action, Cluster, Decision, DynamicConfig, Endpoint, Lsn, Member, MemberData, MemberState, Node,
    Observation, Outcome, OutcomeResult, ProcessState, Tags,
};

/// How many times one cycle may step again (peer probes, a lost guard), so a confused state
/// machine cannot keep an agent from sleeping.
pub const MAX_RESTEPS: usize = 3;

/// Whether these outcomes call for another step in the same cycle: a guard the DCS refused
/// (a lost race or renewal, a lost compare-and-swap) or a stop that failed.
///
/// A guard that could not reach the DCS does not: the next step would only wait `retry_timeout`
/// again, and the lease arithmetic already covers an unreachable DCS.
pub fn needs_restep(outcomes: &[Outcome]) -> bool {
    outcomes.iter().any(|o| {
        o.kind.is_guard() && matches!(o.result, OutcomeResult::Lost | OutcomeResult::Failed(_))
    })
}

/// One node's HA brain: decides each cycle what the agent should do, keeping only this node's memory.
///
/// # Contract with the agent runtime
///
/// * Each cycle the agent reads the DCS and the local database, builds an [`Observation`] and calls
///   [`step`](Ha::step). It executes [`Decision::actions`] **in order**.
/// * A guard action ([`ActionKind::is_guard`]: leader and initialize lock writes, `/sync` CAS, a
///   stop) that fails or loses skips the rest of the list (reported as [`OutcomeResult::Skipped`]).
/// * When a guard lost or failed ([`needs_restep`]), the agent observes and steps again at once,
///   in the same cycle, at most [`MAX_RESTEPS`] times: a primary that just lost the leader race
///   must stop accepting writes now, not one `loop_wait` later while the winner promotes.
/// * Every executed action's [`Outcome`](crate::Outcome), with the time it was *started*, comes back
///   in the next observation's `outcomes`; lease bookkeeping depends on those start times.
/// * Slow actions ([`ActionKind::is_slow`]) run in the background, followed by the actions listed
///   after them. While one runs, [`Observation::task`] is `Some`, and the state machine only keeps
///   the lock alive (or demotes when it was lost). A `Demote` decided while a task runs means the
///   agent cancels that task first.
/// * When a decision contains [`Action::FetchPeerStatus`], the agent probes those peers (short
///   timeout, in parallel) and calls `step` again in the same cycle with `peers = Some(..)`
///   (also counted against [`MAX_RESTEPS`]). `step` tolerates being called more than once per
///   cycle with the same outcomes.
/// * Likewise for [`Action::ConfirmFailsafe`] (failsafe mode, the DCS unreachable): the agent
///   posts `POST /failsafe` to those members and steps again at once with the answers in
///   [`Observation::failsafe`], deciding on the same unreachable view without reading the DCS
///   again (another `retry_timeout` would eat into the time a confirmed round keeps us primary).
///
/// The state machine is deterministic: the same sequence of observations yields the same decisions.
#[derive(Debug)]
pub struct Ha {
    node: Arc<Node>,
    policy: Box<dyn FailoverPolicy>,
    mem: Memory,
}

/// What a node remembers between cycles; everything else is re-read each cycle.
#[derive(Debug, Clone, Default)]
struct Memory {
    /// Until when (monotonic ms) our leader lease is certainly valid.
    leader_expiry: Option<u64>,
    /// The lease TTL and loop wait the last decision's lock writes were made with: a renewal's
    /// outcome counts with the TTL it was sent with, not with a `/config` read since.
    lease_timing: Option<(Duration, Duration)>,
    /// The last dynamic configuration read, used while the DCS is unreachable.
    config: Option<DynamicConfig>,
    /// The member data last confirmed written (a `PublishMember` outcome `Done`).
    published: Option<MemberData>,
    /// The member data last asked for, confirmed by its outcome; an agent may drop a decision
    /// (the first step of a peer-probing cycle), so nothing counts as written before that.
    publishing: Option<MemberData>,
    /// The member we last told the database to stream from.
    following: Option<String>,
    /// The last leader seen, by name and tags (for the policy's former-leader rules).
    former_leader: Option<(String, Tags)>,
    /// Where the last leader's database listens, from its member key: a receiver still streaming
    /// from there is asked about through that member, not counted as an unknown primary.
    former_endpoint: Option<Endpoint>,
    /// Since when the local database has not been running (stopped, crashed or starting).
    down_since: Option<u64>,
    /// An `Auto` rebuild failed, so the next one copies everything.
    rebuild_full: bool,
    /// Where our own bootstrap is.
    bootstrap: BootstrapStage,
    /// The last `/config` read from the DCS itself (never the bootstrap fallback): what an empty
    /// or unreadable `/config` is restored from, and decided by meanwhile.
    dcs_config: Option<DynamicConfig>,
    /// This agent has taken over its database (Patroni's `cb_called`): the "no initialize key and
    /// running as replica" refusal applies only before that.
    joined: bool,
    /// The role we last started the database in, until it reports running (or the start
    /// ends): what a refused renewal must stop, and what it may let finish.
    starting: Option<StartedAs>,
    /// The `timeout` of the restart under way (`POST /restart`, a scheduled restart): its start
    /// is judged by it instead of `primary_start_timeout` until the restart task ends and the
    /// database no longer starts, as Patroni's `set_start_timeout`.
    restart_timeout: Option<Duration>,
    /// When a promotion last finished; until the database reports primary (or `ttl` passes) no
    /// second promotion is sent.
    promoted_at: Option<u64>,
    /// When a promotion of ours last failed (a `pre_promote` script refused it): for `ttl` after
    /// that we sit out the leader race, so another member can take over.
    promote_failed_at: Option<u64>,
    /// Consecutive failed starts, and when the last one began, for back-off and the member state.
    start_failures: (u32, u64),
    /// The synchronous standby names last set on the database.
    sync_names: Option<Vec<String>>,
    /// Our write position in the first cycle after the synchronous standby names last changed
    /// (commits acknowledged before the change applied may lie above the deciding cycle's): a
    /// newly named standby is recorded in `/sync` only once it has flushed up to here.
    sync_bar: Option<Lsn>,
    /// Quorum mode: `ANY n (...)` as we last set it (mode `on` uses `sync_names`).
    quorum_guc: Option<quorum::AnyOf>,
    /// The last time `/config` said paused: after a resume nobody races for `ttl`, the longest a
    /// primary left running without the lock in pause can outlive its agent (its fence's deadline).
    paused_seen: Option<u64>,
    /// We saw the cluster paused and no lock holder has shown since that it saw the resume: a
    /// leader cut off from the DCS while paused keeps its database writable without the lock, and
    /// only learns of the resume when it reaches the DCS again.
    resume_unconfirmed: bool,
    /// Since when `/initialize` has said "bootstrapping" with nobody doing it.
    stale_init_since: Option<u64>,
    /// Since when the cluster has been unlocked, for `primary_race_backoff`.
    unlocked_since: Option<u64>,
    /// Our WAL position in the previous cycle and in this one, to see whether WAL still arrives.
    wal: (Option<Lsn>, Option<Lsn>),
    /// The last remote primary `standby_cluster` named: a server outside this cluster, so a
    /// receiver still streaming from it after a promotion of the cluster is no unknown primary.
    standby_remote: Option<Member>,
    /// When this state machine first stepped (failsafe mode: no race within `ttl` of it).
    first_step: Option<u64>,
    /// The `/failsafe` topology of the last view, asked during a DCS outage.
    failsafe_topology: Option<crate::FailsafeTopology>,
    /// Until when a confirmed failsafe round keeps us a primary (the DCS unreachable).
    failsafe_until: Option<u64>,
    /// Members listed in `/failsafe` whose key is gone, and since when we saw it gone.
    failsafe_absent: std::collections::BTreeMap<String, u64>,
}

/// How we last started the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartedAs {
    Primary,
    Standby,
}

/// Our own bootstrap's progress, so its completion can be finished with the lock and `/initialize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum BootstrapStage {
    /// Not bootstrapping.
    #[default]
    Idle,
    /// We won `/initialize` and the bootstrap runs.
    Running,
    /// The bootstrap command finished; waiting for a running primary.
    Done,
}

/// Facts derived from the previous decision's outcomes that matter for this cycle only.
#[derive(Debug, Clone, Copy, Default)]
struct Events {
    /// Our leader key renewal was refused: someone else holds it or our lease is gone.
    renew_lost: bool,
    /// A start of the database failed.
    start_failed: bool,
    /// A stop of the database failed: the postmaster may still accept writes.
    stop_failed: bool,
    /// A promotion failed.
    promote_failed: bool,
    /// The bootstrap command failed.
    bootstrap_failed: bool,
}

/// One cycle's inputs, gathered once so the branch modules read the same facts.
struct Cycle<'a> {
    obs: &'a Observation,
    cluster: &'a Cluster,
    config: &'a DynamicConfig,
    node: &'a Node,
    /// The leader key is ours (and our last renewal was not refused).
    hold: bool,
    paused: bool,
    events: Events,
    /// `standby_cluster` is set (or unreadable): nobody promotes, the lock holder follows `remote`.
    standby: bool,
    /// The remote primary a standby leader streams from, when the section names a host.
    remote: Option<Member>,
}

impl<'a> Cycle<'a> {
    fn me(&self) -> &'a str {
        &self.node.name
    }

    /// The lock holder's member key, when someone else holds the lock.
    fn other_leader(&self) -> Option<&'a Member> {
        self.cluster
            .leader
            .as_ref()
            .filter(|l| l.name != self.node.name)
            .and_then(|l| self.cluster.member(&l.name))
    }

    /// The lock holder's name when it is someone else.
    fn other_leader_name(&self) -> Option<&'a str> {
        self.cluster
            .leader
            .as_ref()
            .map(|l| l.name.as_str())
            .filter(|n| *n != self.node.name)
    }

    /// The generation a promotion now opens.
    fn next_timeline(&self) -> u64 {
        self.cluster
            .timeline()
            .max(self.obs.local.timeline.unwrap_or(0))
            .saturating_add(1)
    }

    /// This node as a promotion candidate.
    fn me_candidate(&self) -> Candidate {
        Candidate {
            name: self.node.name.clone(),
            tags: self.node.tags.clone(),
            wal_position: self.obs.local.wal_position(),
            timeline: self.obs.local.timeline,
            running: self.obs.local.process == ProcessState::Running,
        }
    }

    /// The policy's view of the cluster, with lag measured against `optime`.
    fn race_context<'m>(&'m self, optime: Option<Lsn>, mem: &'m Memory) -> RaceContext<'m> {
        RaceContext {
            config: self.config,
            leader_optime: optime,
            cluster_timeline: self.cluster.timeline(),
            sync: self.cluster.sync_state(),
            former_leader: mem.former_leader.as_ref().map(|(n, t)| (n.as_str(), t)),
        }
    }
}

/// A member key as a promotion candidate.
fn member_candidate(m: &Member) -> Candidate {
    Candidate {
        name: m.name.clone(),
        tags: m.data.tags.clone(),
        wal_position: m.wal_position(),
        timeline: m.data.timeline,
        running: m.unreadable.is_none() && m.data.state == MemberState::Running,
    }
}

impl Ha {
    /// A state machine for `node` with Patroni's failover rules, the usual choice.
    pub fn new(node: Node) -> Ha {
        Ha::with_policy(node, Box::new(PatroniPolicy))
    }

    /// A state machine with a custom failover policy (e.g. site-aware preference).
    pub fn with_policy(node: Node, policy: Box<dyn FailoverPolicy>) -> Ha {
        Ha {
            node: Arc::new(node),
            policy,
            mem: Memory::default(),
        }
    }

    /// The node this state machine decides for.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Replaces the node's settings on reload (SIGHUP); tags may change, the name should not.
    pub fn set_node(&mut self, node: Node) {
        if node != *self.node {
            // Our member key must show the new tags at once.
            self.mem.published = None;
        }
        self.node = Arc::new(node);
    }

    /// Monotonic ms until which our leader lease is certainly valid; `None` when we are not leader.
    pub fn leader_expiry(&self) -> Option<u64> {
        self.mem.leader_expiry
    }

    /// The lease TTL and loop wait the last decision's lock writes must use: the agent
    /// hands them to [`Dcs::set_timing`](crate::Dcs::set_timing) before running them, so the
    /// lease etcd holds is the lease this state machine counts (`/config` may change `ttl`).
    pub fn lease_timing(&self) -> Option<(Duration, Duration)> {
        self.mem.lease_timing
    }

    /// The dynamic configuration the last decision used (`/config`, or `bootstrap.dcs` before
    /// there is one): what the database's parameters and slots follow. `None` before the first
    /// DCS read, so a node cut off at start never runs with settings nobody set.
    pub fn dynamic_config(&self) -> Option<&DynamicConfig> {
        self.mem.config.as_ref()
    }

    /// What this node's fence must do after the cycle at `now`: the one composition of
    /// [`fence_order`](crate::fence_order) and [`fence_margin`](crate::fence_margin) with
    /// this node's lease, pause and timing, for the daemon's fence and the simulator's alike.
    pub fn fence_order(
        &self,
        now: u64,
        running_primary: bool,
        safety_margin: Option<Duration>,
    ) -> crate::FenceOrder {
        let (ttl, loop_wait) = self.mem.lease_timing.unwrap_or_else(|| {
            let c = self
                .mem
                .config
                .as_ref()
                .unwrap_or(&self.node.bootstrap_config);
            (c.ttl_duration(), c.loop_wait_duration())
        });
        let margin = crate::fence_margin(safety_margin, ttl, loop_wait);
        crate::fence_order(
            now,
            self.mem.leader_expiry,
            running_primary,
            self.paused(),
            ttl,
            margin,
        )
    }

    /// Whether the cluster is paused as this node last saw `/config` (kept through a DCS
    /// outage): what decides, for one, whether its fence follows the lease or its liveness.
    pub fn paused(&self) -> bool {
        self.mem.config.as_ref().is_some_and(|c| c.pause)
    }

    /// Whether we hold a valid leader lease at `now`, what the REST `/primary` check answers.
    pub fn is_leader(&self, now: u64) -> bool {
        self.mem.leader_expiry.is_some_and(|e| now < e)
    }

    /// Decides one cycle: deterministic, no I/O; see the type's contract for how to run the result.
    pub fn step(&mut self, obs: &Observation) -> Decision {
        let cluster = obs.cluster();
        let mut config = match cluster {
            // An emptied or garbled `/config` is not a reason to fall back to defaults.
            Some(c) if c.config.is_none() && c.config_unreadable.is_some() => self
                .mem
                .dcs_config
                .clone()
                .unwrap_or_else(|| self.node.bootstrap_config.clone()),
            Some(c) => c.config_or(&self.node.bootstrap_config).clone(),
            None => self
                .mem
                .config
                .clone()
                .unwrap_or_else(|| self.node.bootstrap_config.clone()),
        };
        let standby = standby::standby_section(&mut config);
        let events = self.absorb_outcomes(obs, &config);
        self.mem.lease_timing = Some((config.ttl_duration(), config.loop_wait_duration()));
        self.mem.first_step.get_or_insert(obs.now);
        let Some(cluster) = cluster else {
            return self.dcs_outage(obs, &config);
        };
        self.failsafe_seen(cluster);
        self.mem.config = Some(config.clone());
        if let Some(c) = &cluster.config {
            self.mem.dcs_config = Some(c.value.clone());
        }
        self.observe_cluster(obs, cluster);
        let node = Arc::clone(&self.node);
        let cycle = Cycle {
            obs,
            cluster,
            config: &config,
            node: &node,
            hold: cluster.is_leader(&self.node.name) && !events.renew_lost,
            paused: config.pause,
            events,
            standby: standby.is_some(),
            remote: standby.and_then(|s| s.remote()),
        };
        if cycle.paused {
            self.mem.paused_seen = Some(obs.now);
            self.mem.resume_unconfirmed = true;
        } else if cluster
            .leader
            .as_ref()
            .and_then(|l| cluster.member(&l.name))
            .is_some_and(|m| !m.data.pause)
        {
            // The lock holder published its member key unpaused: it runs under the lease again.
            self.mem.resume_unconfirmed = false;
        }
        if cycle.standby && cycle.hold {
            self.standby_leader_parameters(&config);
        }
        if cycle.remote.is_some() {
            self.mem.standby_remote.clone_from(&cycle.remote);
        }
        let mut decision = self.decide(&cycle);
        decision = self.fence_lockless_primary(&cycle, decision);
        self.failsafe_write(&cycle, &mut decision);
        self.mem.joined |= decision.reason != Reason::AbortJoin;
        for a in &decision.actions {
            match a {
                Action::Start(crate::StartRole::Primary) => {
                    self.mem.starting = Some(StartedAs::Primary)
                }
                Action::Start(crate::StartRole::Standby { .. }) => {
                    self.mem.starting = Some(StartedAs::Standby)
                }
                // A demoted server comes back with no upstream: whomever we followed before,
                // it follows nobody now and must be pointed again.
                Action::Demote(_) => self.mem.following = None,
                _ => {}
            }
        }
        if cycle.paused {
            decision.reason = decision.reason.paused();
        }
        if !self.suppress_publish(&cycle) {
            if let Some(publish) = self.publish(&cycle) {
                decision.actions.insert(0, publish);
            }
        }
        decision
    }

    /// Remembers what this view says about the leader, the lease and the local database.
    fn observe_cluster(&mut self, obs: &Observation, cluster: &Cluster) {
        if let Some(leader) = &cluster.leader {
            if let Some(m) = cluster.member(&leader.name) {
                self.mem.former_leader = Some((m.name.clone(), m.data.tags.clone()));
                self.mem.former_endpoint = Endpoint::from_conn_url(&m.data.conn_url).ok();
            } else if self
                .mem
                .former_leader
                .as_ref()
                .is_none_or(|(n, _)| *n != leader.name)
            {
                self.mem.former_leader = Some((leader.name.clone(), Tags::default()));
                self.mem.former_endpoint = None;
            }
        }
        if cluster.leader.is_some() {
            self.mem.unlocked_since = None;
        } else {
            self.mem.unlocked_since.get_or_insert(obs.now);
        }
        self.mem.wal = (self.mem.wal.1, Some(obs.local.wal_position()));
        if !cluster.is_leader(&self.node.name) {
            // The key is gone or someone else's: no lease of ours can be valid.
            self.mem.leader_expiry = None;
            self.mem.sync_names = None;
            self.mem.quorum_guc = None;
            self.mem.sync_bar = None;
        }
        if obs.local.role == crate::DbRole::Primary {
            // Whatever we followed before is history once we are primary.
            self.mem.following = None;
            self.mem.promoted_at = None;
        }
        if obs.local.process == ProcessState::Running {
            self.mem.down_since = None;
            self.mem.starting = None;
            self.mem.start_failures = (0, 0);
        } else {
            self.mem.down_since.get_or_insert(obs.now);
        }
        if obs.task.is_none() && obs.local.process != ProcessState::Starting {
            self.mem.restart_timeout = None;
        }
        if obs.local.process == ProcessState::Running && obs.local.cannot_follow.is_none() {
            self.mem.rebuild_full = false;
        }
    }

    /// The main branch table, first match wins: a running task, the DCS view, bootstrap, the
    /// local database, then the unlocked (race) or locked (lead or follow) branches.
    fn decide(&mut self, cy: &Cycle<'_>) -> Decision {
        if let Some(task) = cy.obs.task {
            return self.busy(cy, task.kind);
        }
        if let Some(d) = self.bootstrap(cy) {
            return d;
        }
        if let Some(d) = self.request(cy) {
            return d;
        }
        if let Some(d) = self.recover(cy) {
            return d;
        }
        let adopt = bootstrap::adopt(cy);
        let mut d = if cy.events.renew_lost
            && (cy.cluster.is_leader(cy.me()) || cy.obs.local.is_running_primary())
        {
            self.lost_lock(cy)
        } else if let Some(d) = self.watchdog_missing(cy) {
            d
        } else if cy.cluster.leader.is_none() {
            self.race(cy)
        } else if cy.hold {
            self.lead(cy)
        } else {
            self.follow(cy)
        };
        if let Some(a) = adopt {
            d.actions.insert(0, a);
        }
        d
    }

    /// A slow action runs: keep the lock or notice its loss, nothing else.
    fn busy(&mut self, cy: &Cycle<'_>, kind: ActionKind) -> Decision {
        let task = kind;
        if cy.hold {
            if let Some(d) = self.start_timeout_during_task(cy, kind) {
                return d;
            }
            return Decision::new(
                vec![Action::RenewLeader],
                Reason::RenewedDuringTask { task },
            );
        }
        // A lock holder only ever starts its database as a primary: a start that may come up
        // writable after the lock was refused or taken is stopped. One we know we began as a
        // standby (a follower that lost a stale renewal, say) goes on.
        if self.may_come_up_writable(cy)
            && !cy.paused
            && matches!(kind, ActionKind::Start | ActionKind::Restart)
            && (cy.events.renew_lost || cy.other_leader_name().is_some())
        {
            return Decision::new(
                vec![Action::Demote(crate::StopMode::Immediate)],
                Reason::StoppedStartingLockLost,
            );
        }
        // The bootstrap task runs its own fresh primary before the lock exists: not a lost lock.
        if cy.obs.local.is_running_primary()
            && !cy.paused
            && kind != ActionKind::Demote
            && kind != ActionKind::Bootstrap
        {
            return Decision::new(
                vec![Action::Demote(crate::StopMode::Immediate)],
                Reason::LostLockDuringTask { task },
            );
        }
        Decision::because(Reason::TaskInProgress { task })
    }

    /// Whether the database being started may come up writable without the lock: started as a
    /// primary, or of unknown role after a refused renewal. One we started as a standby may not.
    fn may_come_up_writable(&self, cy: &Cycle<'_>) -> bool {
        match self.mem.starting {
            Some(StartedAs::Primary) => true,
            Some(StartedAs::Standby) => false,
            None => cy.events.renew_lost,
        }
    }

    /// Operator requests for this node: restart (allowed in pause) and reinitialize.
    fn request(&mut self, cy: &Cycle<'_>) -> Option<Decision> {
        for req in &cy.obs.requests {
            match req {
                // A primary without the lock must demote, not restart.
                crate::LocalRequest::Restart { timeout }
                    if cy.obs.local.process.is_alive()
                        && (cy.hold || !cy.obs.local.is_running_primary()) =>
                {
                    self.mem.restart_timeout = *timeout;
                    let mut actions = Vec::new();
                    if cy.hold {
                        actions.push(Action::RenewLeader);
                    }
                    actions.push(Action::Restart);
                    return Some(Decision::new(actions, Reason::RestartRequested));
                }
                crate::LocalRequest::Reinitialize { force } => {
                    if let Some(d) = self.reinitialize(cy, *force) {
                        return Some(d);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// `POST /reinitialize`: wipe and copy this standby from the leader.
    ///
    /// `None` when the request cannot apply (we lead, nobody leads, or we run as a primary without
    /// `force`): the cycle then goes on as usual, because renewing, racing or demoting matters more;
    /// the REST layer answers such requests itself (Patroni's 503s).
    fn reinitialize(&mut self, cy: &Cycle<'_>, force: bool) -> Option<Decision> {
        if cy.hold || (cy.obs.local.is_running_primary() && !force) {
            return None;
        }
        let leader = cy.other_leader()?;
        if cy.paused {
            return Some(Decision::because(Reason::ReinitializeInPause));
        }
        self.mem.following = Some(leader.name.clone());
        Some(Decision::new(
            vec![Action::Rebuild {
                source: leader.clone(),
                mode: crate::RebuildMode::Full,
                timeline: cy.cluster.timeline(),
            }],
            Reason::ReinitializeFromLeader {
                leader: leader.name.clone(),
            },
        ))
    }

    /// `watchdog.mode: required` without working fencing: never lead, as Patroni's
    /// `enforce_primary_role` (a primary demotes, a lock holder lets go, nobody races).
    fn watchdog_missing(&self, cy: &Cycle<'_>) -> Option<Decision> {
        if !cy.node.watchdog_required || cy.obs.watchdog_ready || cy.paused {
            return None;
        }
        let local = &cy.obs.local;
        if cy.hold && local.is_running_primary() {
            return Some(Decision::new(
                vec![
                    Action::Demote(crate::StopMode::Immediate),
                    Action::ReleaseLeader,
                ],
                Reason::WatchdogDemote,
            ));
        }
        if cy.hold {
            return Some(Decision::new(
                vec![Action::ReleaseLeader],
                Reason::WatchdogNotPromoting,
            ));
        }
        if cy.cluster.leader.is_none() && local.is_running_primary() {
            return Some(Decision::new(
                vec![Action::Demote(crate::StopMode::Immediate)],
                Reason::WatchdogDemote,
            ));
        }
        if cy.cluster.leader.is_none() {
            return Some(Decision {
                actions: Vec::new(),
                reason: Reason::WatchdogNotPromoting,
                ineligible: vec![(
                    cy.me().to_string(),
                    crate::policy::Ineligible::Policy("watchdog could not be activated".into()),
                )],
            });
        }
        None
    }

    /// The last line of defence for "only the lock holder is primary": a node that runs as a
    /// writable primary without the leader lock is demoted in the cycle that sees it, whatever
    /// branch decided.
    ///
    /// The branches already demote in the cases they know (a lost race, a lost renewal, a lock
    /// held by another member); this catches the ones nobody thought of. Pause reports instead,
    /// a running task has its own rule ([`busy`](Self::busy)), our own fresh bootstrap takes the
    /// lock next, and a data directory of another cluster is not ours to touch.
    fn fence_lockless_primary(&self, cy: &Cycle<'_>, d: Decision) -> Decision {
        let keeps_or_stops = d.actions.iter().any(|a| {
            matches!(
                a.kind(),
                ActionKind::AcquireLeader
                    | ActionKind::Demote
                    | ActionKind::Stop
                    | ActionKind::Rebuild
                    | ActionKind::CloneFrom
            )
        });
        if cy.hold
            || cy.paused
            || keeps_or_stops
            || !cy.obs.local.is_running_primary()
            || cy.obs.task.is_some()
            || self.mem.bootstrap != BootstrapStage::Idle
            || bootstrap::system_id_mismatch(cy).is_some()
        {
            return d;
        }
        Decision {
            actions: vec![Action::Demote(crate::StopMode::Immediate)],
            reason: Reason::DemoteNoLock,
            ineligible: d.ineligible,
        }
    }

    /// Whether any member other than us could take over now, with lag measured against `optime`.
    fn failover_possible(&self, cy: &Cycle<'_>, optime: Option<Lsn>) -> bool {
        let ctx = cy.race_context(optime, &self.mem);
        cy.cluster.members.iter().any(|m| {
            m.name != cy.me()
                && !m.data.api_url.is_empty()
                && self.policy.eligible(&member_candidate(m), &ctx).is_ok()
        })
    }
}

/// Whether an outcome means the action did not take effect.
fn failed(result: &OutcomeResult) -> bool {
    !matches!(result, OutcomeResult::Done)
}
