//! `/failsafe`: the topology a primary counts on during a DCS outage (`GET`), and a member's
//! confirmation of the leader that asks (`POST`), by the core's rule.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patroni_core::{FailsafeLeader, FailsafePost};

use super::{authorized_json, text};
use crate::state::Shared;

fn disabled() -> Response {
    text(StatusCode::BAD_GATEWAY, "failsafe mode is not enabled")
}

/// `GET /failsafe`: the `/failsafe` key as last read, 502 when failsafe mode is off or there is none.
pub async fn get_failsafe(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.snapshot();
    if !snap.dynamic_config(&shared.node()).failsafe_mode {
        return disabled();
    }
    match snap.cluster.and_then(|c| c.failsafe) {
        Some(t) => Json(t).into_response(),
        None => disabled(),
    }
}

/// `POST /failsafe`: 200 `Accepted` when the poster is the leader this member knows and it does
/// not run as a primary itself; 500 with the reason otherwise; 502 when failsafe mode is off.
pub async fn post_failsafe(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let node = shared.node();
    let config = shared.snapshot().dynamic_config(&node);
    if !config.failsafe_mode {
        return disabled();
    }
    let post: FailsafePost = match authorized_json(&shared, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let now = shared.clock.now();
    let mut verdict = Ok(());
    // Decided and recorded under the snapshot's lock: two posts cannot both pass on one state.
    shared.update(|s| {
        let view_leader = s
            .cluster
            .as_ref()
            .and_then(|c| c.leader.as_ref())
            .map(|l| l.name.clone());
        verdict = patroni_core::failsafe_answer(
            &post.name,
            s.local.is_running_primary(),
            view_leader.as_deref(),
            s.failsafe_leader.as_ref(),
            now,
            config.ttl_duration(),
        );
        if verdict.is_ok() {
            s.failsafe_leader = Some(FailsafeLeader {
                name: post.name.clone(),
                accepted_at: now,
            });
        }
    });
    match verdict {
        Ok(()) => text(StatusCode::OK, "Accepted"),
        Err(why) => {
            tracing::info!("refused failsafe leader {}: {why}", post.name);
            text(StatusCode::INTERNAL_SERVER_ERROR, why)
        }
    }
}
