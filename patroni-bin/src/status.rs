//! The `GET /patroni` document: what this agent says about itself, and how peers read it back.
//!
//! The same JSON feeds HAProxy checks, monitoring and the leader race, so its field names are
//! Patroni's and the parser tolerates answers from real Patroni agents too.

use patroni_core::{
    ActionKind, DbRole, LocalDb, Lsn, MemberRole, MemberState, Node, OutcomeResult, PeerStatus,
    ProcessState, SynchronousMode, Timestamp,
};
use serde_json::{json, Value};

use crate::state::Snapshot;

/// The role name this member reports: the running database's own role first (peers racing for the
/// lock must see a demoted primary as a replica at once), else what was published last.
pub fn role(snap: &Snapshot) -> MemberRole {
    if snap.local.process.is_alive() {
        match snap.local.role {
            DbRole::Primary => return MemberRole::Primary,
            // The standby leader of a standby cluster says so, as its member key does.
            DbRole::Standby => {
                let leads = snap
                    .member
                    .as_ref()
                    .is_some_and(|m| m.role == MemberRole::StandbyLeader);
                return if leads {
                    MemberRole::StandbyLeader
                } else {
                    MemberRole::Replica
                };
            }
            DbRole::Unknown => {}
        }
    }
    match &snap.member {
        // A primary whose server is down is no obstacle to the race: never "still alive".
        Some(m) if m.role == MemberRole::Primary => MemberRole::Demoted,
        Some(m) if m.role != MemberRole::Unknown => m.role,
        _ if snap.local.role == DbRole::Standby => MemberRole::Replica,
        _ => MemberRole::Uninitialized,
    }
}

/// The state this member reports: from the published member data, else from the process.
pub fn state(snap: &Snapshot) -> MemberState {
    if let Some(m) = &snap.member {
        if m.state != MemberState::Unknown {
            return m.state;
        }
    }
    match snap.local.process {
        ProcessState::Running => MemberState::Running,
        ProcessState::Starting => MemberState::Starting,
        ProcessState::Stopped => MemberState::Stopped,
        ProcessState::Crashed => MemberState::Crashed,
    }
}

fn enum_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

/// `"15.4"` as Patroni's integer `150004`; `None` when the text is not a version.
pub fn server_version_num(v: &str) -> Option<u64> {
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major: u64 = parts.next()?.parse().ok()?;
    let minor: u64 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some(if major >= 10 {
        major * 10000 + minor
    } else {
        let patch: u64 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        major * 10000 + minor * 100 + patch
    })
}

/// The Patroni REST API level this agent implements, reported where Patroni reports its own
/// version (`/patroni`, member keys, the `patroni_version` metric): monitoring such as
/// `check_patroni` gates features on it. Our own version is reported beside it.
pub const PATRONI_API_VERSION: &str = "4.0.4";

/// A semantic version without periods, as Patroni's `patroni_version` metric has it
/// (`4.0.4` is `40004`).
pub fn version_number(version: &str) -> u64 {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .unwrap_or(0)
    });
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    a * 10_000 + b.min(99) * 100 + c.min(99)
}

/// Patroni's `replication_state` of a standby: `streaming` while its receiver streams, else
/// `in archive recovery` when a `restore_command` is set, else none. A primary has none.
pub fn replication_state(local: &LocalDb) -> Option<&'static str> {
    if local.role != DbRole::Standby || !local.process.is_alive() {
        return None;
    }
    if local.receiver.as_ref().is_some_and(|r| r.streaming) {
        Some("streaming")
    } else if local.report.restore_command {
        Some("in archive recovery")
    } else {
        None
    }
}

/// Whether this node is a running standby named in the `/sync` key while synchronous mode is on:
/// `Some(false)` Patroni's `sync_standby`, `Some(true)` its `quorum_standby` (quorum mode).
fn sync_membership(snap: &Snapshot, node: &Node) -> Option<bool> {
    let mode = snap.dynamic_config(node).synchronous_mode;
    let named = snap.local.process.is_alive()
        && snap.local.role == DbRole::Standby
        && mode != SynchronousMode::Off
        && snap
            .cluster
            .as_ref()
            .and_then(|c| c.sync_state())
            .is_some_and(|s| s.is_sync(&node.name));
    named.then_some(mode == SynchronousMode::Quorum)
}

/// Patroni's `sync_standby`: a running standby named in `/sync`, synchronous mode `on`.
pub fn is_sync_standby(snap: &Snapshot, node: &Node) -> bool {
    sync_membership(snap, node) == Some(false)
}

/// Patroni's `quorum_standby`: a running standby named in `/sync`, synchronous mode `quorum`.
pub fn is_quorum_standby(snap: &Snapshot, node: &Node) -> bool {
    sync_membership(snap, node) == Some(true)
}

/// A wall-clock instant as Python prints a `datetime` in Patroni's JSON
/// (`2026-01-02 03:04:05.678000+00:00`, no fraction when it is zero).
pub fn python_datetime(t: Timestamp) -> String {
    let iso = t.to_string(); // 2026-01-02T03:04:05.678+00:00
    let (date, rest) = iso.split_once('T').unwrap_or((&iso, ""));
    let (hms, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let ms = tail.get(..3).unwrap_or("000");
    if ms == "000" {
        format!("{date} {hms}+00:00")
    } else {
        format!("{date} {hms}.{ms}000+00:00")
    }
}

/// `GET /patroni`: this member's status in Patroni's layout.
pub fn patroni_json(scope: &str, node: &Node, snap: &Snapshot, now: u64) -> Value {
    let local = &snap.local;
    let role = role(snap);
    let mut doc = json!({
        "state": enum_text(&state(snap)),
        "role": enum_text(&role),
        "tags": node.tags,
        "patroni": {
            "version": node.version,
            "scope": scope,
            "name": node.name,
            "patroni_rs_version": env!("CARGO_PKG_VERSION"),
        },
    });
    let obj = doc.as_object_mut().expect("object literal");
    // Patroni sends `tags` only when some are set.
    if obj["tags"].as_object().is_some_and(|t| t.is_empty()) {
        obj.remove("tags");
    }
    if let Some(t) = local.report.postmaster_start_time {
        obj.insert("postmaster_start_time".into(), json!(python_datetime(t)));
    }
    // Patroni leaves these out unless they are true; clients test for their presence.
    if snap.cluster.as_ref().is_none_or(|c| c.is_unlocked()) {
        obj.insert("cluster_unlocked".into(), json!(true));
    }
    if snap.paused(node) {
        obj.insert("pause".into(), json!(true));
    }
    if snap.failsafe_active(node, now) {
        obj.insert("failsafe_mode_is_active".into(), json!(true));
    }
    if let Some(v) = local.version.as_deref() {
        match server_version_num(v) {
            Some(n) => obj.insert("server_version".into(), json!(n)),
            None => obj.insert("server_version".into(), json!(v)),
        };
    }
    if local.role == DbRole::Primary {
        obj.insert(
            "xlog".into(),
            json!({"location": local.write_lsn.unwrap_or(local.wal_position()).0}),
        );
    } else if local.process.is_alive() {
        obj.insert(
            "xlog".into(),
            json!({
                "received_location": local.receive_lsn.or(local.replay_lsn).map(|l| l.0),
                "replayed_location": local.replay_lsn.map(|l| l.0),
                "replayed_timestamp": local.report.replayed_timestamp.map(python_datetime),
                "paused": local.report.replay_paused,
            }),
        );
    }
    if let Some(tl) = local.timeline {
        obj.insert("timeline".into(), json!(tl));
    }
    if !local.replication.is_empty() {
        let rows: Vec<Value> = local
            .replication
            .iter()
            .map(|r| {
                let sender = local
                    .report
                    .replication
                    .iter()
                    .find(|s| s.application_name == r.application_name);
                json!({"usename": sender.and_then(|s| s.usename.clone()),
                       "application_name": r.application_name,
                       "client_addr": sender.and_then(|s| s.client_addr.clone()),
                       "state": r.state,
                       "sync_state": r.sync_state,
                       "sync_priority": sender.and_then(|s| s.sync_priority),
                       "flush_lsn": r.flush_lsn.map(|l| l.0), "replay_lsn": r.replay_lsn.map(|l| l.0)})
            })
            .collect();
        obj.insert("replication".into(), Value::Array(rows));
    }
    if is_sync_standby(snap, node) {
        obj.insert("sync_standby".into(), json!(true));
    }
    if is_quorum_standby(snap, node) {
        obj.insert("quorum_standby".into(), json!(true));
    }
    if let Some(id) = &local.system_id {
        obj.insert("database_system_identifier".into(), json!(id));
    }
    if local.pending_restart {
        obj.insert("pending_restart".into(), json!(true));
    }
    if let Some(s) = &snap.scheduled_restart {
        obj.insert("scheduled_restart".into(), s.to_json(false));
    }
    obj.insert(
        "dcs_last_seen".into(),
        json!(snap.dcs_last_seen.map_or(0, epoch_secs)),
    );
    if let Some(r) = replication_state(local) {
        obj.insert("replication_state".into(), json!(r));
    }
    obj.insert("is_leader".into(), json!(snap.is_leader(now)));
    if let Some(why) = start_failure(snap) {
        obj.insert("start_failure".into(), json!(why));
    }
    // Ours too: why the running server answers none of our SQL (a wrong password, say).
    if let Some(problem) = &local.report.sql_error {
        obj.insert("sql_error".into(), json!(problem.to_string()));
    }
    // Ours, not Patroni's: how far a running clone, rebuild or reinit has got.
    if let Some(c) = local.report.copy {
        obj.insert(
            "copy_progress".into(),
            json!({"bytes": c.bytes, "bytes_per_second": c.bytes_per_second, "seconds": c.seconds}),
        );
    }
    doc
}

/// Logs why the running server refuses our SQL once when that starts or changes, and once when
/// it ends, rather than every loop.
pub fn log_sql_error_change(before: &LocalDb, after: &LocalDb) {
    match (&before.report.sql_error, &after.report.sql_error) {
        (old, Some(new)) if old.as_ref() != Some(new) => {
            tracing::warn!("PostgreSQL is running but {new}")
        }
        (Some(_), None) if after.process == ProcessState::Running => {
            tracing::info!("PostgreSQL answers our SQL again")
        }
        _ => {}
    }
}

/// Why the database last failed to start, while it is still down: the operator should not have
/// to search the log for why a member reports `start failed`.
fn start_failure(snap: &Snapshot) -> Option<String> {
    if snap.local.process.is_alive() {
        return None;
    }
    snap.finished
        .iter()
        .rev()
        .find(|o| matches!(o.kind, ActionKind::Start | ActionKind::Restart))
        .and_then(|o| match &o.result {
            OutcomeResult::Failed(why) => Some(why.clone()),
            _ => None,
        })
}

/// Reads a peer's `GET /patroni` answer into what the leader race compares.
pub fn peer_status_from_json(name: &str, doc: &Value, fetched_at: u64) -> PeerStatus {
    let parse_enum = |key: &str| doc.get(key).cloned().unwrap_or(Value::Null);
    let role: MemberRole = serde_json::from_value(parse_enum("role")).unwrap_or_default();
    let state: MemberState = serde_json::from_value(parse_enum("state")).unwrap_or_default();
    let xlog = doc.get("xlog");
    let lsn_of = |k: &str| -> Option<Lsn> {
        xlog.and_then(|x| x.get(k))
            .and_then(|v| serde_json::from_value::<Lsn>(v.clone()).ok())
    };
    let wal_position = [
        lsn_of("location"),
        lsn_of("received_location"),
        lsn_of("replayed_location"),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(Lsn::ZERO);
    let tags = doc.get("tags");
    PeerStatus {
        name: name.to_string(),
        reachable: true,
        role,
        state,
        wal_position,
        timeline: doc.get("timeline").and_then(Value::as_u64),
        // A peer's tags as it reports them; ones that do not read as tags count as none.
        tags: tags
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default(),
        watchdog_failed: doc
            .get("watchdog_failed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        fetched_at,
    }
}

/// Seconds since the Unix epoch as Patroni prints them in `dcs_last_seen`.
pub fn epoch_secs(t: Timestamp) -> i64 {
    t.0 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_core::{LocalDb, ReceiverStatus};

    #[test]
    fn versions_as_patroni_numbers() {
        assert_eq!(server_version_num("15.4"), Some(150004));
        assert_eq!(server_version_num("PostgreSQL 16.1 (Debian)"), Some(160001));
        assert_eq!(server_version_num("9.6.24"), Some(90624));
        assert_eq!(server_version_num("openGauss"), None);
    }

    #[test]
    fn the_last_start_failure_is_reported_while_the_database_is_down() {
        let failed = patroni_core::Outcome {
            kind: ActionKind::Start,
            result: OutcomeResult::Failed("could not bind IPv4 address: in use".into()),
            started_at: 5,
        };
        let mut snap = Snapshot {
            finished: vec![failed],
            ..Default::default()
        };
        let node = Node::new("n1");
        let doc = patroni_json("s", &node, &snap, 10);
        assert_eq!(doc["start_failure"], "could not bind IPv4 address: in use");
        snap.local.process = ProcessState::Running;
        assert!(patroni_json("s", &node, &snap, 10)
            .get("start_failure")
            .is_none());
    }

    #[test]
    fn a_running_copy_shows_its_progress() {
        let mut snap = Snapshot::default();
        let node = Node::new("n1");
        assert!(patroni_json("s", &node, &snap, 10)
            .get("copy_progress")
            .is_none());
        snap.local.report.copy = Some(patroni_core::CopyProgress {
            bytes: 1_048_576,
            bytes_per_second: 524_288,
            seconds: 2,
        });
        let doc = patroni_json("s", &node, &snap, 10);
        assert_eq!(
            doc["copy_progress"],
            serde_json::json!({"bytes": 1_048_576, "bytes_per_second": 524_288, "seconds": 2})
        );
    }

    #[test]
    fn a_server_refusing_our_sql_says_why() {
        let mut snap = Snapshot::default();
        snap.local.process = ProcessState::Starting;
        let node = Node::new("n1");
        assert!(patroni_json("s", &node, &snap, 10)
            .get("sql_error")
            .is_none());
        snap.local.report.sql_error = Some(patroni_core::SqlProblem::Auth(
            "password authentication failed for user \"postgres\"".into(),
        ));
        assert_eq!(
            patroni_json("s", &node, &snap, 10)["sql_error"],
            "refuses our connection: password authentication failed for user \"postgres\""
        );
    }

    #[test]
    fn standby_document_round_trips_into_a_peer_status() {
        let snap = Snapshot {
            local: LocalDb {
                process: ProcessState::Running,
                role: DbRole::Standby,
                timeline: Some(3),
                receive_lsn: Some(Lsn(500)),
                replay_lsn: Some(Lsn(400)),
                receiver: Some(ReceiverStatus {
                    streaming: true,
                    upstream_host: None,
                    upstream_port: None,
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut node = Node::new("n2");
        node.tags.failover_priority = 7;
        let doc = patroni_json("s", &node, &snap, 10);
        assert_eq!(doc["role"], "replica");
        assert_eq!(doc["state"], "running");
        assert_eq!(doc["patroni"]["name"], "n2");
        let p = peer_status_from_json("n2", &doc, 42);
        assert!(p.reachable);
        assert_eq!(p.role, MemberRole::Replica);
        assert_eq!(p.wal_position, Lsn(500));
        assert_eq!(p.timeline, Some(3));
        assert_eq!(p.tags.failover_priority, 7);
        assert_eq!(p.fetched_at, 42);
    }

    #[test]
    fn the_live_database_role_wins_over_stale_member_data() {
        use patroni_core::MemberData;
        let mut snap = Snapshot {
            member: Some(MemberData {
                role: MemberRole::Primary,
                state: MemberState::Running,
                ..Default::default()
            }),
            local: LocalDb {
                process: ProcessState::Running,
                role: DbRole::Standby,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(role(&snap), MemberRole::Replica, "just demoted");
        snap.local.process = ProcessState::Crashed;
        snap.local.role = DbRole::Unknown;
        assert_eq!(
            role(&snap),
            MemberRole::Demoted,
            "a dead primary is not alive"
        );
        snap.member = None;
        assert_eq!(role(&snap), MemberRole::Uninitialized);
    }

    #[test]
    fn real_patroni_answer_and_garbage() {
        let doc: Value = serde_json::from_str(
            r#"{"state":"running","role":"master","xlog":{"location":"0/3000060"},"timeline":2,
                "tags":{"nofailover":true},"watchdog_failed":true}"#,
        )
        .unwrap();
        let p = peer_status_from_json("x", &doc, 1);
        assert_eq!(p.role, MemberRole::Primary);
        assert_eq!(p.wal_position, Lsn(0x3000060));
        assert!(p.tags.nofailover && p.watchdog_failed);
        let junk = peer_status_from_json("y", &json!([1, 2, 3]), 1);
        assert_eq!(junk.role, MemberRole::Unknown);
        assert_eq!(junk.wal_position, Lsn::ZERO);
    }

    #[test]
    fn versions_without_periods() {
        assert_eq!(super::version_number("4.0.4"), 40004);
        assert_eq!(super::version_number("3.0.4"), 30004);
        assert_eq!(super::version_number("10.2"), 100200);
        assert!(super::version_number(super::PATRONI_API_VERSION) >= 30004);
    }
}
