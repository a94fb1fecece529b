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

/// Merges `patch` into `base`: objects recursively, `null` deletes, anything else replaces.
pub fn deep_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    deep_merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Turns JSON into a dynamic configuration; `Err` is the 400 to send. Only what cannot be a
/// configuration is refused: timings that break the rule are stored as written and adjusted by
/// every agent on read ([`DynamicConfig::adjusted`]), as Patroni does, so that a bad stored value
/// never blocks a later, unrelated change.
fn to_config(v: Value) -> Result<DynamicConfig, Response> {
    let c: DynamicConfig = serde_json::from_value(v).map_err(|e| {
        text(
            StatusCode::BAD_REQUEST,
            format!("invalid configuration: {e}"),
        )
    })?;
    for w in c.adjusted().1 {
        tracing::warn!("/config: {w}");
    }
    Ok(c)
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
    if !patch.is_object() {
        return text(StatusCode::BAD_REQUEST, "the patch must be a JSON object");
    }
    let cluster = match shared.dcs.load().await {
        Ok(c) => c,
        Err(e) => return dcs_down(e),
    };
    let Some(current) = cluster.config else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster has no /config key to patch",
        );
    };
    let mut merged = serde_json::to_value(&current.value).unwrap_or(Value::Null);
    deep_merge(&mut merged, &patch);
    let new = match to_config(merged) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match shared.dcs.write_config(&new, Some(current.version)).await {
        Ok(true) => {
            shared.wake.notify_one();
            Json(new).into_response()
        }
        Ok(false) => text(
            StatusCode::CONFLICT,
            "the configuration was changed concurrently; read it again and retry",
        ),
        Err(e) => dcs_down(e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_and_null_deletes() {
        let mut base =
            json!({"ttl": 30, "postgresql": {"parameters": {"a": 1, "b": 2}}, "pause": true});
        deep_merge(
            &mut base,
            &json!({"ttl": 20, "postgresql": {"parameters": {"b": null, "c": 3}}, "pause": null}),
        );
        assert_eq!(
            base,
            json!({"ttl": 20, "postgresql": {"parameters": {"a": 1, "c": 3}}})
        );
    }
}
