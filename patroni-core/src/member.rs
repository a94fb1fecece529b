//! Members: what each agent publishes about itself under `members/<name>`.

use serde::{Deserialize, Serialize};

use crate::{Lsn, Tags};

/// The database process state an agent reports, with Patroni's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Up and accepting connections.
    Running,
    /// Being started; not yet accepting connections.
    Starting,
    /// Shut down on purpose.
    Stopped,
    /// Gone without a clean shutdown.
    Crashed,
    /// A start was attempted and failed.
    #[serde(rename = "start failed")]
    StartFailed,
    /// Being stopped.
    Stopping,
    /// Bootstrapping a new cluster.
    #[serde(rename = "initializing new cluster")]
    Initializing,
    /// Copying data from another member.
    #[serde(rename = "creating replica")]
    CreatingReplica,
    /// Being rebuilt from the primary (pg_rewind, pg_basebackup, gs_ctl build).
    Rebuilding,
    /// Anything we do not recognise.
    #[default]
    #[serde(other)]
    Unknown,
}

/// The role an agent reports for its database, with Patroni's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Writable primary (Patroni also reads the legacy `master`).
    #[serde(alias = "master")]
    Primary,
    /// Streaming or recovering standby.
    Replica,
    /// A former primary on its way to becoming a standby.
    Demoted,
    /// A standby that was just promoted and has not finished recovery.
    Promoted,
    /// The leader of a standby cluster.
    StandbyLeader,
    /// No data directory yet.
    Uninitialized,
    /// Anything we do not recognise.
    #[default]
    #[serde(other)]
    Unknown,
}

/// The JSON body of a `members/<name>` key; field names are Patroni's so its tooling reads ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MemberData {
    /// libpq URL other members connect to (`postgres://host:port/postgres`).
    pub conn_url: String,
    /// The agent's REST endpoint (`http://host:8008/patroni`).
    pub api_url: String,
    /// Database process state.
    pub state: MemberState,
    /// Database role.
    pub role: MemberRole,
    /// Database server version, as reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Primary: current write position. Standby: the furthest of received and replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<Lsn>,
    /// Standby: last WAL position received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_lsn: Option<Lsn>,
    /// Standby: last WAL position replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<Lsn>,
    /// Standby: `streaming` while its receiver is connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    /// PostgreSQL timeline or openGauss term: the generation of the history this member is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// The member's tags.
    pub tags: Tags,
    /// A restart is needed for changed parameters to apply.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart: bool,
    /// The member sees the cluster paused.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    /// Fields other tools wrote that we keep but do not interpret.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One member as read from the DCS.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member's unique name (the key suffix).
    pub name: String,
    /// The key's modification revision, for compare-and-swap.
    pub version: u64,
    /// What the member published.
    pub data: MemberData,
    /// Why the key's value could not be read, when it could not: such a member is never a candidate.
    pub unreadable: Option<String>,
}

impl Member {
    /// A readable member with the given data, at version 0.
    pub fn new(name: impl Into<String>, data: MemberData) -> Self {
        Member {
            name: name.into(),
            version: 0,
            data,
            unreadable: None,
        }
    }

    /// The member's best known WAL position, zero when it reported none.
    pub fn wal_position(&self) -> Lsn {
        [
            self.data.xlog_location,
            self.data.receive_lsn,
            self.data.replay_lsn,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(Lsn::ZERO)
    }

    /// Parses a member key's value, keeping a readable reason when it is not what an agent writes.
    pub fn from_json(name: impl Into<String>, version: u64, raw: &[u8]) -> Self {
        let name = name.into();
        match serde_json::from_slice::<MemberData>(raw) {
            Ok(data) => Member {
                name,
                version,
                data,
                unreadable: None,
            },
            Err(e) => Member {
                name,
                version,
                data: MemberData::default(),
                unreadable: Some(format!("member key is not valid member JSON: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_patroni_member_value() {
        let raw = br#"{"conn_url":"postgres://10.0.0.2:5432/postgres","api_url":"http://10.0.0.2:8008/patroni",
            "state":"running","role":"master","version":"4.1.4","xlog_location":50331744,"timeline":2,
            "tags":{"nofailover":true},"checkpoint_after_promote":false}"#;
        let m = Member::from_json("node2", 7, raw);
        assert!(m.unreadable.is_none());
        assert_eq!(m.data.role, MemberRole::Primary);
        assert_eq!(m.data.state, MemberState::Running);
        assert_eq!(m.wal_position(), Lsn(50331744));
        assert!(m.data.tags.nofailover);
        assert!(m.data.extra.contains_key("checkpoint_after_promote"));
    }

    #[test]
    fn garbage_is_marked_unreadable_not_fatal() {
        for raw in [
            &b"not json"[..],
            br#"{"xlog_location":"banana"}"#,
            br#"[1,2]"#,
            b"",
        ] {
            let m = Member::from_json("x", 1, raw);
            assert!(m.unreadable.is_some(), "{:?}", std::str::from_utf8(raw));
        }
        let odd = Member::from_json("y", 1, br#"{"state":"launching rockets","role":"pilot"}"#);
        assert!(odd.unreadable.is_none());
        assert_eq!(
            (odd.data.state, odd.data.role),
            (MemberState::Unknown, MemberRole::Unknown)
        );
    }
}
