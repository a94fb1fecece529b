//! Switchover and manual failover, leader side: demote for a healthy candidate, or clear the request.

use std::time::Duration;

use super::{member_candidate, Cycle, Ha};
use crate::policy::Ineligible;
use crate::{Action, Decision, Reason, RequestKind, StopMode};

/// What the leader does about a pending `/failover` request.
pub(super) enum Handover {
    /// No request, or none we act on this cycle.
    Nothing,
    /// Hand over: the decision demotes us and releases the lock.
    Demote(Decision),
    /// Stay leader; add these actions (e.g. `ClearFailover`) and say this reason.
    Note(Decision),
}

fn note(actions: Vec<Action>, reason: Reason) -> Handover {
    Handover::Note(Decision::new(actions, reason))
}

impl Ha {
    /// The leader decides about a switchover or manual failover request.
    pub(super) fn handover(&mut self, cy: &Cycle<'_>) -> Handover {
        let Some(fo) = cy.cluster.failover.as_ref().filter(|f| !f.value.is_empty()) else {
            return Handover::Nothing;
        };
        let req = &fo.value;
        let clear = Action::ClearFailover {
            version: fo.version,
        };
        // In pause only a failover to a named member is carried out (Patroni's way to move the
        // primary during maintenance); anything else would be an automatic choice.
        if cy.paused && req.candidate.is_none() {
            return note(vec![clear], Reason::FailoverNeedsCandidateInPause);
        }
        let kind = if req.is_switchover() {
            RequestKind::Switchover
        } else {
            RequestKind::Failover
        };
        let me = cy.me();
        if let Some(at) = req.scheduled_at {
            let wall = cy.obs.wall_clock.0;
            let loop_wait = i64::try_from(crate::instant::millis(cy.config.loop_wait_duration()))
                .unwrap_or(i64::MAX);
            if at.0 > wall.saturating_add(loop_wait) {
                let left =
                    Duration::from_millis(u64::try_from(at.0.saturating_sub(wall)).unwrap_or(0));
                return note(Vec::new(), Reason::AwaitingScheduled { kind, at, left });
            }
            if at.0 < wall.saturating_sub(loop_wait.saturating_mul(3) / 2) {
                return note(vec![clear], Reason::StaleRequest { kind, at });
            }
        }
        if let Some(leader) = req.leader.as_deref().filter(|l| *l != me) {
            return note(
                vec![clear],
                Reason::RequestFromOtherLeader {
                    kind,
                    leader: leader.to_string(),
                    me: me.to_string(),
                },
            );
        }
        if req.candidate.as_deref() == Some(me) {
            return note(
                vec![clear],
                Reason::RequestForSelf {
                    kind,
                    me: me.to_string(),
                },
            );
        }
        let ctx = cy.race_context(cy.obs.local.write_lsn, &self.mem);
        let mut ineligible = Vec::new();
        let targets: Vec<&str> = match req.candidate.as_deref() {
            Some(c) => vec![c],
            None => cy
                .cluster
                .members
                .iter()
                .map(|m| m.name.as_str())
                .filter(|n| *n != me)
                .collect(),
        };
        let mut healthy = false;
        for name in targets {
            let verdict = match cy.cluster.member(name) {
                None => Err(Ineligible::Policy("no such member".into())),
                Some(m) => match &m.unreadable {
                    Some(why) => Err(Ineligible::Unreadable(why.clone())),
                    None => self.policy.eligible(&member_candidate(m), &ctx),
                },
            };
            match verdict {
                Ok(()) => healthy = true,
                Err(reason) => ineligible.push((name.to_string(), reason)),
            }
        }
        if healthy {
            return Handover::Demote(Decision {
                actions: vec![Action::Demote(StopMode::Fast), Action::ReleaseLeader],
                reason: Reason::HandingOver { kind },
                ineligible,
            });
        }
        Handover::Note(Decision {
            actions: vec![clear],
            reason: Reason::NoHealthyMembers { kind },
            ineligible,
        })
    }
}
