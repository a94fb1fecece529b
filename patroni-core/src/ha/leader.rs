//! We hold the leader lock: renew it, finish a pending promotion, keep `/status`, `/history`, `/sync`.

use super::switchover::Handover;
use super::{Cycle, Ha};
use crate::action::ActionKind;
use crate::{Action, Decision, HistoryEntry, Reason, StopMode, SyncState};

/// Patroni's reason text for a promotion in `/history`.
const PROMOTE_REASON: &str = "no recovery target specified";

impl Ha {
    /// The lock is ours: keep it, finish a promotion, hand over on request.
    pub(super) fn lead(&mut self, cy: &Cycle<'_>) -> Decision {
        let local = &cy.obs.local;
        if cy.standby {
            return self.lead_standby(cy);
        }
        if !local.is_running_primary() {
            return self.promote_with_lock(cy);
        }
        let mut actions = vec![Action::RenewLeader];
        let mut reason = Reason::LeaderWithLock {
            me: cy.me().to_string(),
        };
        let mut ineligible = Vec::new();
        match self.handover(cy) {
            Handover::Demote(d) => return d,
            Handover::Note(d) => {
                reason = d.reason;
                ineligible = d.ineligible;
                actions.extend(d.actions);
            }
            Handover::Nothing => {}
        }
        actions.extend(self.upkeep(cy));
        // Repairs of garbled keys say why, once, in the cycle that does them.
        type Repair = fn(String) -> Reason;
        let repaired: [(ActionKind, _, Repair); 2] = [
            (
                ActionKind::ClearFailover,
                cy.cluster.failover_unreadable.as_ref(),
                |value| Reason::CleanedUnreadableFailover { value },
            ),
            (
                ActionKind::WriteConfig,
                cy.cluster.config_unreadable.as_ref(),
                |value| Reason::RestoredConfig { value },
            ),
        ];
        for (kind, bad, what) in repaired {
            if let Some(bad) = bad.filter(|_| actions.iter().any(|a| a.kind() == kind)) {
                reason = what(bad.value.clone());
            }
        }
        Decision {
            actions,
            reason,
            ineligible,
        }
    }

    /// We hold the lock with a standby database: the lock is ours, so finish the promotion.
    fn promote_with_lock(&mut self, cy: &Cycle<'_>) -> Decision {
        if cy.paused {
            let for_me = cy
                .cluster
                .failover_request()
                .and_then(|r| r.candidate.as_deref())
                == Some(cy.me());
            if for_me {
                return Decision::new(vec![Action::RenewLeader], Reason::WaitingForPromotion);
            }
            return Decision::new(vec![Action::ReleaseLeader], Reason::ReleasedNotPrimary);
        }
        if cy.obs.local.role != crate::DbRole::Standby {
            return Decision::new(vec![Action::RenewLeader], Reason::RoleUnknown);
        }
        if cy.events.promote_failed {
            return Decision::new(vec![Action::ReleaseLeader], Reason::ReleasedPromoteFailed);
        }
        // A promotion that finished but is not visible yet (the database still reports
        // recovery) is waited for; a second one would open yet another timeline.
        if let Some(at) = self.mem.promoted_at {
            if cy.obs.now < crate::instant::after(at, cy.config.ttl_duration()) {
                return Decision::new(vec![Action::RenewLeader], Reason::WaitingForPromotion);
            }
            self.mem.promoted_at = None;
        }
        let mut actions = vec![Action::RenewLeader];
        actions.extend(self.sync_on_promote(cy));
        actions.push(Action::Promote {
            timeline: cy.next_timeline(),
            planned: false,
        });
        Decision::new(actions, Reason::PromotedWithLock)
    }

    /// In synchronous mode a new primary records itself in `/sync` with no standbys before
    /// promoting, and sets its database to wait for none (strict: for a standby that never
    /// comes), as Patroni does. `synchronous_standby_names` persists across demotions and copies:
    /// the value left from an earlier term may name a standby that is restarting, or this node,
    /// and would hold the first commits until the next cycle's synchronous step. With `/sync`
    /// naming only us, no promotion it allows loses a commit we alone acknowledged, so waiting
    /// for nobody is safe; should the setting fail, the old value only makes commits wait. It is
    /// remembered, so the next synchronous step changes it only when it must.
    pub(super) fn sync_on_promote(&mut self, cy: &Cycle<'_>) -> Vec<Action> {
        if !cy.config.synchronous() {
            return Vec::new();
        }
        let strict = cy.config.synchronous_mode_strict;
        let quorum = cy.config.synchronous_mode == crate::SynchronousMode::Quorum;
        let write = Action::WriteSyncState {
            state: SyncState {
                leader: Some(cy.me().to_string()),
                sync_standbys: Vec::new(),
                quorum: quorum.then_some(0),
            },
            version: cy.cluster.sync.as_ref().map(|s| s.version),
        };
        let mut actions = vec![write];
        // Set even where our memory says it is so already: that memory may be of an earlier term.
        // Either setter voids the position measured against the old setting; the first primary
        // cycle, after this one applied, measures the position new standbys must reach.
        if quorum {
            let (_, guc) = super::quorum::target(&[], cy.config.synchronous_node_count, strict);
            self.mem.sync_names = None;
            actions.push(self.set_quorum_guc(guc));
        } else {
            let (names, count) = super::sync::waiting_for_nobody(strict);
            self.mem.quorum_guc = None;
            self.mem.sync_names = None;
            self.set_sync_guc(names, count, &mut actions);
        }
        actions
    }

    /// The writes a running primary with the lock does each cycle, only when something changed.
    pub(super) fn upkeep(&mut self, cy: &Cycle<'_>) -> Vec<Action> {
        let local = &cy.obs.local;
        let mut actions = Vec::new();
        // A standby leader publishes how far it has received, for its replicas' lag checks.
        let optime = local
            .write_lsn
            .or_else(|| cy.standby.then(|| local.wal_position()));
        if let Some(optime) = optime {
            if cy.cluster.leader_optime() != Some(optime) {
                actions.push(Action::WriteStatus { optime });
            }
        }
        let initialized = cy
            .cluster
            .initialize
            .as_deref()
            .is_some_and(|s| !s.is_empty());
        if let (false, Some(system_id)) = (initialized, local.system_id.clone()) {
            actions.push(Action::SetInitialize { system_id });
        }
        match (&cy.cluster.config, &cy.cluster.config_unreadable) {
            (None, None) => actions.push(Action::WriteConfig {
                config: cy.node.bootstrap_config.clone(),
                version: None,
            }),
            // Patroni restores an emptied `/config` from its last copy; without one we keep
            // deciding by the bootstrap settings and leave the key for the operator.
            (None, Some(bad)) => {
                if let Some(good) = self.mem.dcs_config.clone() {
                    actions.push(Action::WriteConfig {
                        config: good,
                        version: Some(bad.version),
                    });
                }
            }
            (Some(_), _) => {}
        }
        if let Some(bad) = &cy.cluster.failover_unreadable {
            actions.push(Action::ClearFailover {
                version: bad.version,
            });
        }
        if cy.standby {
            // The remote cluster keeps the history; no synchronous replication here.
            return actions;
        }
        if let Some(h) = self.history(cy) {
            actions.push(h);
        }
        actions.extend(self.sync_standbys(cy));
        actions
    }

    /// A `/history` line per timeline we moved past since the last recorded one, trimmed as configured.
    fn history(&self, cy: &Cycle<'_>) -> Option<Action> {
        let local_tl = cy.obs.local.timeline?;
        let cluster_tl = cy.cluster.timeline();
        if local_tl <= cluster_tl {
            return None;
        }
        let lsn = cy
            .cluster
            .leader_optime()
            .or(cy.obs.local.write_lsn)
            .unwrap_or_default();
        let mut history = cy.cluster.history.clone();
        // A bounded number of lines even for an absurd timeline jump.
        let first = cluster_tl.max(local_tl.saturating_sub(64));
        for timeline in first..local_tl {
            history.push(HistoryEntry {
                timeline,
                lsn,
                reason: PROMOTE_REASON.into(),
                timestamp: Some(cy.obs.wall_clock),
                new_leader: Some(cy.me().to_string()),
            });
        }
        let max = usize::try_from(cy.config.max_timelines_history).unwrap_or(usize::MAX);
        if max > 0 && history.len() > max {
            history.drain(..history.len() - max);
        }
        Some(Action::WriteHistory(history))
    }

    /// Our renewal was refused while the view still names us: the lock is lost.
    pub(super) fn lost_lock(&mut self, cy: &Cycle<'_>) -> Decision {
        if cy.obs.local.is_running_primary() {
            if cy.paused {
                return Decision::because(Reason::KeptPrimaryLockLost);
            }
            return Decision::new(
                vec![Action::Demote(StopMode::Immediate)],
                Reason::DemotedLockLost,
            );
        }
        Decision::because(Reason::NotPromotingLockLost)
    }
}
