//! `/switchover` and `/failover`: the HTTP side of [`crate::requests::hand_over`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{authorized_json, require_auth, text};
use crate::requests::{hand_over, HandOver};
use crate::state::Shared;

async fn entry(shared: Arc<Shared>, headers: HeaderMap, body: Bytes, failover: bool) -> Response {
    let body: HandOver = match authorized_json(&shared, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match hand_over(&shared, body, failover).await {
        Ok((code, msg)) | Err((code, msg)) => text(code, msg),
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
