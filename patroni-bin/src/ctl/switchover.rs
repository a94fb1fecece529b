//! `switchover` and `failover`: Python's checks and prompts, the request to the leader's API
//! (the DCS when no API answers), and refusals explained with the core's failover policy:
//! which member could not be promoted, and why.

use std::time::Duration;

use patroni_core::{
    Candidate, Cluster, Dcs, FailoverPolicy, FailoverRequest, Ineligible, Lsn, Member, MemberState,
    PatroniPolicy, RaceContext,
};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::listing::is_standby_cluster;
use super::{failed, next_hour_example, parse_scheduled, timestamp, CtlError, Format, Session};

/// Which of the two commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A planned hand-over from a healthy leader.
    Switchover,
    /// A promotion of a named member, with or without a leader.
    Failover,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Switchover => "switchover",
            Action::Failover => "failover",
        }
    }
}

/// The options of both commands.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// `--leader/--primary` (switchover only).
    pub leader: Option<String>,
    /// `--candidate`.
    pub candidate: Option<String>,
    /// `--scheduled` (switchover only).
    pub scheduled: Option<String>,
    /// No prompts.
    pub force: bool,
}

/// Why each member (or only `candidate`) could not be promoted now, by the core's policy.
pub fn ineligible(cluster: &Cluster, candidate: Option<&str>) -> Vec<(String, Ineligible)> {
    let config = cluster
        .config
        .as_ref()
        .map(|c| c.value.clone())
        .unwrap_or_default();
    let optime = cluster
        .leader_member()
        .map(Member::wal_position)
        .max(cluster.leader_optime())
        .filter(|l| *l > Lsn::ZERO);
    let ctx = RaceContext {
        config: &config,
        leader_optime: optime,
        cluster_timeline: cluster.timeline(),
        sync: cluster.sync_state(),
        former_leader: None,
    };
    cluster
        .members
        .iter()
        .filter(|m| !cluster.is_leader(&m.name))
        .filter(|m| candidate.is_none_or(|c| c == m.name))
        .filter_map(|m| {
            if let Some(why) = &m.unreadable {
                return Some((m.name.clone(), Ineligible::Unreadable(why.clone())));
            }
            let cand = Candidate {
                name: m.name.clone(),
                tags: m.data.tags.clone(),
                wal_position: m.wal_position(),
                timeline: m.data.timeline,
                running: m.data.state == MemberState::Running,
            };
            PatroniPolicy
                .eligible(&cand, &ctx)
                .err()
                .map(|e| (m.name.clone(), e))
        })
        .collect()
}

/// `(node2: database not running; node3: tagged nofailover)`, or nothing when all are eligible.
pub fn explanation(cluster: &Cluster, candidate: Option<&str>) -> String {
    let reasons = ineligible(cluster, candidate);
    if reasons.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = reasons
        .iter()
        .map(|(n, why)| format!("{n}: {why}"))
        .collect();
    format!(" ({})", parts.join("; "))
}

/// `switchover [CLUSTER]` or `failover [CLUSTER]`, as Python's `_do_failover_or_switchover`.
pub async fn run(s: &mut Session, name: &str, action: Action, a: Args) -> Result<(), CtlError> {
    let verb = action.name();
    let (dcs, cluster) = s.load(name).await?;
    s.term.say("Current cluster topology");
    s.show_members(&cluster, name, Format::Pretty);
    let config = cluster
        .config
        .as_ref()
        .map(|c| c.value.clone())
        .unwrap_or_default();
    let leader = cluster.leader.as_ref().map(|l| l.name.clone());
    let mut switchover_leader = None;
    if action == Action::Switchover {
        let Some(current) = leader.clone() else {
            return Err(failed("This cluster has no leader"));
        };
        let given = match a.leader.clone() {
            Some(l) => l,
            None if a.force => current.clone(),
            None => {
                let q = if is_standby_cluster(&config) {
                    "Standby Leader"
                } else {
                    "Primary"
                };
                s.term.prompt(q, Some(&current), "--leader")?
            }
        };
        if given != current {
            return Err(failed(format!(
                "Member {given} is not the leader of cluster {name}"
            )));
        }
        switchover_leader = Some(given);
    }
    let mut candidates: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| Some(&m.name) != leader.as_ref() && m.data.tags.allows_failover())
        .map(|m| m.name.clone())
        .collect();
    candidates.sort();
    if candidates.is_empty() {
        return Err(failed(format!(
            "No candidates found to {verb} to{}",
            explanation(&cluster, None)
        )));
    }
    let mut candidate = a.candidate.clone();
    if candidate.is_none() && !a.force {
        let list: Vec<String> = candidates.iter().map(|c| format!("'{c}'")).collect();
        let answer = s.term.prompt(
            &format!("Candidate [{}]", list.join(", ")),
            Some(""),
            "--candidate",
        )?;
        candidate = Some(answer);
    }
    let candidate = candidate.filter(|c| !c.is_empty());
    if action == Action::Failover && candidate.is_none() {
        return Err(failed(
            "Failover could be performed only to a specific candidate",
        ));
    }
    if let Some(c) = &candidate {
        if !candidates.contains(c) {
            if Some(c) == leader.as_ref() {
                return Err(failed(format!(
                    "Member {c} is already the leader of cluster {name}"
                )));
            }
            let why = if cluster.member(c).is_some() {
                " (it is tagged nofailover)"
            } else {
                ""
            };
            return Err(failed(format!(
                "Member {c} does not exist in cluster {name} or is tagged as nofailover{why}"
            )));
        }
    }
    if action == Action::Failover
        && !a.force
        && config.synchronous()
        && !is_standby_cluster(&config)
    {
        if let (Some(sync), Some(c)) = (cluster.sync_state(), &candidate) {
            let recorded = sync.leader.is_some();
            let is_sync = sync.is_sync(c)
                || sync
                    .leader
                    .as_deref()
                    .is_some_and(|l| l.eq_ignore_ascii_case(c));
            if recorded
                && !is_sync
                && !s.term.confirm(&format!(
                    "Are you sure you want to failover to the asynchronous node {c}?"
                ))?
            {
                return Err(failed(format!("Aborting {verb}")));
            }
        }
    }
    let mut scheduled_at = None;
    if action == Action::Switchover {
        let mut when = a.scheduled.clone();
        if when.is_none() && !a.force {
            let q = format!(
                "When should the switchover take place (e.g. {} ) ",
                next_hour_example()
            );
            when = Some(s.term.prompt(&q, Some("now"), "--scheduled")?);
        }
        scheduled_at = parse_scheduled(when.as_deref())?;
        if scheduled_at.is_some() && config.pause {
            return Err(failed("Can't schedule switchover in the paused state"));
        }
    }
    let at_text = scheduled_at.map(super::listing::python_isoformat);
    let mut body = Map::new();
    if let Some(c) = &candidate {
        body.insert("candidate".into(), json!(c));
    }
    if let Some(l) = &switchover_leader {
        body.insert("leader".into(), json!(l));
    }
    if let Some(at) = &at_text {
        body.insert("scheduled_at".into(), json!(at));
    }
    if !a.force {
        let demote = leader
            .as_ref()
            .map(|l| format!(", demoting current leader {l}"))
            .unwrap_or_default();
        match &at_text {
            Some(at) => {
                if !s.term.confirm(&format!(
                    "Are you sure you want to schedule switchover of cluster {name} at {at}{demote}?"
                ))? {
                    return Err(failed(format!("Aborting scheduled {verb}")));
                }
            }
            None => {
                if !s.term.confirm(&format!(
                    "Are you sure you want to {verb} cluster {name}{demote}?"
                ))? {
                    return Err(failed(format!("Aborting {verb}")));
                }
            }
        }
    }
    let target = match cluster.leader_member() {
        Some(l) => Some(l.clone()),
        None => candidate
            .as_deref()
            .and_then(|c| cluster.member(c))
            .cloned(),
    };
    let body = Value::Object(body);
    let reply = match &target {
        Some(m) => Some(
            s.api
                .call(m, Method::POST, verb, Some(&body), Duration::from_secs(120))
                .await,
        ),
        None => None,
    };
    match reply {
        Some(Ok(r)) if r.status == 200 || r.status == 202 => {
            s.term.say(format!("{} {}", timestamp(6), r.body));
            let (_, after) = s.load(name).await?;
            s.show_members(&after, name, Format::Pretty);
            Ok(())
        }
        Some(Ok(r)) => {
            // The server's reason, and the members' states where it gives none.
            let (_, now) = s.load(name).await.unwrap_or((dcs.clone(), cluster.clone()));
            let reason = if r.body.trim().is_empty() {
                "no reason given".to_string()
            } else {
                r.body.trim().replace('\n', " ")
            };
            Err(failed(format!(
                "{} failed, details: {}, {reason}{}",
                title(verb),
                r.status,
                explanation(&now, candidate.as_deref())
            )))
        }
        unanswered => {
            if let Some(Err(e)) = unanswered {
                eprintln!("warning: {e}");
            }
            fall_back(
                s,
                &*dcs,
                &cluster,
                name,
                verb,
                switchover_leader,
                candidate,
                scheduled_at,
            )
            .await
        }
    }
}

fn title(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// No API answered: write the request to the DCS for the leader (or the candidates) to act on.
#[allow(clippy::too_many_arguments)]
async fn fall_back(
    s: &mut Session,
    dcs: &dyn Dcs,
    cluster: &Cluster,
    name: &str,
    verb: &str,
    leader: Option<String>,
    candidate: Option<String>,
    scheduled_at: Option<patroni_core::Timestamp>,
) -> Result<(), CtlError> {
    s.term.say(format!(
        "{} Could not {verb} using Patroni api, falling back to DCS",
        timestamp(6)
    ));
    let req = FailoverRequest {
        leader,
        candidate,
        scheduled_at,
    };
    let version = cluster.failover.as_ref().map(|f| f.version);
    if !dcs.set_failover(&req, version).await? {
        return Err(failed(
            "another switchover or failover request was written concurrently",
        ));
    }
    s.show_members(cluster, name, Format::Pretty);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_core::{ClusterStatus, DynamicConfig, Leader, MemberData, MemberRole, Versioned};

    #[test]
    fn refusals_name_members_and_reasons() {
        let m = |name: &str, lsn: u64, state| {
            Member::new(
                name,
                MemberData {
                    state,
                    role: MemberRole::Replica,
                    xlog_location: Some(Lsn(lsn)),
                    timeline: Some(1),
                    ..Default::default()
                },
            )
        };
        let mut tagged = m("node4", 100_000_000, MemberState::Running);
        tagged.data.tags.nofailover = true;
        let c = Cluster {
            leader: Some(Leader {
                name: "node1".into(),
                version: 1,
            }),
            config: Some(Versioned {
                version: 1,
                value: DynamicConfig {
                    maximum_lag_on_failover: 1_000,
                    ..Default::default()
                },
            }),
            status: Some(ClusterStatus {
                optime: Some(Lsn(100_000_000)),
                ..Default::default()
            }),
            members: vec![
                m("node1", 100_000_000, MemberState::Running),
                m("node2", 99_000_000, MemberState::Running),
                m("node3", 100_000_000, MemberState::Stopped),
                tagged,
                m("node5", 100_000_000, MemberState::Running),
            ],
            ..Default::default()
        };
        assert_eq!(
            explanation(&c, None),
            " (node2: lagging by 1000000 bytes, over maximum_lag_on_failover (1000); \
             node3: database not running; node4: tagged nofailover)"
        );
        assert_eq!(
            explanation(&c, Some("node3")),
            " (node3: database not running)"
        );
        assert_eq!(explanation(&c, Some("node5")), "");
        assert_eq!(title("switchover"), "Switchover");
    }
}
