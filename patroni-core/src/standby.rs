//! Standby clusters: `standby_cluster` in `/config` makes the whole cluster a replica of a remote
//! primary, as Patroni's `standby_cluster` does.
//!
//! The lock holder is a *standby leader*: it holds the leader key as usual but runs as a standby
//! streaming from the remote `host`:`port` (through `primary_slot_name` there, replaying with
//! `restore_command`), and the other members follow it. It never promotes while the section is
//! set; removing the section from `/config` promotes it like any lock holder with a standby
//! database. Synchronous replication is not applied in a standby cluster.

use serde_json::{Map, Value};

use crate::{DynamicConfig, Member, MemberData, MemberRole, MemberState};

/// The name the remote primary goes by as an upstream (Patroni's `RemoteMember` name).
pub const REMOTE_MEMBER: &str = "remote_member";

/// The `standby_cluster` section of `/config`, read and checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StandbyCluster {
    /// The remote primary's host; `None` replays from the archive only (`restore_command`).
    pub host: Option<String>,
    /// The remote primary's port (5432 when only the host is given).
    pub port: Option<u16>,
    /// The physical slot on the remote primary the standby leader streams through.
    pub primary_slot_name: Option<String>,
    /// Fetches archived WAL when streaming falls behind or is not configured.
    pub restore_command: Option<String>,
    /// Removes archived WAL no longer needed (`archive_cleanup_command`).
    pub archive_cleanup_command: Option<String>,
    /// Delays replay on the standby leader (`recovery_min_apply_delay`), as written.
    pub recovery_min_apply_delay: Option<String>,
    /// The replica methods (by name, from the node's `postgresql` section) to clone the remote
    /// with at bootstrap; empty uses the node's own list.
    pub create_replica_methods: Vec<String>,
}

/// A `standby_cluster` section that cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("standby_cluster: {0}")]
pub struct StandbyClusterError(pub String);

/// A text value: strings as they are, numbers printed; anything else is an error naming `key`.
fn text(section: &Map<String, Value>, key: &str) -> Result<Option<String>, StandbyClusterError> {
    match section.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(StandbyClusterError(format!(
            "{key} must be a string, got {other}"
        ))),
    }
}

impl StandbyCluster {
    /// Reads a `standby_cluster` value: `Ok(None)` when it is absent, null, or names neither a
    /// host, a port nor a `restore_command` (Patroni's rule for an active section).
    pub fn parse(value: Option<&Value>) -> Result<Option<StandbyCluster>, StandbyClusterError> {
        let section = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(StandbyClusterError(format!(
                    "expected a section with host, port, primary_slot_name, restore_command, create_replica_methods; got {other}"
                )))
            }
        };
        let port = match section.get("port") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let p = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                Some(
                    p.and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p != 0)
                        .ok_or_else(|| {
                            StandbyClusterError(format!("port {v} is not a TCP port"))
                        })?,
                )
            }
        };
        let methods = match section.get("create_replica_methods") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|m| {
                    m.as_str().map(str::to_string).ok_or_else(|| {
                        StandbyClusterError(format!(
                            "create_replica_methods must list method names, got {m}"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(StandbyClusterError(format!(
                    "create_replica_methods must be a list of method names, got {other}"
                )))
            }
        };
        let sc = StandbyCluster {
            host: text(section, "host")?,
            port,
            primary_slot_name: text(section, "primary_slot_name")?,
            restore_command: text(section, "restore_command")?,
            archive_cleanup_command: text(section, "archive_cleanup_command")?,
            recovery_min_apply_delay: text(section, "recovery_min_apply_delay")?,
            create_replica_methods: methods,
        };
        if sc.port.is_some() && sc.host.is_none() {
            return Err(StandbyClusterError(
                "port is set but host is not: name the remote primary's host".into(),
            ));
        }
        let active = sc.host.is_some() || sc.restore_command.is_some();
        Ok(active.then_some(sc))
    }

    /// The remote primary as an upstream member (`None` when only archived WAL is replayed):
    /// the state machine streams from it as from any member.
    pub fn remote(&self) -> Option<Member> {
        let host = self.host.as_ref()?;
        let port = self.port.unwrap_or(crate::DEFAULT_PORT);
        let host_part = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let mut extra = Map::new();
        if !self.create_replica_methods.is_empty() {
            extra.insert(
                "create_replica_methods".into(),
                Value::from(self.create_replica_methods.clone()),
            );
        }
        Some(Member::new(
            REMOTE_MEMBER,
            MemberData {
                conn_url: format!("postgres://{host_part}:{port}/postgres"),
                state: MemberState::Running,
                role: MemberRole::Primary,
                extra,
                ..MemberData::default()
            },
        ))
    }

    /// The recovery settings the standby leader runs with, as server parameters.
    pub fn recovery_parameters(&self) -> Map<String, Value> {
        [
            ("restore_command", &self.restore_command),
            ("archive_cleanup_command", &self.archive_cleanup_command),
            ("recovery_min_apply_delay", &self.recovery_min_apply_delay),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), Value::from(v.clone()))))
        .collect()
    }
}

impl DynamicConfig {
    /// The active `standby_cluster` section, checked; `Ok(None)` for a normal cluster.
    pub fn standby_cluster(&self) -> Result<Option<StandbyCluster>, StandbyClusterError> {
        StandbyCluster::parse(self.extra.get("standby_cluster"))
    }

    /// Whether this is a standby cluster: an active section, or one that cannot be read (such a
    /// cluster must not promote anyone until the operator fixes or removes it).
    pub fn is_standby_cluster(&self) -> bool {
        !matches!(self.standby_cluster(), Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Option<StandbyCluster>, StandbyClusterError> {
        StandbyCluster::parse(Some(&v))
    }

    #[test]
    fn an_active_section_names_a_host_or_a_restore_command() {
        assert_eq!(parse(json!(null)).unwrap(), None);
        assert_eq!(parse(json!({})).unwrap(), None);
        assert_eq!(parse(json!({"primary_slot_name": "x"})).unwrap(), None);
        let sc = parse(
            json!({"host": "10.0.0.1", "port": "5433", "primary_slot_name": "dr",
            "create_replica_methods": ["basebackup"]}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(sc.port, Some(5433));
        let remote = sc.remote().unwrap();
        assert_eq!(remote.name, REMOTE_MEMBER);
        assert_eq!(remote.data.conn_url, "postgres://10.0.0.1:5433/postgres");
        let archive = parse(json!({"restore_command": "cp /a/%f %p"}))
            .unwrap()
            .unwrap();
        assert!(archive.remote().is_none());
        assert_eq!(
            archive.recovery_parameters()["restore_command"],
            "cp /a/%f %p"
        );
        let v6 = parse(json!({"host": "::1"})).unwrap().unwrap();
        assert_eq!(
            v6.remote().unwrap().data.conn_url,
            "postgres://[::1]:5432/postgres"
        );
    }

    #[test]
    fn bad_sections_are_refused_with_the_reason() {
        for (v, want) in [
            (json!({"host": "h", "port": "x"}), "not a TCP port"),
            (json!({"host": "h", "port": 70000}), "not a TCP port"),
            (json!({"port": 5432}), "host is not"),
            (json!({"host": ["a"]}), "host must be a string"),
            (json!("h:5432"), "expected a section"),
            (
                json!({"host": "h", "create_replica_methods": "basebackup"}),
                "list of method names",
            ),
        ] {
            let e = parse(v.clone()).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
        }
        let mut c = DynamicConfig::default();
        c.extra
            .insert("standby_cluster".into(), json!({"port": "x"}));
        assert!(
            c.is_standby_cluster(),
            "an unreadable section still holds promotion back"
        );
        c.extra.insert("standby_cluster".into(), json!(null));
        assert!(!c.is_standby_cluster());
    }
}
