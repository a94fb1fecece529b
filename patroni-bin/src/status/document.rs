//! The `GET /patroni` document as one typed shape: the REST handler serializes it, the peer probe
//! and `patronictl` read it back.
//!
//! Field names, types and presence are Patroni's, since Python's `patronictl` and `check_patroni`
//! read ours: flags appear only when true, optional values only when known, and the keys come out
//! in alphabetical order as they always have. Reading is tolerant, because the answer may come
//! from a real Patroni agent or from something else on that port: unknown fields are ignored, a
//! missing or unreadable field takes its default, and only a body that is not JSON at all fails.

use patroni_core::{Lsn, MemberRole, MemberState, PeerStatus, Tags};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// What a member says about itself on `GET /patroni` (and as the body of every health check).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PatroniStatus {
    /// No member holds the leader lock (sent only when true).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient")]
    pub cluster_unlocked: bool,
    /// Ours: how far a running clone, rebuild or reinit has got.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub copy_progress: Option<CopyProgressStatus>,
    /// The database's system identifier.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub database_system_identifier: Option<String>,
    /// Seconds since the epoch when the DCS last answered (0 never).
    #[serde(deserialize_with = "lenient")]
    pub dcs_last_seen: i64,
    /// Failsafe mode keeps the primary up without the DCS (sent only when true).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient")]
    pub failsafe_mode_is_active: bool,
    /// This member holds the leader lock.
    #[serde(deserialize_with = "lenient")]
    pub is_leader: bool,
    /// Who answers: the agent's version, cluster and member name.
    #[serde(deserialize_with = "lenient")]
    pub patroni: AgentInfo,
    /// Automatic failover is paused (sent only when true).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient")]
    pub pause: bool,
    /// A changed parameter waits for a restart (sent only when true).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient")]
    pub pending_restart: bool,
    /// When the postmaster started, as Python prints a `datetime`.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub postmaster_start_time: Option<String>,
    /// This standby is a quorum synchronous standby (sent only when true).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient")]
    pub quorum_standby: bool,
    /// The standbys streaming from this member (sent only when there are some).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient")]
    pub replication: Vec<ReplicationStatus>,
    /// `streaming` or `in archive recovery` on a standby.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub replication_state: Option<String>,
    /// The role this member reports.
    #[serde(deserialize_with = "lenient")]
    pub role: MemberRole,
    /// A scheduled restart and its filters, in the layout `POST /restart` took them.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub scheduled_restart: Option<Map<String, Value>>,
    /// The server version, as Patroni's integer when it reads as one.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub server_version: Option<ServerVersion>,
    /// Ours: why the running server answers none of our SQL.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub sql_error: Option<String>,
    /// Ours: why the database last failed to start, while it is still down.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub start_failure: Option<String>,
    /// The state this member reports.
    #[serde(deserialize_with = "lenient")]
    pub state: MemberState,
    /// This standby is a synchronous standby (sent only when true).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient")]
    pub sync_standby: bool,
    /// The member's tags (sent only when some are set).
    #[serde(
        skip_serializing_if = "no_tags",
        serialize_with = "sorted_keys",
        deserialize_with = "lenient"
    )]
    pub tags: Tags,
    /// The timeline (openGauss: term).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub timeline: Option<u64>,
    /// The watchdog could not be armed, so this member may not promote (sent only when true).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient")]
    pub watchdog_failed: bool,
    /// WAL positions, while the database runs.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub xlog: Option<Xlog>,
}

/// The `patroni` object: which agent answers, for which cluster and member.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentInfo {
    /// The member name.
    #[serde(deserialize_with = "lenient")]
    pub name: String,
    /// Ours: the patroni-rs release (absent in a Python Patroni answer).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub patroni_rs_version: Option<String>,
    /// The cluster name.
    #[serde(deserialize_with = "lenient")]
    pub scope: String,
    /// The Patroni version (for us, the API level implemented).
    #[serde(deserialize_with = "lenient")]
    pub version: String,
}

/// Where the WAL stands: a primary's write position, or what a standby received and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Xlog {
    /// A primary: its current write position.
    Primary {
        /// The write position.
        location: Lsn,
    },
    /// A standby: every field is sent, `null` where unknown, as Patroni does.
    Standby {
        /// Replay is paused.
        #[serde(default, deserialize_with = "lenient")]
        paused: bool,
        /// The last position received (the replayed one when nothing streams).
        #[serde(default, deserialize_with = "lenient")]
        received_location: Option<Lsn>,
        /// The last position replayed.
        #[serde(default, deserialize_with = "lenient")]
        replayed_location: Option<Lsn>,
        /// The commit time of the last replayed transaction, as Python prints a `datetime`.
        #[serde(default, deserialize_with = "lenient")]
        replayed_timestamp: Option<String>,
    },
}

impl Xlog {
    /// The furthest position reported: what the leader race compares.
    pub fn furthest(&self) -> Option<Lsn> {
        match self {
            Xlog::Primary { location } => Some(*location),
            Xlog::Standby {
                received_location,
                replayed_location,
                ..
            } => (*received_location).max(*replayed_location),
        }
    }
}

/// The server version: Patroni's integer (`150004`), or the text when it reads as no version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerVersion {
    /// `15.4` as `150004`.
    Number(u64),
    /// A version text that is not a number (some openGauss builds).
    Text(String),
}

/// One standby streaming from this member, as Patroni lists it (every field sent, `null` where
/// unknown).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationStatus {
    /// The standby's `application_name`, its member name.
    #[serde(deserialize_with = "lenient")]
    pub application_name: String,
    /// The standby's address; `null` over a Unix socket.
    #[serde(deserialize_with = "lenient")]
    pub client_addr: Option<String>,
    /// What the standby has flushed.
    #[serde(deserialize_with = "lenient")]
    pub flush_lsn: Option<Lsn>,
    /// What the standby has replayed.
    #[serde(deserialize_with = "lenient")]
    pub replay_lsn: Option<Lsn>,
    /// `streaming`, `catchup`, ...
    #[serde(deserialize_with = "lenient")]
    pub state: String,
    /// Its priority for synchronous replication.
    #[serde(deserialize_with = "lenient")]
    pub sync_priority: Option<i64>,
    /// `sync`, `async`, `potential`, `quorum`.
    #[serde(deserialize_with = "lenient")]
    pub sync_state: String,
    /// The role the standby connected as.
    #[serde(deserialize_with = "lenient")]
    pub usename: Option<String>,
}

/// Ours: a running base backup's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CopyProgressStatus {
    /// Bytes copied so far.
    #[serde(deserialize_with = "lenient")]
    pub bytes: u64,
    /// Average rate since the copy started.
    #[serde(deserialize_with = "lenient")]
    pub bytes_per_second: u64,
    /// Seconds since the copy started.
    #[serde(deserialize_with = "lenient")]
    pub seconds: u64,
}

impl From<patroni_core::CopyProgress> for CopyProgressStatus {
    fn from(c: patroni_core::CopyProgress) -> Self {
        CopyProgressStatus {
            bytes: c.bytes,
            bytes_per_second: c.bytes_per_second,
            seconds: c.seconds,
        }
    }
}

impl PatroniStatus {
    /// Reads a `GET /patroni` body: an error only when it is not JSON; JSON that is no object
    /// reads as a status that knows nothing, and each field that does not read takes its default.
    pub fn from_json(body: &str) -> Result<PatroniStatus, serde_json::Error> {
        let doc: Value = serde_json::from_str(body)?;
        Ok(PatroniStatus::from_value(doc))
    }

    /// See [`PatroniStatus::from_json`], for a body already parsed.
    fn from_value(doc: Value) -> PatroniStatus {
        match doc {
            Value::Object(_) => serde_json::from_value(doc).unwrap_or_default(),
            _ => PatroniStatus::default(),
        }
    }

    /// What the leader race compares of a peer that answered with this status.
    pub fn peer_status(&self, name: &str, fetched_at: u64) -> PeerStatus {
        PeerStatus {
            name: name.to_string(),
            reachable: true,
            role: self.role,
            state: self.state,
            wal_position: self
                .xlog
                .as_ref()
                .and_then(Xlog::furthest)
                .unwrap_or(Lsn::ZERO),
            timeline: self.timeline,
            tags: self.tags.clone(),
            watchdog_failed: self.watchdog_failed,
            fetched_at,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Patroni sends `tags` only when some are set.
fn no_tags(t: &Tags) -> bool {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_object().map(Map::is_empty))
        .unwrap_or(true)
}

/// Tags with their keys in alphabetical order, custom ones among the rest, as they always came.
fn sorted_keys<S: Serializer>(t: &Tags, s: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(t)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

/// One field that does not read as its type takes its default instead of failing the document.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Python Patroni 4.0 primary's answer, as `curl http://host:8008/patroni` prints it.
    const PYTHON_PRIMARY: &str = r#"{"state": "running", "postmaster_start_time": "2024-08-28 19:39:26.352526+00:00", "role": "primary", "server_version": 160004, "xlog": {"location": 67108960}, "timeline": 1, "replication": [{"usename": "replicator", "application_name": "patroni2", "client_addr": "10.89.0.6", "state": "streaming", "sync_state": "async", "sync_priority": 0}], "dcs_last_seen": 1724874545, "tags": {"clonefrom": true, "failover_priority": 2}, "database_system_identifier": "7408277255830290455", "patroni": {"version": "4.0.0", "scope": "demo", "name": "patroni1"}}"#;

    /// A Python Patroni 4.0 replica's answer.
    const PYTHON_REPLICA: &str = r#"{"state": "running", "postmaster_start_time": "2024-08-28 19:39:28.031453+00:00", "role": "replica", "server_version": 160004, "xlog": {"received_location": 67108960, "replayed_location": 67108864, "replayed_timestamp": null, "paused": false}, "sync_standby": true, "timeline": 1, "replication_state": "streaming", "dcs_last_seen": 1724874545, "pending_restart": true, "pending_restart_reason": {"max_connections": {"old_value": "100", "new_value": "101"}}, "database_system_identifier": "7408277255830290455", "patroni": {"version": "4.0.0", "scope": "demo", "name": "patroni2"}}"#;

    #[test]
    fn python_patroni_4_answers_read() {
        let p = PatroniStatus::from_json(PYTHON_PRIMARY).unwrap();
        assert_eq!(p.role, MemberRole::Primary);
        assert_eq!(p.state, MemberState::Running);
        assert_eq!(p.server_version, Some(ServerVersion::Number(160004)));
        assert_eq!(
            p.xlog.as_ref().and_then(Xlog::furthest),
            Some(Lsn(67108960))
        );
        assert_eq!(p.timeline, Some(1));
        assert_eq!(p.dcs_last_seen, 1724874545);
        assert_eq!(p.replication[0].application_name, "patroni2");
        assert_eq!(p.replication[0].sync_priority, Some(0));
        assert_eq!(p.replication[0].flush_lsn, None);
        assert!(p.tags.clonefrom);
        assert_eq!(p.tags.failover_priority, 2);
        assert_eq!(p.patroni.version, "4.0.0");
        assert_eq!(p.patroni.patroni_rs_version, None);
        assert!(!p.is_leader && !p.cluster_unlocked);

        let r = PatroniStatus::from_json(PYTHON_REPLICA).unwrap();
        assert_eq!(r.role, MemberRole::Replica);
        assert_eq!(
            r.xlog,
            Some(Xlog::Standby {
                paused: false,
                received_location: Some(Lsn(67108960)),
                replayed_location: Some(Lsn(67108864)),
                replayed_timestamp: None,
            })
        );
        assert!(r.sync_standby && r.pending_restart);
        assert_eq!(r.replication_state.as_deref(), Some("streaming"));
        let peer = r.peer_status("patroni2", 9);
        assert_eq!(peer.wal_position, Lsn(67108960));
        assert_eq!(peer.tags, Tags::default());
    }

    #[test]
    fn unreadable_fields_take_their_defaults() {
        let p = PatroniStatus::from_json(
            r#"{"role": 7, "state": "restarting", "timeline": "two", "tags": [1],
                "xlog": {"location": "zzz", "replayed_location": "0/10"}, "dcs_last_seen": null,
                "patroni": {"name": "x", "version": 4}}"#,
        )
        .unwrap();
        assert_eq!(p.role, MemberRole::Unknown);
        assert_eq!(p.state, MemberState::Unknown);
        assert_eq!(p.timeline, None);
        assert_eq!(p.tags, Tags::default());
        assert_eq!(p.xlog.as_ref().and_then(Xlog::furthest), Some(Lsn(0x10)));
        assert_eq!(p.patroni.name, "x");
        assert_eq!(p.patroni.version, "");
        assert_eq!(
            PatroniStatus::from_json("[1, 2, 3]").unwrap(),
            PatroniStatus::default()
        );
        assert!(PatroniStatus::from_json("<html>").is_err());
    }

    #[test]
    fn serializing_then_reading_gives_the_same_status() {
        let mut tags = Tags {
            nofailover: true,
            ..Tags::default()
        };
        tags.custom.insert("site".into(), "b".into());
        let mut restart = Map::new();
        restart.insert("schedule".into(), "2026-01-02T03:04:05+00:00".into());
        restart.insert("postgres_version".into(), "16.1".into());
        let full = PatroniStatus {
            cluster_unlocked: true,
            copy_progress: Some(CopyProgressStatus {
                bytes: 10,
                bytes_per_second: 5,
                seconds: 2,
            }),
            database_system_identifier: Some("7408277255830290455".into()),
            dcs_last_seen: 1_700_000_000,
            failsafe_mode_is_active: true,
            is_leader: true,
            patroni: AgentInfo {
                name: "n1".into(),
                patroni_rs_version: Some("0.1.0".into()),
                scope: "s".into(),
                version: "4.0.4".into(),
            },
            pause: true,
            pending_restart: true,
            postmaster_start_time: Some("2026-01-02 03:04:05.678000+00:00".into()),
            quorum_standby: true,
            replication: vec![ReplicationStatus {
                application_name: "n2".into(),
                client_addr: None,
                flush_lsn: Some(Lsn(7)),
                replay_lsn: None,
                state: "streaming".into(),
                sync_priority: Some(1),
                sync_state: "sync".into(),
                usename: Some("replicator".into()),
            }],
            replication_state: Some("streaming".into()),
            role: MemberRole::StandbyLeader,
            scheduled_restart: Some(restart),
            server_version: Some(ServerVersion::Text("openGauss".into())),
            sql_error: Some("refuses our connection: no".into()),
            start_failure: Some("could not bind".into()),
            state: MemberState::CreatingReplica,
            sync_standby: true,
            tags,
            timeline: Some(3),
            watchdog_failed: true,
            xlog: Some(Xlog::Standby {
                paused: true,
                received_location: Some(Lsn(500)),
                replayed_location: None,
                replayed_timestamp: Some("2026-01-02 03:04:05+00:00".into()),
            }),
        };
        let primary = PatroniStatus {
            xlog: Some(Xlog::Primary {
                location: Lsn(1000),
            }),
            server_version: Some(ServerVersion::Number(150004)),
            ..PatroniStatus::default()
        };
        for status in [full, primary, PatroniStatus::default()] {
            let text = serde_json::to_string(&status).unwrap();
            assert_eq!(PatroniStatus::from_json(&text).unwrap(), status, "{text}");
        }
    }
}
