//! The cluster as read from the DCS in one go: Patroni's keys under `/<namespace>/<scope>/`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{DynamicConfig, Lsn, Member, Timestamp};

/// A value with the DCS revision it was read at, so writers can compare-and-swap against it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The key's modification revision.
    pub version: u64,
    /// The decoded value.
    pub value: T,
}

/// Who holds the leader lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The lock holder's member name (the key's value).
    pub name: String,
    /// The key's modification revision.
    pub version: u64,
}

/// A pending switchover or manual failover (`/failover` key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FailoverRequest {
    /// The primary the operator expects to hand over from; set for a switchover, absent for a failover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The member that should become primary; absent lets the healthiest win.
    #[serde(rename = "member", skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    /// When to act; absent means now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<Timestamp>,
}

impl FailoverRequest {
    /// Whether the request names a current leader, which makes it a switchover.
    pub fn is_switchover(&self) -> bool {
        self.leader.is_some()
    }

    /// Whether the key holds nothing actionable (Patroni writes `{}` to mean "none").
    pub fn is_empty(&self) -> bool {
        self.leader.is_none() && self.candidate.is_none()
    }

    /// Decodes the key's value, accepting Patroni's legacy `leader:candidate` text form.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        match serde_json::from_slice::<FailoverRequest>(raw) {
            Ok(r) => Ok(r),
            Err(e) => {
                let text = std::str::from_utf8(raw)
                    .map_err(|_| format!("failover key is not text: {e}"))?;
                match text.trim().split_once(':') {
                    Some((l, c)) if !text.trim_start().starts_with('{') => Ok(FailoverRequest {
                        leader: Some(l.to_string()).filter(|s| !s.is_empty()),
                        candidate: Some(c.to_string()).filter(|s| !s.is_empty()),
                        scheduled_at: None,
                    }),
                    _ => Err(format!("failover key is not a failover request: {e}")),
                }
            }
        }
    }
}

/// Which standbys the primary currently treats as synchronous (`/sync` key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncState {
    /// The primary that recorded this state.
    pub leader: Option<String>,
    /// The synchronous standbys, in order.
    pub sync_standbys: Vec<String>,
    /// Quorum mode: how many of them a promotion must hear from.
    pub quorum: Option<u32>,
}

impl SyncState {
    /// Whether `name` is recorded as synchronous (names compare case-insensitively, as in Patroni).
    pub fn is_sync(&self, name: &str) -> bool {
        self.sync_standbys
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
    }
}

#[derive(Serialize, Deserialize)]
struct SyncJson {
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    sync_standby: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quorum: Option<u32>,
}

impl Serialize for SyncState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SyncJson {
            leader: self.leader.clone(),
            sync_standby: if self.sync_standbys.is_empty() {
                None
            } else {
                Some(self.sync_standbys.join(","))
            },
            quorum: self.quorum,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SyncState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = SyncJson::deserialize(d)?;
        Ok(SyncState {
            leader: j.leader,
            sync_standbys: j
                .sync_standby
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            quorum: j.quorum,
        })
    }
}

/// One promotion recorded in `/history`: `[timeline, lsn, reason, timestamp, new_leader]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The timeline (openGauss: term) that ended with this promotion.
    pub timeline: u64,
    /// Where that timeline ended.
    pub lsn: Lsn,
    /// Why it ended, free text.
    pub reason: String,
    /// When, if recorded.
    pub timestamp: Option<Timestamp>,
    /// Who was promoted, if recorded.
    pub new_leader: Option<String>,
}

impl Serialize for HistoryEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(5))?;
        seq.serialize_element(&self.timeline)?;
        seq.serialize_element(&self.lsn)?;
        seq.serialize_element(&self.reason)?;
        seq.serialize_element(&self.timestamp)?;
        seq.serialize_element(&self.new_leader)?;
        seq.end()
    }
}

impl<'de> Deserialize<'de> for HistoryEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Vec<serde_json::Value> = Vec::deserialize(d)?;
        let tl = raw.first().and_then(|v| v.as_u64()).ok_or_else(|| {
            serde::de::Error::custom("history entry must start with a timeline number")
        })?;
        let lsn = match raw.get(1) {
            Some(v) => {
                serde_json::from_value::<Lsn>(v.clone()).map_err(serde::de::Error::custom)?
            }
            None => Lsn::ZERO,
        };
        Ok(HistoryEntry {
            timeline: tl,
            lsn,
            reason: raw
                .get(2)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            timestamp: raw
                .get(3)
                .and_then(|v| v.as_str())
                .and_then(|t| t.parse().ok()),
            new_leader: raw.get(4).and_then(|v| v.as_str()).map(String::from),
        })
    }
}

/// The leader's last published position and slots (`/status` key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ClusterStatus {
    /// The primary's WAL position at its last renewal: what standbys' lag is measured against.
    pub optime: Option<Lsn>,
    /// Replication slots' positions, kept for compatibility.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub slots: serde_json::Map<String, serde_json::Value>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Everything under the cluster prefix, read at one revision.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cluster {
    /// `/initialize`: absent before bootstrap, `""` while one member bootstraps, then the system identifier.
    pub initialize: Option<String>,
    /// `/config`: absent until the first leader writes it.
    pub config: Option<Versioned<DynamicConfig>>,
    /// `/leader`: the lock holder, absent when the cluster is unlocked.
    pub leader: Option<Leader>,
    /// `/members/*`, sorted by name.
    pub members: Vec<Member>,
    /// `/failover`: a pending switchover or manual failover.
    pub failover: Option<Versioned<FailoverRequest>>,
    /// `/failover` holds something that is not a request (why, at its version): the leader clears it.
    pub failover_unreadable: Option<Versioned<String>>,
    /// `/config` exists but is empty (`{}`, blank) or not a configuration (why, at its version):
    /// the leader restores it from its last good copy instead of running on defaults.
    pub config_unreadable: Option<Versioned<String>>,
    /// `/sync`: the recorded synchronous standbys.
    pub sync: Option<Versioned<SyncState>>,
    /// `/history`: one entry per promotion, oldest first.
    pub history: Vec<HistoryEntry>,
    /// `/status`: the leader's last published position.
    pub status: Option<ClusterStatus>,
    /// `/failsafe`: the members a primary must hear from to ride out a DCS outage.
    pub failsafe: Option<crate::FailsafeTopology>,
    /// Keys whose values could not be decoded, each with a reason, so the operator sees them.
    pub warnings: Vec<String>,
}

impl Cluster {
    /// The member with this name, if it published a key.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The lock holder's member key, if both exist.
    pub fn leader_member(&self) -> Option<&Member> {
        self.leader.as_ref().and_then(|l| self.member(&l.name))
    }

    /// Whether nobody holds the leader lock.
    pub fn is_unlocked(&self) -> bool {
        self.leader.is_none()
    }

    /// Whether `name` holds the leader lock.
    pub fn is_leader(&self, name: &str) -> bool {
        self.leader.as_ref().is_some_and(|l| l.name == name)
    }

    /// The current generation (timeline or term) of the cluster: one past the last recorded promotion.
    ///
    /// With no history the cluster is on its first generation, 1.
    pub fn timeline(&self) -> u64 {
        self.history
            .iter()
            .map(|h| h.timeline)
            .max()
            .map_or(1, |t| t + 1)
    }

    /// The last WAL position the primary published, what candidates' lag is measured against.
    pub fn leader_optime(&self) -> Option<Lsn> {
        self.status.as_ref().and_then(|s| s.optime)
    }

    /// The dynamic configuration, or `fallback` while the DCS has none.
    pub fn config_or<'a>(&'a self, fallback: &'a DynamicConfig) -> &'a DynamicConfig {
        self.config.as_ref().map_or(fallback, |c| &c.value)
    }

    /// The recorded synchronous state, if any.
    pub fn sync_state(&self) -> Option<&SyncState> {
        self.sync.as_ref().map(|s| &s.value)
    }

    /// The pending switchover or failover, if any and not empty.
    pub fn failover_request(&self) -> Option<&FailoverRequest> {
        self.failover
            .as_ref()
            .map(|f| &f.value)
            .filter(|f| !f.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_key_json_and_legacy() {
        let r = FailoverRequest::parse(
            br#"{"leader":"a","member":"b","scheduled_at":"2026-11-26T10:00:00+00:00"}"#,
        )
        .unwrap();
        assert!(r.is_switchover());
        assert_eq!(r.candidate.as_deref(), Some("b"));
        assert!(r.scheduled_at.is_some());
        let legacy = FailoverRequest::parse(b"a:b").unwrap();
        assert_eq!(
            (legacy.leader.as_deref(), legacy.candidate.as_deref()),
            (Some("a"), Some("b"))
        );
        assert!(FailoverRequest::parse(b"{}").unwrap().is_empty());
        assert!(FailoverRequest::parse(b"{\"leader\": 5}").is_err());
        assert!(FailoverRequest::parse(br#"{"scheduled_at":"soon","member":"b"}"#).is_err());
    }

    #[test]
    fn sync_key_shape() {
        let s: SyncState = serde_json::from_str(r#"{"leader":"a","sync_standby":"B,c"}"#).unwrap();
        assert_eq!(s.sync_standbys, vec!["B", "c"]);
        assert!(s.is_sync("b"));
        let none: SyncState =
            serde_json::from_str(r#"{"leader":"a","sync_standby":null}"#).unwrap();
        assert!(none.sync_standbys.is_empty());
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"leader":"a","sync_standby":null}"#
        );
    }

    #[test]
    fn history_entries_and_timeline() {
        let h: Vec<HistoryEntry> = serde_json::from_str(
            r#"[[1,25623960,"no recovery target specified","2026-11-26T10:00:00+00:00","node2"],[2,"0/3000060","x"]]"#,
        )
        .unwrap();
        assert_eq!(h[1].lsn, Lsn(0x3000060));
        assert_eq!(h[0].new_leader.as_deref(), Some("node2"));
        let c = Cluster {
            history: h,
            ..Default::default()
        };
        assert_eq!(c.timeline(), 3);
        assert_eq!(Cluster::default().timeline(), 1);
        assert!(serde_json::from_str::<Vec<HistoryEntry>>(r#"[["x"]]"#).is_err());
    }
}
