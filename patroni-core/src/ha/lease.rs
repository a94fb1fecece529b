//! Lease bookkeeping from outcomes, and what a node does while the DCS cannot be read.

use std::time::Duration;

use super::{failed, BootstrapStage, Events, Ha};
use crate::action::ActionKind;
use crate::instant;
use crate::{
    Action, Decision, DynamicConfig, Observation, Outcome, OutcomeResult, Reason, StopMode,
};

impl Ha {
    /// Folds the previous decision's outcomes into memory; idempotent, so a second step per cycle is harmless.
    pub(super) fn absorb_outcomes(&mut self, obs: &Observation, config: &DynamicConfig) -> Events {
        let mut ev = Events::default();
        // The TTL the lock writes were sent with (the previous decision's), never a newer one.
        let ttl = self
            .mem
            .lease_timing
            .map_or(config.ttl_duration(), |(ttl, _)| ttl)
            .min(config.ttl_duration().max(Duration::from_millis(1)));
        ev.renew_lost = self.fold_lease(&obs.outcomes, ttl);
        for o in &obs.outcomes {
            match (o.kind, &o.result) {
                (ActionKind::PublishMember, OutcomeResult::Done) => {
                    self.mem.published.clone_from(&self.mem.publishing);
                }
                (ActionKind::PublishMember, _) => self.mem.published = None,
                (ActionKind::Follow, r) if failed(r) => self.mem.following = None,
                // Either mode's memory of the setting: a promotion sets it while no sync step
                // runs to see the failure, so it is forgotten here.
                (ActionKind::SetSyncStandbys, r) if failed(r) => {
                    self.mem.sync_names = None;
                    self.mem.quorum_guc = None;
                }
                (ActionKind::Rebuild, OutcomeResult::Failed(_)) => self.mem.rebuild_full = true,
                (ActionKind::TakeInitialize, OutcomeResult::Done)
                    if self.mem.bootstrap == BootstrapStage::Idle =>
                {
                    self.mem.bootstrap = BootstrapStage::Running;
                }
                (ActionKind::Bootstrap, OutcomeResult::Done) => {
                    self.mem.bootstrap = BootstrapStage::Done;
                }
                // A standby cluster bootstraps by copying its remote primary.
                (ActionKind::CloneFrom, OutcomeResult::Done)
                    if self.mem.bootstrap == BootstrapStage::Running =>
                {
                    self.mem.bootstrap = BootstrapStage::Done;
                }
                (ActionKind::CloneFrom, OutcomeResult::Failed(_))
                    if self.mem.bootstrap == BootstrapStage::Running =>
                {
                    self.mem.bootstrap = BootstrapStage::Idle;
                    ev.bootstrap_failed = true;
                }
                (ActionKind::Bootstrap, OutcomeResult::Failed(_)) => {
                    self.mem.bootstrap = BootstrapStage::Idle;
                    ev.bootstrap_failed = true;
                }
                (ActionKind::Start, OutcomeResult::Failed(_)) => {
                    ev.start_failed = true;
                    self.mem.starting = None;
                    // Counted once per attempt, however often this cycle steps.
                    let (n, last) = self.mem.start_failures;
                    if n == 0 || last != o.started_at {
                        self.mem.start_failures = (n.saturating_add(1), o.started_at);
                    }
                }
                (ActionKind::Stop, OutcomeResult::Failed(_)) => ev.stop_failed = true,
                (ActionKind::Stop | ActionKind::Demote, OutcomeResult::Done) => {
                    self.mem.starting = None;
                }
                (ActionKind::Promote, OutcomeResult::Failed(_)) => {
                    ev.promote_failed = true;
                    self.mem.promote_failed_at = Some(obs.now);
                }
                (ActionKind::Promote, OutcomeResult::Done) => {
                    self.mem.promoted_at = Some(o.started_at);
                }
                _ => {}
            }
        }
        ev
    }

    /// Folds lock-write outcomes into the lease as soon as they are known, before the next step:
    /// the agent calls this right after running a decision, so its fence's deadline counts from
    /// this renewal, not the one before (a deadline one loop stale fires on a healthy primary).
    /// The next step folds the same outcomes again, which changes nothing.
    pub fn absorb_lease_outcomes(&mut self, outcomes: &[Outcome]) {
        if let Some((ttl, _)) = self.mem.lease_timing {
            self.fold_lease(outcomes, ttl);
        }
    }

    /// The lease runs from the latest successful lock write, with `ttl`; a refused one ends
    /// it. Returns whether a renewal was refused.
    fn fold_lease(&mut self, outcomes: &[Outcome], ttl: Duration) -> bool {
        let mut latest_write: Option<u64> = None;
        let mut renew_lost = false;
        for o in outcomes {
            match (o.kind, &o.result) {
                (ActionKind::AcquireLeader | ActionKind::RenewLeader, OutcomeResult::Done)
                    if latest_write.is_none_or(|t| o.started_at >= t) =>
                {
                    latest_write = Some(o.started_at);
                    self.mem.leader_expiry = Some(instant::after(o.started_at, ttl));
                }
                (ActionKind::AcquireLeader | ActionKind::RenewLeader, OutcomeResult::Lost) => {
                    self.mem.leader_expiry = None;
                    renew_lost |= o.kind == ActionKind::RenewLeader;
                }
                (ActionKind::ReleaseLeader, OutcomeResult::Done) => self.mem.leader_expiry = None,
                _ => {}
            }
        }
        renew_lost
    }

    /// The DCS did not answer. A primary rides it out only while its lease surely lasts.
    pub(super) fn dcs_outage(&mut self, obs: &Observation, config: &DynamicConfig) -> Decision {
        let paused = config.pause;
        if obs.local.is_running_primary() && !paused {
            if let Some(d) = self.failsafe_outage(obs, config) {
                return d;
            }
            let margin = config
                .loop_wait_duration()
                .saturating_add(config.retry_timeout_duration().saturating_mul(2));
            if let Some(expiry) = self.mem.leader_expiry {
                if instant::after(obs.now, margin) <= expiry {
                    return Decision::because(Reason::DcsDownKeepingLease {
                        left: instant::between(obs.now, expiry),
                    });
                }
            }
            // From here on we do not claim to be primary (REST `/primary`), even before the lease ends.
            self.mem.leader_expiry = None;
            self.mem.failsafe_until = None;
            return Decision::new(
                vec![Action::Demote(StopMode::Fast)],
                Reason::DemotedDcsDown {
                    refused: super::failsafe::refusals(obs),
                },
            );
        }
        if paused {
            return Decision::because(Reason::DcsDown.paused());
        }
        Decision::because(Reason::DcsDown)
    }
}
