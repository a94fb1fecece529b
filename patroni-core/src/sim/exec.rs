//! One agent's cycle in the simulated world: observe, `Ha::step`, execute the decision.
//!
//! What runs when, what is skipped, when a task is cancelled and when to step again is the
//! core's [`executor`](crate::executor), pumped here exactly as the daemon's agent pumps it; only
//! the effects differ (the simulated world on virtual time instead of etcd and `pg_ctl`).
//! `FetchPeerStatus` is answered from the peers' simulated state.

use std::time::Duration;

use crate::executor::{Next, Rounds, Sequence};
use crate::instant;
use crate::keyspace;
use crate::sim::db::{Process, Segment};
use crate::sim::invariants::{PausedAction, Promotion};
use crate::sim::world::{Pending, Task, World};
use crate::{
    Action, ActionKind, ClusterStatus, DbRole, DcsView, FailsafeInput, FailsafeLeader,
    FailsafeRound, Lsn, Observation, Outcome, OutcomeResult, PeerStatus, RunningTask, StartRole,
    StopMode, SyncState, Timestamp,
};

/// What an agent heard from its peers in one step, for the re-step of the same cycle.
#[derive(Debug, Default)]
pub(crate) struct Probed {
    /// Answers to `FetchPeerStatus`.
    peers: Option<Vec<PeerStatus>>,
    /// Answers to `ConfirmFailsafe`.
    round: Option<FailsafeRound>,
}

impl Probed {
    /// Whether peers were asked, which calls for a re-step.
    fn any(&self) -> bool {
        self.peers.is_some() || self.round.is_some()
    }
}

impl World {
    /// Runs one HA cycle of agent `i` (its timer fired, or its timed-out DCS read returned).
    pub(crate) fn cycle(&mut self, i: usize) {
        let now = self.now;
        let pending = self.agents[i].read_times_out_at.take().is_some();
        let timed_out = pending && !self.dcs_reachable(i);
        if !pending && !self.dcs_reachable(i) {
            // The read blocks for retry_timeout before the agent learns the DCS is gone.
            self.agents[i].read_times_out_at =
                Some(instant::after(now, self.dynamic.retry_timeout_duration()));
            return;
        }
        self.rounds(i, Rounds::new(), Probed::default(), timed_out, now);
    }

    /// Steps agent `i` through its cycle: observe, decide, act, and step again at once after peer
    /// probes or a refused guard, as the core's [`Rounds`] says (the agent pumps the same type).
    /// With a DCS round trip the actions land later ([`land_pending`](Self::land_pending)), which
    /// resumes the cycle.
    fn rounds(
        &mut self,
        i: usize,
        mut rounds: Rounds,
        mut probed: Probed,
        timed_out: bool,
        cycle_start: u64,
    ) {
        let now = self.now;
        let mut first = true;
        loop {
            let actions = self.decide(i, std::mem::take(&mut probed), timed_out && first);
            first = false;
            if !self.cfg.dcs_rtt.is_zero() {
                self.agents[i].pending = Some(Pending {
                    at: instant::after(now, self.cfg.dcs_rtt),
                    actions,
                    rounds,
                    cycle_start,
                });
                return;
            }
            probed = self.execute(i, actions);
            let a = &mut self.agents[i];
            a.ha.absorb_lease_outcomes(&a.outcomes);
            if !rounds.again(probed.any(), &self.agents[i].outcomes) {
                break;
            }
        }
        self.agents[i].next_wake = instant::after(cycle_start, self.dynamic.loop_wait_duration());
        self.update_fence(i);
    }

    /// Lands agent `i`'s pending actions and goes on with its cycle.
    pub(crate) fn land_pending(&mut self, i: usize) {
        let Some(mut p) = self.agents[i].pending.take() else {
            return;
        };
        let probed = self.execute(i, p.actions);
        let a = &mut self.agents[i];
        a.ha.absorb_lease_outcomes(&a.outcomes);
        if p.rounds.again(probed.any(), &self.agents[i].outcomes) {
            self.rounds(i, p.rounds, probed, false, p.cycle_start);
        } else {
            let next = instant::after(p.cycle_start, self.dynamic.loop_wait_duration());
            self.agents[i].next_wake = next.max(self.now);
            self.update_fence(i);
        }
    }

    /// One `Ha::step` of agent `i` on what it observes now; returns the decision's actions.
    fn decide(&mut self, i: usize, probed: Probed, timed_out: bool) -> Vec<Action> {
        let now = self.now;
        // A failsafe round's answers are about the outage just seen: decided on that view.
        let dcs = if self.dcs_reachable(i) && !timed_out && probed.round.is_none() {
            let cluster = self.load_and_keep_alive(i);
            self.agents[i].view_leader = cluster.leader.as_ref().map(|l| l.name.clone());
            DcsView::Ok(cluster)
        } else {
            DcsView::Unreachable("etcd: request timed out (simulated partition)".into())
        };
        let local = self.observe_local(i);
        let obs = Observation {
            peers: probed.peers,
            outcomes: std::mem::take(&mut self.agents[i].outcomes),
            task: self.agents[i].task.as_ref().map(|t| RunningTask {
                kind: t.action.kind(),
                since: t.since,
            }),
            requests: std::mem::take(&mut self.agents[i].requests),
            failsafe: FailsafeInput {
                round: probed.round,
                leader: self.agents[i].failsafe_leader.clone(),
            },
            ..Observation::quiet(now, Timestamp(self.epoch.0 + now as i64), dcs, local)
        };
        let decision = self.agents[i].ha.step(&obs);
        if let Some(c) = obs
            .cluster()
            .filter(|c| c.config.as_ref().is_some_and(|v| v.value.pause))
        {
            let requested = c.failover_request().is_some();
            for a in &decision.actions {
                let kind = a.kind();
                if matches!(
                    kind,
                    ActionKind::Start
                        | ActionKind::Stop
                        | ActionKind::Restart
                        | ActionKind::Promote
                        | ActionKind::Demote
                        | ActionKind::Rebuild
                ) {
                    self.paused_actions.push(PausedAction {
                        node: i,
                        kind,
                        requested,
                    });
                }
            }
        }
        if self.trace.enabled {
            let kinds: Vec<String> = decision.actions.iter().map(describe).collect();
            let who = self.names[i].clone();
            let line = format!(
                "[{}] {} -> [{}]",
                self.role_word(i),
                decision.reason,
                kinds.join(", ")
            );
            self.log(&who, line);
        }
        decision.actions
    }

    /// Reads the cluster for agent `i` the way the DCS adapters do ([`MemoryStore::load_as`](crate::MemoryStore::load_as)):
    /// a member that does not hold the leader key keeps its lease alive on every read, so its
    /// member key (and a leader key it is about to create) does not expire between publishes.
    fn load_and_keep_alive(&mut self, i: usize) -> crate::Cluster {
        let now = self.now;
        let me = &self.names[i];
        let cluster = self.store.load_as(me, now);
        if !cluster.is_leader(me) && self.store.member_lease(me, now).is_some() {
            self.agents[i].lease_until = instant::after(now, self.dynamic.ttl_duration());
        }
        cluster
    }

    /// Carries out agent `i`'s decision as the core's [`Sequence`] says (the agent pumps the same
    /// type); returns peer answers when it asked for them.
    fn execute(&mut self, i: usize, actions: Vec<Action>) -> Probed {
        let mut seq = Sequence::foreground(actions, self.agents[i].task.is_some());
        let mut probed = Probed::default();
        loop {
            match seq.next(self.now) {
                Next::Done => break,
                Next::CancelTask => {
                    // A demotion cancels whatever runs, as the agent aborts its task.
                    if let Some(t) = self.agents[i].task.take() {
                        seq.cancelled(t.action.kind(), t.since);
                    }
                }
                Next::Run(Action::FetchPeerStatus { members }) => {
                    probed.peers = Some(self.peer_statuses(i, &members));
                    seq.report(OutcomeResult::Done);
                }
                Next::Run(Action::ConfirmFailsafe { members }) => {
                    let round = self.failsafe_round(i, &members);
                    seq.report(if round.confirmed() {
                        OutcomeResult::Done
                    } else {
                        OutcomeResult::Failed("not every failsafe member confirmed".into())
                    });
                    probed.round = Some(round);
                }
                Next::Run(action) => {
                    let result = self.execute_quick(i, action);
                    seq.report(result);
                }
                Next::Spawn(slow) => {
                    self.run_background(i, Sequence::background(slow));
                    break;
                }
            }
        }
        self.push_outcomes(i, seq.into_outcomes());
        probed
    }

    /// Agent `i` posts `POST /failsafe` to `members`: each answers, when its agent is reachable
    /// and running, by the daemon's rule ([`failsafe::answer`](crate::failsafe::answer)) and
    /// remembers the leader it accepted, as the REST API does.
    fn failsafe_round(&mut self, i: usize, members: &[(String, String)]) -> FailsafeRound {
        let now = self.now;
        let poster = self.names[i].clone();
        let mut refused = Vec::new();
        for (name, _) in members {
            let Some(k) = self.index_of(name) else {
                refused.push((name.clone(), "not a member".into()));
                continue;
            };
            if k == i || !self.peers_connected(i, k) || self.agents[k].stalled_until > now {
                refused.push((name.clone(), "no answer".into()));
                continue;
            }
            let ttl = self.agents[k]
                .ha
                .dynamic_config()
                .unwrap_or(&self.dynamic)
                .ttl_duration();
            let a = &self.agents[k];
            match crate::failsafe::answer(
                &poster,
                self.dbs[k].writable(),
                a.view_leader.as_deref(),
                a.failsafe_leader.as_ref(),
                now,
                ttl,
            ) {
                Ok(()) => {
                    self.agents[k].failsafe_leader = Some(FailsafeLeader {
                        name: poster.clone(),
                        accepted_at: now,
                    })
                }
                Err(why) => refused.push((name.clone(), why)),
            }
        }
        if self.trace.enabled {
            let line = if refused.is_empty() {
                "  failsafe: all members confirmed".to_string()
            } else {
                format!("  failsafe: refused by {refused:?}")
            };
            self.log(&poster, line);
        }
        FailsafeRound {
            started_at: now,
            refused,
        }
    }

    /// Pumps a background task's sequence: quick actions at once; a slow one starts a phase that
    /// ends in virtual time ([`finish_task`](Self::finish_task) resumes the sequence).
    fn run_background(&mut self, i: usize, mut seq: Sequence) {
        let now = self.now;
        while let Next::Run(action) = seq.next(now) {
            let kind = action.kind();
            if !kind.is_slow() {
                let result = match action {
                    Action::FetchPeerStatus { .. } => OutcomeResult::Done,
                    other => self.execute_quick(i, other),
                };
                seq.report(result);
                continue;
            }
            match self.start_slow(i, &action) {
                Ok(duration) => {
                    self.tasks_started.push((now, i, kind));
                    self.agents[i].task = Some(Task {
                        action,
                        since: now,
                        done_at: instant::after(now, duration),
                        seq,
                    });
                    return;
                }
                Err(why) => seq.report(OutcomeResult::Failed(why)),
            }
        }
        self.push_outcomes(i, seq.into_outcomes());
    }

    fn push_outcomes(&mut self, i: usize, outcomes: Vec<Outcome>) {
        for o in outcomes {
            self.push_outcome(i, o.kind, o.result, o.started_at);
        }
    }

    fn push_outcome(&mut self, i: usize, kind: ActionKind, result: OutcomeResult, started_at: u64) {
        if self.trace.enabled && !matches!(result, OutcomeResult::Done) {
            let who = self.names[i].clone();
            self.log(&who, format!("  {kind:?}: {result:?}"));
        }
        self.agents[i].outcomes.push(Outcome {
            kind,
            result,
            started_at,
        });
    }

    /// A quick action: DCS writes and instant database commands. While the agent's replies are
    /// lost, a DCS write is applied but looks timed out to the agent.
    fn execute_quick(&mut self, i: usize, action: Action) -> OutcomeResult {
        let dcs_write = !matches!(
            action,
            Action::Stop(_)
                | Action::Reload
                | Action::Follow { .. }
                | Action::SetSyncStandbys { .. }
        );
        let agent_side = (self.agents[i].watchdog_armed, self.agents[i].watchdog_ping);
        let result = self.apply_quick(i, action);
        if dcs_write
            && self.now < self.reply_lost_until[i]
            && !matches!(result, OutcomeResult::DcsUnreachable(_))
        {
            // The agent never learns the write happened: it pings no watchdog for it.
            (self.agents[i].watchdog_armed, self.agents[i].watchdog_ping) = agent_side;
            return OutcomeResult::DcsUnreachable(
                "etcd: request timed out (simulated lost reply)".into(),
            );
        }
        result
    }

    fn apply_quick(&mut self, i: usize, action: Action) -> OutcomeResult {
        let now = self.now;
        let me = self.names[i].clone();
        let dcs_action = !matches!(
            action,
            Action::Stop(_)
                | Action::Reload
                | Action::Follow { .. }
                | Action::SetSyncStandbys { .. }
        );
        if dcs_action && !self.dcs_reachable(i) {
            // A failed renewal sends no keepalive: the watchdog counts from the last good one.
            return OutcomeResult::DcsUnreachable(
                "etcd: request timed out (simulated partition)".into(),
            );
        }
        let lost = |ok: bool| {
            if ok {
                OutcomeResult::Done
            } else {
                OutcomeResult::Lost
            }
        };
        // The lease TTL the state machine counts with for this decision, as the agent hands it
        // to the DCS before its lock writes.
        let ttl = self.agents[i]
            .ha
            .lease_timing()
            .map_or(self.dynamic.ttl_duration(), |(ttl, _)| ttl);
        match action {
            Action::TakeInitialize => lost(self.store.take_initialize(now)),
            Action::SetInitialize { system_id } => {
                self.store.set_initialize(&system_id, now);
                OutcomeResult::Done
            }
            Action::CancelInitialize => {
                self.store.cancel_initialize(now);
                OutcomeResult::Done
            }
            Action::WriteConfig { config, version } => {
                let ok = self.store.write_config(&config, version, now);
                self.reload_dynamic();
                lost(ok)
            }
            Action::AcquireLeader | Action::RenewLeader => {
                self.store.set_member_ttl(&me, ttl);
                let ok = if matches!(action, Action::AcquireLeader) {
                    self.store.acquire_leader(&me, now)
                } else {
                    self.store.renew_leader(&me, now)
                };
                let a = &mut self.agents[i];
                a.lease_until = instant::after(now, ttl);
                if ok {
                    a.watchdog_armed = true;
                    a.watchdog_ping = now;
                } else {
                    a.watchdog_armed = false;
                }
                lost(ok)
            }
            Action::ReleaseLeader => {
                let ok = self.store.release_leader(&me, now);
                self.agents[i].watchdog_armed = false;
                lost(ok)
            }
            Action::PublishMember(data) => {
                self.store.publish_member(&me, &data, now);
                // Publishing binds the key to the lease without extending it (as in etcd).
                let a = &mut self.agents[i];
                if a.lease_until <= now {
                    a.lease_until = instant::after(now, ttl);
                }
                OutcomeResult::Done
            }
            Action::WriteStatus { optime } => {
                let status = ClusterStatus {
                    optime: Some(optime),
                    ..ClusterStatus::default()
                };
                self.store.write_status(&status, now);
                OutcomeResult::Done
            }
            Action::ClearFailover { version } => lost(self.store.clear_failover(version, now)),
            Action::WriteSyncState { state, version } => {
                lost(self.store.write_sync_state(&state, version, now))
            }
            Action::WriteHistory(history) => {
                self.store.write_history(&history, now);
                OutcomeResult::Done
            }
            Action::WriteFailsafe(members) => {
                self.store.write_failsafe(&members, now);
                OutcomeResult::Done
            }
            Action::Stop(mode) => {
                let db = &mut self.dbs[i];
                if db.initialized && db.process != Process::Stopped {
                    db.process = match mode {
                        StopMode::Fast => Process::Stopped,
                        StopMode::Immediate => Process::Crashed,
                    };
                }
                db.streaming = false;
                self.agents[i].watchdog_armed = false;
                OutcomeResult::Done
            }
            Action::Reload => OutcomeResult::Done,
            Action::Follow { leader } => {
                let db = &mut self.dbs[i];
                if db.writable() {
                    return OutcomeResult::Failed(
                        "cannot follow: the database is a running primary".into(),
                    );
                }
                if db.upstream.as_deref() != Some(leader.name.as_str()) {
                    db.upstream = Some(leader.name);
                    db.streaming = false;
                }
                OutcomeResult::Done
            }
            Action::SetSyncStandbys {
                names,
                count,
                quorum,
            } => {
                let db = &mut self.dbs[i];
                db.sync_names = names;
                db.sync_count = count;
                db.sync_any = quorum;
                OutcomeResult::Done
            }
            Action::FetchPeerStatus { .. }
            | Action::ConfirmFailsafe { .. }
            | Action::Bootstrap
            | Action::CloneFrom { .. }
            | Action::CloneWithoutLeader
            | Action::Start(_)
            | Action::Restart
            | Action::Promote { .. }
            | Action::Demote(_)
            | Action::Rebuild { .. } => OutcomeResult::Failed("not a quick action".into()),
        }
    }

    /// Starts a slow action: its immediate effect, and how long it takes; `Err` fails it at once.
    fn start_slow(&mut self, i: usize, action: &Action) -> Result<Duration, String> {
        let t = self.cfg.timings;
        let db = &self.dbs[i];
        match action {
            Action::Bootstrap => {
                if db.initialized {
                    return Err("data directory is not empty".into());
                }
                self.dbs[i].process = Process::Busy;
                Ok(t.bootstrap)
            }
            // Simulated members have no backups to restore (their nodes never offer it).
            Action::CloneWithoutLeader => Err("no backup to restore in the simulator".into()),
            Action::CloneFrom { .. } => {
                if db.process == Process::Running || db.process == Process::Busy {
                    return Err("database is running".into());
                }
                self.dbs[i].process = Process::Busy;
                Ok(t.clone)
            }
            Action::Start(StartRole::Standby { .. }) if db.is_running_standby() => {
                // As the adapters do: a running standby only takes the new upstream (a reload).
                Ok(Duration::ZERO)
            }
            Action::Start(role) => {
                if !db.initialized {
                    return Err("data directory is empty".into());
                }
                if db.process == Process::Running || db.process == Process::Busy {
                    return Err("database is already running".into());
                }
                if matches!(role, StartRole::Primary) {
                    self.record_promotion(i, false, false);
                }
                self.dbs[i].process = Process::Busy;
                Ok(t.start)
            }
            Action::Restart => {
                if !db.initialized {
                    return Err("data directory is empty".into());
                }
                self.dbs[i].process = Process::Busy;
                self.dbs[i].streaming = false;
                Ok(t.start)
            }
            Action::Promote { planned, .. } => {
                if !db.is_running_standby() {
                    return Err(format!(
                        "cannot promote: database is {:?} {:?}",
                        db.process, db.role
                    ));
                }
                self.record_promotion(i, true, *planned);
                Ok(t.promote)
            }
            Action::Demote(_) => {
                let db = &mut self.dbs[i];
                if !db.initialized {
                    return Err("data directory is empty".into());
                }
                // Writes stop at once: the server shuts down before it comes back read-only.
                db.process = Process::Busy;
                db.role = DbRole::Standby;
                db.upstream = None;
                db.streaming = false;
                self.agents[i].watchdog_armed = false;
                Ok(t.demote)
            }
            Action::Rebuild { .. } => {
                self.dbs[i].process = Process::Busy;
                self.dbs[i].streaming = false;
                Ok(t.rebuild)
            }
            _ => Err("not a slow action".into()),
        }
    }

    /// Completes agent `i`'s slow action and goes on with the task's sequence.
    pub(crate) fn finish_task(&mut self, i: usize) {
        let Some(mut task) = self.agents[i].task.take() else {
            return;
        };
        let kind = task.action.kind();
        let result = self.complete_slow(i, &task.action);
        if self.trace.enabled {
            let who = self.names[i].clone();
            self.log(&who, format!("finished {kind:?}: {result:?}"));
        }
        task.seq.report(result);
        self.run_background(i, task.seq);
    }

    fn complete_slow(&mut self, i: usize, action: &Action) -> OutcomeResult {
        let interrupted = || OutcomeResult::Failed("interrupted: the database stopped".into());
        let busy = self.dbs[i].process == Process::Busy;
        match action {
            Action::Bootstrap => {
                if !busy {
                    return interrupted();
                }
                let branch = self.new_branch();
                let db = &mut self.dbs[i];
                db.initialized = true;
                db.system_id = Some(format!("73{:017}", self.cfg.seed % 100_000_000_000_000_000));
                db.timeline = 1;
                db.lineage = vec![Segment {
                    branch,
                    start: Lsn::ZERO,
                }];
                db.wal = Lsn(0x0300_0000);
                db.role = DbRole::Primary;
                db.process = Process::Running;
                OutcomeResult::Done
            }
            Action::CloneFrom { source } | Action::Rebuild { source, .. } => {
                if !busy {
                    return interrupted();
                }
                if let Some(r) = self
                    .remote
                    .clone()
                    .filter(|_| source.name == crate::REMOTE_MEMBER)
                {
                    return self.copy_remote(i, &r);
                }
                let src = match self.index_of(&source.name) {
                    Some(s)
                        if s != i
                            && self.peers_connected(i, s)
                            && self.dbs[s].process == Process::Running =>
                    {
                        s
                    }
                    _ => {
                        self.dbs[i].process = if self.dbs[i].initialized {
                            Process::Crashed
                        } else {
                            Process::Stopped
                        };
                        return OutcomeResult::Failed(format!(
                            "cannot copy from {}: unreachable or not running",
                            source.name
                        ));
                    }
                };
                let source_db = self.dbs[src].clone();
                let db = &mut self.dbs[i];
                db.copy_from(&source_db);
                if db.cannot_start {
                    db.process = Process::Crashed;
                    return OutcomeResult::Failed("could not start the copied server".into());
                }
                db.role = DbRole::Standby;
                db.upstream = Some(source.name.clone());
                db.process = Process::Running;
                OutcomeResult::Done
            }
            Action::Start(StartRole::Standby { upstream }) if self.dbs[i].is_running_standby() => {
                let db = &mut self.dbs[i];
                let upstream = upstream.as_ref().map(|m| m.name.clone());
                if db.upstream != upstream {
                    db.upstream = upstream;
                    db.streaming = false;
                }
                OutcomeResult::Done
            }
            Action::Start(role) => {
                if !busy {
                    return interrupted();
                }
                let db = &mut self.dbs[i];
                if let Some(failed) = db.refuse_start() {
                    return failed;
                }
                match role {
                    StartRole::Primary => {
                        db.role = DbRole::Primary;
                        db.upstream = None;
                    }
                    StartRole::Standby { upstream } => {
                        db.role = DbRole::Standby;
                        db.upstream = upstream.as_ref().map(|m| m.name.clone());
                    }
                }
                db.streaming = false;
                db.process = Process::Running;
                OutcomeResult::Done
            }
            Action::Restart | Action::Demote(_) => {
                if !busy {
                    return interrupted();
                }
                let db = &mut self.dbs[i];
                if let Some(failed) = db.refuse_start() {
                    return failed;
                }
                db.process = Process::Running;
                OutcomeResult::Done
            }
            Action::Promote { timeline, .. } => {
                if !self.dbs[i].is_running_standby() {
                    return OutcomeResult::Failed(
                        "promotion interrupted: the database is not a running standby".into(),
                    );
                }
                let branch = self.new_branch();
                let db = &mut self.dbs[i];
                let start = db.wal;
                db.lineage.push(Segment { branch, start });
                db.timeline = *timeline;
                db.role = DbRole::Primary;
                db.upstream = None;
                db.streaming = false;
                OutcomeResult::Done
            }
            _ => OutcomeResult::Failed("not a slow action".into()),
        }
    }

    fn new_branch(&mut self) -> u64 {
        self.next_branch += 1;
        self.next_branch
    }

    /// Records a promotion (or start as primary) with what the invariants need, read from the DCS now.
    fn record_promotion(&mut self, i: usize, promote: bool, planned: bool) {
        let now = self.now;
        let held_lock = self
            .store
            .get(keyspace::LEADER, now)
            .is_some_and(|kv| kv.value == self.names[i].as_bytes());
        let optime = self
            .store
            .get(keyspace::STATUS, now)
            .and_then(|kv| serde_json::from_slice::<ClusterStatus>(&kv.value).ok())
            .and_then(|s| s.optime);
        let in_sync = self
            .store
            .get(keyspace::SYNC, now)
            .and_then(|kv| serde_json::from_slice::<SyncState>(&kv.value).ok())
            .is_some_and(|s| {
                // The primary that recorded /sync has every acknowledged write too (Patroni's
                // `sync.matches(name, check_leader=True)`).
                s.is_sync(&self.names[i]) || s.leader.as_deref() == Some(self.names[i].as_str())
            });
        let tags = &self.agents[i].node.tags;
        self.promotions.push(Promotion {
            node: i,
            at: now,
            promote,
            planned,
            held_lock,
            nofailover: !tags.allows_failover(),
            lag: optime.map(|o| o.saturating_sub(self.dbs[i].wal)),
            in_sync,
        });
        self.promotion_count += 1;
        let who = self.names[i].clone();
        self.log(
            &who,
            format!(
                "{} (lock held: {held_lock}, wal {}, /status optime {:?}, in /sync: {in_sync})",
                if promote {
                    "PROMOTE"
                } else {
                    "START AS PRIMARY"
                },
                self.dbs[i].wal,
                optime
            ),
        );
    }
}

/// A short form of an action for the timeline: its kind plus the detail that explains it.
fn describe(action: &Action) -> String {
    match action {
        Action::Follow { leader } => format!("Follow({})", leader.name),
        Action::CloneFrom { source } => format!("CloneFrom({})", source.name),
        Action::Rebuild { source, mode, .. } => format!("Rebuild({}, {mode:?})", source.name),
        Action::Start(StartRole::Primary) => "Start(primary)".into(),
        Action::Start(StartRole::Standby { upstream }) => format!(
            "Start(standby of {})",
            upstream.as_ref().map_or("nobody", |m| m.name.as_str())
        ),
        Action::Promote { timeline, planned } => {
            format!(
                "Promote(tl {timeline}{})",
                if *planned { ", planned" } else { "" }
            )
        }
        Action::Stop(mode) | Action::Demote(mode) => format!("{:?}({mode:?})", action.kind()),
        Action::SetSyncStandbys {
            names,
            count,
            quorum,
        } => format!(
            "SetSyncStandbys({} {count} of [{}])",
            if *quorum { "ANY" } else { "FIRST" },
            names.join(",")
        ),
        Action::WriteSyncState { state, .. } => format!(
            "WriteSyncState(leader {}, [{}]{})",
            state.leader.as_deref().unwrap_or("-"),
            state.sync_standbys.join(","),
            state
                .quorum
                .map(|q| format!(", quorum {q}"))
                .unwrap_or_default()
        ),
        Action::ClearFailover { .. } => "ClearFailover".into(),
        other => format!("{:?}", other.kind()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::sim::{invariants, FaultSchedule, SimConfig, World};

    /// In the executor both the agent and the simulator follow, a running primary whose
    /// `AcquireLeader` loses stops accepting writes at that instant, not one
    /// `loop_wait` later. The interleaving is built by hand: with a DCS round trip the primary
    /// reads an unlocked view, and another member's acquire lands before its own.
    #[test]
    fn a_running_primary_that_loses_the_race_demotes_at_once() {
        let mut cfg = SimConfig::three_nodes(77);
        cfg.dcs_rtt = Duration::from_millis(50);
        cfg.watchdog = false;
        let warmup = crate::instant::millis(cfg.warmup);
        let mut w = World::new(cfg, &FaultSchedule::none(), invariants::safety());
        w.run_until(warmup);
        let p = w.writable()[0];
        let other = (p + 1) % 3;
        let (pn, on) = (w.names[p].clone(), w.names[other].clone());
        // The lock goes (as when a lease ran out); the primary's next cycle races for it.
        let now = w.now;
        assert!(w.store.release_leader(&pn, now));
        w.agents[p].next_wake = now;
        w.run_until_cond(now + 1_000, |w| {
            w.agents[p].pending.as_ref().is_some_and(|x| {
                x.actions
                    .iter()
                    .any(|a| a.kind() == crate::ActionKind::AcquireLeader)
            })
        })
        .expect("the primary races for the free lock");
        // Another member's acquire lands first.
        let now = w.now;
        assert!(w.store.acquire_leader(&on, now));
        // The lost acquire lands; the re-step reads the view again (one round trip) and demotes:
        // no `loop_wait` in between.
        let landed = w.agents[p].pending.as_ref().unwrap().at;
        w.run_until(landed + 50);
        assert!(
            !w.dbs[p].writable(),
            "the loser still accepts writes after losing the race:\n{}",
            w.trace().tail(20)
        );
        assert!(
            w.trace().tail(20).contains("demoting self"),
            "{}",
            w.trace().tail(20)
        );
    }

    /// A standby promoted in synchronous mode must not start as a primary waiting for the
    /// standbys its `synchronous_standby_names` named in an earlier term (the setting survives
    /// demotion and copies): here the old value names the primary it replaces, which is
    /// restarting as a standby, so the first commits would wait for it.
    #[test]
    fn a_promoted_sync_standby_waits_for_no_standby_of_an_earlier_term() {
        let mut cfg = SimConfig::three_nodes(5);
        cfg.dynamic.synchronous_mode = crate::SynchronousMode::On;
        let warmup = crate::instant::millis(cfg.warmup);
        let mut w = World::new(cfg, &FaultSchedule::none(), invariants::safety());
        w.run_until(warmup);
        let p = w.writable()[0];
        let s = w.dbs[p]
            .sync_names
            .first()
            .and_then(|n| w.index_of(n))
            .expect("the primary names a synchronous standby");
        // The sync standby's own setting, left from a term in which it led.
        let old = w.names[p].clone();
        w.dbs[s].sync_names = vec![old.clone()];
        w.dbs[s].sync_count = 1;
        w.apply_fault(&crate::sim::Fault::Switchover { candidate: None });
        let now = w.now;
        w.run_until_cond(now + 60_000, |w| w.dbs[s].writable())
            .unwrap_or_else(|| panic!("no switchover to {s}:\n{}", w.trace().tail(30)));
        assert!(
            !w.dbs[s].sync_names.contains(&old),
            "the new primary still waits for {old}: {:?}\n{}",
            w.dbs[s].sync_names,
            w.trace().tail(30)
        );
        assert_eq!(w.violation(), None);
    }
}
