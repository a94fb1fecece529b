//! Local operator verbs: restart, reinitialize, reload. They queue a request for the HA loop,
//! which alone touches the database, and report how it ended.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use patroni_core::{ActionKind, DbRole, LocalRequest, OutcomeResult};
use serde::Deserialize;

use super::{authorized_json, require_auth, text};
use crate::state::Shared;
use crate::status::server_version_num;

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RestartBody {
    role: Option<String>,
    restart_pending: Option<bool>,
    postgres_version: Option<String>,
    timeout: Option<u64>,
    schedule: Option<String>,
}

/// `POST /restart`: restart the database now if the filters match; 200 done, 503 failed or not matching.
pub async fn restart(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b: RestartBody = match authorized_json(&shared, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if b.schedule.is_some() {
        return text(
            StatusCode::BAD_REQUEST,
            "scheduled restarts are not supported by this agent; restart now or schedule it externally",
        );
    }
    let snap = shared.snapshot();
    if let Some(role) = &b.role {
        let want = match role.as_str() {
            "primary" | "master" => Some(DbRole::Primary),
            "replica" => Some(DbRole::Standby),
            "any" => None,
            other => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid role {other:?}: expected primary, replica or any"),
                )
            }
        };
        if want.is_some_and(|r| r != snap.local.role) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "restart conditions are not satisfied",
            );
        }
    }
    if b.restart_pending == Some(true) && !snap.local.pending_restart {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "restart conditions are not satisfied",
        );
    }
    if let Some(v) = &b.postgres_version {
        let Some(want) = server_version_num(v) else {
            return text(
                StatusCode::BAD_REQUEST,
                format!("postgres_version {v:?} is not a version"),
            );
        };
        let have = snap.local.version.as_deref().and_then(server_version_num);
        if have.is_some_and(|h| h >= want) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "restart conditions are not satisfied",
            );
        }
    }
    let requested_at = shared.clock.now();
    shared.push_request(LocalRequest::Restart);
    let timeout = Duration::from_secs(b.timeout.unwrap_or(60).clamp(1, 3600));
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = shared
            .snapshot()
            .finished
            .into_iter()
            .rev()
            .find(|o| o.kind == ActionKind::Restart && o.started_at >= requested_at);
        match done.map(|o| o.result) {
            Some(OutcomeResult::Done) => return text(StatusCode::OK, "restarted successfully"),
            Some(other) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("restart failed: {other:?}"),
                )
            }
            None => continue,
        }
    }
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "restart failed: it did not finish in time",
    )
}

/// `DELETE /restart`: cancel a scheduled restart. Restarts are never scheduled here (`POST
/// /restart` refuses `schedule`), so this answers Patroni's 404 for "nothing scheduled".
pub async fn delete_restart(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = require_auth(&shared, &headers) {
        return r;
    }
    text(StatusCode::NOT_FOUND, "no restarts are scheduled")
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct ReinitBody {
    force: bool,
    from_leader: bool,
}

/// `POST /reinitialize`: wipe and re-clone this standby from the leader.
pub async fn reinitialize(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b: ReinitBody = match authorized_json(&shared, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let _ = b.from_leader;
    let snap = shared.snapshot();
    let now = shared.clock.now();
    if snap.is_leader(now) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "I am the leader, can not reinitialize",
        );
    }
    if snap.cluster.as_ref().is_none_or(|c| c.is_unlocked()) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cluster has no leader, can not reinitialize",
        );
    }
    if snap
        .task
        .is_some_and(|t| matches!(t.kind, ActionKind::Rebuild | ActionKind::CloneFrom))
    {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "reinitialize already in progress",
        );
    }
    shared.push_request(LocalRequest::Reinitialize { force: b.force });
    text(StatusCode::OK, "reinitialize started")
}

/// `POST /reload`: re-read the configuration file (as SIGHUP does).
pub async fn reload(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = require_auth(&shared, &headers) {
        return r;
    }
    shared.reload.notify_one();
    shared.wake.notify_one();
    text(StatusCode::ACCEPTED, "reload scheduled")
}
