//! The member table of `list`, `topology` and every command that shows the cluster first: the
//! columns, keys and values Python Patroni 4's `patronictl` prints (its `cluster_as_json` and
//! `output_members`), read from the DCS.

use patroni_core::{Cluster, Endpoint, Lsn, Member, SynchronousMode};
use serde_json::{json, Map, Value};

use super::output::{Format, Rows};

/// One member as Python's `cluster_as_json` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInfo {
    /// Member name.
    pub name: String,
    /// `leader`, `standby_leader`, `sync_standby`, `quorum_standby` or `replica`.
    pub role: String,
    /// The replication state of a standby (`streaming`), else the database state (`running`).
    pub state: String,
    /// Database host, when the member published a connection URL.
    pub host: Option<String>,
    /// Database port.
    pub port: Option<u16>,
    /// Timeline (or openGauss term).
    pub timeline: Option<u64>,
    /// `(lsn, lag in bytes)` for received, replayed and the member's best position; `None`
    /// where unknown; the leader has none of them.
    pub receive: Option<Option<(Lsn, u64)>>,
    /// See `receive`.
    pub replay: Option<Option<(Lsn, u64)>>,
    /// See `receive`.
    pub lsn: Option<Option<(Lsn, u64)>>,
    /// The member needs a restart for changed parameters.
    pub pending_restart: bool,
    /// What changed, as `name: old->new` lines, when the member published it.
    pub pending_restart_reason: Vec<(String, String, String)>,
    /// A scheduled restart, when the member published one.
    pub scheduled_restart: Option<String>,
    /// The member's tags (only the ones it published).
    pub tags: Map<String, Value>,
}

/// The role Python names a member by: the lock holder is `leader` (`standby_leader` in a
/// standby cluster), members in `/sync` are `sync_standby` (`quorum_standby` in quorum mode)
/// while synchronous mode is on, everybody else `replica`.
pub fn role_of(cluster: &Cluster, name: &str) -> &'static str {
    let config = cluster.config.as_ref().map(|c| &c.value);
    let standby = config.is_some_and(is_standby_cluster);
    if cluster.is_leader(name) {
        return if standby { "standby_leader" } else { "leader" };
    }
    let mode = config.map(|c| c.synchronous_mode).unwrap_or_default();
    let sync = mode != SynchronousMode::Off && !standby;
    if sync && cluster.sync_state().is_some_and(|s| s.is_sync(name)) {
        return if mode == SynchronousMode::Quorum {
            "quorum_standby"
        } else {
            "sync_standby"
        };
    }
    "replica"
}

/// Python's `is_standby_cluster`, the one rule the agents follow too.
pub fn is_standby_cluster(config: &patroni_core::DynamicConfig) -> bool {
    config.is_standby_cluster()
}

fn state_text(m: &Member) -> String {
    if let Some(why) = &m.unreadable {
        let _ = why;
        return "unreadable".into();
    }
    serde_json::to_value(m.data.state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Every member as Python's `cluster_as_json` lists them: sorted by name.
pub fn members(cluster: &Cluster) -> Vec<MemberInfo> {
    // Lag is measured against the position the leader last published in `/status`, as Python does.
    let cluster_lsn = cluster.leader_optime().unwrap_or(Lsn::ZERO);
    let mut out: Vec<MemberInfo> = cluster
        .members
        .iter()
        .map(|m| {
            let role = role_of(cluster, &m.name);
            let replication = m
                .data
                .replication_state
                .clone()
                .filter(|s| !s.is_empty() && role != "leader");
            let state = replication.unwrap_or_else(|| state_text(m));
            let endpoint = Endpoint::from_conn_url(&m.data.conn_url).ok();
            let is_leader = cluster.is_leader(&m.name);
            let position = |l: Option<Lsn>| -> Option<Option<(Lsn, u64)>> {
                if is_leader {
                    return None;
                }
                Some(l.filter(|l| *l > Lsn::ZERO).map(|l| {
                    let lag = if cluster_lsn >= l {
                        cluster_lsn.saturating_sub(l)
                    } else {
                        0
                    };
                    (l, lag)
                }))
            };
            let reason = m
                .data
                .extra
                .get("pending_restart_reason")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let s = |key: &str| {
                                v.get(key)
                                    .map(|x| match x {
                                        Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    })
                                    .unwrap_or_default()
                            };
                            (k.clone(), s("old_value"), s("new_value"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let scheduled = m
                .data
                .extra
                .get("scheduled_restart")
                .and_then(Value::as_object)
                .and_then(|s| {
                    let at = s.get("schedule")?.as_str()?.to_string();
                    Some(match s.get("postgres_version").and_then(Value::as_str) {
                        Some(v) => format!("{at} if version < {v}"),
                        None => at,
                    })
                });
            MemberInfo {
                name: m.name.clone(),
                role: role.to_string(),
                state,
                host: endpoint
                    .as_ref()
                    .map(|e| e.host.clone())
                    .filter(|h| !h.is_empty()),
                port: endpoint.as_ref().map(|e| e.port),
                timeline: m.data.timeline,
                receive: position(m.data.receive_lsn),
                replay: position(m.data.replay_lsn),
                lsn: position(m.data.xlog_location),
                pending_restart: m.data.pending_restart,
                pending_restart_reason: reason,
                scheduled_restart: scheduled,
                tags: match serde_json::to_value(&m.data.tags) {
                    Ok(Value::Object(o)) => o,
                    _ => Map::new(),
                },
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Python's `topology_sort`: the leader, then each member under the one it replicates from
/// (`replicatefrom`, else the leader), names indented with `+ `.
pub fn topology_sort(members: Vec<MemberInfo>) -> Vec<MemberInfo> {
    let leader = members
        .iter()
        .find(|m| m.role.ends_with("leader"))
        .map(|m| m.name.clone());
    let replicas: Vec<String> = members
        .iter()
        .filter(|m| !m.role.ends_with("leader"))
        .map(|m| m.name.clone())
        .collect();
    let parent_of = |m: &MemberInfo| -> Option<String> {
        let p = m.tags.get("replicatefrom").and_then(Value::as_str);
        match p {
            Some(p) if p != m.name && replicas.iter().any(|r| r == p) => Some(p.to_string()),
            _ => leader.clone(),
        }
    };
    let mut out = Vec::new();
    fn walk(
        level: usize,
        name: Option<&str>,
        members: &[MemberInfo],
        parent_of: &dyn Fn(&MemberInfo) -> Option<String>,
        out: &mut Vec<MemberInfo>,
    ) {
        if level > members.len() {
            return;
        }
        let children: Vec<&MemberInfo> = members
            .iter()
            .filter(|m| !m.role.ends_with("leader") && parent_of(m).as_deref() == name)
            .collect();
        for c in children {
            let mut shown = c.clone();
            shown.name = format!("{}+ {}", " ".repeat((level) * 2), c.name);
            out.push(shown);
            walk(level + 1, Some(&c.name), members, parent_of, out);
        }
    }
    if let Some(l) = members.iter().find(|m| Some(&m.name) == leader.as_ref()) {
        out.push(l.clone());
    }
    walk(0, leader.as_deref(), &members, &parent_of, &mut out);
    out
}

/// Python's `round()` (half to even) of bytes in MiB.
fn mib(bytes: u64) -> i64 {
    let x = bytes as f64 / 1024.0 / 1024.0;
    let r = x.round();
    if (x - x.trunc() - 0.5).abs() < f64::EPSILON && (r as i64) % 2 != 0 {
        r as i64 - 1
    } else {
        r as i64
    }
}

/// What `list` prints for one cluster: the rows and the lines under the table.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The table.
    pub rows: Rows,
    /// `Maintenance mode: on`, a scheduled switchover.
    pub service_info: Vec<String>,
}

/// The title's detail: the system identifier, `uninitialized` or `initializing`.
pub fn initialize_text(cluster: &Cluster) -> String {
    match cluster.initialize.as_deref() {
        None => "uninitialized".into(),
        Some("") => "initializing".into(),
        Some(id) => id.to_string(),
    }
}

/// Builds Python's `output_members` table for cluster `name`.
pub fn listing(cluster: &Cluster, name: &str, extended: bool, fmt: Format) -> Listing {
    let mut infos = members(cluster);
    let mut columns: Vec<&str> = vec![
        "Cluster",
        "Member",
        "Host",
        "Role",
        "State",
        "TL",
        "Receive LSN",
        "Receive Lag",
        "Replay LSN",
        "Replay Lag",
    ];
    let with_host: Vec<&MemberInfo> = infos.iter().filter(|m| m.host.is_some()).collect();
    if extended || with_host.iter().any(|m| m.pending_restart) {
        columns.push("Pending restart");
    }
    if extended
        || with_host
            .iter()
            .any(|m| !m.pending_restart_reason.is_empty())
    {
        columns.push("Pending restart reason");
    }
    if extended || with_host.iter().any(|m| m.scheduled_restart.is_some()) {
        columns.push("Scheduled restart");
    }
    if extended || with_host.iter().any(|m| !m.tags.is_empty()) {
        columns.push("Tags");
    }
    let hosts: std::collections::BTreeSet<&str> =
        with_host.iter().filter_map(|m| m.host.as_deref()).collect();
    let append_port = with_host.iter().any(|m| m.port.is_some_and(|p| p != 5432))
        || hosts.len() < with_host.len();
    if fmt == Format::Topology {
        infos = topology_sort(infos);
    }
    let pretty = matches!(fmt, Format::Pretty | Format::Topology);
    let rows = infos
        .iter()
        .map(|m| {
            let (mut receive, mut replay) = (m.receive, m.replay);
            // A member that published only its best position shows it as received while it
            // streams, else as replayed.
            if receive == Some(None) && replay == Some(None) && m.lsn.is_some_and(|l| l.is_some()) {
                if m.state == "streaming" {
                    receive = m.lsn;
                } else {
                    replay = m.lsn;
                }
            }
            let lsn_cell = |p: Option<Option<(Lsn, u64)>>| match p {
                Some(Some((l, _))) => json!(l.to_string()),
                _ => json!(""),
            };
            let lag_cell = |p: Option<Option<(Lsn, u64)>>| match p {
                Some(Some((_, lag))) => json!(mib(lag)),
                _ => json!(""),
            };
            let mut host = m.host.clone().unwrap_or_default();
            if append_port && !host.is_empty() {
                if let Some(p) = m.port {
                    host = format!("{host}:{p}");
                }
            }
            let reason: Vec<String> = m
                .pending_restart_reason
                .iter()
                .map(|(k, old, new)| {
                    let full = format!("{k}: {old}->{new}");
                    if pretty && full.chars().count() > 50 {
                        format!("{k}: [hidden - too long]")
                    } else {
                        full
                    }
                })
                .collect();
            columns
                .iter()
                .map(|c| match *c {
                    "Cluster" => json!(name),
                    "Member" => json!(m.name),
                    "Host" => json!(host),
                    "Role" => json!(title_case(&m.role.replace('_', " "))),
                    "State" => json!(m.state),
                    "TL" => m.timeline.map_or(json!(""), |t| json!(t)),
                    "Receive LSN" => lsn_cell(receive),
                    "Receive Lag" => lag_cell(receive),
                    "Replay LSN" => lsn_cell(replay),
                    "Replay Lag" => lag_cell(replay),
                    "Pending restart" => json!(if m.pending_restart { "*" } else { "" }),
                    "Pending restart reason" => json!(reason.join("\n")),
                    "Scheduled restart" => json!(m.scheduled_restart.clone().unwrap_or_default()),
                    // Our agents always publish `tags`, so Python shows `{}` for none.
                    "Tags" => Value::Object(m.tags.clone()),
                    _ => json!(""),
                })
                .collect()
        })
        .collect();
    let mut column_names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    if pretty {
        for c in &mut column_names {
            if c == "Receive Lag" || c == "Replay Lag" {
                *c = "Lag".into();
            }
        }
    }
    let mut service_info = Vec::new();
    if cluster.config.as_ref().is_some_and(|c| c.value.pause) {
        service_info.push("Maintenance mode: on".to_string());
    }
    if let Some(f) = cluster.failover_request() {
        if let Some(at) = f.scheduled_at {
            let mut info = format!("Switchover scheduled at: {}", python_isoformat(at));
            if let Some(from) = &f.leader {
                info.push_str(&format!("\n{:>24}: {from}", "from"));
            }
            if let Some(to) = &f.candidate {
                info.push_str(&format!("\n{:>24}: {to}", "to"));
            }
            service_info.push(info);
        }
    }
    Listing {
        rows: Rows {
            columns: Some(column_names),
            rows,
            right: vec!["Group", "Receive LSN", "Replay LSN", "Lag", "TL"],
            title: format!(" Cluster: {name} ({}) ", initialize_text(cluster)),
        },
        service_info,
    }
}

/// The text `output_members` echoes for `fmt`.
pub fn render(listing: &Listing, fmt: Format) -> String {
    let mut out = listing.rows.render(fmt, "\t");
    if matches!(fmt, Format::Pretty | Format::Topology) && !listing.service_info.is_empty() {
        out.push(' ');
        out.push_str(&listing.service_info.join("\n "));
        out.push('\n');
    }
    out
}

/// Python's `str.title()`: each word capitalised.
fn title_case(s: &str) -> String {
    let mut out = String::new();
    let mut start = true;
    for ch in s.chars() {
        if ch.is_alphabetic() {
            if start {
                out.extend(ch.to_uppercase());
            } else {
                out.extend(ch.to_lowercase());
            }
            start = false;
        } else {
            out.push(ch);
            start = true;
        }
    }
    out
}

/// A timestamp as Python's `datetime.isoformat()` prints an aware UTC time
/// (`2026-11-26T10:00:00+00:00`, microseconds only when there are any).
pub fn python_isoformat(t: patroni_core::Timestamp) -> String {
    let s = t.to_string();
    // Ours is `YYYY-MM-DDTHH:MM:SS.mmm+00:00`.
    match s.split_once('.') {
        Some((head, rest)) => {
            let (ms, zone) = rest.split_at(rest.find(['+', '-', 'Z']).unwrap_or(rest.len()));
            if ms.trim_matches('0').is_empty() {
                format!("{head}{zone}")
            } else {
                format!("{head}.{ms:0<6}{zone}")
            }
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_core::{
        ClusterStatus, DynamicConfig, Leader, MemberData, MemberRole, MemberState, SyncState,
        Versioned,
    };

    fn member(name: &str, port: u16, state: MemberState, lsn: Option<u64>) -> Member {
        Member::new(
            name,
            MemberData {
                conn_url: format!("postgres://127.0.0.1:{port}/postgres"),
                api_url: format!("http://127.0.0.1:{}/patroni", port + 1000),
                state,
                role: MemberRole::Replica,
                xlog_location: lsn.map(Lsn),
                receive_lsn: lsn.map(Lsn),
                replay_lsn: lsn.map(|l| Lsn(l - 8 * 1024 * 1024)),
                replication_state: lsn.map(|_| "streaming".into()),
                timeline: Some(3),
                ..Default::default()
            },
        )
    }

    fn cluster() -> Cluster {
        let mut leader = member("node1", 5432, MemberState::Running, None);
        leader.data.role = MemberRole::Primary;
        leader.data.xlog_location = Some(Lsn(0x3000000 + (20 << 20)));
        let mut n3 = member(
            "node3",
            5434,
            MemberState::Running,
            Some(0x3000000 + (20 << 20)),
        );
        n3.data.tags.nofailover = true;
        Cluster {
            initialize: Some("7345678901234567890".into()),
            leader: Some(Leader {
                name: "node1".into(),
                version: 1,
            }),
            config: Some(Versioned {
                version: 1,
                value: DynamicConfig {
                    synchronous_mode: SynchronousMode::On,
                    pause: true,
                    ..Default::default()
                },
            }),
            sync: Some(Versioned {
                version: 1,
                value: SyncState {
                    leader: Some("node1".into()),
                    sync_standbys: vec!["node2".into()],
                    quorum: None,
                },
            }),
            status: Some(ClusterStatus {
                optime: Some(Lsn(0x3000000 + (20 << 20))),
                ..Default::default()
            }),
            members: vec![
                member("node3", 0, MemberState::Running, None),
                leader,
                member("node2", 5433, MemberState::Running, Some(0x3000000)),
            ]
            .into_iter()
            .map(|m| if m.name == "node3" { n3.clone() } else { m })
            .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn json_keys_roles_and_lags_are_pythons() {
        let l = listing(&cluster(), "demo", false, Format::Json);
        let text = l.rows.render(Format::Json, "\t");
        let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            json!({"Cluster": "demo", "Member": "node1", "Host": "127.0.0.1:5432",
                   "Role": "Leader", "State": "running", "TL": 3, "Tags": {}})
        );
        assert_eq!(
            rows[1],
            json!({"Cluster": "demo", "Member": "node2", "Host": "127.0.0.1:5433",
                   "Role": "Sync Standby", "State": "streaming", "TL": 3,
                   "Receive LSN": "0/3000000", "Receive Lag": 20,
                   "Replay LSN": "0/2800000", "Replay Lag": 28, "Tags": {}})
        );
        assert_eq!(rows[2]["Role"], "Replica");
        assert_eq!(rows[2]["Tags"], json!({"nofailover": true}));
        assert_eq!(rows[2]["Receive Lag"], 0);
        assert!(text.starts_with("[{\"Cluster\": \"demo\", \"Member\": \"node1\", \"Host\""));
    }

    #[test]
    fn pretty_table_and_topology() {
        let c = cluster();
        let l = listing(&c, "demo", false, Format::Pretty);
        let text = render(&l, Format::Pretty);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("+ Cluster: demo (7345678901234567890) -"),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "| Member | Host           | Role         | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Tags             |"
        );
        assert!(
            lines[4].contains("|   0/3000000 |  20 |  0/2800000 |  28 |"),
            "{text}"
        );
        assert_eq!(lines[7], " Maintenance mode: on");
        let t = listing(&c, "demo", false, Format::Topology);
        let text = render(&t, Format::Topology);
        let names: Vec<&str> = text
            .lines()
            .skip(3)
            .take(3)
            .map(|l| l.split('|').nth(1).unwrap().trim())
            .collect();
        assert_eq!(names, ["node1", "+ node2", "+ node3"]);
    }

    #[test]
    fn rounding_and_titles() {
        assert_eq!(mib(3 << 19), 2); // 1.5 MiB rounds to even
        assert_eq!(mib(5 << 19), 2); // 2.5 MiB rounds to even
        assert_eq!(mib(7 << 19), 4);
        assert_eq!(title_case("sync standby"), "Sync Standby");
        let t: patroni_core::Timestamp = "2026-11-26T10:00:00+00:00".parse().unwrap();
        assert_eq!(python_isoformat(t), "2026-11-26T10:00:00+00:00");
        let t: patroni_core::Timestamp = "2026-11-26T10:00:00.25Z".parse().unwrap();
        assert_eq!(python_isoformat(t), "2026-11-26T10:00:00.250000+00:00");
    }
}
