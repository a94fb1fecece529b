//! Quorum commit (`synchronous_mode: quorum`): keeping `/sync` and
//! `synchronous_standby_names = 'ANY n (...)'` in step, and the promotion rule they protect.
//!
//! Two records describe synchronous replication in this mode, as in Patroni 4:
//!
//! * the database's `ANY n (S)`: a commit is acknowledged once the primary and `n` of the
//!   standbys `S` flushed it;
//! * the DCS's `/sync` key `{"leader": L, "sync_standby": "V", "quorum": q}`: a member other than
//!   `L` may promote only after it has seen `q + 1` members of `{L} ∪ V` (itself included when it
//!   is one) running with a WAL position not ahead of its own ([`Ha::quorum_refusal`]). `L` itself
//!   may take the lock back while no member of `{L} ∪ V` it reached is ahead of it.
//!
//! A promotion keeps every acknowledged commit when each set of `q + 1` members of `{L} ∪ V`
//! shares a member with each set of nodes that acknowledged a commit (that member's WAL holds the
//! commit and is not ahead of the candidate's, on the same history). Both sets hold `L` only when
//! `L` itself is seen, so the sets avoid each other exactly when `q + 1` voters of `V` can be
//! found outside `n` members of `S`: the rule holds when `|V| <= q` or `|V ∪ S| <= q + n`
//! ([`covers_new`]). That condition covers the commits acknowledged since `ANY n (S)` was last
//! set. The older ones are held by every standby that has flushed up to our position at that
//! change (the confirmed set `K`): `/sync` covers them when `|V \ K| <= q` ([`covers_old`]).
//!
//! The leader changes one record at a time, and only to a state that keeps both conditions: a
//! `/sync` write is checked against the current `ANY n (S)` and `K`, a change of `ANY n (S)`
//! against the current `/sync` (the commits before it stay covered because `/sync` did not move).
//! This yields Patroni's `QuorumStateResolver` ordering: the number of synchronous nodes is raised
//! before the quorum is lowered, the quorum is raised before that number is lowered, a new node
//! joins the voters before `S` (unless `S` is empty), a gone node leaves `S` before the voters. The
//! target is Patroni's: `S = V = active`, `n = min(synchronous_node_count, |active|)`,
//! `q = |active| - n`.

use std::collections::VecDeque;

use super::sync::{eligible_rows, STRICT_SYNC_PLACEHOLDER};
use super::{Cycle, Ha};
use crate::policy::Ineligible;
use crate::{Action, Decision, MemberState, PeerStatus, SyncState};

/// The `/sync` side: the voters a promotion must hear from, and how many beyond one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Voters {
    /// `sync_standby` in `/sync`, the leader excluded.
    pub names: Vec<String>,
    /// `quorum` in `/sync`: a candidate needs `quorum + 1` of the leader and these.
    pub quorum: u32,
}

/// The database side: `synchronous_standby_names = 'ANY count (names)'`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AnyOf {
    /// How many of `names` must flush a commit before it is acknowledged (0: nobody waits).
    pub count: u32,
    /// The listed standbys.
    pub names: Vec<String>,
}

/// One change, in the order the leader must make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write `/sync` with these voters and quorum.
    Voters(Voters),
    /// Set `synchronous_standby_names` to this.
    Guc(AnyOf),
}

fn has(list: &[String], name: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(name))
}

/// The names sorted and without case-insensitive duplicates, so equal sets compare equal.
fn set(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !has(&out, &n) {
            out.push(n);
        }
    }
    out.sort_by_key(|n| n.to_ascii_lowercase());
    out
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    set(a.iter().chain(b).cloned())
}

fn inter(a: &[String], b: &[String]) -> Vec<String> {
    set(a.iter().filter(|x| has(b, x)).cloned())
}

fn len(a: &[String]) -> u32 {
    u32::try_from(a.len()).unwrap_or(u32::MAX)
}

/// Whether every promotion the voters allow holds every commit acknowledged under `guc`.
pub(crate) fn covers_new(v: &Voters, guc: &AnyOf) -> bool {
    len(&v.names) <= v.quorum || len(&union(&v.names, &guc.names)) <= v.quorum + guc.count
}

/// Whether every promotion the voters allow holds every commit acknowledged before the last
/// change of `synchronous_standby_names`, which all of `confirmed` (and the leader) hold.
pub(crate) fn covers_old(v: &Voters, confirmed: &[String]) -> bool {
    let unconfirmed = v.names.iter().filter(|n| !has(confirmed, n)).count();
    u32::try_from(unconfirmed).unwrap_or(u32::MAX) <= v.quorum
}

/// What the leader works towards: Patroni's steady state for these standbys.
pub(crate) fn target(active: &[String], wanted: u32, strict: bool) -> (Voters, AnyOf) {
    let active = set(active.iter().cloned());
    if active.is_empty() {
        let guc = if strict {
            AnyOf {
                count: 1,
                names: vec![STRICT_SYNC_PLACEHOLDER.to_string()],
            }
        } else {
            AnyOf::default()
        };
        return (Voters::default(), guc);
    }
    let count = wanted.max(1).min(len(&active));
    (
        Voters {
            names: active.clone(),
            quorum: len(&active) - count,
        },
        AnyOf {
            count,
            names: active,
        },
    )
}

/// The leader's view of quorum commit in one cycle.
#[derive(Debug, Clone)]
pub(crate) struct Resolver<'a> {
    /// `/sync` as we wrote it.
    pub voters: &'a Voters,
    /// `synchronous_standby_names` as we last set it; `None` when unknown.
    pub guc: Option<&'a AnyOf>,
    /// Standbys that flushed up to our position once the last `guc` change took effect.
    pub confirmed: &'a [String],
    /// Standbys streaming from us that may be synchronous.
    pub active: &'a [String],
    /// `synchronous_node_count`.
    pub wanted: u32,
    /// `synchronous_mode_strict`.
    pub strict: bool,
}

/// A state the planner walks through.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    voters: Voters,
    guc: Option<AnyOf>,
}

impl Resolver<'_> {
    /// The changes to make now, in order: none, one, or a `/sync` write followed by a change of
    /// `synchronous_standby_names` (never the reverse: a `/sync` write that relies on a new
    /// `synchronous_standby_names` waits for the next cycle, when the change has taken effect and
    /// the confirmed set is measured against it).
    ///
    /// The path is planned as if every active standby had confirmed; a `/sync` write that needs
    /// more confirmed standbys than there are waits for them rather than taking a detour (each
    /// change of `synchronous_standby_names` would only move the bar they must reach).
    pub(crate) fn steps(&self) -> Vec<Step> {
        let (tv, tg) = target(self.active, self.wanted, self.strict);
        let start = Node {
            voters: Voters {
                names: set(self.voters.names.iter().cloned()),
                quorum: self.voters.quorum,
            },
            guc: self.guc.map(|g| AnyOf {
                count: g.count,
                names: set(g.names.iter().cloned()),
            }),
        };
        let goal = |n: &Node| n.voters == tv && n.guc.as_ref() == Some(&tg);
        if goal(&start) {
            return Vec::new();
        }
        let Some(path) = self.plan(&start, &goal, &tv, &tg) else {
            return Vec::new();
        };
        if let Some(Step::Voters(v)) = path.first() {
            if !covers_old(v, self.confirmed) {
                return Vec::new();
            }
        }
        let mut out = Vec::new();
        for step in path {
            let is_guc = matches!(step, Step::Guc(_));
            out.push(step);
            if is_guc {
                break;
            }
        }
        out
    }

    /// Breadth-first search for the shortest safe sequence of changes to the target.
    fn plan(
        &self,
        start: &Node,
        goal: &dyn Fn(&Node) -> bool,
        tv: &Voters,
        tg: &AnyOf,
    ) -> Option<Vec<Step>> {
        let g0 = start.guc.clone().unwrap_or_default();
        // The name sets a step may move to: the lattice the current, target and active sets span.
        let mut family: Vec<Vec<String>> = vec![
            start.voters.names.clone(),
            g0.names.clone(),
            tv.names.clone(),
            tg.names.clone(),
            Vec::new(),
        ];
        let mut i = 0;
        while i < family.len() && family.len() < 24 {
            for j in 0..i {
                for s in [union(&family[i], &family[j]), inter(&family[i], &family[j])] {
                    if !family.contains(&s) {
                        family.push(s);
                    }
                }
            }
            i += 1;
        }
        let all_active = set(self.active.iter().cloned());
        let mut seen: Vec<Node> = vec![start.clone()];
        let mut queue: VecDeque<(Node, Vec<Step>)> = VecDeque::from([(start.clone(), Vec::new())]);
        while let Some((node, path)) = queue.pop_front() {
            if path.len() >= 5 || seen.len() > 4000 {
                continue;
            }
            let confirmed: &[String] = &all_active;
            let mut next: Vec<(Node, Step)> = Vec::new();
            if let Some(guc) = &node.guc {
                // The target quorum first, then the smallest safe one for each voter set.
                for names in &family {
                    let quorums: Vec<u32> = if names == &tv.names {
                        std::iter::once(tv.quorum)
                            .chain((0..=len(names)).filter(|&q| q != tv.quorum))
                            .collect()
                    } else {
                        (0..=len(names)).collect()
                    };
                    for q in quorums {
                        let v = Voters {
                            names: names.clone(),
                            quorum: q,
                        };
                        if v != node.voters && covers_new(&v, guc) && covers_old(&v, confirmed) {
                            next.push((
                                Node {
                                    voters: v.clone(),
                                    guc: node.guc.clone(),
                                },
                                Step::Voters(v),
                            ));
                            break;
                        }
                    }
                }
            }
            for names in &family {
                let counts: Vec<u32> = if names.is_empty() {
                    vec![0]
                } else if names == &tg.names {
                    std::iter::once(tg.count)
                        .chain((1..=len(names)).filter(|&c| c != tg.count))
                        .collect()
                } else {
                    (1..=len(names)).collect()
                };
                for count in counts {
                    let g = AnyOf {
                        count,
                        names: names.clone(),
                    };
                    if node.guc.as_ref() != Some(&g) && covers_new(&node.voters, &g) {
                        next.push((
                            Node {
                                voters: node.voters.clone(),
                                guc: Some(g.clone()),
                            },
                            Step::Guc(g),
                        ));
                        break;
                    }
                }
            }
            // The strict placeholder is never in the family's sets unless it is the target.
            for (n, step) in next {
                let mut p = path.clone();
                p.push(step);
                if goal(&n) {
                    return Some(p);
                }
                if !seen.iter().any(|s| s.voters == n.voters && s.guc == n.guc) {
                    seen.push(n.clone());
                    queue.push_back((n, p));
                }
            }
        }
        None
    }
}

/// Quorum mode: whether `candidate` is behind us or another running member we reached, so its
/// own count of votes cannot succeed and a failover request naming it must not hold us back.
pub(super) fn behind_in_quorum(
    cy: &Cycle<'_>,
    peers: &[&PeerStatus],
    candidate: &PeerStatus,
    my_wal: crate::Lsn,
) -> bool {
    cy.config.synchronous_mode == crate::SynchronousMode::Quorum
        && (my_wal > candidate.wal_position
            || peers.iter().any(|p| {
                p.state == MemberState::Running && p.wal_position > candidate.wal_position
            }))
}

impl Ha {
    /// Sets `synchronous_standby_names` to `guc`, remembering it and forgetting the position the
    /// old setting's voters had to reach: the next cycle measures it afresh.
    pub(super) fn set_quorum_guc(&mut self, guc: AnyOf) -> Action {
        let action = Action::SetSyncStandbys {
            names: guc.names.clone(),
            count: guc.count,
            quorum: true,
        };
        self.mem.quorum_guc = Some(guc);
        self.mem.sync_bar = None;
        action
    }

    /// The leader's `/sync` and `SetSyncStandbys` actions in quorum mode, one safe step at a time.
    pub(super) fn quorum_standbys(&mut self, cy: &Cycle<'_>) -> Vec<Action> {
        let me = cy.me();
        let local = &cy.obs.local;
        let version = cy.cluster.sync.as_ref().map(|s| s.version);
        let write = |v: &Voters| Action::WriteSyncState {
            state: SyncState {
                leader: Some(me.to_string()),
                sync_standbys: v.names.clone(),
                quorum: Some(v.quorum),
            },
            version,
        };
        let failed_guc = cy.obs.outcomes.iter().any(|o| {
            o.kind == crate::ActionKind::SetSyncStandbys
                && !matches!(o.result, crate::OutcomeResult::Done)
        });
        if failed_guc {
            self.mem.quorum_guc = None;
        }
        let ours = cy.cluster.sync_state().filter(|s| {
            s.leader
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(me))
        });
        let Some(sync) = ours else {
            // Only we may be promoted after this: we hold every acknowledged commit.
            return vec![write(&Voters::default())];
        };
        let voters = Voters {
            names: sync.sync_standbys.clone(),
            quorum: sync.quorum.unwrap_or(0),
        };
        // The change of `synchronous_standby_names` made last cycle has taken effect by now:
        // every commit acknowledged under the previous setting is at or below this position.
        if self.mem.quorum_guc.is_some() && self.mem.sync_bar.is_none() {
            self.mem.sync_bar = Some(local.wal_position());
        }
        let rows = eligible_rows(cy);
        let mut active: Vec<String> = rows.iter().map(|r| r.application_name.clone()).collect();
        active.sort();
        let confirmed: Vec<String> = match self.mem.sync_bar {
            Some(bar) => rows
                .iter()
                .filter(|r| r.flush_lsn.is_some_and(|f| f >= bar))
                .map(|r| r.application_name.clone())
                .collect(),
            None => Vec::new(),
        };
        let guc = self.mem.quorum_guc.clone();
        let steps = Resolver {
            voters: &voters,
            guc: guc.as_ref(),
            confirmed: &confirmed,
            active: &active,
            wanted: cy.config.synchronous_node_count,
            strict: cy.config.synchronous_mode_strict,
        }
        .steps();
        let mut actions = Vec::new();
        for step in steps {
            match step {
                Step::Voters(v) => actions.push(write(&v)),
                Step::Guc(g) => actions.push(self.set_quorum_guc(g)),
            }
        }
        actions
    }

    /// Quorum mode: why we may not promote, unless enough voters of `/sync` vouch that we hold
    /// every acknowledged commit (Patroni's `_is_healthiest_node` quorum branch).
    ///
    /// With `/sync` = `{leader L, voters V, quorum q}`, a candidate counts itself if it is in
    /// `{L} ∪ V`, and one vote per member of `{L} ∪ V` it reached whose database runs with a WAL
    /// position not ahead of its own; it needs `q + 1` votes. `L` needs none while nobody it
    /// reached is ahead of it: every acknowledged commit was flushed on `L` first. Unlike Patroni,
    /// a failover request naming the candidate does not lift the rule.
    pub(super) fn quorum_refusal(
        &self,
        cy: &Cycle<'_>,
        peers: &[&PeerStatus],
        my_wal: crate::Lsn,
    ) -> Option<Decision> {
        if cy.config.synchronous_mode != crate::SynchronousMode::Quorum {
            return None;
        }
        let sync = cy.cluster.sync_state()?;
        let leader = sync.leader.as_deref()?;
        let me = cy.me();
        let in_set = |n: &str| n.eq_ignore_ascii_case(leader) || sync.is_sync(n);
        let mut votes = u32::from(in_set(me));
        let mut ahead: Option<&str> = None;
        for p in peers {
            if !in_set(&p.name) || p.state != MemberState::Running {
                continue;
            }
            if p.wal_position > my_wal {
                ahead.get_or_insert(p.name.as_str());
            } else {
                votes += 1;
            }
        }
        let need = sync.quorum.unwrap_or(0).saturating_add(1);
        let former = leader.eq_ignore_ascii_case(me) && ahead.is_none();
        if votes >= need || former {
            return None;
        }
        let shortfall = crate::QuorumShortfall {
            votes,
            need,
            leader: leader.to_string(),
            voters: sync.sync_standbys.clone(),
            ahead: ahead.map(String::from),
        };
        Some(Decision {
            actions: Vec::new(),
            ineligible: vec![(me.to_string(), Ineligible::Policy(shortfall.to_string()))],
            reason: crate::Reason::QuorumNotReached(shortfall),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    }

    fn v(s: &str, q: u32) -> Voters {
        Voters {
            names: names(s),
            quorum: q,
        }
    }

    fn g(n: u32, s: &str) -> AnyOf {
        AnyOf {
            count: n,
            names: names(s),
        }
    }

    fn show(steps: &[Step]) -> String {
        steps
            .iter()
            .map(|s| match s {
                Step::Voters(v) => format!("sync {}:[{}]", v.quorum, v.names.join(",")),
                Step::Guc(g) => format!("guc ANY {}({})", g.count, g.names.join(",")),
            })
            .collect::<Vec<_>>()
            .join(" ; ")
    }

    /// Runs the resolver until it is quiet, every standby confirming each change at once, and
    /// returns the changes made, one cycle per line.
    fn converge(
        mut voters: Voters,
        mut guc: Option<AnyOf>,
        active: &str,
        wanted: u32,
    ) -> Vec<String> {
        let active = names(active);
        let mut cycles = Vec::new();
        for _ in 0..10 {
            let steps = Resolver {
                voters: &voters,
                guc: guc.as_ref(),
                confirmed: &active,
                active: &active,
                wanted,
                strict: false,
            }
            .steps();
            if steps.is_empty() {
                return cycles;
            }
            for s in &steps {
                // The safety conditions hold at every intermediate state.
                match s {
                    Step::Voters(nv) => {
                        assert!(covers_new(nv, guc.as_ref().unwrap()), "{}", show(&steps));
                        voters = nv.clone();
                    }
                    Step::Guc(ng) => {
                        assert!(covers_new(&voters, ng), "{}", show(&steps));
                        guc = Some(ng.clone());
                    }
                }
            }
            cycles.push(show(&steps));
        }
        panic!("no convergence: {cycles:?}");
    }

    #[test]
    fn overlap_rule_matches_patroni_invariant() {
        // ANY 1 (a,b) with quorum 1 of [a,b]: 2 of {L,a,b} meet every {L, x}.
        assert!(covers_new(&v("a,b", 1), &g(1, "a,b")));
        // Quorum 0 would let `a` alone promote while only `b` acknowledged.
        assert!(!covers_new(&v("a,b", 0), &g(1, "a,b")));
        // With nobody to vote but the leader, any setting is covered.
        assert!(covers_new(&v("", 0), &g(1, "a,b")));
        // A voter set as large as the quorum needs the leader's own vote.
        assert!(covers_new(&v("a", 1), &g(0, "")));
        assert!(!covers_new(&v("a", 0), &g(0, "")));
        // Older commits: every unconfirmed voter must be absorbed by the quorum.
        assert!(covers_old(&v("a,b", 1), &names("a")));
        assert!(!covers_old(&v("a,b", 1), &[]));
    }

    #[test]
    fn steady_state_targets() {
        assert_eq!(
            target(&names("b,a,c"), 1, false),
            (v("a,b,c", 2), g(1, "a,b,c"))
        );
        assert_eq!(target(&names("a,b"), 5, false), (v("a,b", 0), g(2, "a,b")));
        assert_eq!(target(&[], 1, false), (v("", 0), g(0, "")));
        assert_eq!(
            target(&[], 1, true),
            (v("", 0), g(1, STRICT_SYNC_PLACEHOLDER))
        );
    }

    /// What a case is about, `/sync`, the setting, the active standbys, `synchronous_node_count`,
    /// and the expected changes, one line per cycle.
    type Case = (
        &'static str,
        Voters,
        Option<AnyOf>,
        &'static str,
        u32,
        Vec<&'static str>,
    );

    /// Golden transition sequences (one line per cycle), with Patroni's ordering.
    #[test]
    fn golden_transitions() {
        let cases: Vec<Case> = vec![
            (
                "fresh primary: the database first, then the voters",
                v("", 0),
                None,
                "a,b",
                1,
                vec!["guc ANY 1(a,b)", "sync 1:[a,b]"],
            ),
            (
                "a node joins: voters (quorum up) before the database",
                v("a,b", 1),
                Some(g(1, "a,b")),
                "a,b,c",
                1,
                vec!["sync 2:[a,b,c] ; guc ANY 1(a,b,c)"],
            ),
            (
                "a node leaves: the database before the voters",
                v("a,b,c", 2),
                Some(g(1, "a,b,c")),
                "a,b",
                1,
                vec!["guc ANY 1(a,b)", "sync 1:[a,b]"],
            ),
            (
                "synchronous_node_count up: numsync before quorum",
                v("a,b,c", 2),
                Some(g(1, "a,b,c")),
                "a,b,c",
                2,
                vec!["guc ANY 2(a,b,c)", "sync 1:[a,b,c]"],
            ),
            (
                "synchronous_node_count down: quorum before numsync",
                v("a,b,c", 1),
                Some(g(2, "a,b,c")),
                "a,b,c",
                1,
                vec!["sync 2:[a,b,c] ; guc ANY 1(a,b,c)"],
            ),
            (
                "one node replaced by another",
                v("a,b", 1),
                Some(g(1, "a,b")),
                "a,c",
                1,
                vec!["sync 2:[a,b] ; guc ANY 1(a,c)", "sync 1:[a,c]"],
            ),
            (
                "every standby gone: voters emptied before the database stops waiting",
                v("a,b", 1),
                Some(g(1, "a,b")),
                "",
                1,
                vec!["sync 0:[] ; guc ANY 0()"],
            ),
            (
                "after `on` mode: its standbys hold every commit",
                v("a", 0),
                None,
                "a,b",
                1,
                vec!["guc ANY 1(a)", "sync 1:[a,b] ; guc ANY 1(a,b)"],
            ),
        ];
        for (what, voters, guc, active, wanted, want) in cases {
            assert_eq!(converge(voters, guc, active, wanted), want, "{what}");
        }
    }

    #[test]
    fn no_voters_change_before_standbys_confirm() {
        // `c` joined the database's list but has not flushed the older commits: the quorum may
        // not drop below what its absence needs.
        let voters = v("a,b,c", 2);
        let guc = g(2, "a,b,c");
        let steps = Resolver {
            voters: &voters,
            guc: Some(&guc),
            confirmed: &names("a"),
            active: &names("a,b,c"),
            wanted: 2,
            strict: false,
        }
        .steps();
        assert!(steps.is_empty(), "{}", show(&steps));
    }

    /// Every state reachable by the resolver, from any consistent start, keeps both conditions;
    /// exhaustive over small clusters, voter sets, counts and confirmed sets.
    #[test]
    fn every_step_is_safe_exhaustively() {
        let pool = ["a", "b", "c", "d"];
        let subsets: Vec<Vec<String>> = (0..16u32)
            .map(|m| {
                pool.iter()
                    .enumerate()
                    .filter(|(i, _)| m & (1 << i) != 0)
                    .map(|(_, n)| n.to_string())
                    .collect()
            })
            .collect();
        let mut checked = 0;
        for vn in &subsets {
            for q in 0..=len(vn) {
                let voters = Voters {
                    names: vn.clone(),
                    quorum: q,
                };
                for sn in &subsets {
                    for n in 0..=len(sn) {
                        let guc = AnyOf {
                            count: n,
                            names: sn.clone(),
                        };
                        if !covers_new(&voters, &guc) || (n == 0) != sn.is_empty() {
                            continue;
                        }
                        for active in subsets.iter().step_by(3) {
                            for conf in [&subsets[0], active] {
                                if !covers_old(&voters, conf) && conf.is_empty() {
                                    // a start state must itself be covered
                                }
                                let steps = Resolver {
                                    voters: &voters,
                                    guc: Some(&guc),
                                    confirmed: conf,
                                    active,
                                    wanted: 2,
                                    strict: false,
                                }
                                .steps();
                                let (mut cv, mut cg) = (voters.clone(), guc.clone());
                                for s in steps {
                                    match s {
                                        Step::Voters(nv) => {
                                            assert!(covers_new(&nv, &cg) && covers_old(&nv, conf));
                                            cv = nv;
                                        }
                                        Step::Guc(ng) => {
                                            assert!(covers_new(&cv, &ng));
                                            cg = ng;
                                        }
                                    }
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }
}
