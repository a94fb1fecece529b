//! A node with no usable data directory: bootstrap a new cluster, clone a member, or adopt data.

use super::{BootstrapStage, Cycle, Ha};
use crate::action::ActionKind;
use crate::{
    Action, DataDirState, DbRole, Decision, MemberState, OutcomeResult, ProcessState, Reason,
    StopMode,
};

/// The reason when our data belongs to another cluster than `/initialize` says, else `None`.
pub(super) fn system_id_mismatch(cy: &Cycle<'_>) -> Option<Reason> {
    let init = cy.cluster.initialize.as_deref().filter(|s| !s.is_empty())?;
    let local = cy.obs.local.system_id.as_deref()?;
    (cy.obs.local.data_dir == DataDirState::Initialized && init != local).then(|| {
        Reason::SystemIdMismatch {
            dcs: init.to_string(),
            local: local.to_string(),
        }
    })
}

/// `SetInitialize` to adopt an existing data directory when the DCS has no `/initialize` (a wiped DCS).
pub(super) fn adopt(cy: &Cycle<'_>) -> Option<Action> {
    let local = &cy.obs.local;
    if cy.cluster.initialize.is_some()
        || local.data_dir != DataDirState::Initialized
        || !cy.cluster.is_unlocked()
        || cy.paused
    {
        return None;
    }
    local
        .system_id
        .clone()
        .map(|system_id| Action::SetInitialize { system_id })
}

fn only(actions: Vec<Action>, reason: Reason) -> Option<Decision> {
    Some(Decision::new(actions, reason))
}

impl Ha {
    /// Bootstrap progress, an empty or unreadable data directory, system ID checks.
    pub(super) fn bootstrap(&mut self, cy: &Cycle<'_>) -> Option<Decision> {
        let local = &cy.obs.local;
        if cy.events.bootstrap_failed {
            self.mem.bootstrap = BootstrapStage::Idle;
            return only(vec![Action::CancelInitialize], Reason::BootstrapFailed);
        }
        if self.mem.bootstrap == BootstrapStage::Done {
            // A standby cluster's bootstrap ends with a running standby of the remote primary.
            let standby_ready = cy.standby
                && local.process == ProcessState::Running
                && local.role == DbRole::Standby;
            if local.is_running_primary() || standby_ready {
                self.mem.bootstrap = BootstrapStage::Idle;
                let mut actions = vec![Action::AcquireLeader];
                if let Some(system_id) = local.system_id.clone() {
                    actions.push(Action::SetInitialize { system_id });
                }
                if cy.cluster.config.is_none() {
                    actions.push(Action::WriteConfig {
                        config: cy.node.bootstrap_config.clone(),
                        version: None,
                    });
                }
                return only(actions, Reason::InitializedCluster);
            }
            if local.process.is_alive() {
                return only(Vec::new(), Reason::WaitingEndOfRecovery);
            }
            self.mem.bootstrap = BootstrapStage::Idle;
            return only(vec![Action::CancelInitialize], Reason::BootstrapFailed);
        }
        match &local.data_dir {
            DataDirState::Unreadable(err) => Some(self.data_dir_lost(cy, Some(err))),
            DataDirState::Empty if local.process.is_alive() => Some(self.data_dir_lost(cy, None)),
            DataDirState::Empty => Some(self.empty_data_dir(cy)),
            DataDirState::Initialized => {
                if let Some(msg) = system_id_mismatch(cy) {
                    if cy.hold {
                        return only(
                            vec![Action::ReleaseLeader],
                            Reason::ReleasedSystemIdMismatch,
                        );
                    }
                    return only(Vec::new(), msg);
                }
                if !self.mem.joined
                    && cy.cluster.initialize.is_none()
                    && cy.cluster.is_unlocked()
                    && !cy.paused
                    && local.process == ProcessState::Running
                    && local.role == DbRole::Standby
                {
                    // Patroni's refusal to join from a running replica: only a freshly started
                    // agent says it, until it has taken over its database.
                    return only(Vec::new(), Reason::AbortJoin);
                }
                None
            }
        }
    }

    /// The data directory became unreadable, or emptied, under us: stop a postmaster that may
    /// still accept writes *before* giving up the lock, so no other member is promoted while it
    /// runs (Patroni stops it too).
    ///
    /// The stop is a guard: when it fails the lock is not released, and the next step (at once,
    /// see [`needs_restep`](super::needs_restep)) keeps renewing while it tries again; a lock that
    /// nobody renews would expire under a primary that still runs. From this cycle on we do not
    /// claim to be primary (`/primary` answers 503). In pause the database is left alone and the
    /// lock released: paused members do not race, so nobody is promoted beside it.
    fn data_dir_lost(&mut self, cy: &Cycle<'_>, err: Option<&str>) -> Decision {
        self.mem.leader_expiry = None;
        let alive = cy.obs.local.process.is_alive() && !cy.paused;
        let mut actions = Vec::new();
        if cy.hold && alive && cy.events.stop_failed {
            actions.push(Action::RenewLeader);
        }
        if alive {
            actions.push(Action::Stop(StopMode::Immediate));
        }
        if cy.hold {
            actions.push(Action::ReleaseLeader);
            let reason = match err {
                Some(_) => Reason::ReleasedDataDirUnreadable,
                None => Reason::ReleasedDataDirEmpty,
            };
            return Decision::new(actions, reason);
        }
        let reason = match err {
            Some(e) => Reason::DataDirUnreadable {
                error: e.to_string(),
            },
            None if alive => Reason::StoppedDataDirEmpty,
            None => Reason::EmptyDataDir,
        };
        Decision::new(actions, reason)
    }

    /// Nothing on disk yet: bootstrap, clone, or wait for whoever is doing it.
    fn empty_data_dir(&mut self, cy: &Cycle<'_>) -> Decision {
        let take_lost = cy
            .obs
            .outcomes
            .iter()
            .any(|o| o.kind == ActionKind::TakeInitialize && o.result == OutcomeResult::Lost);
        if cy.hold {
            return Decision::new(vec![Action::ReleaseLeader], Reason::ReleasedDataDirEmpty);
        }
        if cy.paused {
            return Decision::because(Reason::EmptyDataDir);
        }
        if take_lost {
            return Decision::because(Reason::InitializeLockLost);
        }
        if cy.cluster.is_unlocked()
            && cy.cluster.initialize.is_none()
            && cy.node.can_bootstrap
            && cy.node.tags.allows_failover()
        {
            if cy.standby {
                return self.bootstrap_standby_leader(cy);
            }
            return Decision::new(
                vec![Action::TakeInitialize, Action::Bootstrap],
                Reason::Bootstrapping,
            );
        }
        if let Some(leader) = cy.other_leader() {
            let replica = cy.cluster.members.iter().find(|m| {
                m.name != cy.me()
                    && m.name != leader.name
                    && m.data.tags.clonefrom
                    && m.unreadable.is_none()
                    && m.data.state == MemberState::Running
            });
            let (source, reason) = match replica {
                Some(r) => (
                    r,
                    Reason::CloningFromReplica {
                        member: r.name.clone(),
                    },
                ),
                None => (
                    leader,
                    Reason::CloningFromLeader {
                        leader: leader.name.clone(),
                    },
                ),
            };
            self.mem.following = Some(leader.name.clone());
            return Decision::new(
                vec![Action::CloneFrom {
                    source: source.clone(),
                }],
                reason,
            );
        }
        // No leader: a replica method that needs none (a restore from backup) may still make
        // the data directory, unless someone is bootstrapping the cluster right now.
        if cy.node.clone_without_leader && cy.cluster.initialize.as_deref() != Some("") {
            return Decision::new(
                vec![Action::CloneWithoutLeader],
                Reason::CloningWithoutLeader,
            );
        }
        if let Some(d) = self.stale_initialize(cy) {
            return d;
        }
        Decision::because(Reason::WaitingForBootstrap)
    }

    /// `/initialize` says a bootstrap runs, but nobody holds the lock and no member is
    /// initializing or running a database: its bootstrapper died (an agent killed mid-initdb).
    /// After a `ttl` of that (its member key has expired by then) the key is removed so a member
    /// can bootstrap again, instead of waiting for ever.
    fn stale_initialize(&mut self, cy: &Cycle<'_>) -> Option<Decision> {
        let bootstrapping = cy.cluster.is_unlocked()
            && cy.cluster.initialize.as_deref() == Some("")
            && !cy.cluster.members.iter().any(|m| {
                m.unreadable.is_none()
                    && matches!(
                        m.data.state,
                        MemberState::Initializing | MemberState::Running | MemberState::Starting
                    )
            });
        if !bootstrapping || cy.paused {
            self.mem.stale_init_since = None;
            return None;
        }
        let since = *self.mem.stale_init_since.get_or_insert(cy.obs.now);
        if crate::instant::between(since, cy.obs.now) < cy.config.ttl_duration() {
            return None;
        }
        self.mem.stale_init_since = None;
        Some(Decision::new(
            vec![Action::CancelInitialize],
            Reason::RemovedStaleInitialize,
        ))
    }
}
