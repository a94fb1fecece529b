//! `/config`: read, deep-merge or replace the cluster's dynamic configuration with compare-and-swap.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patroni_core::DynamicConfig;
use serde_json::Value;

use super::{authorized_json, text};
use crate::state::Shared;

/// Turns JSON into a dynamic configuration; `Err` is the 400 to send.
fn to_config(v: Value) -> Result<DynamicConfig, Response> {
    crate::requests::to_config(v).map_err(|(code, msg)| text(code, msg))
}

fn dcs_down(e: impl std::fmt::Display) -> Response {
    text(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}"))
}

/// `GET /config`: the `/config` key, 502 when it does not exist.
pub async fn get_config(State(shared): State<Arc<Shared>>) -> Response {
    match shared.dcs.load().await {
        Ok(c) => match c.config {
            Some(v) => Json(v.value).into_response(),
            None => text(StatusCode::BAD_GATEWAY, "cluster has no /config key"),
        },
        Err(e) => dcs_down(e),
    }
}

/// `PATCH /config`: deep merge with `null` deleting keys; 409 when someone else wrote in between.
pub async fn patch_config(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let patch: Value = match authorized_json(&shared, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match crate::requests::patch_config(&shared, &patch).await {
        Ok(new) => Json(new).into_response(),
        Err((code, msg)) => text(code, msg),
    }
}

/// `PUT /config`: replace the whole configuration.
pub async fn put_config(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v: Value = match authorized_json(&shared, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let new = match to_config(v) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let version = match shared.dcs.load().await {
        Ok(c) => c.config.map(|c| c.version),
        Err(e) => return dcs_down(e),
    };
    match shared.dcs.write_config(&new, version).await {
        Ok(true) => {
            shared.wake.notify_one();
            Json(new).into_response()
        }
        Ok(false) => text(
            StatusCode::CONFLICT,
            "the configuration was changed concurrently; retry",
        ),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("DCS write failed: {e}")),
    }
}
