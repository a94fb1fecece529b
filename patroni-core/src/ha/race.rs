//! Nobody holds the lock: decide whether this node is the healthiest and may race for it, as
//! Patroni's `is_healthiest_node` does, with the stricter rules noted where they apply.

use super::{member_candidate, Cycle, Ha};
use crate::instant;
use crate::policy::{Candidate, Ineligible, RaceContext};
use crate::{
    Action, DbRole, Decision, Endpoint, FailoverRequest, MemberRole, MemberState, PeerStatus,
    ProcessState, Reason, StopMode, Versioned,
};

/// How a pending `/failover` request shapes our race.
enum Request<'a> {
    /// None pending.
    None,
    /// It names us: race even if a peer is further ahead (the lag limit still holds).
    ForMe,
    /// It names another member, which may still be healthy.
    ForOther(&'a str),
    /// It names nobody (or an absent member): the healthiest wins.
    Anyone,
}

fn peer_candidate(p: &PeerStatus) -> Candidate {
    Candidate {
        name: p.name.clone(),
        tags: p.tags.clone(),
        wal_position: p.wal_position,
        timeline: p.timeline,
        running: p.state == MemberState::Running,
    }
}

fn not_allowed(reason: &Ineligible) -> bool {
    matches!(
        reason,
        Ineligible::NoFailoverTag | Ineligible::NotTheCandidate { .. } | Ineligible::Paused
    )
}

/// We do not race: `why` names us ineligible, `said` is the line (Patroni's "following a
/// different leader" when `None`).
fn refuse(me: &str, why: Ineligible, said: Option<Reason>) -> Decision {
    let reason = said.unwrap_or_else(|| {
        if not_allowed(&why) {
            Reason::NotAllowedToPromote
        } else {
            Reason::NotHealthiest
        }
    });
    Decision {
        actions: Vec::new(),
        reason,
        ineligible: vec![(me.to_string(), why)],
    }
}

/// The member a pending, due failover request names: in pause, the only one that may race.
fn paused_candidate<'a>(cy: &Cycle<'a>) -> Option<&'a str> {
    let req = cy.cluster.failover_request()?;
    let due = req
        .scheduled_at
        .is_none_or(|at| at.0 <= cy.obs.wall_clock.0);
    req.candidate.as_deref().filter(|_| due)
}

/// The facts a standby's race is decided on, read once from the cycle.
struct Race<'c> {
    me: &'c str,
    me_c: Candidate,
    /// The pending `/failover` request, if any.
    failover: Option<&'c Versioned<FailoverRequest>>,
    request: Request<'c>,
    /// The leader the request names (a switchover's former leader).
    old_leader: Option<&'c str>,
}

impl<'c> Race<'c> {
    fn new(cy: &Cycle<'c>) -> Race<'c> {
        let me = cy.me();
        let failover = cy.cluster.failover.as_ref().filter(|f| !f.value.is_empty());
        let request = match failover.map(|f| &f.value) {
            None => Request::None,
            Some(r) => match r.candidate.as_deref() {
                Some(c) if c == me => Request::ForMe,
                Some(c)
                    if cy
                        .cluster
                        .member(c)
                        .is_some_and(|m| member_candidate(m).running) =>
                {
                    Request::ForOther(c)
                }
                _ => Request::Anyone,
            },
        };
        Race {
            me,
            me_c: cy.me_candidate(),
            failover,
            request,
            old_leader: failover.and_then(|f| f.value.leader.as_deref()),
        }
    }
}

/// The fresh, reachable answers of the peers we asked; `None` while there are peers to ask and
/// no answers yet.
fn answered_peers<'c>(cy: &Cycle<'c>, others: &[&str]) -> Option<Vec<&'c PeerStatus>> {
    let me = cy.me();
    let fresh_within = cy.config.ttl_duration();
    match &cy.obs.peers {
        None if !others.is_empty() => None,
        None => Some(Vec::new()),
        Some(ps) => Some(
            ps.iter()
                .filter(|p| {
                    p.reachable
                        && p.name != me
                        && instant::between(p.fetched_at, cy.obs.now) <= fresh_within
                })
                .collect(),
        ),
    }
}

impl Ha {
    /// The cluster is unlocked: the leader race (see the race rows of [`crate::decisions`]).
    pub(super) fn race(&mut self, cy: &Cycle<'_>) -> Decision {
        let local = &cy.obs.local;
        let me = cy.me();
        if local.is_running_primary() {
            return self.race_as_primary(cy);
        }
        if let Some(d) = self.failsafe_holds_race(cy) {
            return d;
        }
        // In pause only the member an operator named in a failover request races.
        if cy.paused && paused_candidate(cy) != Some(me) {
            return refuse(
                me,
                Ineligible::Paused,
                Some(Reason::SecondaryNoLeader { me: me.to_string() }),
            );
        }
        if local.process != ProcessState::Running || local.role != DbRole::Standby {
            return refuse(
                me,
                Ineligible::NotRunning,
                Some(Reason::NotRunningAsStandby),
            );
        }
        // As Patroni after a failed pre_promote script: the lock was given back for another
        // member to take, so we do not race for it again for `ttl`.
        if let Some(at) = self.mem.promote_failed_at {
            if cy.obs.now < instant::after(at, cy.config.ttl_duration()) {
                return refuse(
                    me,
                    Ineligible::Policy("backing off after a failed promotion".into()),
                    Some(Reason::PromoteBackoff),
                );
            }
        }
        self.race_as_standby(cy)
    }

    /// A running primary takes the free lock unless it is on a stale timeline.
    fn race_as_primary(&mut self, cy: &Cycle<'_>) -> Decision {
        let local = &cy.obs.local;
        let me = cy.me();
        if cy.paused {
            let ok = match cy.cluster.initialize.as_deref() {
                None | Some("") => true,
                Some(id) => local.system_id.as_deref() == Some(id),
            };
            if !ok {
                return Decision::because(Reason::SystemIdDiffersNoLock);
            }
            let mut actions = vec![Action::AcquireLeader];
            if let (Some(fo), Some(c)) = (cy.cluster.failover.as_ref(), paused_candidate(cy)) {
                if cy.cluster.member(c).is_some() {
                    // The operator moves the primary to `c`: leave the lock to it.
                    return refuse(
                        me,
                        Ineligible::NotTheCandidate {
                            candidate: c.to_string(),
                        },
                        Some(Reason::ManualFailoverPending {
                            candidate: c.to_string(),
                        }),
                    );
                }
                // A candidate that is gone would hold the cluster leaderless for ever.
                actions.push(Action::ClearFailover {
                    version: fo.version,
                });
            }
            return Decision::new(actions, Reason::AcquiredLock);
        }
        let cluster_tl = cy.cluster.timeline();
        if let Some(tl) = local.timeline.filter(|tl| *tl < cluster_tl) {
            let mut d = refuse(
                me,
                Ineligible::TimelineBehind {
                    member: Some(tl),
                    cluster: cluster_tl,
                },
                Some(Reason::DemoteNotHealthiest),
            );
            d.actions.push(Action::Demote(StopMode::Immediate));
            return d;
        }
        let mut actions = vec![Action::AcquireLeader];
        if let Some(fo) = cy.cluster.failover.as_ref() {
            actions.push(Action::ClearFailover {
                version: fo.version,
            });
        }
        Decision::new(actions, Reason::AcquiredLock)
    }

    /// A running standby: eligible, healthiest among the peers that answered, and not held back.
    ///
    /// The guards run in this order, the first refusal wins: our own eligibility and
    /// `primary_race_backoff`, the peer probe, members whose silence may hide a primary, a
    /// failover request naming someone else, a live primary elsewhere, a healthier peer, quorum.
    fn race_as_standby(&mut self, cy: &Cycle<'_>) -> Decision {
        let race = Race::new(cy);
        let ctx = cy.race_context(cy.cluster.leader_optime(), &self.mem);
        if let Err(why) = self.policy.eligible(&race.me_c, &ctx) {
            return refuse(race.me, why, None);
        }
        if let (Request::None, Some(wait)) = (&race.request, self.race_backoff(cy)) {
            return wait;
        }
        let others = self.probe_targets(cy);
        let Some(peers) = answered_peers(cy, &others) else {
            return Decision::new(
                vec![Action::FetchPeerStatus {
                    members: others.iter().map(|s| s.to_string()).collect(),
                }],
                Reason::CheckingPeers,
            );
        };
        let silent = others.iter().any(|n| !peers.iter().any(|p| p.name == *n));
        if let Some(d) = self.held_back_by_silence(cy, &race, &peers, silent) {
            return d;
        }
        if let Some(d) = self.defer_to_request(cy, &race, &ctx, &peers) {
            return d;
        }
        if let Some(d) = self.live_primary_elsewhere(cy, &peers) {
            return d;
        }
        if let Some(d) = self.healthier_peer(cy, &race, &ctx, &peers) {
            return d;
        }
        if let Some(refusal) = self.quorum_refusal(cy, &peers, race.me_c.wal_position) {
            return refusal;
        }
        self.win_race(cy, race.failover)
    }

    /// The members whose agents we ask before racing: every member with a REST API, the last
    /// leader when its key is gone, and the `/failsafe` members we must hear from.
    fn probe_targets<'a>(&'a self, cy: &Cycle<'a>) -> Vec<&'a str> {
        let me = cy.me();
        let mut others: Vec<&str> = cy
            .cluster
            .members
            .iter()
            .filter(|m| m.name != me && !m.data.api_url.is_empty())
            .map(|m| m.name.as_str())
            .collect();
        // The last leader is asked too when its member key is gone with its lease: cut off from
        // the DCS (and paused, so nothing fenced it) it may still run as a writable primary.
        if let Some((former, _)) = self.mem.former_leader.as_ref() {
            if former != me && cy.cluster.member(former).is_none() {
                others.push(former.as_str());
            }
        }
        for n in self.failsafe_probe_targets(cy) {
            if !others.contains(&n) {
                others.push(n);
            }
        }
        others
    }

    /// Members that did not answer may hide a primary: a `/failsafe` member while we are not
    /// listed, a silent member just after a resume, the leader of a pause that never confirmed
    /// the resume, and any silent member when a failover in pause names us.
    fn held_back_by_silence(
        &self,
        cy: &Cycle<'_>,
        race: &Race<'_>,
        peers: &[&PeerStatus],
        silent: bool,
    ) -> Option<Decision> {
        if let Some(d) = self.failsafe_silent_member(cy, peers) {
            return Some(d);
        }
        if let Some(wait) = self.after_resume(cy, silent) {
            return Some(wait);
        }
        if let Some(former) = self.unconfirmed_paused_leader(cy, peers) {
            if !matches!(race.request, Request::ForMe) {
                return Some(refuse(
                    race.me,
                    Ineligible::Policy(format!("{former} may still run as primary in pause")),
                    Some(Reason::PausedLeaderUnconfirmed { former }),
                ));
            }
        }
        // A manual failover in pause promotes only beside members that answered: a silent one
        // may be a primary that lost its lock (paused, nothing stopped it) and still takes writes.
        if cy.paused && silent {
            return Some(refuse(
                race.me,
                Ineligible::Paused,
                Some(Reason::SilentMemberInPause),
            ));
        }
        None
    }

    /// A pending `/failover` holds us back: it names another member that could win, or we led
    /// before the switchover and someone else can take over.
    fn defer_to_request(
        &self,
        cy: &Cycle<'_>,
        race: &Race<'_>,
        ctx: &RaceContext<'_>,
        peers: &[&PeerStatus],
    ) -> Option<Decision> {
        let me = race.me;
        if let Request::ForOther(c) = race.request {
            let answered = cy
                .obs
                .peers
                .as_ref()
                .and_then(|ps| ps.iter().find(|p| p.name == c));
            // The named candidate holds the others back only while it could actually win: a
            // candidate that is down, unreachable or itself ineligible (e.g. lagging) would
            // leave the cluster leaderless, so the request then counts as naming nobody.
            let could_win = match answered {
                None => cy
                    .cluster
                    .member(c)
                    .is_some_and(|m| self.policy.eligible(&member_candidate(m), ctx).is_ok()),
                Some(p) => {
                    p.reachable
                        && p.state == MemberState::Running
                        && self.policy.eligible(&peer_candidate(p), ctx).is_ok()
                        && !super::quorum::behind_in_quorum(cy, peers, p, race.me_c.wal_position)
                }
            };
            if could_win {
                return Some(refuse(
                    me,
                    Ineligible::NotTheCandidate {
                        candidate: c.to_string(),
                    },
                    None,
                ));
            }
        }
        if race.old_leader == Some(me) && !matches!(race.request, Request::ForMe) {
            let someone_else = cy.cluster.members.iter().any(|m| {
                m.name != me
                    && peers.iter().any(|p| p.name == m.name)
                    && self.policy.eligible(&member_candidate(m), ctx).is_ok()
            });
            if someone_else {
                return Some(refuse(
                    me,
                    Ineligible::Policy(
                        "former leader of a switchover; another member can take over".into(),
                    ),
                    None,
                ));
            }
        }
        None
    }

    /// A server that may take writes runs elsewhere: promoting beside it is two primaries.
    fn live_primary_elsewhere(&self, cy: &Cycle<'_>, peers: &[&PeerStatus]) -> Option<Decision> {
        let me = cy.me();
        // A peer whose agent says its database runs as a writable primary blocks the race, for
        // as long as it says so. Its own agent demotes it before its lease can run out unless
        // it is paused (then the operator decides) or its agent cannot act (then the node's
        // fence stops the database).
        if let Some(p) = peers.iter().find(|p| p.role == MemberRole::Primary) {
            return Some(refuse(
                me,
                Ineligible::NotHealthiest {
                    better: p.name.clone(),
                },
                Some(Reason::PrimaryStillAlive {
                    primary: p.name.clone(),
                }),
            ));
        }
        let upstream = self.unnamed_upstream(cy, peers)?;
        Some(refuse(
            me,
            Ineligible::Policy(format!("streaming from {upstream}, a live server")),
            Some(Reason::UnnamedUpstream { upstream }),
        ))
    }

    /// A peer the policy prefers to us (unless a request names us): it wins, not we.
    fn healthier_peer(
        &self,
        cy: &Cycle<'_>,
        race: &Race<'_>,
        ctx: &RaceContext<'_>,
        peers: &[&PeerStatus],
    ) -> Option<Decision> {
        if matches!(race.request, Request::ForMe) {
            return None;
        }
        // A member without a key (its lease ran out) cannot race: only its primary claim
        // counts (see `live_primary_elsewhere`), not its WAL position.
        let better = peers.iter().find(|p| {
            p.tags.allows_failover()
                && !p.watchdog_failed
                && Some(p.name.as_str()) != race.old_leader
                && cy.cluster.member(&p.name).is_some()
                && self.policy.prefers(&peer_candidate(p), &race.me_c, ctx)
        })?;
        Some(refuse(
            race.me,
            Ineligible::NotHealthiest {
                better: better.name.clone(),
            },
            None,
        ))
    }

    /// We won: take the lock, clear the request, and promote (or become the standby leader).
    fn win_race(
        &mut self,
        cy: &Cycle<'_>,
        failover: Option<&Versioned<FailoverRequest>>,
    ) -> Decision {
        let mut actions = vec![Action::AcquireLeader];
        // In pause the request stays until we run as primary (the leader clears it then): it is
        // what tells this lock holder to wait for its promotion instead of giving the lock back.
        if let Some(fo) = failover.filter(|_| !cy.paused) {
            actions.push(Action::ClearFailover {
                version: fo.version,
            });
        }
        if cy.standby {
            self.become_standby_leader(cy, &mut actions);
            return Decision::new(actions, Reason::PromotedStandbyLeader);
        }
        actions.extend(self.sync_on_promote(cy));
        actions.push(Action::Promote {
            timeline: cy.next_timeline(),
            planned: failover.is_some_and(|f| f.value.is_switchover()),
        });
        Decision::new(actions, Reason::PromotedByRace)
    }

    /// The server our database still streams from, when neither a member key nor our memory of
    /// the last leader names it. A live WAL sender is a running server: after an agent restart
    /// (no memory) it may be a primary that lost its key while cut off in pause, and no probe can
    /// reach an agent nobody knows the address of. A known former leader is asked instead: its
    /// answer decides, so a silently vanished host does not hold the race for the receiver's
    /// timeout.
    ///
    /// After a resume that no lock holder has confirmed, a silent former leader counts as such a
    /// server too while our database streams from it: it may have been cut off in pause (so it
    /// never saw the resume) and then lost its agent, leaving nobody to stop it.
    fn unnamed_upstream(&self, cy: &Cycle<'_>, peers: &[&PeerStatus]) -> Option<String> {
        let rx = cy.obs.local.receiver.as_ref().filter(|r| r.streaming)?;
        if self.streams_from_remote(cy) {
            return None;
        }
        let Some(host) = rx.upstream_host.as_deref() else {
            return Some("an upstream that reports no address".into());
        };
        let names = |e: &Endpoint| match rx.upstream_port {
            Some(port) => e.is(host, port),
            None => e.host.eq_ignore_ascii_case(host),
        };
        let by_key = cy.cluster.members.iter().any(|m| {
            m.name != cy.me() && Endpoint::from_conn_url(&m.data.conn_url).is_ok_and(|e| names(&e))
        });
        let former = self.mem.former_endpoint.as_ref().is_some_and(names);
        let former_silent = self
            .mem
            .former_leader
            .as_ref()
            .is_some_and(|(n, _)| n != cy.me() && !peers.iter().any(|p| p.name == *n));
        let paused_former = former && former_silent && self.mem.resume_unconfirmed;
        if (by_key || former) && !paused_former {
            return None;
        }
        Some(match rx.upstream_port {
            Some(port) => Endpoint {
                host: host.to_string(),
                port,
            }
            .to_string(),
            None => host.to_string(),
        })
    }

    /// The leader we last saw while paused, when it has not confirmed the resume (its member
    /// key never showed it unpaused) and does not answer now. Cut off from the DCS in pause it
    /// keeps running as primary (pause means hands off, even without the DCS), never learns of
    /// the resume, and its fence follows its agent, which is alive: nothing stops it. Only its
    /// answer, or an operator's manual failover, lets the race go on.
    fn unconfirmed_paused_leader(&self, cy: &Cycle<'_>, peers: &[&PeerStatus]) -> Option<String> {
        if cy.paused || !self.mem.resume_unconfirmed || self.mem.paused_seen.is_none() {
            return None;
        }
        let (former, _) = self.mem.former_leader.as_ref()?;
        let silent = former != cy.me() && !peers.iter().any(|p| p.name == *former);
        silent.then(|| former.clone())
    }

    /// Just resumed with nobody holding the lock and a member that did not answer: a primary
    /// that ran without the lock while paused may still be writable if its agent stalled, and
    /// only its fence stops it, within `ttl` of its agent's last cycle. Wait that long.
    fn after_resume(&self, cy: &Cycle<'_>, someone_silent: bool) -> Option<Decision> {
        let until = instant::after(self.mem.paused_seen?, cy.config.ttl_duration());
        if cy.paused || !someone_silent || cy.obs.now >= until {
            return None;
        }
        Some(Decision::because(Reason::AfterResume {
            left: instant::between(cy.obs.now, until),
        }))
    }

    /// With `primary_race_backoff`, hold the race back during the first loop of the
    /// window, and while WAL still arrives before the window ends, so the most advanced standby wins.
    fn race_backoff(&self, cy: &Cycle<'_>) -> Option<Decision> {
        let backoff = cy.config.primary_race_backoff_duration();
        let since = self.mem.unlocked_since?;
        if backoff.is_zero() {
            return None;
        }
        let end = instant::after(since, backoff);
        let first_loop = cy.obs.now < instant::after(since, cy.config.loop_wait_duration());
        let moved = matches!(self.mem.wal, (Some(a), Some(b)) if a != b);
        if cy.obs.now >= end || !(first_loop || moved) {
            return None;
        }
        Some(Decision::because(Reason::RaceBackoff {
            me: cy.me().to_string(),
            left: instant::between(cy.obs.now, end),
        }))
    }
}
