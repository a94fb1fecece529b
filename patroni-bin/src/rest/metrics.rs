//! Read-only cluster endpoints: `/cluster`, `/history` and Prometheus `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patroni_core::{Cluster, Lsn, MemberRole, MemberState, SynchronousMode, Timestamp};
use serde_json::{json, Value};

use super::text;
use crate::members::cluster_json;
use crate::state::Shared;
use crate::status::{patroni_status, version_number, PatroniStatus, ServerVersion, Xlog};

/// `GET /cluster`: every member with role, state and lag, read fresh from the DCS.
pub async fn cluster(State(shared): State<Arc<Shared>>) -> Response {
    match shared.dcs.load().await {
        Ok(c) => Json(patroni_cluster_json(&shared.scope, &c)).into_response(),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")),
    }
}

/// The `GET /cluster` document as Patroni's `cluster_as_json` builds it: members sorted by name;
/// every member but the leader with `lsn`, `receive_lsn`, `replay_lsn` (`X/X` text) and their
/// lags in bytes (`"unknown"` for both when the member published no such position); `pause`
/// only when paused.
pub fn patroni_cluster_json(scope: &str, cluster: &Cluster) -> Value {
    let mut doc = cluster_json(scope, cluster);
    let cluster_lsn = cluster
        .leader_member()
        .map(|m| m.wal_position())
        .max(cluster.leader_optime())
        .unwrap_or(Lsn::ZERO);
    let leader = cluster.leader.as_ref().map(|l| l.name.as_str());
    let mode = cluster
        .config
        .as_ref()
        .map(|c| c.value.synchronous_mode)
        .unwrap_or_default();
    if let Some(members) = doc.get_mut("members").and_then(Value::as_array_mut) {
        for row in members.iter_mut() {
            let Some(name) = row.get("name").and_then(Value::as_str).map(String::from) else {
                continue;
            };
            let Some(obj) = row.as_object_mut() else {
                continue;
            };
            if Some(name.as_str()) == leader {
                obj.remove("lag");
                continue;
            }
            // Patroni names the `/sync` members by the mode in force, and none when it is off.
            if obj.get("role").and_then(Value::as_str) == Some("sync_standby") {
                let role = match mode {
                    SynchronousMode::Off => "replica",
                    SynchronousMode::On => "sync_standby",
                    SynchronousMode::Quorum => "quorum_standby",
                };
                obj.insert("role".into(), json!(role));
            }
            let data = cluster.member(&name).map(|m| &m.data);
            for (prefix, lsn) in [
                ("receive_", data.and_then(|d| d.receive_lsn)),
                ("replay_", data.and_then(|d| d.replay_lsn)),
                ("", data.and_then(|d| d.xlog_location)),
            ] {
                let (lsn_key, lag_key) = (format!("{prefix}lsn"), format!("{prefix}lag"));
                match lsn.filter(|l| *l > Lsn::ZERO) {
                    None => {
                        obj.insert(lsn_key, json!("unknown"));
                        obj.insert(lag_key, json!("unknown"));
                    }
                    Some(l) => {
                        obj.insert(lsn_key, json!(l.to_string()));
                        obj.insert(lag_key, json!(cluster_lsn.saturating_sub(l)));
                    }
                }
            }
        }
        members.sort_by(|a, b| {
            let name = |v: &Value| v.get("name").and_then(Value::as_str).map(String::from);
            name(a).cmp(&name(b))
        });
    }
    if doc.get("pause") == Some(&Value::Bool(false)) {
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("pause");
        }
    }
    doc
}

/// `GET /history`: the timeline history, `[timeline, lsn, reason, timestamp, new_leader]` rows.
pub async fn history(State(shared): State<Arc<Shared>>) -> Response {
    match shared.dcs.load().await {
        Ok(c) => Json(c.history).into_response(),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")),
    }
}

/// Patroni's numeric code for a member state (`PostgresqlState.index`), `-1` when it has none.
pub fn state_index(state: MemberState) -> i64 {
    match state {
        MemberState::Initializing => 0,
        MemberState::CreatingReplica | MemberState::Rebuilding => 4,
        MemberState::Running => 5,
        MemberState::Starting => 6,
        MemberState::StartFailed => 8,
        MemberState::Stopping => 11,
        MemberState::Stopped => 12,
        MemberState::Crashed => 14,
        MemberState::Unknown => -1,
    }
}

/// The `# Values:` line of `patroni_postgres_state`, Patroni's list of every state and its code.
const STATE_VALUES: &str = "0=initdb, 1=initdb_failed, 2=custom_bootstrap, \
3=custom_bootstrap_failed, 4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, \
8=start_failed, 9=restarting, 10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, \
14=crashed";

/// A `datetime` of the status document as Patroni's metric has it: seconds since the epoch as
/// Python prints `total_seconds()` (`1700000000.12`, `1700000100.0`), `0` when absent.
fn epoch_seconds(datetime: Option<&str>) -> String {
    match datetime.and_then(|d| d.parse::<Timestamp>().ok()) {
        None => "0".into(),
        Some(t) => {
            let fraction = format!("{:03}", t.0.rem_euclid(1000));
            let fraction = fraction.trim_end_matches('0');
            let fraction = if fraction.is_empty() { "0" } else { fraction };
            format!("{}.{fraction}", t.0.div_euclid(1000))
        }
    }
}

/// `GET /metrics`: Patroni's metrics in Prometheus text format, from the very document
/// `GET /patroni` answers at this moment, as Patroni builds both from one status.
pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let doc = patroni_status(
        &shared.scope,
        &shared.node(),
        &shared.snapshot(),
        shared.clock.now(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&doc),
    )
        .into_response()
}

/// The Prometheus text of a status document, metric by metric with Patroni's names, help, types,
/// order and conditions: each value is read from the document and from nothing else.
pub fn render(doc: &PatroniStatus) -> String {
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let (scope, name) = (esc(&doc.patroni.scope), esc(&doc.patroni.name));
    let labels = format!("{{scope=\"{scope}\",name=\"{name}\"}}");
    let b = |v: bool| u8::from(v).to_string();
    let lsn = |l: Option<Lsn>| l.map_or(0, |l| l.0).to_string();
    let (location, received, replayed, replayed_at, paused) = match &doc.xlog {
        Some(Xlog::Primary { location }) => (Some(*location), None, None, None, false),
        Some(Xlog::Standby {
            paused,
            received_location,
            replayed_location,
            replayed_timestamp,
        }) => (
            None,
            *received_location,
            *replayed_location,
            replayed_timestamp.as_deref(),
            *paused,
        ),
        None => (None, None, None, None, false),
    };
    // Patroni's integer; a version that reads as none (some openGauss builds) counts as 0.
    let server_version = match doc.server_version {
        Some(ServerVersion::Number(n)) => n,
        _ => 0,
    };
    let replication_state = doc.replication_state.as_deref();
    let mut gauges: Vec<(&str, &str, &str, String)> = vec![
        (
            "patroni_postgres_running",
            "Value is 1 if Postgres is running, 0 otherwise.",
            "gauge",
            b(doc.state == MemberState::Running),
        ),
        (
            "patroni_postmaster_start_time",
            "Epoch seconds since Postgres started.",
            "gauge",
            epoch_seconds(doc.postmaster_start_time.as_deref()),
        ),
        (
            "patroni_primary",
            "Value is 1 if this node is the leader, 0 otherwise.",
            "gauge",
            b(doc.role == MemberRole::Primary),
        ),
        (
            "patroni_xlog_location",
            "Current location of the Postgres transaction log, 0 if this node is not the leader.",
            "counter",
            lsn(location),
        ),
        (
            "patroni_standby_leader",
            "Value is 1 if this node is the standby_leader, 0 otherwise.",
            "gauge",
            b(doc.role == MemberRole::StandbyLeader),
        ),
        (
            "patroni_replica",
            "Value is 1 if this node is a replica, 0 otherwise.",
            "gauge",
            b(doc.role == MemberRole::Replica),
        ),
        (
            "patroni_sync_standby",
            "Value is 1 if this node is a sync standby, 0 otherwise.",
            "gauge",
            b(doc.sync_standby),
        ),
        (
            "patroni_quorum_standby",
            "Value is 1 if this node is a quorum standby, 0 otherwise.",
            "gauge",
            b(doc.quorum_standby),
        ),
        (
            "patroni_xlog_received_location",
            "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
            "counter",
            lsn(received),
        ),
        (
            "patroni_xlog_replayed_location",
            "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
            "counter",
            lsn(replayed),
        ),
        (
            "patroni_xlog_replayed_timestamp",
            "Current timestamp of the replayed Postgres transaction log, 0 if null.",
            "gauge",
            epoch_seconds(replayed_at),
        ),
        (
            "patroni_xlog_paused",
            "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
            "gauge",
            b(paused),
        ),
    ];
    if server_version >= 90600 {
        gauges.push((
            "patroni_postgres_streaming",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            "gauge",
            b(replication_state == Some("streaming")),
        ));
        gauges.push((
            "patroni_postgres_in_archive_recovery",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            "gauge",
            b(replication_state == Some("in archive recovery")),
        ));
    }
    gauges.extend([
        (
            "patroni_postgres_server_version",
            "Version of Postgres (if running), 0 otherwise.",
            "gauge",
            server_version.to_string(),
        ),
        (
            "patroni_cluster_unlocked",
            "Value is 1 if the cluster is unlocked, 0 if locked.",
            "gauge",
            b(doc.cluster_unlocked),
        ),
        (
            "patroni_failsafe_mode_is_active",
            "Value is 1 if failsafe mode is active, 0 if inactive.",
            "gauge",
            b(doc.failsafe_mode_is_active),
        ),
        (
            "patroni_postgres_timeline",
            "Postgres timeline of this node (if running), 0 otherwise.",
            "counter",
            doc.timeline.unwrap_or(0).to_string(),
        ),
        (
            "patroni_dcs_last_seen",
            "Epoch timestamp when DCS was last contacted successfully by Patroni.",
            "gauge",
            doc.dcs_last_seen.to_string(),
        ),
        (
            "patroni_pending_restart",
            "Value is 1 if the node needs a restart, 0 otherwise.",
            "gauge",
            b(doc.pending_restart),
        ),
        (
            "patroni_is_paused",
            "Value is 1 if auto failover is disabled, 0 otherwise.",
            "gauge",
            b(doc.pause),
        ),
    ]);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP patroni_version Patroni semver without periods.\n# TYPE patroni_version gauge\npatroni_version{labels} {:06}",
        version_number(&doc.patroni.version)
    );
    for (metric, help, kind, v) in gauges {
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} {kind}\n{metric}{labels} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP patroni_postgres_state Numeric representation of Postgres state.\n# Values: {STATE_VALUES}\n# TYPE patroni_postgres_state gauge\npatroni_postgres_state{labels} {}",
        state_index(doc.state)
    );
    if let Some(release) = &doc.patroni.patroni_rs_version {
        let _ = writeln!(
            out,
            "# HELP patroni_rs_version The patroni-rs release.\n# TYPE patroni_rs_version gauge\npatroni_rs_version{{scope=\"{scope}\",name=\"{name}\",version=\"{}\"}} 1",
            esc(release)
        );
    }
    out
}
