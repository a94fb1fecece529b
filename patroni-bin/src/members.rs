//! The cluster as operators read it: one row per member with role, state, timeline and lag.
//!
//! `GET /cluster` and `patronictl list` print the same rows, so they are built once here.

use patroni_core::{Cluster, Endpoint, Lsn, Member, MemberRole};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One member as `GET /cluster` and `patronictl list` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    /// Member name.
    pub name: String,
    /// `leader`, `sync_standby` or `replica`.
    pub role: String,
    /// `running`, `streaming`, `stopped`...
    pub state: String,
    /// The agent's API URL.
    pub api_url: String,
    /// Database host.
    pub host: String,
    /// Database port.
    pub port: u16,
    /// Timeline (generation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// Bytes behind the leader; `None` for the leader or unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Tags.
    pub tags: Value,
}

/// Host and port for `patronictl list`; a URL that does not parse is shown whole.
fn host_port(conn_url: &str) -> (String, u16) {
    Endpoint::from_conn_url(conn_url).map_or_else(
        |_| (conn_url.to_string(), patroni_core::DEFAULT_PORT),
        |e| (e.host, e.port),
    )
}

/// The role word for a member row.
fn role_of(cluster: &Cluster, m: &Member) -> &'static str {
    if cluster.is_leader(&m.name) {
        "leader"
    } else if cluster.sync_state().is_some_and(|s| s.is_sync(&m.name)) {
        "sync_standby"
    } else if m.data.role == MemberRole::Primary {
        "primary"
    } else {
        "replica"
    }
}

/// Rows for every member, leader first then by name.
pub fn rows(cluster: &Cluster) -> Vec<MemberRow> {
    let leader_pos = cluster
        .leader_member()
        .map(|m| m.wal_position())
        .max(cluster.leader_optime())
        .unwrap_or(Lsn::ZERO);
    let mut out: Vec<MemberRow> = cluster
        .members
        .iter()
        .map(|m| {
            let (host, port) = host_port(&m.data.conn_url);
            let role = role_of(cluster, m);
            let state = if m.unreadable.is_some() {
                "unreadable".to_string()
            } else {
                let s = serde_json::to_value(m.data.state)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                match (role, m.data.replication_state.as_deref()) {
                    ("leader", _) => s,
                    (_, Some(r)) if s == "running" => r.to_string(),
                    _ => s,
                }
            };
            MemberRow {
                name: m.name.clone(),
                role: role.to_string(),
                state,
                api_url: m.data.api_url.clone(),
                host,
                port,
                timeline: m.data.timeline,
                lag: (role != "leader" && m.wal_position() > Lsn::ZERO)
                    .then(|| leader_pos.saturating_sub(m.wal_position())),
                tags: serde_json::to_value(&m.data.tags).unwrap_or(Value::Null),
            }
        })
        .collect();
    out.sort_by(|a, b| (a.role != "leader", &a.name).cmp(&(b.role != "leader", &b.name)));
    out
}

/// The `GET /cluster` document.
pub fn cluster_json(scope: &str, cluster: &Cluster) -> Value {
    let mut doc = json!({
        "scope": scope,
        "members": rows(cluster),
        "pause": cluster.config.as_ref().is_some_and(|c| c.value.pause),
    });
    if let Some(f) = cluster.failover_request() {
        if f.scheduled_at.is_some() {
            doc["scheduled_switchover"] = json!({
                "at": f.scheduled_at, "from": f.leader, "to": f.candidate
            });
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_core::{Leader, MemberData, MemberState};

    #[test]
    fn rows_put_the_leader_first_with_lag() {
        let mk = |name: &str, pos: u64, role| {
            Member::new(
                name,
                MemberData {
                    conn_url: format!("postgres://postgres@127.0.0.1:54{pos}/postgres"),
                    state: MemberState::Running,
                    role,
                    xlog_location: Some(Lsn(pos)),
                    timeline: Some(1),
                    replication_state: Some("streaming".into()),
                    ..Default::default()
                },
            )
        };
        let c = Cluster {
            leader: Some(Leader {
                name: "b".into(),
                version: 1,
            }),
            members: vec![
                mk("a", 10, MemberRole::Replica),
                mk("b", 30, MemberRole::Primary),
            ],
            ..Default::default()
        };
        let r = rows(&c);
        assert_eq!(r[0].name, "b");
        assert_eq!(r[0].role, "leader");
        assert_eq!(r[0].state, "running");
        assert_eq!(r[0].lag, None);
        assert_eq!((r[1].role.as_str(), r[1].lag), ("replica", Some(20)));
        assert_eq!(r[1].state, "streaming");
        assert_eq!((r[1].host.as_str(), r[1].port), ("127.0.0.1", 5410));
    }
}
