//! Read-only cluster endpoints: `/cluster`, `/history` and Prometheus `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patroni_core::{DbRole, ProcessState};

use super::text;
use crate::members::cluster_json;
use crate::state::Shared;

/// `GET /cluster`: every member with role, state and lag, read fresh from the DCS.
pub async fn cluster(State(shared): State<Arc<Shared>>) -> Response {
    match shared.dcs.load().await {
        Ok(c) => Json(cluster_json(&shared.scope, &c)).into_response(),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")),
    }
}

/// `GET /history`: the timeline history, `[timeline, lsn, reason, timestamp, new_leader]` rows.
pub async fn history(State(shared): State<Arc<Shared>>) -> Response {
    match shared.dcs.load().await {
        Ok(c) => Json(c.history).into_response(),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")),
    }
}

/// `GET /metrics`: Patroni's gauges in Prometheus text format.
pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.snapshot();
    let node = shared.node();
    let now = shared.clock.now();
    let labels = format!(
        "{{scope=\"{}\",name=\"{}\"}}",
        shared.scope.replace('"', "\\\""),
        node.name.replace('"', "\\\"")
    );
    let local = &snap.local;
    let b = |v: bool| u64::from(v);
    let gauges: Vec<(&str, &str, i128)> = vec![
        (
            "patroni_postgres_running",
            "Whether the database is running.",
            b(local.process == ProcessState::Running).into(),
        ),
        (
            "patroni_primary",
            "Whether this node holds the lock and runs as primary.",
            b(snap.is_leader(now) && local.is_running_primary()).into(),
        ),
        (
            "patroni_replica",
            "Whether this node runs as a standby.",
            b(local.process == ProcessState::Running && local.role == DbRole::Standby).into(),
        ),
        (
            "patroni_xlog_location",
            "Current WAL write position of the primary.",
            local
                .write_lsn
                .filter(|_| local.role == DbRole::Primary)
                .map_or(0, |l| l.0)
                .into(),
        ),
        (
            "patroni_xlog_received_location",
            "WAL received by this standby.",
            local.receive_lsn.map_or(0, |l| l.0).into(),
        ),
        (
            "patroni_xlog_replayed_location",
            "WAL replayed by this standby.",
            local.replay_lsn.map_or(0, |l| l.0).into(),
        ),
        (
            "patroni_postgres_timeline",
            "Database timeline.",
            local.timeline.unwrap_or(0).into(),
        ),
        (
            "patroni_cluster_unlocked",
            "Whether the cluster has no leader.",
            b(snap.cluster.as_ref().is_none_or(|c| c.is_unlocked())).into(),
        ),
        (
            "patroni_is_paused",
            "Whether the cluster is in maintenance mode.",
            b(snap.paused(&node)).into(),
        ),
        (
            "patroni_pending_restart",
            "Whether a restart is needed for parameter changes.",
            b(local.pending_restart).into(),
        ),
        (
            "patroni_dcs_last_seen",
            "Epoch seconds the DCS last answered.",
            snap.dcs_last_seen.map_or(0, |t| t.0 / 1000).into(),
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP patroni_version Patroni semver without periods.\n# TYPE patroni_version gauge"
    );
    let _ = writeln!(
        out,
        "patroni_version{{scope=\"{}\",name=\"{}\"}} {:06}",
        shared.scope,
        node.name,
        crate::status::version_number(&node.version)
    );
    let _ = writeln!(
        out,
        "# HELP patroni_rs_version The patroni-rs release.\n# TYPE patroni_rs_version gauge\npatroni_rs_version{{scope=\"{}\",name=\"{}\",version=\"{}\"}} 1",
        shared.scope,
        node.name,
        env!("CARGO_PKG_VERSION")
    );
    for (name, help, v) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {v}"
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
