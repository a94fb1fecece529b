//! Operator requests, whoever submits them: the REST API on behalf of `patronictl` and
//! HAProxy-era scripts, or a program that embeds the agent ([`crate::builder::AgentHandle`]).
//! One validation and one write per request, so both get Patroni's answers word for word.

use std::time::Duration;

use axum::http::StatusCode;
use patroni_core::{Cluster, DynamicConfig, FailoverRequest, MemberRole, MemberState, Timestamp};
use serde::Deserialize;
use serde_json::Value;

use crate::state::Shared;

/// A switchover or manual failover as `POST /switchover` and `POST /failover` take it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct HandOver {
    /// The current leader (required for a switchover).
    pub leader: Option<String>,
    /// The member to promote (required for a failover).
    #[serde(alias = "member")]
    pub candidate: Option<String>,
    /// When, as an ISO 8601 time with a zone.
    pub scheduled_at: Option<String>,
}

/// A Patroni-style refusal: the code and the message.
pub type Refusal = (StatusCode, String);

pub fn refuse(code: StatusCode, msg: impl Into<String>) -> Refusal {
    (code, msg.into())
}

/// Patroni's `parse_schedule` for `action` (`switchover`, `restart`): 400 without a time zone,
/// 422 unparsable or in the past.
pub fn parse_schedule(raw: &str, now: Timestamp, action: &str) -> Result<Timestamp, Refusal> {
    match raw.parse::<Timestamp>() {
        Ok(t) if t <= now => Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Cannot schedule {action} in the past"),
        )),
        Ok(t) => Ok(t),
        Err(_) => {
            let tail = raw.split_once('T').map(|(_, t)| t).unwrap_or("");
            let has_zone = tail.ends_with('Z') || tail.contains('+') || tail.contains('-');
            if raw.contains('T') && !has_zone {
                Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("Timezone information is mandatory for the scheduled {action}"),
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

/// Validates a switchover (or, with `failover`, a manual failover) as Patroni does, writes
/// `/failover` and waits for the new leader: the one path for the REST API and for embedding
/// programs alike. `Ok` is the status and Patroni's message; `Err` the refusal.
pub async fn hand_over(
    shared: &Shared,
    body: HandOver,
    failover: bool,
) -> Result<(StatusCode, String), Refusal> {
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
        Some(raw) => Some(parse_schedule(raw, now, "switchover")?),
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
        return Ok((StatusCode::ACCEPTED, "Switchover scheduled".into()));
    }
    let old_leader = cluster.leader.as_ref().map(|l| l.name.clone());
    let loop_wait = cluster
        .config
        .as_ref()
        .map_or(shared.node().bootstrap_config.loop_wait_duration(), |c| {
            c.value.loop_wait_duration()
        });
    let deadline = tokio::time::Instant::now() + 2 * loop_wait.max(Duration::from_secs(10));
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
                return Ok((
                    StatusCode::OK,
                    format!("Switched over to \"{n}\" instead of \"{c}\""),
                ))
            }
            (Some(n), _) => {
                return Ok((
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
pub fn to_config(v: Value) -> Result<DynamicConfig, Refusal> {
    let c: DynamicConfig = serde_json::from_value(v).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("invalid configuration: {e}"),
        )
    })?;
    c.standby_cluster().map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("invalid configuration: {e}"),
        )
    })?;
    for w in c.adjusted().1 {
        tracing::warn!("/config: {w}");
    }
    Ok(c)
}

/// `PATCH /config`'s semantics: deep merge into the stored configuration, written with
/// compare-and-swap (409 when someone else wrote in between). Returns what was written.
pub async fn patch_config(shared: &Shared, patch: &Value) -> Result<DynamicConfig, Refusal> {
    if !patch.is_object() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "the patch must be a JSON object",
        ));
    }
    let cluster = shared
        .dcs
        .load()
        .await
        .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, format!("DCS error: {e}")))?;
    let Some(current) = cluster.config else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster has no /config key to patch",
        ));
    };
    let mut merged = serde_json::to_value(&current.value).unwrap_or(Value::Null);
    deep_merge(&mut merged, patch);
    let new = to_config(merged)?;
    match shared.dcs.write_config(&new, Some(current.version)).await {
        Ok(true) => {
            shared.wake.notify_one();
            Ok(new)
        }
        Ok(false) => Err(refuse(
            StatusCode::CONFLICT,
            "the configuration was changed concurrently; read it again and retry",
        )),
        Err(e) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("DCS error: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schedule_parsing_codes() {
        let now: Timestamp = "2026-11-26T10:00:00+00:00".parse().unwrap();
        assert!(parse_schedule("2026-11-26T11:00:00+00:00", now, "switchover").is_ok());
        assert_eq!(
            parse_schedule("2026-11-26T09:00:00Z", now, "switchover")
                .unwrap_err()
                .0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            parse_schedule("2026-11-26T11:00:00", now, "switchover")
                .unwrap_err()
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_schedule("tomorrow", now, "switchover").unwrap_err().0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

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
