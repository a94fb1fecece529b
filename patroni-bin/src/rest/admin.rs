//! Local operator verbs: restart, reinitialize, reload. They queue a request for the HA loop,
//! which alone touches the database, and report how it ended.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use patroni_core::{ActionKind, LocalRequest, OutcomeResult, ProcessState};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{authorized_json, require_auth, text};
use crate::scheduled::{parse_request, ScheduledRestart};
use crate::state::Shared;

/// `POST /restart`: restart the database now if the filters match (200 done, 503 failed, not
/// matching, or still starting past `timeout`), or with `schedule` keep the restart for later
/// (202, 409 when one is already kept), with Patroni's answers.
pub async fn restart(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b: Map<String, Value> = match authorized_json(&shared, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let snap = shared.snapshot();
    let req = match parse_request(&b, shared.clock.wall(), snap.paused(&shared.node())) {
        Ok(r) => r,
        Err((code, msg)) => return text(code, msg),
    };
    if let Some((at, schedule)) = req.schedule {
        let mut scheduled = false;
        shared.update(|s| {
            if s.scheduled_restart.is_none() {
                s.scheduled_restart = Some(ScheduledRestart {
                    at,
                    schedule,
                    conditions: req.conditions,
                    postmaster_start_time: s.local.report.postmaster_start_time,
                });
                scheduled = true;
            }
        });
        if !scheduled {
            return text(StatusCode::CONFLICT, "Another restart is already scheduled");
        }
        // The next cycle publishes it in the member key.
        shared.wake.notify_one();
        return text(StatusCode::ACCEPTED, "Restart scheduled");
    }
    if req.conditions.mismatch(&snap.local).is_some() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "restart conditions are not satisfied",
        );
    }
    let requested_at = shared.clock.now();
    shared.push_request(req.conditions.request());
    // Patroni's restart waits for the start as long as the request's `timeout` (else
    // `primary_start_timeout`, or `pg_ctl_timeout`'s 60 s when that is 0), and past it answers
    // that the database is still starting; the HA loop judges that start by the same timeout.
    let start_limit = req.conditions.start_timeout().unwrap_or_else(|| {
        let t = snap.with_dynamic_config(&shared.node(), |c| c.primary_start_timeout_duration());
        if t.is_zero() {
            Duration::from_secs(60)
        } else {
            t
        }
    });
    let deadline = tokio::time::Instant::now() + start_limit + SHUTDOWN_ALLOWANCE;
    let mut start_began: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = tokio::time::Instant::now();
        let s = shared.snapshot();
        let restarting = s
            .task
            .is_some_and(|t| t.kind == ActionKind::Restart && t.since >= requested_at);
        if restarting && s.local.process != ProcessState::Running {
            start_began.get_or_insert(now);
        }
        let timed_out = start_began.is_some_and(|t| now >= t + start_limit);
        let done = s
            .finished
            .into_iter()
            .rev()
            .find(|o| o.kind == ActionKind::Restart && o.started_at >= requested_at);
        match done.map(|o| o.result) {
            Some(OutcomeResult::Done) => return text(StatusCode::OK, "restarted successfully"),
            Some(_) if timed_out || s.local.process == ProcessState::Starting => {
                return text(StatusCode::SERVICE_UNAVAILABLE, STILL_STARTING)
            }
            Some(other) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("restart failed: {other:?}"),
                )
            }
            None if timed_out || (now >= deadline && start_began.is_some()) => {
                return text(StatusCode::SERVICE_UNAVAILABLE, STILL_STARTING)
            }
            None if now >= deadline => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "restart failed: it did not finish in time",
                )
            }
            None => {}
        }
    }
}

/// Patroni's answer for a restart whose start outlasted its timeout.
const STILL_STARTING: &str = "postgres is still starting";

/// How long `POST /restart` allows for the shutdown and for the loop to pick the request up,
/// on top of the start's timeout (`patronictl` waits `timeout` + 30 s).
const SHUTDOWN_ALLOWANCE: Duration = Duration::from_secs(20);

/// `DELETE /restart`: cancel the scheduled restart (200), or Patroni's 404 when none is kept.
pub async fn delete_restart(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = require_auth(&shared, &headers) {
        return r;
    }
    let mut deleted = false;
    shared.update(|s| deleted = s.scheduled_restart.take().is_some());
    if !deleted {
        return text(StatusCode::NOT_FOUND, "no restarts are scheduled");
    }
    // The next cycle publishes the member key without it.
    shared.wake.notify_one();
    text(StatusCode::OK, "scheduled restart deleted")
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
