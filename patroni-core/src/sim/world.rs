//! The simulated world on virtual time: agents running the real [`Ha`], the [`MemoryStore`] as
//! DCS, one simulated database per node, the network, watchdogs, the client and the faults.
//!
//! Time jumps from one event to the next (an agent's loop timer, a slow action finishing, a
//! fault, a client write, a lease running out, a watchdog deadline); nothing runs between
//! events, so checking the invariants after each event checks every instant.

use std::time::Duration;

use crate::instant;
use crate::keyspace;
use crate::sim::config::SimConfig;
use crate::sim::db::{Process, SimDb};
use crate::sim::fault::{Fault, FaultSchedule, Scheduled};
use crate::sim::invariants::{Invariant, PausedAction, Promotion, Snapshot, Violation};
use crate::sim::oracle::Oracle;
use crate::sim::rng::SimRng;
use crate::sim::trace::{Trace, TraceLine};
use crate::{
    Action, ActionKind, DbRole, DynamicConfig, Ha, LocalRequest, Lsn, MemoryStore, Node, Outcome,
    Timestamp,
};

/// A slow action running in the background, and the task's sequence it belongs to.
#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) action: Action,
    pub(crate) since: u64,
    pub(crate) done_at: u64,
    pub(crate) seq: crate::executor::Sequence,
}

/// A decision read at one instant whose actions land `dcs_rtt` later.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) at: u64,
    pub(crate) actions: Vec<Action>,
    /// The re-steps its cycle has left.
    pub(crate) rounds: crate::executor::Rounds,
    /// When the cycle began, so the next one is one `loop_wait` after it.
    pub(crate) cycle_start: u64,
}

/// One node's agent: the real state machine plus what the runtime keeps around it.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) ha: Ha,
    pub(crate) node: Node,
    pub(crate) next_wake: u64,
    /// A DCS read that will time out at this instant (the DCS was unreachable when it started).
    pub(crate) read_times_out_at: Option<u64>,
    pub(crate) stalled_until: u64,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) task: Option<Task>,
    pub(crate) requests: Vec<LocalRequest>,
    pub(crate) watchdog_armed: bool,
    pub(crate) watchdog_ping: u64,
    /// The host was reset by its watchdog: the agent restarts with a fresh state machine.
    pub(crate) reset: bool,
    /// When this member's DCS lease runs out, as far as the world knows (last refresh + ttl).
    pub(crate) lease_until: u64,
    /// Actions decided but not landed yet (only with a DCS round trip).
    pub(crate) pending: Option<Pending>,
    /// When this node's fence stops its database unless the agent sets a new deadline.
    pub(crate) fence_deadline: Option<u64>,
    /// The leader key's holder in the last cluster view this agent read.
    pub(crate) view_leader: Option<String>,
    /// The leader this agent's REST API last accepted a `POST /failsafe` from.
    pub(crate) failsafe_leader: Option<crate::FailsafeLeader>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// The timeline (empty when tracing was off).
    pub trace: Trace,
    /// Virtual time simulated, from the start of the run to its end.
    pub simulated: Duration,
    /// Events processed.
    pub events: u64,
    /// Acknowledged client writes.
    pub acked_writes: usize,
    /// Promotions begun.
    pub promotions: usize,
}

/// The simulated cluster.
pub struct World {
    pub(crate) cfg: SimConfig,
    pub(crate) now: u64,
    pub(crate) rng: SimRng,
    pub(crate) store: MemoryStore,
    pub(crate) names: Vec<String>,
    pub(crate) agents: Vec<Agent>,
    pub(crate) dbs: Vec<SimDb>,
    pub(crate) alive: Vec<bool>,
    pub(crate) broken: Vec<bool>,
    pub(crate) dcs_cut_until: Vec<u64>,
    /// Until when each agent's DCS writes are applied but their replies lost.
    pub(crate) reply_lost_until: Vec<u64>,
    pub(crate) peer_cut_until: Vec<Vec<u64>>,
    pub(crate) dcs_down_until: u64,
    pub(crate) faults: Vec<Scheduled>,
    pub(crate) next_fault: usize,
    pub(crate) oracle: Oracle,
    pub(crate) trace: Trace,
    pub(crate) invariants: Vec<Box<dyn Invariant>>,
    pub(crate) next_write: u64,
    pub(crate) promotions: Vec<Promotion>,
    pub(crate) paused_actions: Vec<PausedAction>,
    pub(crate) promotion_count: usize,
    pub(crate) tasks_started: Vec<(u64, usize, ActionKind)>,
    pub(crate) healed_at: Option<u64>,
    pub(crate) heal_time: u64,
    pub(crate) watch_revision: u64,
    pub(crate) next_branch: u64,
    pub(crate) dynamic: DynamicConfig,
    pub(crate) epoch: Timestamp,
    pub(crate) violation: Option<Violation>,
    pub(crate) events: u64,
    /// A standby cluster's remote primary ([`SimConfig::standby_cluster`]): an outside WAL
    /// source that always runs and keeps writing.
    pub(crate) remote: Option<SimDb>,
    /// When the operator promotes the standby cluster (removes `standby_cluster` from `/config`).
    pub(crate) promote_standby_at: Option<u64>,
}

impl World {
    /// A world of empty nodes (they bootstrap during warm-up) that will run `schedule`.
    pub fn new(
        cfg: SimConfig,
        schedule: &FaultSchedule,
        invariants: Vec<Box<dyn Invariant>>,
    ) -> Self {
        let mut rng = SimRng::new(cfg.seed);
        let n = cfg.nodes.len();
        let loop_ms = instant::millis(cfg.dynamic.loop_wait_duration());
        let agents = cfg
            .nodes
            .iter()
            .map(|spec| {
                let mut node = Node::new(spec.name.clone());
                node.tags = spec.tags.clone();
                node.bootstrap_config = cfg.dynamic.clone();
                Agent {
                    ha: new_ha(&cfg, node.clone()),
                    node,
                    next_wake: rng.below(loop_ms.max(1)),
                    read_times_out_at: None,
                    stalled_until: 0,
                    outcomes: Vec::new(),
                    task: None,
                    requests: Vec::new(),
                    watchdog_armed: false,
                    watchdog_ping: 0,
                    reset: false,
                    lease_until: 0,
                    pending: None,
                    fence_deadline: None,
                    view_leader: None,
                    failsafe_leader: None,
                }
            })
            .collect();
        let warmup = instant::millis(cfg.warmup);
        let mut faults: Vec<Scheduled> = schedule
            .faults
            .iter()
            .filter(|s| fault_targets_exist(&s.fault, n))
            .map(|s| Scheduled {
                at_ms: s.at_ms + warmup,
                fault: s.fault.clone(),
            })
            .collect();
        faults.sort_by_key(|s| s.at_ms);
        let heal_time = warmup + schedule.quiet_after();
        let remote = cfg
            .dynamic
            .is_standby_cluster()
            .then(super::standby::remote_primary);
        // Two runs in three promote the standby cluster at a time within the faults.
        let promote_standby_at = remote
            .as_ref()
            .filter(|_| rng.below(3) != 0)
            .map(|_| warmup + rng.below(schedule.quiet_after().max(1)));
        World {
            store: MemoryStore::new(cfg.dynamic.ttl_duration()),
            names: cfg.nodes.iter().map(|s| s.name.clone()).collect(),
            agents,
            dbs: vec![SimDb::default(); n],
            alive: vec![true; n],
            broken: vec![false; n],
            dcs_cut_until: vec![0; n],
            reply_lost_until: vec![0; n],
            peer_cut_until: vec![vec![0; n]; n],
            dcs_down_until: 0,
            faults,
            next_fault: 0,
            oracle: Oracle::default(),
            trace: Trace::new(cfg.trace),
            invariants,
            next_write: warmup / 2,
            promotions: Vec::new(),
            paused_actions: Vec::new(),
            promotion_count: 0,
            tasks_started: Vec::new(),
            healed_at: None,
            heal_time,
            watch_revision: 0,
            next_branch: 1,
            dynamic: cfg.dynamic.clone(),
            epoch: "2026-11-26T00:00:00+00:00"
                .parse()
                .unwrap_or(Timestamp(1_795_651_200_000)),
            violation: None,
            events: 0,
            remote,
            promote_standby_at,
            now: 0,
            rng,
            cfg,
        }
    }

    /// Runs until the instant `deadline` (virtual ms since the start) or the first violation.
    pub fn run_until(&mut self, deadline: u64) -> Option<Violation> {
        let mut same_instant = 0u32;
        while self.violation.is_none() {
            let next = self.next_event_time();
            if next > deadline {
                self.now = deadline;
                break;
            }
            same_instant = if next <= self.now {
                same_instant + 1
            } else {
                0
            };
            assert!(
                same_instant < 1_000,
                "simulator stuck at {} ms (seed {}):\n{}",
                self.now,
                self.cfg.seed,
                self.trace.tail(30)
            );
            self.now = next.max(self.now);
            self.events += 1;
            self.step();
        }
        self.violation.clone()
    }

    /// The virtual time at which faults stop and every link is healed (ms since start).
    pub fn heal_time(&self) -> u64 {
        self.heal_time
    }

    /// Ends the run and hands back what happened.
    pub fn into_report(self) -> RunReport {
        RunReport {
            seed: self.cfg.seed,
            violation: self.violation,
            trace: self.trace,
            simulated: instant::between(0, self.now),
            events: self.events,
            acked_writes: self.oracle.acked.len(),
            promotions: self.promotion_count,
        }
    }

    /// The current virtual time, ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The leader key's holder right now.
    pub fn lock_holder(&mut self) -> Option<String> {
        self.store
            .get(keyspace::LEADER, self.now)
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }

    /// The `/sync` key right now, as an agent would read it.
    pub fn sync_state(&mut self) -> Option<crate::SyncState> {
        self.store.load(self.now).sync.map(|s| s.value)
    }

    /// The databases, by node index.
    pub fn dbs(&self) -> &[SimDb] {
        &self.dbs
    }

    /// Node names, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Applies `fault` now (for named scenarios that pick their target after warm-up).
    pub fn inject(&mut self, fault: Fault) {
        if fault_targets_exist(&fault, self.names.len()) {
            self.apply_fault(&fault);
            self.after_event();
        }
    }

    /// Indices of the databases that accept writes right now.
    pub fn writable(&self) -> Vec<usize> {
        (0..self.dbs.len())
            .filter(|&i| self.alive[i] && self.dbs[i].writable())
            .collect()
    }

    /// Every slow action started so far: when, on which node, what.
    pub fn tasks_started(&self) -> &[(u64, usize, ActionKind)] {
        &self.tasks_started
    }

    /// Promotions (and starts as primary) begun so far.
    pub fn promotion_count(&self) -> usize {
        self.promotion_count
    }

    /// The first violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Runs until `cond` holds (checked after each event) or `deadline`; returns when it first held.
    pub fn run_until_cond(
        &mut self,
        deadline: u64,
        mut cond: impl FnMut(&World) -> bool,
    ) -> Option<u64> {
        while self.now < deadline && self.violation.is_none() {
            if cond(self) {
                return Some(self.now);
            }
            let next = self.next_event_time().min(deadline);
            self.run_until(next);
        }
        cond(self).then_some(self.now)
    }

    /// The client's record.
    pub fn oracle(&self) -> &Oracle {
        &self.oracle
    }

    /// The readable timeline so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    fn next_event_time(&mut self) -> u64 {
        let mut t = u64::MAX;
        if let Some(f) = self.faults.get(self.next_fault) {
            t = t.min(f.at_ms);
        }
        if self.healed_at.is_none() {
            t = t.min(self.heal_time);
        }
        t = t.min(self.next_write);
        if let Some(at) = self.promote_standby_at {
            t = t.min(at);
        }
        let watchdog_after = self
            .dynamic
            .ttl_duration()
            .saturating_sub(self.cfg.safety_margin);
        for (i, a) in self.agents.iter().enumerate() {
            if !self.alive[i] {
                continue;
            }
            let resume = a.stalled_until;
            match a.read_times_out_at {
                // Between a read and its writes landing the loop timer does not fire.
                _ if a.pending.is_some() => {}
                Some(r) => {
                    // The etcd client retries within retry_timeout: the read returns when the link does.
                    let back = self.dcs_cut_until[i].max(self.dcs_down_until);
                    t = t.min(r.min(back.max(self.now)).max(resume));
                }
                None => t = t.min(a.next_wake.max(resume)),
            }
            if let Some(task) = &a.task {
                t = t.min(task.done_at.max(resume));
            }
            if let Some(p) = &a.pending {
                t = t.min(p.at.max(resume));
            }
            if let Some(d) = a.fence_deadline {
                t = t.min(d);
            }
            if a.watchdog_armed && self.cfg.watchdog {
                let fire = instant::after(a.watchdog_ping, watchdog_after);
                t = t.min(fire);
            }
            if a.lease_until > self.now {
                t = t.min(a.lease_until);
            }
        }
        let snap_deadline = {
            let s = self.snapshot(&self.dynamic, None);
            self.invariants
                .iter()
                .filter_map(|inv| inv.deadline(&s))
                .min()
        };
        if let Some(d) = snap_deadline {
            t = t.min(d);
        }
        t.max(self.now)
    }

    fn step(&mut self) {
        let now = self.now;
        while let Some(f) = self.faults.get(self.next_fault).cloned() {
            if f.at_ms > now {
                break;
            }
            self.next_fault += 1;
            self.apply_fault(&f.fault);
            self.after_event();
        }
        if self.healed_at.is_none() && now >= self.heal_time {
            self.heal();
            self.after_event();
        }
        self.fire_watchdogs();
        self.fire_fences();
        if self.promote_standby_at.is_some_and(|at| at <= now) {
            self.promote_standby_cluster();
            self.after_event();
        }
        if now >= self.next_write {
            self.client_write();
            self.next_write = instant::after(now, self.cfg.write_interval);
            self.after_event();
        }
        for i in 0..self.agents.len() {
            if !self.alive[i] || self.agents[i].stalled_until > now {
                continue;
            }
            if self.agents[i].reset {
                self.restart_agent(i);
            }
            if self.agents[i]
                .task
                .as_ref()
                .is_some_and(|t| t.done_at <= now)
            {
                self.finish_task(i);
                self.after_event();
            }
            if self.agents[i].pending.as_ref().is_some_and(|p| p.at <= now) {
                self.land_pending(i);
                self.after_event();
                continue;
            }
            if self.agents[i].pending.is_some() {
                continue;
            }
            let timed_out = self.agents[i]
                .read_times_out_at
                .is_some_and(|r| r <= now || self.dcs_reachable(i));
            let due = self.agents[i].read_times_out_at.is_none() && self.agents[i].next_wake <= now;
            if timed_out || due {
                self.cycle(i);
                self.after_event();
            }
        }
        self.after_event();
        self.wake_watchers();
    }

    /// Replicates, settles client acknowledgements, then checks every invariant.
    pub(crate) fn after_event(&mut self) {
        self.replicate();
        self.settle_writes();
        if self.violation.is_some() {
            return;
        }
        let lock = self.lock_holder();
        let promotions = std::mem::take(&mut self.promotions);
        let paused_actions = std::mem::take(&mut self.paused_actions);
        let mut invariants = std::mem::take(&mut self.invariants);
        let mut found = None;
        {
            let s = Snapshot {
                promotions: &promotions,
                paused_actions: &paused_actions,
                ..self.snapshot(&self.dynamic, lock.as_deref())
            };
            for inv in invariants.iter_mut() {
                if let Err(detail) = inv.check(&s) {
                    found = Some(Violation {
                        invariant: inv.name(),
                        at: self.now,
                        detail,
                    });
                    break;
                }
            }
        }
        self.invariants = invariants;
        if let Some(v) = found {
            self.log("world", format!("VIOLATION {v}"));
            self.violation = Some(v);
        }
    }

    fn snapshot<'a>(&'a self, cfg: &'a DynamicConfig, lock: Option<&'a str>) -> Snapshot<'a> {
        Snapshot {
            now: self.now,
            names: &self.names,
            nodes: &self.cfg.nodes,
            dbs: &self.dbs,
            alive: &self.alive,
            broken: &self.broken,
            lock,
            config: cfg,
            promotions: &[],
            paused_actions: &[],
            oracle: &self.oracle,
            healed_at: self.healed_at,
        }
    }

    /// Appends a line to the timeline with the lock holder and the writable databases.
    pub(crate) fn log(&mut self, who: &str, what: String) {
        if !self.trace.enabled {
            return;
        }
        let lock = self.lock_holder();
        let writable = (0..self.dbs.len())
            .filter(|&i| self.alive[i] && self.dbs[i].writable())
            .map(|i| self.names[i].clone())
            .collect();
        self.trace.lines.push(TraceLine {
            at: self.now,
            lock,
            writable,
            who: who.to_string(),
            what,
        });
    }

    // ---- network ----

    /// Whether node `i`'s agent reaches the DCS right now.
    pub(crate) fn dcs_reachable(&self, i: usize) -> bool {
        self.alive[i] && self.now >= self.dcs_down_until && self.now >= self.dcs_cut_until[i]
    }

    /// Whether nodes `a` and `b` reach each other (REST and replication) right now.
    pub(crate) fn peers_connected(&self, a: usize, b: usize) -> bool {
        self.alive[a] && self.alive[b] && self.now >= self.peer_cut_until[a][b]
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    fn fire_watchdogs(&mut self) {
        if !self.cfg.watchdog {
            return;
        }
        let limit = self
            .dynamic
            .ttl_duration()
            .saturating_sub(self.cfg.safety_margin);
        for i in 0..self.agents.len() {
            let a = &self.agents[i];
            if !self.alive[i]
                || !a.watchdog_armed
                || self.now < instant::after(a.watchdog_ping, limit)
            {
                continue;
            }
            let a = &mut self.agents[i];
            a.watchdog_armed = false;
            a.reset = true;
            a.task = None;
            a.pending = None;
            let db = &mut self.dbs[i];
            if db.process != Process::Stopped {
                db.process = Process::Crashed;
            }
            db.streaming = false;
            let who = self.names[i].clone();
            self.log(&who, "WATCHDOG reset the host: database killed".into());
            self.after_event();
        }
    }

    /// A fence whose deadline passed stops its node's database, whatever the agent is doing.
    fn fire_fences(&mut self) {
        for i in 0..self.agents.len() {
            if !self.alive[i] || self.agents[i].fence_deadline.is_none_or(|d| d > self.now) {
                continue;
            }
            self.agents[i].fence_deadline = None;
            let db = &mut self.dbs[i];
            if db.process != Process::Stopped {
                db.process = Process::Crashed;
            }
            db.streaming = false;
            let who = self.names[i].clone();
            self.log(
                &who,
                "FENCE stopped the database: no new deadline from the agent".into(),
            );
            self.after_event();
        }
    }

    /// After agent `i`'s cycle: its fence's deadline follows its lease, as the daemon's does.
    pub(crate) fn update_fence(&mut self, i: usize) {
        if !self.cfg.fence {
            return;
        }
        let order = self.agents[i].ha.fence_order(
            self.now,
            self.dbs[i].writable(),
            Some(self.cfg.safety_margin),
        );
        let a = &mut self.agents[i];
        match order {
            crate::FenceOrder::ArmUntil(d) => a.fence_deadline = Some(d),
            crate::FenceOrder::Keep => {}
            crate::FenceOrder::Disarm => a.fence_deadline = None,
        }
    }

    fn restart_agent(&mut self, i: usize) {
        let node = self.agents[i].node.clone();
        let a = &mut self.agents[i];
        a.ha = new_ha(&self.cfg, node);
        a.reset = false;
        a.outcomes.clear();
        a.task = None;
        a.pending = None;
        a.read_times_out_at = None;
        a.next_wake = self.now;
        // A new process: its REST API remembers no view and no failsafe leader.
        a.view_leader = None;
        a.failsafe_leader = None;
        let who = self.names[i].clone();
        self.log(&who, "agent restarted after host reset".into());
    }

    /// Wakes every connected agent shortly after the leader key, `/config` or `/failover` changed,
    /// as the real agent's etcd watch does.
    fn wake_watchers(&mut self) {
        self.store.advance(self.now);
        let rev = self.store.watch_revision();
        if rev == self.watch_revision {
            return;
        }
        self.watch_revision = rev;
        for i in 0..self.agents.len() {
            if !self.dcs_reachable(i) {
                continue;
            }
            let at = self.now + 100 + self.rng.below(400);
            let a = &mut self.agents[i];
            if a.read_times_out_at.is_none() && a.next_wake > at {
                a.next_wake = at;
            }
        }
    }

    // ---- database side: client, replication ----

    fn client_write(&mut self) {
        let now = self.now;
        for i in 0..self.dbs.len() {
            if !self.alive[i] || !self.dbs[i].writable() {
                continue;
            }
            let db = &mut self.dbs[i];
            db.wal = Lsn(db.wal.0 + self.cfg.write_bytes);
            let (branch, lsn) = (db.branch().unwrap_or(0), db.wal);
            self.oracle.send(i, branch, lsn, now);
        }
        if let Some(r) = self.remote.as_mut() {
            r.wal = Lsn(r.wal.0 + self.cfg.write_bytes);
        }
    }

    fn replicate(&mut self) {
        for _ in 0..2 {
            for i in 0..self.dbs.len() {
                if !self.alive[i] || !self.dbs[i].is_running_standby() {
                    continue;
                }
                if self.dbs[i].upstream.as_deref() == Some(crate::REMOTE_MEMBER) {
                    match self.remote.clone() {
                        Some(r) => self.dbs[i].replicate_from(&r),
                        None => self.dbs[i].streaming = false,
                    }
                    continue;
                }
                let up = self.dbs[i]
                    .upstream
                    .as_deref()
                    .and_then(|u| self.index_of(u))
                    .filter(|&u| u != i);
                match up {
                    Some(u)
                        if self.peers_connected(i, u)
                            && self.dbs[u].process == Process::Running =>
                    {
                        let upstream = self.dbs[u].clone();
                        self.dbs[i].replicate_from(&upstream);
                    }
                    _ => self.dbs[i].streaming = false,
                }
            }
        }
    }

    fn settle_writes(&mut self) {
        let dbs = &self.dbs;
        let alive = &self.alive;
        let names = &self.names;
        self.oracle.settle(
            self.now,
            |n, b| alive[n] && dbs[n].writable() && dbs[n].branch() == Some(b),
            |n, lsn| {
                let p = &dbs[n];
                if p.sync_names.is_empty() || p.sync_count == 0 {
                    return true;
                }
                let have = p
                    .sync_names
                    .iter()
                    .filter_map(|s| names.iter().position(|x| x.eq_ignore_ascii_case(s)))
                    .filter(|&k| {
                        let s = &dbs[k];
                        alive[k]
                            && s.is_running_standby()
                            && s.streaming
                            && s.upstream.as_deref() == Some(names[n].as_str())
                            && s.contains(p.branch().unwrap_or(0), lsn)
                    })
                    .count();
                have as u32 >= p.sync_count
            },
        );
    }

    /// The database role as Patroni's member key spells it, for the trace.
    pub(crate) fn role_word(&self, i: usize) -> &'static str {
        let db = &self.dbs[i];
        match (db.process, db.role) {
            (Process::Running, DbRole::Primary) => "primary",
            (Process::Running, _) => "standby",
            (Process::Busy, _) => "busy",
            (Process::Crashed, _) => "crashed",
            (Process::Stopped, _) => "stopped",
        }
    }
}

fn new_ha(cfg: &SimConfig, node: Node) -> Ha {
    match &cfg.policy {
        Some(f) => Ha::with_policy(node, f()),
        None => Ha::new(node),
    }
}

fn fault_targets_exist(f: &Fault, n: usize) -> bool {
    match *f {
        Fault::CrashDb { node, .. }
        | Fault::LoseNode { node }
        | Fault::UnreadableDataDir { node }
        | Fault::KillAgent { node, .. }
        | Fault::LoseReplies { node, .. }
        | Fault::CutDcs { node, .. }
        | Fault::Stall { node, .. }
        | Fault::Lag { node, .. } => node < n,
        Fault::CutPeers { a, b, .. } => a < n && b < n && a != b,
        Fault::Switchover { candidate } => candidate.is_none_or(|c| c < n),
        Fault::Failover { candidate } => candidate < n,
        Fault::Pause
        | Fault::Resume
        | Fault::DcsOutage { .. }
        | Fault::SetTtl { .. }
        | Fault::SetSyncCount { .. } => true,
    }
}
