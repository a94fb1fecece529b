//! Read-only cluster endpoints: `/cluster`, `/history` and Prometheus `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patroni_core::{
    Cluster, DbRole, Lsn, MemberRole, MemberState, ProcessState, SynchronousMode, Timestamp,
};
use serde_json::{json, Value};

use super::text;
use crate::members::cluster_json;
use crate::state::Shared;
use crate::status::{is_quorum_standby, is_sync_standby, replication_state, server_version_num};

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

/// Seconds since the epoch with Patroni's float form (`0` when unknown).
fn epoch_seconds(t: Option<Timestamp>) -> String {
    match t {
        None => "0".into(),
        Some(t) if t.0 % 1000 == 0 => format!("{}.0", t.0 / 1000),
        Some(t) => format!("{}.{:03}", t.0.div_euclid(1000), t.0.rem_euclid(1000)),
    }
}

/// `GET /metrics`: Patroni's metrics in Prometheus text format, in Patroni's order.
pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.snapshot();
    let node = shared.node();
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let labels = format!(
        "{{scope=\"{}\",name=\"{}\"}}",
        esc(&shared.scope),
        esc(&node.name)
    );
    let local = &snap.local;
    let b = |v: bool| u8::from(v).to_string();
    let running = local.process == ProcessState::Running;
    // Patroni reads role, versions and positions from a status query, which needs a live server.
    let alive = local.process.is_alive();
    let standby_leader = alive && crate::status::role(&snap) == MemberRole::StandbyLeader;
    let standby = alive && local.role == DbRole::Standby && !standby_leader;
    let server_version = local
        .version
        .as_deref()
        .filter(|_| alive)
        .and_then(server_version_num);
    let repl_state = replication_state(local);
    let mut gauges: Vec<(&str, &str, &str, String)> = vec![
        (
            "patroni_postgres_running",
            "Value is 1 if Postgres is running, 0 otherwise.",
            "gauge",
            b(running),
        ),
        (
            "patroni_postmaster_start_time",
            "Epoch seconds since Postgres started.",
            "gauge",
            epoch_seconds(local.report.postmaster_start_time.filter(|_| alive)),
        ),
        (
            "patroni_primary",
            "Value is 1 if this node is the leader, 0 otherwise.",
            "gauge",
            b(alive && local.role == DbRole::Primary),
        ),
        (
            "patroni_xlog_location",
            "Current location of the Postgres transaction log, 0 if this node is not the leader.",
            "counter",
            local
                .write_lsn
                .filter(|_| alive && local.role == DbRole::Primary)
                .map_or(0, |l| l.0)
                .to_string(),
        ),
        (
            "patroni_standby_leader",
            "Value is 1 if this node is the standby_leader, 0 otherwise.",
            "gauge",
            b(standby_leader),
        ),
        (
            "patroni_replica",
            "Value is 1 if this node is a replica, 0 otherwise.",
            "gauge",
            b(standby),
        ),
        (
            "patroni_sync_standby",
            "Value is 1 if this node is a sync standby, 0 otherwise.",
            "gauge",
            b(is_sync_standby(&snap, &node)),
        ),
        (
            "patroni_quorum_standby",
            "Value is 1 if this node is a quorum standby, 0 otherwise.",
            "gauge",
            b(is_quorum_standby(&snap, &node)),
        ),
        (
            "patroni_xlog_received_location",
            "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
            "counter",
            local
                .receive_lsn
                .or(local.replay_lsn)
                .filter(|_| standby)
                .map_or(0, |l| l.0)
                .to_string(),
        ),
        (
            "patroni_xlog_replayed_location",
            "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
            "counter",
            local
                .replay_lsn
                .filter(|_| standby)
                .map_or(0, |l| l.0)
                .to_string(),
        ),
        (
            "patroni_xlog_replayed_timestamp",
            "Current timestamp of the replayed Postgres transaction log, 0 if null.",
            "gauge",
            epoch_seconds(local.report.replayed_timestamp.filter(|_| standby)),
        ),
        (
            "patroni_xlog_paused",
            "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
            "gauge",
            b(standby && local.report.replay_paused),
        ),
    ];
    if server_version.is_some_and(|v| v >= 90600) {
        gauges.push((
            "patroni_postgres_streaming",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            "gauge",
            b(repl_state == Some("streaming")),
        ));
        gauges.push((
            "patroni_postgres_in_archive_recovery",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            "gauge",
            b(repl_state == Some("in archive recovery")),
        ));
    }
    gauges.extend([
        (
            "patroni_postgres_server_version",
            "Version of Postgres (if running), 0 otherwise.",
            "gauge",
            server_version.unwrap_or(0).to_string(),
        ),
        (
            "patroni_cluster_unlocked",
            "Value is 1 if the cluster is unlocked, 0 if locked.",
            "gauge",
            b(snap.cluster.as_ref().is_none_or(|c| c.is_unlocked())),
        ),
        (
            "patroni_failsafe_mode_is_active",
            "Value is 1 if failsafe mode is active, 0 if inactive.",
            "gauge",
            b(snap.failsafe_active(&node, shared.clock.now())),
        ),
        (
            "patroni_postgres_timeline",
            "Postgres timeline of this node (if running), 0 otherwise.",
            "counter",
            local.timeline.filter(|_| alive).unwrap_or(0).to_string(),
        ),
        (
            "patroni_dcs_last_seen",
            "Epoch timestamp when DCS was last contacted successfully by Patroni.",
            "gauge",
            snap.dcs_last_seen.map_or(0, |t| t.0 / 1000).to_string(),
        ),
        (
            "patroni_pending_restart",
            "Value is 1 if the node needs a restart, 0 otherwise.",
            "gauge",
            b(local.pending_restart),
        ),
        (
            "patroni_is_paused",
            "Value is 1 if auto failover is disabled, 0 otherwise.",
            "gauge",
            b(snap.paused(&node)),
        ),
    ]);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP patroni_version Patroni semver without periods.\n# TYPE patroni_version gauge\npatroni_version{labels} {:06}",
        crate::status::version_number(&node.version)
    );
    for (name, help, kind, v) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP patroni_postgres_state Numeric representation of Postgres state.\n# Values: {STATE_VALUES}\n# TYPE patroni_postgres_state gauge\npatroni_postgres_state{labels} {}",
        state_index(crate::status::state(&snap))
    );
    let _ = writeln!(
        out,
        "# HELP patroni_rs_version The patroni-rs release.\n# TYPE patroni_rs_version gauge\npatroni_rs_version{{scope=\"{}\",name=\"{}\",version=\"{}\"}} 1",
        esc(&shared.scope),
        esc(&node.name),
        env!("CARGO_PKG_VERSION")
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
