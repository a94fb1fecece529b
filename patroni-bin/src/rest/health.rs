//! Health-check endpoints: 200 or 503 from the last cycle, the status document as the body.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use patroni_core::{DbRole, Lsn, Node, ProcessState};

use crate::state::{Shared, Snapshot};
use crate::status::{is_quorum_standby, is_sync_standby, patroni_status, replication_state};

/// Which question a health endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Holds the lock and runs as primary.
    Primary,
    /// Holds the lock.
    Leader,
    /// Holds the lock in a standby cluster: the standby leader.
    StandbyLeader,
    /// A running, load-balanced standby within the lag and tag filters.
    Replica,
    /// Primary or replica.
    ReadOnly,
    /// A synchronous standby.
    Sync,
    /// A quorum synchronous standby (synchronous mode `quorum`).
    Quorum,
    /// A running standby that is not synchronous.
    Async,
    /// The primary, or a synchronous standby.
    ReadOnlySync,
    /// The primary, or a quorum synchronous standby.
    ReadOnlyQuorum,
    /// The database runs.
    Health,
    /// The HA loop runs.
    Liveness,
    /// Ready to serve: leader, or a streaming standby close enough.
    Readiness,
}

/// Paths and what they check.
pub const ROUTES: &[(&str, Check)] = &[
    ("/", Check::Primary),
    ("/primary", Check::Primary),
    ("/master", Check::Primary),
    ("/read-write", Check::Primary),
    ("/leader", Check::Leader),
    ("/standby-leader", Check::StandbyLeader),
    ("/standby_leader", Check::StandbyLeader),
    ("/replica", Check::Replica),
    ("/read-only", Check::ReadOnly),
    ("/sync", Check::Sync),
    ("/synchronous", Check::Sync),
    ("/quorum", Check::Quorum),
    ("/read-only-sync", Check::ReadOnlySync),
    ("/read-only-synchronous", Check::ReadOnlySync),
    ("/read-only-quorum", Check::ReadOnlyQuorum),
    ("/async", Check::Async),
    ("/asynchronous", Check::Async),
    ("/health", Check::Health),
    ("/liveness", Check::Liveness),
    ("/readiness", Check::Readiness),
];

/// Parses `?lag=`: bytes, or a number with `B`, `kB`, `MB`, `GB`, `TB` (powers of 1024).
pub fn parse_lag(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        "tb" | "t" => 1 << 40,
        _ => return None,
    };
    let v = n * mult as f64;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// How far this standby's replay is behind the primary, in bytes.
fn replica_lag(snap: &Snapshot) -> u64 {
    replica_lag_at(snap, snap.local.replay_lsn.or(snap.local.receive_lsn))
}

/// How far this standby's receipt is behind the primary, in bytes (`/readiness?mode=write`).
fn receive_lag(snap: &Snapshot) -> u64 {
    replica_lag_at(snap, snap.local.receive_lsn.or(snap.local.replay_lsn))
}

fn replica_lag_at(snap: &Snapshot, position: Option<Lsn>) -> u64 {
    let leader_pos = snap
        .cluster
        .as_ref()
        .map(|c| {
            let from_member = c.leader_member().map(|m| m.wal_position());
            c.leader_optime().max(from_member).unwrap_or(Lsn::ZERO)
        })
        .unwrap_or(Lsn::ZERO);
    let top = leader_pos.max(snap.local.receive_lsn.unwrap_or(Lsn::ZERO));
    top.saturating_sub(position.unwrap_or(Lsn::ZERO))
}

fn is_running_standby(snap: &Snapshot) -> bool {
    snap.local.process == ProcessState::Running && snap.local.role == DbRole::Standby
}

/// Patroni's replica answer before tag filters: a running standby, load-balanced, within `?lag=`
/// and in the `?replication_state=` asked for.
fn replica_ok(snap: &Snapshot, node: &Node, q: &HashMap<String, String>) -> bool {
    if !is_running_standby(snap) || node.tags.noloadbalance {
        return false;
    }
    if let Some(l) = q.get("lag") {
        match parse_lag(l) {
            Some(max) if replica_lag(snap) <= max => {}
            _ => return false,
        }
    }
    if let Some(want) = q.get("replication_state") {
        if replication_state(&snap.local) != Some(want.as_str()) {
            return false;
        }
    }
    true
}

/// The `?tag_<name>=<value>` filters: every tag named must be set to that value.
fn tags_match(node: &Node, q: &HashMap<String, String>) -> bool {
    q.iter().all(|(k, v)| {
        let Some(tag) = k.strip_prefix("tag_") else {
            return true;
        };
        let have = match tag {
            "nofailover" => Some(node.tags.nofailover.to_string()),
            "nosync" => Some(node.tags.nosync.to_string()),
            "noloadbalance" => Some(node.tags.noloadbalance.to_string()),
            "clonefrom" => Some(node.tags.clonefrom.to_string()),
            "nostream" => Some(node.tags.nostream.to_string()),
            "replicatefrom" => node.tags.replicatefrom.clone(),
            "failover_priority" => Some(node.tags.failover_priority.to_string()),
            other => node.tags.custom_str(other),
        };
        have.as_deref().map(str::to_ascii_lowercase) == Some(v.to_ascii_lowercase())
    })
}

impl Check {
    /// Patroni ignores tag filters on the lock holder's endpoints and on the probes.
    fn ignores_tags(self) -> bool {
        matches!(
            self,
            Check::Primary
                | Check::Leader
                | Check::StandbyLeader
                | Check::Liveness
                | Check::Readiness
        )
    }
}

/// Answers one health question at `now`, as Patroni's `do_GET` does.
pub fn evaluate(
    check: Check,
    snap: &Snapshot,
    node: &Node,
    q: &HashMap<String, String>,
    now: u64,
) -> bool {
    let leader = snap.is_leader(now);
    // The lock holder of a standby cluster is its standby leader: neither primary nor replica.
    let standby_leader = leader && snap.dynamic_config(node).is_standby_cluster();
    let primary = leader && !standby_leader && snap.local.is_running_primary();
    let replica = !standby_leader && replica_ok(snap, node, q);
    // Synchronous roles are only known with a cluster view (Patroni: "dcs is available").
    let dcs_ok = snap.cluster.is_some();
    let sync = is_sync_standby(snap, node);
    let quorum = is_quorum_standby(snap, node);
    let ok = match check {
        Check::Primary => primary,
        Check::Leader => leader,
        Check::StandbyLeader => {
            standby_leader && snap.local.process.is_alive() && snap.local.role == DbRole::Standby
        }
        Check::Replica => replica,
        Check::ReadOnly => primary || replica,
        Check::Sync => dcs_ok && sync && replica,
        Check::Quorum => dcs_ok && quorum && replica,
        Check::Async => dcs_ok && !sync && !quorum && replica,
        Check::ReadOnlySync => dcs_ok && (primary || (sync && replica)),
        Check::ReadOnlyQuorum => dcs_ok && (primary || (quorum && replica)),
        Check::Health => snap.local.process == ProcessState::Running,
        Check::Liveness => {
            let cfg = snap.dynamic_config(node);
            if cfg.pause {
                return true;
            }
            let limit = if primary {
                cfg.ttl_duration()
            } else {
                cfg.ttl_duration().saturating_mul(2)
            };
            snap.last_cycle
                .is_some_and(|t| patroni_core::instant::between(t, now) <= limit)
        }
        Check::Readiness => {
            if leader {
                return true;
            }
            let max = q
                .get("lag")
                .and_then(|l| parse_lag(l))
                .unwrap_or(snap.dynamic_config(node).maximum_lag_on_failover);
            let lag = if q.get("mode").map(String::as_str) == Some("write") {
                receive_lag(snap)
            } else {
                replica_lag(snap)
            };
            is_running_standby(snap)
                && replication_state(&snap.local) == Some("streaming")
                && lag <= max
        }
    };
    ok && (check.ignores_tags() || tags_match(node, q))
}

fn answer(shared: &Shared, q: &HashMap<String, String>, check: Check) -> (StatusCode, Response) {
    let snap = shared.snapshot();
    let node = shared.node();
    let now = shared.clock.now();
    let code = if evaluate(check, &snap, &node, q, now) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Json(patroni_status(&shared.scope, &node, &snap, now));
    (code, body.into_response())
}

/// GET: the status code and the status document.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    check: Check,
) -> Response {
    let (code, body) = answer(&shared, &q, check);
    (code, body).into_response()
}

/// HEAD and OPTIONS: the status line only (HAProxy `option httpchk OPTIONS /primary`).
pub async fn head(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    check: Check,
) -> Response {
    answer(&shared, &q, check).0.into_response()
}

/// `GET /patroni`: always 200 with the status document.
pub async fn patroni(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.snapshot();
    let node = shared.node();
    Json(patroni_status(
        &shared.scope,
        &node,
        &snap,
        shared.clock.now(),
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_units() {
        assert_eq!(parse_lag("1048576"), Some(1048576));
        assert_eq!(parse_lag("10MB"), Some(10 << 20));
        assert_eq!(parse_lag("16 kB"), Some(16 << 10));
        assert_eq!(parse_lag("1.5GB"), Some(3 << 29));
        assert_eq!(parse_lag("ten"), None);
        assert_eq!(parse_lag("5 parsecs"), None);
        assert_eq!(parse_lag("99999999999999999999TB"), None);
    }
}
