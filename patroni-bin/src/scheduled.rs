//! Restarts asked for over `POST /restart`: the filters Patroni takes (`role`,
//! `postgres_version`, `restart_pending`, `timeout`) and a restart scheduled for later, which
//! Patroni keeps in the agent (not the DCS), publishes in the member key and `/patroni`, and
//! carries out from the HA loop when it is due.

use std::time::Duration;

use axum::http::StatusCode;
use patroni_core::{DbRole, LocalDb, LocalRequest, Timestamp};
use serde_json::{json, Map, Value};

use crate::requests::{parse_schedule, refuse, Refusal};
use crate::status::{python_datetime, server_version_num};

/// Patroni's `postgres_version_to_int`: `X.Y.Z` (before 10) or `X.Y` (10 and later) as an
/// integer (`15.4` is `150004`); `Err` is Patroni's message.
pub fn postgres_version_to_int(v: &str) -> Result<u64, String> {
    let parts: Result<Vec<u64>, _> = v.split('.').map(str::parse::<u64>).collect();
    let Ok(mut parts) = parts else {
        return Err(format!("Invalid PostgreSQL version: {v}"));
    };
    if parts.len() < 2 || parts.len() == 2 && parts[0] < 10 || parts.len() > 3 {
        return Err(format!(
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {v}"
        ));
    }
    if parts.len() == 2 {
        parts.insert(1, 0);
    }
    Ok(parts[0] * 10_000 + parts[1] * 100 + parts[2])
}

/// Patroni's `parse_int(value, 's')` for `timeout`: a number of seconds, or a text with a unit
/// (`ms`, `s`, `min`, `h`, `d`); `None` when it is neither.
pub fn timeout_seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => {
            let t = s.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: i64 = num.parse().ok()?;
            let ms = match unit.trim() {
                "" | "s" => n.checked_mul(1000)?,
                "ms" => n,
                "min" => n.checked_mul(60_000)?,
                "h" => n.checked_mul(3_600_000)?,
                "d" => n.checked_mul(86_400_000)?,
                _ => return None,
            };
            Some((ms + 999).div_euclid(1000))
        }
        _ => None,
    }
}

/// The filters of a restart, as the request gave them (they are published as given).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions {
    /// Only when this node runs as `primary`, `standby_leader` or `replica`.
    pub role: Option<String>,
    /// Only when the running server is older than this version.
    pub postgres_version: Option<String>,
    /// Only with a pending restart: Patroni looks at the key's presence, not its value.
    pub restart_pending: Option<Value>,
    /// How long the restart may take, in seconds.
    pub timeout: Option<i64>,
}

/// The role Patroni's `restart_matches` compares `role` with, from the local database.
fn local_role(local: &LocalDb) -> &'static str {
    match (local.process.is_alive(), local.role) {
        (true, DbRole::Primary) => "primary",
        (true, DbRole::Standby) => "replica",
        _ => "uninitialized",
    }
}

impl Conditions {
    /// Patroni's `restart_matches`: why the restart must not happen now (the last filter that
    /// fails, as Patroni reports it), `None` when every filter holds.
    pub fn mismatch(&self, local: &LocalDb) -> Option<&'static str> {
        let mut reason = None;
        if self.role.as_deref().is_some_and(|r| r != local_role(local)) {
            reason = Some("host role mismatch");
        }
        if let Some(want) = self
            .postgres_version
            .as_deref()
            .and_then(|v| postgres_version_to_int(v).ok())
        {
            let have = local.version.as_deref().and_then(server_version_num);
            if have.is_some_and(|h| want <= h) {
                reason = Some("postgres version mismatch");
            }
        }
        if self.restart_pending.is_some() && !local.pending_restart {
            reason = Some("pending restart flag is not set");
        }
        reason
    }

    /// `timeout` as a duration: how long the restart's start may take before a lock holder
    /// gives way and `POST /restart` answers that it is still starting.
    pub fn start_timeout(&self) -> Option<Duration> {
        self.timeout
            .and_then(|t| u64::try_from(t).ok())
            .map(Duration::from_secs)
    }

    /// The request the HA loop carries out for a restart with these filters (which hold):
    /// it judges the restart's start by `timeout`, as Patroni's `restart` does.
    pub fn request(&self) -> LocalRequest {
        LocalRequest::Restart {
            timeout: self.start_timeout(),
        }
    }

    /// The filters as JSON keys, in Patroni's request layout.
    fn insert_into(&self, obj: &mut Map<String, Value>) {
        if let Some(r) = &self.role {
            obj.insert("role".into(), json!(r));
        }
        if let Some(v) = &self.postgres_version {
            obj.insert("postgres_version".into(), json!(v));
        }
        if let Some(p) = &self.restart_pending {
            obj.insert("restart_pending".into(), p.clone());
        }
        if let Some(t) = self.timeout {
            obj.insert("timeout".into(), json!(t));
        }
    }
}

/// A `POST /restart` body once validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartRequest {
    /// When, for a scheduled restart: the instant and the text Patroni publishes for it.
    pub schedule: Option<(Timestamp, String)>,
    /// The filters.
    pub conditions: Conditions,
}

/// `schedule` as Python's `datetime.isoformat()` prints it: in the zone it was given in,
/// microseconds only when there is a fraction.
pub fn isoformat_in_zone(at: Timestamp, raw: &str) -> String {
    let raw = raw.trim();
    let offset_min: i64 = if raw.ends_with(['Z', 'z']) {
        0
    } else {
        let tail = &raw[raw.rfind(['+', '-']).unwrap_or(raw.len())..];
        let sign = if tail.starts_with('-') { -1 } else { 1 };
        let digits: String = tail.chars().filter(char::is_ascii_digit).collect();
        match (digits.get(..2), digits.get(2..4)) {
            (Some(h), Some(m)) if digits.len() == 4 => {
                sign * (h.parse::<i64>().unwrap_or(0) * 60 + m.parse::<i64>().unwrap_or(0))
            }
            _ => 0,
        }
    };
    let shifted = crate::ctl::listing::python_isoformat(Timestamp(at.0 + offset_min * 60_000));
    let zone = format!(
        "{}{:02}:{:02}",
        if offset_min < 0 { '-' } else { '+' },
        offset_min.abs() / 60,
        offset_min.abs() % 60
    );
    match shifted.strip_suffix("+00:00") {
        Some(head) => format!("{head}{zone}"),
        None => shifted,
    }
}

/// Validates a `POST /restart` body as Patroni's `do_POST_restart` does, key by key: 500 for a
/// schedule while paused, the schedule's 400/422, 400 for a bad role, version or timeout or an
/// unknown key.
pub fn parse_request(
    body: &Map<String, Value>,
    now: Timestamp,
    paused: bool,
) -> Result<RestartRequest, Refusal> {
    if paused && body.contains_key("schedule") {
        return Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Can't schedule restart in the paused state",
        ));
    }
    let mut req = RestartRequest {
        schedule: None,
        conditions: Conditions::default(),
    };
    for (k, v) in body {
        match k.as_str() {
            "schedule" => {
                let raw = v.as_str().ok_or_else(|| {
                    refuse(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
                    )
                })?;
                let at = parse_schedule(raw, now, "restart")?;
                req.schedule = Some((at, isoformat_in_zone(at, raw)));
            }
            "role" => match v.as_str() {
                Some(r @ ("primary" | "standby_leader" | "replica")) => {
                    req.conditions.role = Some(r.to_string())
                }
                _ => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "PostgreSQL role should be either primary, standby_leader, or replica",
                    ))
                }
            },
            "postgres_version" => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                postgres_version_to_int(&text).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
                req.conditions.postgres_version = Some(text);
            }
            "timeout" => match timeout_seconds(v) {
                Some(t) if t > 0 => req.conditions.timeout = Some(t),
                _ => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "Timeout should be a positive number of seconds",
                    ))
                }
            },
            "restart_pending" => req.conditions.restart_pending = Some(v.clone()),
            other => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("Unknown filter for the scheduled restart: {other}"),
                ))
            }
        }
    }
    Ok(req)
}

/// A restart scheduled for later, as Patroni's `schedule_future_restart` keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRestart {
    /// When it is due.
    pub at: Timestamp,
    /// `at` as published (`datetime.isoformat()` in the zone it was given in).
    pub schedule: String,
    /// The filters, checked when it is due.
    pub conditions: Conditions,
    /// When the running postmaster started at scheduling time: a restart in between makes
    /// this one pointless, and it is dropped.
    pub postmaster_start_time: Option<Timestamp>,
}

impl ScheduledRestart {
    /// The `scheduled_restart` value: the member key carries `postmaster_start_time` (in
    /// Python's `isoformat(sep=' ')`), `/patroni` does not.
    pub fn to_json(&self, with_start_time: bool) -> Value {
        let mut obj = Map::new();
        obj.insert("schedule".into(), json!(self.schedule));
        self.conditions.insert_into(&mut obj);
        if with_start_time {
            obj.insert(
                "postmaster_start_time".into(),
                json!(self.postmaster_start_time.map(python_datetime)),
            );
        }
        Value::Object(obj)
    }
}

/// What the HA loop does with a scheduled restart this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet (or paused): keep it.
    Keep,
    /// The postmaster restarted (at this time) since it was scheduled: drop it.
    AlreadyRestarted(Timestamp),
    /// Far past its time (the loop was stalled): drop it.
    Stale,
    /// Due, and the filters hold: restart now and drop it.
    Run,
    /// Due, but a filter fails (Patroni's reason): drop it.
    Refused(&'static str),
}

/// Patroni's `evaluate_scheduled_restart` and `should_run_scheduled_action`, with the time as an
/// argument: the loop wakes at `at` instead of sleeping inside a cycle, so a due restart runs
/// at once; more than 1.5 × `loop_wait` late it is stale.
pub fn evaluate(
    s: &ScheduledRestart,
    now: Timestamp,
    loop_wait_s: u64,
    paused: bool,
    local: &LocalDb,
) -> Verdict {
    if let (Some(recent), Some(then)) =
        (local.report.postmaster_start_time, s.postmaster_start_time)
    {
        if recent != then {
            return Verdict::AlreadyRestarted(recent);
        }
    }
    if paused || s.at > now {
        return Verdict::Keep;
    }
    if now.0 - s.at.0 > (loop_wait_s as i64) * 1500 {
        return Verdict::Stale;
    }
    match s.conditions.mismatch(local) {
        Some(why) => Verdict::Refused(why),
        None => Verdict::Run,
    }
}

/// The milliseconds until `s` is due, when it is in the future.
pub fn due_in_ms(s: &ScheduledRestart, now: Timestamp) -> Option<u64> {
    (s.at > now).then(|| (s.at.0 - now.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_core::ProcessState;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn primary(version: &str, pending: bool) -> LocalDb {
        LocalDb {
            process: ProcessState::Running,
            role: DbRole::Primary,
            version: Some(version.into()),
            pending_restart: pending,
            ..Default::default()
        }
    }

    #[test]
    fn versions_as_patroni_reads_them() {
        assert_eq!(postgres_version_to_int("9.5.3"), Ok(90503));
        assert_eq!(postgres_version_to_int("10.1"), Ok(100001));
        assert_eq!(postgres_version_to_int("15.4"), Ok(150004));
        assert_eq!(
            postgres_version_to_int("10"),
            Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10".into())
        );
        assert_eq!(
            postgres_version_to_int("9.6"),
            Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6".into())
        );
        assert_eq!(
            postgres_version_to_int("a.b.c"),
            Err("Invalid PostgreSQL version: a.b.c".into())
        );
    }

    #[test]
    fn timeouts_with_units() {
        assert_eq!(timeout_seconds(&json!(60)), Some(60));
        assert_eq!(timeout_seconds(&json!("60")), Some(60));
        assert_eq!(timeout_seconds(&json!("2min")), Some(120));
        assert_eq!(timeout_seconds(&json!("1500ms")), Some(2));
        assert_eq!(timeout_seconds(&json!("soon")), None);
        assert_eq!(timeout_seconds(&json!(true)), None);
    }

    #[test]
    fn request_table() {
        let now = ts("2026-11-26T10:00:00+00:00");
        let code = |v: Value, paused: bool| {
            parse_request(&body(v), now, paused)
                .map(|_| StatusCode::OK)
                .unwrap_or_else(|e| e.0)
        };
        let msg = |v: Value| parse_request(&body(v), now, false).unwrap_err().1;
        let cases = [
            (json!({}), false, StatusCode::OK),
            (
                json!({"schedule": "2026-11-26T11:00:00+00:00"}),
                false,
                StatusCode::OK,
            ),
            (
                json!({"schedule": "2026-11-26T11:00:00+00:00"}),
                true,
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (json!({"restart_pending": true}), true, StatusCode::OK),
            (
                json!({"schedule": "2026-11-26T11:00:00"}),
                false,
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"schedule": "2026-11-26T09:00:00Z"}),
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                json!({"schedule": "whenever"}),
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                json!({"schedule": 5}),
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (json!({"role": "primary"}), false, StatusCode::OK),
            (json!({"role": "standby_leader"}), false, StatusCode::OK),
            (json!({"role": "master"}), false, StatusCode::BAD_REQUEST),
            (json!({"postgres_version": "15.4"}), false, StatusCode::OK),
            (
                json!({"postgres_version": "15"}),
                false,
                StatusCode::BAD_REQUEST,
            ),
            (json!({"timeout": "30s"}), false, StatusCode::OK),
            (json!({"timeout": 0}), false, StatusCode::BAD_REQUEST),
            (json!({"timeout": "x"}), false, StatusCode::BAD_REQUEST),
            (json!({"bogus": 1}), false, StatusCode::BAD_REQUEST),
        ];
        for (v, paused, want) in cases {
            assert_eq!(code(v.clone(), paused), want, "{v} paused={paused}");
        }
        assert_eq!(
            msg(json!({"schedule": "2026-11-26T09:00:00Z"})),
            "Cannot schedule restart in the past"
        );
        assert_eq!(
            msg(json!({"schedule": "2026-11-26T11:00:00"})),
            "Timezone information is mandatory for the scheduled restart"
        );
        assert_eq!(
            msg(json!({"bogus": 1})),
            "Unknown filter for the scheduled restart: bogus"
        );
        let r = parse_request(
            &body(
                json!({"schedule": "2026-11-26T12:30:00.5+02:00", "postgres_version": "16.1",
                         "restart_pending": true, "timeout": "1min", "role": "replica"}),
            ),
            now,
            false,
        )
        .unwrap();
        let (at, text) = r.schedule.unwrap();
        assert_eq!(at, ts("2026-11-26T10:30:00.500Z"));
        assert_eq!(text, "2026-11-26T12:30:00.500000+02:00");
        assert_eq!(
            r.conditions,
            Conditions {
                role: Some("replica".into()),
                postgres_version: Some("16.1".into()),
                restart_pending: Some(json!(true)),
                timeout: Some(60),
            }
        );
    }

    /// A restart's `timeout`, immediate or scheduled, travels with the request the HA loop gets,
    /// where it replaces `primary_start_timeout` for that restart.
    #[test]
    fn the_timeout_reaches_the_restart_request() {
        let now = ts("2026-11-26T10:00:00Z");
        let r = parse_request(
            &body(json!({"schedule": "2026-11-26T11:00:00Z", "timeout": "2min"})),
            now,
            false,
        )
        .unwrap();
        let scheduled = ScheduledRestart {
            at: r.schedule.unwrap().0,
            schedule: String::new(),
            conditions: r.conditions,
            postmaster_start_time: None,
        };
        let due = ts("2026-11-26T11:00:00Z");
        let local = primary("15.4", false);
        assert_eq!(evaluate(&scheduled, due, 10, false, &local), Verdict::Run);
        assert_eq!(
            scheduled.conditions.request(),
            LocalRequest::Restart {
                timeout: Some(Duration::from_secs(120))
            }
        );
        let r = parse_request(&body(json!({})), now, false).unwrap();
        assert_eq!(
            r.conditions.request(),
            LocalRequest::Restart { timeout: None }
        );
    }

    #[test]
    fn schedule_text_keeps_the_zone() {
        let at = ts("2026-11-26T10:00:00Z");
        assert_eq!(
            isoformat_in_zone(at, "2026-11-26T10:00:00Z"),
            "2026-11-26T10:00:00+00:00"
        );
        assert_eq!(
            isoformat_in_zone(at, "2026-11-26T05:30:00-04:30"),
            "2026-11-26T05:30:00-04:30"
        );
    }

    #[test]
    fn conditions_table() {
        let c = |role: Option<&str>, version: Option<&str>, pending: bool| Conditions {
            role: role.map(String::from),
            postgres_version: version.map(String::from),
            restart_pending: pending.then_some(json!(true)),
            timeout: None,
        };
        let running = primary("15.4", false);
        let mut standby = primary("15.4", true);
        standby.role = DbRole::Standby;
        let cases = [
            (c(None, None, false), &running, None),
            (c(Some("primary"), None, false), &running, None),
            (
                c(Some("replica"), None, false),
                &running,
                Some("host role mismatch"),
            ),
            (c(Some("replica"), None, false), &standby, None),
            (c(None, Some("15.5"), false), &running, None),
            (
                c(None, Some("15.4"), false),
                &running,
                Some("postgres version mismatch"),
            ),
            (
                c(None, Some("9.6.1"), false),
                &running,
                Some("postgres version mismatch"),
            ),
            (
                c(None, None, true),
                &running,
                Some("pending restart flag is not set"),
            ),
            (c(None, None, true), &standby, None),
            // The last failing filter names the reason, as in Patroni.
            (
                c(Some("replica"), Some("15.4"), true),
                &running,
                Some("pending restart flag is not set"),
            ),
        ];
        for (cond, local, want) in cases {
            assert_eq!(cond.mismatch(local), want, "{cond:?}");
        }
    }

    #[test]
    fn evaluation_over_time() {
        let at = ts("2026-11-26T10:00:00Z");
        let mut local = primary("15.4", false);
        local.report.postmaster_start_time = Some(ts("2026-11-26T08:00:00Z"));
        let s = ScheduledRestart {
            at,
            schedule: "2026-11-26T10:00:00+00:00".into(),
            conditions: Conditions::default(),
            postmaster_start_time: local.report.postmaster_start_time,
        };
        let t = |sec: i64| Timestamp(at.0 + sec * 1000);
        assert_eq!(evaluate(&s, t(-5), 10, false, &local), Verdict::Keep);
        assert_eq!(due_in_ms(&s, t(-5)), Some(5000));
        assert_eq!(evaluate(&s, t(0), 10, false, &local), Verdict::Run);
        assert_eq!(evaluate(&s, t(15), 10, false, &local), Verdict::Run);
        assert_eq!(evaluate(&s, t(16), 10, false, &local), Verdict::Stale);
        assert_eq!(evaluate(&s, t(1), 10, true, &local), Verdict::Keep);
        let mut pending = s.clone();
        pending.conditions.restart_pending = Some(json!(true));
        assert_eq!(
            evaluate(&pending, t(1), 10, false, &local),
            Verdict::Refused("pending restart flag is not set")
        );
        let mut restarted = local.clone();
        restarted.report.postmaster_start_time = Some(ts("2026-11-26T09:00:00Z"));
        assert_eq!(
            evaluate(&s, t(-5), 10, false, &restarted),
            Verdict::AlreadyRestarted(ts("2026-11-26T09:00:00Z"))
        );
        let published = s.to_json(true);
        assert_eq!(published["schedule"], "2026-11-26T10:00:00+00:00");
        assert_eq!(
            published["postmaster_start_time"],
            "2026-11-26 08:00:00+00:00"
        );
        assert!(s.to_json(false).get("postmaster_start_time").is_none());
    }
}
