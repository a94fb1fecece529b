//! Failsafe mode (`failsafe_mode` in `/config`), as Patroni's: the leader keeps `/failsafe`
//! listing the members; while the DCS cannot be read, a primary asks every other member in it
//! to confirm it as the leader (`POST /failsafe`) and keeps running for `ttl` after a round that
//! all confirmed. A member that confirmed does not race for `ttl` after it.
//!
//! Why two writable primaries cannot arise: a round's confirmations all come after it started,
//! so every member that could race waits at least `ttl` from the round's start, which is as long
//! as the primary runs on that round (the fence stops it `safety_margin` earlier). A member
//! missing from `/failsafe` never races, and a freshly started agent (which forgot whom it
//! confirmed) waits `ttl` before its first race.

use super::{Cycle, Ha};
use crate::action::ActionKind;
use crate::instant;
use crate::policy::Ineligible;
use crate::{Action, Cluster, Decision, DynamicConfig, FailsafeTopology, Observation, Reason};

/// How many `ttl`s a member whose key is gone stays in `/failsafe`.
pub(super) const FAILSAFE_GRACE_TTLS: u32 = 10;

impl Ha {
    /// Whether failsafe mode keeps this node a primary right now (a confirmed round's `ttl`
    /// lasts), what `/patroni` reports as `failsafe_mode_is_active` on a primary.
    pub fn failsafe_active(&self, now: u64) -> bool {
        self.mem.failsafe_until.is_some_and(|u| now < u)
    }

    /// Remembers the `/failsafe` topology of a view read from the DCS; the DCS answering ends
    /// any failsafe period (the lease counts again).
    pub(super) fn failsafe_seen(&mut self, cluster: &Cluster) {
        self.mem.failsafe_topology.clone_from(&cluster.failsafe);
        self.mem.failsafe_until = None;
    }

    /// The DCS is unreachable and we run as a primary: with failsafe mode on, ask the members of
    /// the last `/failsafe` topology, or keep running on the round they all just confirmed.
    /// `None` leaves the decision to the lease (a refused round, no topology naming us, or
    /// failsafe mode off).
    pub(super) fn failsafe_outage(
        &mut self,
        obs: &Observation,
        config: &DynamicConfig,
    ) -> Option<Decision> {
        if !config.failsafe_mode {
            return None;
        }
        let started_at = match &obs.failsafe.round {
            Some(round) if round.confirmed() => round.started_at,
            Some(_) => return None,
            None => {
                let topology = self.mem.failsafe_topology.as_ref()?;
                let me = &self.node.name;
                if !topology.contains_key(me) {
                    return None;
                }
                let members: Vec<(String, String)> = topology
                    .iter()
                    .filter(|(name, _)| *name != me)
                    .map(|(n, u)| (n.clone(), u.clone()))
                    .collect();
                if !members.is_empty() {
                    return Some(Decision::new(
                        vec![Action::ConfirmFailsafe { members }],
                        Reason::FailsafeAsking,
                    ));
                }
                // A single-member cluster has nobody to ask.
                obs.now
            }
        };
        let until = instant::after(started_at, config.ttl_duration());
        self.mem.failsafe_until = Some(until);
        self.mem.leader_expiry = Some(self.mem.leader_expiry.map_or(until, |e| e.max(until)));
        Some(Decision::because(Reason::FailsafeKept))
    }

    /// The lock holder keeps `/failsafe` listing the members it sees (and itself), written
    /// after the renewal so a refused one skips it.
    ///
    /// A listed member whose key is gone stays listed for [`FAILSAFE_GRACE_TTLS`] `ttl`s: a
    /// member that is down a while (stalled, restarting, cut off) must not shrink the topology
    /// to the leader alone, which would let a leader cut off later run on nobody's word and
    /// leave the others, no longer listed, unable to tell it from a lost one.
    pub(super) fn failsafe_write(&mut self, cy: &Cycle<'_>, d: &mut Decision) {
        let listed = cy.cluster.failsafe.as_ref();
        let now = cy.obs.now;
        self.mem
            .failsafe_absent
            .retain(|n, _| listed.is_some_and(|t| t.contains_key(n)));
        for name in listed.into_iter().flat_map(|t| t.keys()) {
            if cy.cluster.member(name).is_some() {
                self.mem.failsafe_absent.remove(name);
            } else {
                self.mem.failsafe_absent.entry(name.clone()).or_insert(now);
            }
        }
        if !cy.config.failsafe_mode || !cy.hold || !d.has(ActionKind::RenewLeader) {
            return;
        }
        let grace = cy.config.ttl_duration().saturating_mul(FAILSAFE_GRACE_TTLS);
        let mut want: FailsafeTopology = listed
            .into_iter()
            .flatten()
            .filter(|(n, _)| {
                self.mem
                    .failsafe_absent
                    .get(*n)
                    .is_some_and(|since| now < instant::after(*since, grace))
            })
            .map(|(n, u)| (n.clone(), u.clone()))
            .collect();
        want.extend(
            cy.cluster
                .members
                .iter()
                .filter(|m| !m.data.api_url.is_empty())
                .map(|m| (m.name.clone(), m.data.api_url.clone())),
        );
        want.insert(cy.node.name.clone(), cy.node.api_url.clone());
        if cy.cluster.failsafe.as_ref() != Some(&want) {
            d.actions.push(Action::WriteFailsafe(want));
        }
    }

    /// With failsafe mode on, a standby does not race while a primary may still run on its
    /// confirmation, or within `ttl` of its agent's start (a restarted agent has forgotten whom
    /// it confirmed).
    pub(super) fn failsafe_holds_race(&self, cy: &Cycle<'_>) -> Option<Decision> {
        if !cy.config.failsafe_mode {
            return None;
        }
        let me = cy.me();
        let ttl = cy.config.ttl_duration();
        let why = if let Some(l) = cy
            .obs
            .failsafe
            .leader
            .as_ref()
            .filter(|l| l.name != me && l.is_fresh(cy.obs.now, ttl))
        {
            Reason::FollowingFailsafeLeader {
                leader: l.name.clone(),
            }
        } else if self
            .mem
            .first_step
            .is_some_and(|t| cy.obs.now < instant::after(t, ttl))
        {
            Reason::FailsafeStartWait
        } else {
            return None;
        };
        Some(Decision {
            actions: Vec::new(),
            ineligible: vec![(me.to_string(), Ineligible::Policy(why.to_string()))],
            reason: why,
        })
    }
}

impl Ha {
    /// The `/failsafe` members a standby missing from it must also probe before racing: a
    /// primary cut off from the DCS never asks it, so only their answers rule such a primary out.
    pub(super) fn failsafe_probe_targets<'c>(&self, cy: &Cycle<'c>) -> Vec<&'c str> {
        let me = cy.me();
        match cy.cluster.failsafe.as_ref() {
            Some(t) if cy.config.failsafe_mode && !t.contains_key(me) => {
                t.keys().map(String::as_str).filter(|n| *n != me).collect()
            }
            _ => Vec::new(),
        }
    }

    /// A standby missing from `/failsafe` races only when every member listed there answered
    /// the probe (one that answers as a primary blocks the race on its own, as any live
    /// primary does): a silent one may be a primary riding a DCS outage on its topology.
    pub(super) fn failsafe_silent_member(
        &self,
        cy: &Cycle<'_>,
        answered: &[&crate::PeerStatus],
    ) -> Option<Decision> {
        let silent = self
            .failsafe_probe_targets(cy)
            .into_iter()
            .find(|n| !answered.iter().any(|p| p.name == *n))?;
        let why = Reason::FailsafeSilentMember {
            member: silent.to_string(),
        };
        Some(Decision {
            actions: Vec::new(),
            ineligible: vec![(cy.me().to_string(), Ineligible::Policy(why.to_string()))],
            reason: why,
        })
    }
}

/// Who did not confirm this cycle's failsafe round and why, for the status line; empty when
/// no round was refused.
pub(super) fn refusals(obs: &Observation) -> Vec<(String, String)> {
    obs.failsafe
        .round
        .as_ref()
        .map(|r| r.refused.clone())
        .unwrap_or_default()
}
