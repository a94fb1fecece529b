//! Someone else holds the lock: follow it (or the `replicatefrom` member), rebuild when we cannot.

use super::{Cycle, Ha};
use crate::{
    Action, CannotFollowReason, Decision, Endpoint, LocalDb, Member, MemberState, Reason,
    RebuildMode, StartRole, StopMode,
};

/// Whether the WAL receiver streams from `target`, when the adapter reports a receiver at all.
///
/// The observed receiver beats our memory of whom we told it to follow: the database may have
/// been demoted, restarted or rebuilt since. Host *and* port must match the target's `conn_url`:
/// with several members on one host, a receiver still attached to a deposed primary that keeps
/// running would otherwise pass for one that follows the new leader.
fn pointed_at(local: &LocalDb, target: &Member) -> Option<bool> {
    let rx = local.receiver.as_ref()?;
    let want = Endpoint::from_conn_url(&target.data.conn_url).ok()?;
    match (rx.upstream_host.as_deref(), rx.upstream_port) {
        (Some(host), Some(port)) => Some(want.is(host, port)),
        (Some(host), None) if want.host.eq_ignore_ascii_case(host) => {
            // Not enough to tell one member on that host from another: trust our memory.
            None
        }
        // Another host, or a receiver that names no upstream at all.
        _ => Some(false),
    }
}

impl Ha {
    /// Whom to stream from: the `replicatefrom` member while its chain reaches the leader, else
    /// the lock holder; nobody when tagged `nostream` (see [`crate::topology::upstream_name`]).
    ///
    /// A cascade member far behind us (more than `maximum_lag_on_failover`) is not switched to:
    /// the server would stall until that member passed our position. We stay on the leader until
    /// it has caught up; once we follow it we keep it.
    pub(super) fn upstream(&self, cy: &Cycle<'_>) -> Option<Member> {
        let leader = cy.other_leader()?;
        let name = crate::topology::upstream_name(cy.cluster, cy.me(), &cy.node.tags)?;
        let Some(m) = cy.cluster.member(name).filter(|m| m.name != leader.name) else {
            return Some(leader.clone());
        };
        let following = self.mem.following.as_deref() == Some(m.name.as_str());
        let behind = cy.obs.local.wal_position().saturating_sub(m.wal_position());
        if !following && behind > cy.config.maximum_lag_on_failover {
            return Some(leader.clone());
        }
        Some(m.clone())
    }

    /// A standby that can never catch up is rebuilt from a running leader.
    pub(super) fn rebuild(&mut self, cy: &Cycle<'_>) -> Option<Decision> {
        let cf = cy.obs.local.cannot_follow.as_ref()?;
        let leader = cy.other_leader()?;
        if cy.paused {
            return Some(Decision::because(Reason::CannotFollowInPause {
                leader: leader.name.clone(),
                detail: cf.detail.clone(),
            }));
        }
        if leader.unreadable.is_some() || leader.data.state != MemberState::Running {
            return Some(Decision::because(Reason::CannotFollowLeaderNotRunning {
                leader: leader.name.clone(),
            }));
        }
        let mode = if cf.reason == CannotFollowReason::SystemIdMismatch || self.mem.rebuild_full {
            RebuildMode::Full
        } else {
            RebuildMode::Auto
        };
        // Name the mechanism the adapter will use: a copy is not a rewind.
        let reason = match (mode, cy.node.rewind_tool.as_deref()) {
            (RebuildMode::Auto, Some(tool)) => Reason::Rewinding {
                tool: tool.to_string(),
                leader: leader.name.clone(),
            },
            (RebuildMode::Auto, None) => Reason::CopyingNoRewindTool {
                leader: leader.name.clone(),
            },
            (RebuildMode::Full, _) => Reason::ReinitializingDiverged,
        };
        self.mem.following = Some(leader.name.clone());
        Some(Decision::new(
            vec![Action::Rebuild {
                source: leader.clone(),
                mode,
                timeline: cy.cluster.timeline(),
            }],
            reason,
        ))
    }

    /// The lock is someone else's and our database runs.
    pub(super) fn follow(&mut self, cy: &Cycle<'_>) -> Decision {
        let local = &cy.obs.local;
        let leader_name = cy.other_leader_name().unwrap_or_default();
        if local.is_running_primary() {
            if cy.paused {
                return Decision::because(Reason::KeptPrimaryNoLock);
            }
            return Decision::new(
                vec![Action::Demote(StopMode::Immediate)],
                Reason::DemoteNoLock,
            );
        }
        if let Some(d) = self.rebuild(cy) {
            return d;
        }
        let idle = Reason::Following {
            me: cy.me().to_string(),
            leader: leader_name.to_string(),
        };
        if local.process != crate::ProcessState::Running {
            return Decision::because(idle);
        }
        let Some(target) = self.upstream(cy) else {
            return self.stream_from_nobody(cy, idle);
        };
        let configured = pointed_at(local, &target)
            .unwrap_or(self.mem.following.as_deref() == Some(target.name.as_str()));
        if configured {
            self.mem.following = Some(target.name.clone());
            return Decision::because(idle);
        }
        self.mem.following = Some(target.name.clone());
        let reason = if target.name == leader_name {
            Reason::FollowingNewLeader {
                leader: leader_name.to_string(),
            }
        } else {
            Reason::FollowingReplicatefrom {
                upstream: target.name.clone(),
                leader: leader_name.to_string(),
            }
        };
        Decision::new(vec![Action::Follow { leader: target }], reason)
    }

    /// Tagged `nostream`: a receiver still streaming (the tag was set on a running standby) is
    /// stopped by restarting the standby with no upstream; WAL then comes from the archive only.
    fn stream_from_nobody(&mut self, cy: &Cycle<'_>, idle: Reason) -> Decision {
        self.mem.following = None;
        let streaming = cy
            .obs
            .local
            .receiver
            .as_ref()
            .is_some_and(|rx| rx.upstream_host.is_some());
        if !cy.node.tags.nostream || !streaming {
            return Decision::because(idle);
        }
        Decision::new(
            vec![Action::Start(StartRole::Standby { upstream: None })],
            Reason::NostreamStopping,
        )
    }
}
