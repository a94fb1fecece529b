//! The `GET /patroni` document: what this agent says about itself, built here from its snapshot
//! into the one typed shape ([`PatroniStatus`]) that peers and `patronictl` read back.
//!
//! The same JSON feeds HAProxy checks, monitoring and the leader race, so its field names are
//! Patroni's and the reader tolerates answers from real Patroni agents too.

use patroni_core::{
    ActionKind, DbRole, LocalDb, MemberRole, MemberState, Node, OutcomeResult, ProcessState,
    SynchronousMode, Timestamp,
};
use serde_json::Value;

use crate::state::Snapshot;

mod document;
#[cfg(test)]
pub(crate) mod fixtures;

pub use document::{
    AgentInfo, CopyProgressStatus, PatroniStatus, ReplicationStatus, ServerVersion, Xlog,
};

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
pub fn patroni_status(scope: &str, node: &Node, snap: &Snapshot, now: u64) -> PatroniStatus {
    let local = &snap.local;
    let xlog = if local.role == DbRole::Primary {
        Some(Xlog::Primary {
            location: local.write_lsn.unwrap_or(local.wal_position()),
        })
    } else if local.process.is_alive() {
        Some(Xlog::Standby {
            paused: local.report.replay_paused,
            received_location: local.receive_lsn.or(local.replay_lsn),
            replayed_location: local.replay_lsn,
            replayed_timestamp: local.report.replayed_timestamp.map(python_datetime),
        })
    } else {
        None
    };
    let replication = local
        .replication
        .iter()
        .map(|r| {
            let sender = local
                .report
                .replication
                .iter()
                .find(|s| s.application_name == r.application_name);
            ReplicationStatus {
                application_name: r.application_name.clone(),
                client_addr: sender.and_then(|s| s.client_addr.clone()),
                flush_lsn: r.flush_lsn,
                replay_lsn: r.replay_lsn,
                state: r.state.to_string(),
                sync_priority: sender.and_then(|s| s.sync_priority),
                sync_state: r.sync_state.to_string(),
                usename: sender.and_then(|s| s.usename.clone()),
            }
        })
        .collect();
    PatroniStatus {
        // Patroni leaves the flags out unless they are true; clients test for their presence.
        cluster_unlocked: snap.cluster.as_ref().is_none_or(|c| c.is_unlocked()),
        // Ours, not Patroni's: how far a running clone, rebuild or reinit has got.
        copy_progress: local.report.copy.map(CopyProgressStatus::from),
        database_system_identifier: local.system_id.clone(),
        dcs_last_seen: snap.dcs_last_seen.map_or(0, epoch_secs),
        failsafe_mode_is_active: snap.failsafe_active(node, now),
        is_leader: snap.is_leader(now),
        patroni: AgentInfo {
            name: node.name.clone(),
            patroni_rs_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            scope: scope.to_string(),
            version: node.version.clone(),
        },
        pause: snap.paused(node),
        pending_restart: local.pending_restart,
        postmaster_start_time: local.report.postmaster_start_time.map(python_datetime),
        quorum_standby: is_quorum_standby(snap, node),
        replication,
        replication_state: replication_state(local).map(String::from),
        role: role(snap),
        scheduled_restart: snap
            .scheduled_restart
            .as_ref()
            .and_then(|s| match s.to_json(false) {
                Value::Object(o) => Some(o),
                _ => None,
            }),
        server_version: local
            .version
            .as_deref()
            .map(|v| match server_version_num(v) {
                Some(n) => ServerVersion::Number(n),
                None => ServerVersion::Text(v.to_string()),
            }),
        // Ours too: why the running server answers none of our SQL (a wrong password, say).
        sql_error: local.report.sql_error.as_ref().map(ToString::to_string),
        start_failure: start_failure(snap),
        state: state(snap),
        sync_standby: is_sync_standby(snap, node),
        tags: node.tags.clone(),
        timeline: local.timeline,
        // Our agent never promotes without its watchdog, so it has no failed one to report.
        watchdog_failed: false,
        xlog,
    }
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

/// Seconds since the Unix epoch as Patroni prints them in `dcs_last_seen`.
pub fn epoch_secs(t: Timestamp) -> i64 {
    t.0 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_core::{LocalDb, Lsn};

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
        let doc = patroni_status("s", &node, &snap, 10);
        assert_eq!(
            doc.start_failure.as_deref(),
            Some("could not bind IPv4 address: in use")
        );
        snap.local.process = ProcessState::Running;
        assert_eq!(patroni_status("s", &node, &snap, 10).start_failure, None);
    }

    #[test]
    fn a_running_copy_shows_its_progress() {
        let mut snap = Snapshot::default();
        let node = Node::new("n1");
        assert_eq!(patroni_status("s", &node, &snap, 10).copy_progress, None);
        snap.local.report.copy = Some(patroni_core::CopyProgress {
            bytes: 1_048_576,
            bytes_per_second: 524_288,
            seconds: 2,
        });
        let doc = serde_json::to_value(patroni_status("s", &node, &snap, 10)).unwrap();
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
        assert_eq!(patroni_status("s", &node, &snap, 10).sql_error, None);
        snap.local.report.sql_error = Some(patroni_core::SqlProblem::Auth(
            "password authentication failed for user \"postgres\"".into(),
        ));
        assert_eq!(
            patroni_status("s", &node, &snap, 10).sql_error.as_deref(),
            Some("refuses our connection: password authentication failed for user \"postgres\"")
        );
    }

    #[test]
    fn standby_document_round_trips_into_a_peer_status() {
        let snap = Snapshot {
            local: LocalDb {
                timeline: Some(3),
                receive_lsn: Some(Lsn(500)),
                ..fixtures::streaming_standby(400)
            },
            ..Default::default()
        };
        let mut node = Node::new("n2");
        node.tags.failover_priority = 7;
        let text = serde_json::to_string(&patroni_status("s", &node, &snap, 10)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["role"], "replica");
        assert_eq!(doc["state"], "running");
        assert_eq!(doc["patroni"]["name"], "n2");
        let p = PatroniStatus::from_json(&text)
            .unwrap()
            .peer_status("n2", 42);
        assert!(p.reachable);
        assert_eq!(p.role, MemberRole::Replica);
        assert_eq!(p.wal_position, Lsn(500));
        assert_eq!(p.timeline, Some(3));
        assert_eq!(p.tags.failover_priority, 7);
        assert_eq!(p.fetched_at, 42);
    }

    /// The exact bytes of two documents, so a change to the wire format is a deliberate one:
    /// Python's `patronictl` and `check_patroni` read these names, types and nulls.
    #[test]
    fn the_document_keeps_its_wire_format() {
        let mut primary = Snapshot {
            local: fixtures::primary_with_replica(),
            ..Default::default()
        };
        primary.local.system_id = Some("7408277255830290455".into());
        primary.dcs_last_seen = Some(Timestamp(1_700_000_005_999));
        primary.leader_expiry = Some(100);
        let mut node = Node::new("n1");
        node.version = "4.0.4".into();
        node.tags.failover_priority = 2;
        node.tags.custom.insert("zone".into(), "a".into());
        node.tags.custom.insert("apple".into(), 1.into());
        let rs = env!("CARGO_PKG_VERSION");
        assert_eq!(
            serde_json::to_string(&patroni_status("demo", &node, &primary, 10)).unwrap(),
            format!(
                r#"{{"cluster_unlocked":true,"database_system_identifier":"7408277255830290455","dcs_last_seen":1700000005,"is_leader":true,"patroni":{{"name":"n1","patroni_rs_version":"{rs}","scope":"demo","version":"4.0.4"}},"postmaster_start_time":"2023-11-14 22:13:20.123000+00:00","replication":[{{"application_name":"n2","client_addr":"10.0.0.2","flush_lsn":900,"replay_lsn":null,"state":"streaming","sync_priority":0,"sync_state":"async","usename":"replicator"}}],"role":"primary","server_version":150004,"state":"running","tags":{{"apple":1,"failover_priority":2,"zone":"a"}},"timeline":1,"xlog":{{"location":1000}}}}"#
            )
        );
        let standby = Snapshot {
            local: LocalDb {
                process: ProcessState::Running,
                role: DbRole::Standby,
                replay_lsn: Some(Lsn(77)),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut node = Node::new("n2");
        node.version = PATRONI_API_VERSION.into();
        assert_eq!(
            serde_json::to_string(&patroni_status("demo", &node, &standby, 10)).unwrap(),
            format!(
                r#"{{"cluster_unlocked":true,"dcs_last_seen":0,"is_leader":false,"patroni":{{"name":"n2","patroni_rs_version":"{rs}","scope":"demo","version":"{PATRONI_API_VERSION}"}},"role":"replica","state":"running","xlog":{{"paused":false,"received_location":77,"replayed_location":77,"replayed_timestamp":null}}}}"#
            )
        );
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
        let p = PatroniStatus::from_json(
            r#"{"state":"running","role":"master","xlog":{"location":"0/3000060"},"timeline":2,
                "tags":{"nofailover":true},"watchdog_failed":true}"#,
        )
        .unwrap()
        .peer_status("x", 1);
        assert_eq!(p.role, MemberRole::Primary);
        assert_eq!(p.wal_position, Lsn(0x3000060));
        assert!(p.tags.nofailover && p.watchdog_failed);
        let junk = PatroniStatus::from_json("[1, 2, 3]")
            .unwrap()
            .peer_status("y", 1);
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
