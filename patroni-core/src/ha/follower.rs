//! Someone else holds the lock: follow it (or the `replicatefrom` member), rebuild when we cannot.

use super::{Cycle, Ha};
use crate::{
    Action, CannotFollowReason, Decision, Endpoint, LocalDb, Member, MemberState, RebuildMode,
    StartRole, StopMode,
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

    /// Seed rule 4: a standby that can never catch up is rebuilt from a running leader.
    pub(super) fn rebuild(&mut self, cy: &Cycle<'_>) -> Option<Decision> {
        let cf = cy.obs.local.cannot_follow.as_ref()?;
        let leader = cy.other_leader()?;
        if cy.paused {
            return Some(Decision::message(format!(
                "cannot follow the leader ({}): {}; not rebuilding while paused",
                leader.name, cf.detail
            )));
        }
        if leader.unreadable.is_some() || leader.data.state != MemberState::Running {
            return Some(Decision::message(format!(
                "cannot follow the leader ({}), waiting for it to run before rebuilding",
                leader.name
            )));
        }
        let mode = if cf.reason == CannotFollowReason::SystemIdMismatch || self.mem.rebuild_full {
            RebuildMode::Full
        } else {
            RebuildMode::Auto
        };
        // Name the mechanism the adapter will use: a copy is not a rewind.
        let message = match (mode, cy.node.rewind_tool.as_deref()) {
            (RebuildMode::Auto, Some(tool)) => format!("running {tool} from {}", leader.name),
            (RebuildMode::Auto, None) => format!(
                "reinitializing from {}: no rewind tool configured, the data will be copied",
                leader.name
            ),
            (RebuildMode::Full, _) => "reinitializing due to diverged timelines".to_string(),
        };
        self.mem.following = Some(leader.name.clone());
        Some(Decision {
            actions: vec![Action::Rebuild {
                source: leader.clone(),
                mode,
                timeline: cy.cluster.timeline(),
            }],
            message,
            ineligible: Vec::new(),
        })
    }

    /// The lock is someone else's and our database runs.
    pub(super) fn follow(&mut self, cy: &Cycle<'_>) -> Decision {
        let local = &cy.obs.local;
        let leader_name = cy.other_leader_name().unwrap_or_default();
        if local.is_running_primary() {
            if cy.paused {
                return Decision::message("continue to run as primary without lock");
            }
            return Decision {
                actions: vec![Action::Demote(StopMode::Immediate)],
                message: super::DEMOTE_NO_LOCK.into(),
                ineligible: Vec::new(),
            };
        }
        if let Some(d) = self.rebuild(cy) {
            return d;
        }
        let idle = format!(
            "no action. I am ({}), a secondary, and following a leader ({leader_name})",
            cy.me()
        );
        if local.process != crate::ProcessState::Running {
            return Decision::message(idle);
        }
        let Some(target) = self.upstream(cy) else {
            return self.stream_from_nobody(cy, idle);
        };
        let configured = pointed_at(local, &target)
            .unwrap_or(self.mem.following.as_deref() == Some(target.name.as_str()));
        if configured {
            self.mem.following = Some(target.name.clone());
            return Decision::message(idle);
        }
        self.mem.following = Some(target.name.clone());
        let message = if target.name == leader_name {
            format!("following a new leader ({leader_name})")
        } else {
            format!(
                "following ({}) as replicatefrom; the leader is ({leader_name})",
                target.name
            )
        };
        Decision {
            actions: vec![Action::Follow { leader: target }],
            message,
            ineligible: Vec::new(),
        }
    }

    /// Tagged `nostream`: a receiver still streaming (the tag was set on a running standby) is
    /// stopped by restarting the standby with no upstream; WAL then comes from the archive only.
    fn stream_from_nobody(&mut self, cy: &Cycle<'_>, idle: String) -> Decision {
        self.mem.following = None;
        let streaming = cy
            .obs
            .local
            .receiver
            .as_ref()
            .is_some_and(|rx| rx.upstream_host.is_some());
        if !cy.node.tags.nostream || !streaming {
            return Decision::message(idle);
        }
        Decision {
            actions: vec![Action::Start(StartRole::Standby { upstream: None })],
            message: "nostream is set: not streaming from anyone".into(),
            ineligible: Vec::new(),
        }
    }
}
