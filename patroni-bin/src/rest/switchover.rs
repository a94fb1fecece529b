//! `/switchover` and `/failover`: validate like Patroni, write `/failover`, wait for the new leader.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use patroni_core::{Cluster, FailoverRequest, MemberRole, MemberState, Timestamp};
use serde::Deserialize;

use super::{authorized_json, require_auth, text};
use crate::state::Shared;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Body {
    leader: Option<String>,
    #[serde(alias = "member")]
    candidate: Option<String>,
    scheduled_at: Option<String>,
}

/// A Patroni-style refusal: the code and the message.
type Refusal = (StatusCode, String);

fn refuse(code: StatusCode, msg: impl Into<String>) -> Refusal {
    (code, msg.into())
}

/// Parses `scheduled_at`: 400 without a time zone, 422 unparsable or in the past.
fn parse_schedule(raw: &str, now: Timestamp) -> Result<Timestamp, Refusal> {
    match raw.parse::<Timestamp>() {
        Ok(t) if t <= now => Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Can't schedule switchover in the past",
        )),
        Ok(t) => Ok(t),
        Err(_) => {
            let tail = raw.split_once('T').map(|(_, t)| t).unwrap_or("");
            let has_zone = tail.ends_with('Z') || tail.contains('+') || tail.contains('-');
            if raw.contains('T') && !has_zone {
                Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "Timezone information is mandatory for the scheduled switchover",
                ))
            } else {
                Err(refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
                ))
            }
        }
    }
}

/// Whether a member could take over: a running replica that allows failover.
fn healthy_candidate(cluster: &Cluster, name: &str) -> bool {
    cluster.member(name).is_some_and(|m| {
        m.unreadable.is_none()
            && m.data.state == MemberState::Running
            && !matches!(m.data.role, MemberRole::Primary)
            && m.data.tags.allows_failover()
    })
}

/// Patroni's pre-checks (412) on a switchover or failover request.
fn precheck(cluster: &Cluster, req: &FailoverRequest) -> Result<(), Refusal> {
    let leader = cluster.leader.as_ref().map(|l| l.name.as_str());
    if let Some(want) = &req.leader {
        if leader != Some(want.as_str()) {
            return Err(refuse(
                StatusCode::PRECONDITION_FAILED,
                "leader name does not match",
            ));
        }
    }
    match &req.candidate {
        Some(c) => {
            if cluster.member(c).is_none() {
                return Err(refuse(
                    StatusCode::PRECONDITION_FAILED,
                    "candidate does not exists",
                ));
            }
            if req.leader.is_some() && leader == Some(c.as_str()) {
                return Err(refuse(
                    StatusCode::PRECONDITION_FAILED,
                    format!("Member {c} is already the leader of the cluster"),
                ));
            }
            let sync_mode = cluster
                .config
                .as_ref()
                .is_some_and(|c| c.value.synchronous());
            if sync_mode && !cluster.sync_state().is_some_and(|s| s.is_sync(c)) {
                return Err(refuse(
                    StatusCode::PRECONDITION_FAILED,
                    "candidate name does not match with sync_standby",
                ));
            }
        }
        None => {
            let any = cluster
                .members
                .iter()
                .any(|m| Some(m.name.as_str()) != leader && healthy_candidate(cluster, &m.name));
            if !any {
                return Err(refuse(
                    StatusCode::PRECONDITION_FAILED,
                    "switchover is not possible: no good candidates have been found",
                ));
            }
        }
    }
    Ok(())
}

async fn handle(shared: Arc<Shared>, body: Body, failover: bool) -> Result<Response, Refusal> {
    let now = shared.clock.wall();
    let cluster = shared
        .dcs
        .load()
        .await
        .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")))?;
    let paused = cluster.config.as_ref().is_some_and(|c| c.value.pause);
    if failover {
        if body.candidate.is_none() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Failover could be performed only to a specific candidate",
            ));
        }
        if body.scheduled_at.is_some() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Failover can't be scheduled",
            ));
        }
    } else if body.leader.is_none() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Switchover could be performed only from a specific leader",
        ));
    }
    if paused && body.scheduled_at.is_some() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Can't schedule switchover in the paused state",
        ));
    }
    if paused && body.candidate.is_none() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Switchover is possible only to a specific candidate in a paused state",
        ));
    }
    let scheduled_at = match &body.scheduled_at {
        Some(raw) => Some(parse_schedule(raw, now)?),
        None => None,
    };
    let req = FailoverRequest {
        leader: body.leader.clone(),
        candidate: body.candidate.clone(),
        scheduled_at,
    };
    precheck(&cluster, &req)?;
    let version = cluster.failover.as_ref().map(|f| f.version);
    let written = shared.dcs.set_failover(&req, version).await.map_err(|e| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("failed to write failover key: {e}"),
        )
    })?;
    if !written {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "failed to write failover key: another request was written concurrently",
        ));
    }
    shared.wake.notify_one();
    if scheduled_at.is_some() {
        return Ok(text(StatusCode::ACCEPTED, "Switchover scheduled"));
    }
    let old_leader = cluster.leader.as_ref().map(|l| l.name.clone());
    let loop_wait = cluster
        .config
        .as_ref()
        .map_or(shared.node().bootstrap_config.loop_wait, |c| {
            c.value.loop_wait
        });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2 * loop_wait.max(10));
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Ok(c) = shared.dcs.load().await else {
            continue;
        };
        if c.failover_request().is_some() {
            continue;
        }
        let new_leader = c.leader.as_ref().map(|l| l.name.clone());
        match (&new_leader, &req.candidate) {
            (Some(n), _) if Some(n) == old_leader.as_ref() => {
                return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "Switchover failed"))
            }
            (Some(n), Some(c)) if n != c => {
                return Ok(text(
                    StatusCode::OK,
                    format!("Switched over to \"{n}\" instead of \"{c}\""),
                ))
            }
            (Some(n), _) => {
                return Ok(text(
                    StatusCode::OK,
                    format!("Successfully switched over to \"{n}\""),
                ))
            }
            (None, _) => continue,
        }
    }
    Err(refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "Switchover status unknown",
    ))
}

async fn entry(shared: Arc<Shared>, headers: HeaderMap, body: Bytes, failover: bool) -> Response {
    let body: Body = match authorized_json(&shared, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match handle(shared, body, failover).await {
        Ok(r) => r,
        Err((code, msg)) => text(code, msg),
    }
}

/// `POST /switchover`: `{leader, candidate?, scheduled_at?}`.
pub async fn post_switchover(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    entry(shared, headers, body, false).await
}

/// `POST /failover`: `{candidate, leader?}`; with a leader it is a switchover.
pub async fn post_failover(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    entry(shared, headers, body, true).await
}

/// `DELETE /switchover`: cancel a scheduled switchover.
pub async fn delete_switchover(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = require_auth(&shared, &headers) {
        return r;
    }
    let cluster = match shared.dcs.load().await {
        Ok(c) => c,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")),
    };
    let Some(f) = cluster
        .failover
        .as_ref()
        .filter(|f| f.value.scheduled_at.is_some())
    else {
        return text(StatusCode::NOT_FOUND, "No switchover is scheduled");
    };
    match shared.dcs.clear_failover(f.version).await {
        Ok(true) => text(StatusCode::OK, "scheduled switchover deleted"),
        Ok(false) => text(
            StatusCode::CONFLICT,
            "the switchover was changed concurrently; nothing deleted",
        ),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_parsing_codes() {
        let now: Timestamp = "2026-11-26T10:00:00+00:00".parse().unwrap();
        assert!(parse_schedule("2026-11-26T11:00:00+00:00", now).is_ok());
        assert_eq!(
            parse_schedule("2026-11-26T09:00:00Z", now).unwrap_err().0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            parse_schedule("2026-11-26T11:00:00", now).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_schedule("tomorrow", now).unwrap_err().0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
