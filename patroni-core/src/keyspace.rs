//! Patroni's key names under `/<namespace>/<scope>/` and how their raw values become a [`Cluster`].
//!
//! Every DCS implementation (the in-memory store, etcd) decodes through [`decode_cluster`], so
//! garbage under the prefix is reported the same way everywhere: as a warning, never as a failure.

use crate::{
    Cluster, ClusterStatus, DynamicConfig, FailoverRequest, HistoryEntry, Leader, Member,
    SyncState, Versioned,
};

/// `/initialize`: the bootstrap race and then the system identifier.
pub const INITIALIZE: &str = "initialize";
/// `/config`: the dynamic configuration.
pub const CONFIG: &str = "config";
/// `/leader`: the leader lock, valued with the holder's name.
pub const LEADER: &str = "leader";
/// `/members/`: the directory of member keys.
pub const MEMBERS: &str = "members/";
/// `/failover`: a pending switchover or manual failover.
pub const FAILOVER: &str = "failover";
/// `/sync`: the recorded synchronous standbys.
pub const SYNC: &str = "sync";
/// `/history`: one entry per promotion.
pub const HISTORY: &str = "history";
/// `/status`: the leader's last published WAL position and slots.
pub const STATUS: &str = "status";
/// `/failsafe`: the members a primary may count on during a DCS outage.
pub const FAILSAFE: &str = "failsafe";

/// Values larger than this are not parsed: a runaway writer must not stall every agent's loop.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// The key of member `name`, relative to the cluster prefix.
pub fn member_key(name: &str) -> String {
    format!("{MEMBERS}{name}")
}

/// Whether a change to this key (relative to the prefix) should wake a waiting agent early.
///
/// These are the keys whose changes let a replica act at once instead of after `loop_wait`.
pub fn wakes_agents(key: &str) -> bool {
    key == LEADER || key == CONFIG || key == FAILOVER
}

/// One key as read from the DCS, its name relative to the cluster prefix.
#[derive(Debug, Clone, Copy)]
pub struct RawKey<'a> {
    /// The key without the cluster prefix (`leader`, `members/node1`, ...).
    pub key: &'a str,
    /// The raw value.
    pub value: &'a [u8],
    /// The key's modification revision, used as its version for compare-and-swap.
    pub mod_revision: u64,
}

fn text<'a>(key: &str, raw: &'a [u8], warnings: &mut Vec<String>) -> std::borrow::Cow<'a, str> {
    let t = String::from_utf8_lossy(raw);
    if matches!(t, std::borrow::Cow::Owned(_)) {
        warnings.push(format!(
            "/{key}: value is not valid UTF-8, read it as {t:?}"
        ));
    }
    t
}

fn json<T: serde::de::DeserializeOwned>(
    key: &str,
    raw: &[u8],
    what: &str,
    warnings: &mut Vec<String>,
) -> Option<T> {
    match serde_json::from_slice::<T>(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            warnings.push(format!("/{key}: ignored, not {what}: {e}"));
            None
        }
    }
}

/// Whether a value is blank or `{}`: a key that exists but says nothing.
fn is_blank_object(raw: &[u8]) -> bool {
    let t: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    t.is_empty() || t == b"{}"
}

/// Builds the cluster view from every key under the prefix, read at one revision.
///
/// Undecodable values become entries in [`Cluster::warnings`]; an undecodable member is kept with
/// [`Member::unreadable`] set so it is visible but never a candidate. Unknown keys are ignored.
pub fn decode_cluster<'a>(keys: impl IntoIterator<Item = RawKey<'a>>) -> Cluster {
    let mut c = Cluster::default();
    let mut w = Vec::new();
    for k in keys {
        if k.value.len() > MAX_VALUE_BYTES {
            let why = format!(
                "value is {} bytes, over the {MAX_VALUE_BYTES}-byte limit; not parsed",
                k.value.len()
            );
            if let Some(name) = k.key.strip_prefix(MEMBERS).filter(|n| !n.is_empty()) {
                c.members.push(Member {
                    unreadable: Some(why.clone()),
                    ..Member::new(name, Default::default())
                });
                c.members.last_mut().expect("just pushed").version = k.mod_revision;
            }
            w.push(format!("/{}: {why}", k.key));
            continue;
        }
        match k.key {
            INITIALIZE => c.initialize = Some(text(k.key, k.value, &mut w).into_owned()),
            CONFIG => {
                let unreadable = |why: String| Versioned {
                    version: k.mod_revision,
                    value: why,
                };
                if is_blank_object(k.value) {
                    w.push(format!("/{}: empty, not a dynamic configuration", k.key));
                    c.config_unreadable = Some(unreadable("the key is empty".into()));
                } else if let Some(cfg) =
                    json::<DynamicConfig>(k.key, k.value, "a dynamic configuration", &mut w)
                {
                    // Run with what Patroni would run with, saying what was changed.
                    let (cfg, adjusted) = cfg.adjusted();
                    w.extend(adjusted.into_iter().map(|a| format!("/{}: {a}", k.key)));
                    c.config = Some(Versioned {
                        version: k.mod_revision,
                        value: cfg,
                    });
                } else {
                    let why = w.last().cloned().unwrap_or_default();
                    c.config_unreadable = Some(unreadable(why));
                }
            }
            LEADER => {
                let name = text(k.key, k.value, &mut w).trim().to_string();
                if name.is_empty() {
                    w.push(format!("/{}: empty leader key, treated as unlocked", k.key));
                } else {
                    c.leader = Some(Leader {
                        name,
                        version: k.mod_revision,
                    });
                }
            }
            FAILOVER => {
                if k.value.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match FailoverRequest::parse(k.value) {
                    Ok(r) => {
                        c.failover = Some(Versioned {
                            version: k.mod_revision,
                            value: r,
                        })
                    }
                    Err(e) => {
                        w.push(format!("/{}: ignored: {e}", k.key));
                        c.failover_unreadable = Some(Versioned {
                            version: k.mod_revision,
                            value: e,
                        });
                    }
                }
            }
            SYNC => {
                if let Some(s) = json::<SyncState>(k.key, k.value, "a sync state", &mut w) {
                    c.sync = Some(Versioned {
                        version: k.mod_revision,
                        value: s,
                    });
                }
            }
            HISTORY => {
                if let Some(h) =
                    json::<Vec<HistoryEntry>>(k.key, k.value, "a timeline history", &mut w)
                {
                    c.history = h;
                }
            }
            STATUS => c.status = json::<ClusterStatus>(k.key, k.value, "a status object", &mut w),
            FAILSAFE => {
                c.failsafe = json::<crate::FailsafeTopology>(
                    k.key,
                    k.value,
                    "a failsafe member map",
                    &mut w,
                );
            }
            other => {
                let Some(name) = other.strip_prefix(MEMBERS) else {
                    continue;
                };
                if name.is_empty() || name.contains('/') {
                    continue;
                }
                let m = Member::from_json(name, k.mod_revision, k.value);
                if let Some(why) = &m.unreadable {
                    w.push(format!("/{other}: {why}"));
                }
                c.members.push(m);
            }
        }
    }
    c.members.sort_by(|a, b| a.name.cmp(&b.name));
    c.warnings = w;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(key: &'a str, value: &'a [u8]) -> RawKey<'a> {
        RawKey {
            key,
            value,
            mod_revision: 7,
        }
    }

    #[test]
    fn decodes_patroni_values() {
        let c = decode_cluster([
            raw("initialize", b"7301234567890123456"),
            raw("leader", b"node1"),
            raw("config", br#"{"ttl":30,"loop_wait":10,"retry_timeout":10}"#),
            raw(
                "members/node2",
                br#"{"conn_url":"postgres://b/postgres","role":"replica"}"#,
            ),
            raw("members/node1", br#"{"role":"primary","state":"running"}"#),
            raw("failover", br#"{"leader":"node1","member":"node2"}"#),
            raw("sync", br#"{"leader":"node1","sync_standby":"node2"}"#),
            raw("history", br#"[[1,100,"promoted"]]"#),
            raw("status", br#"{"optime":1234}"#),
            raw("failsafe", br#"{"node1":"http://a:8008/patroni"}"#),
            raw("optime/leader", b"99"),
        ]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.initialize.as_deref(), Some("7301234567890123456"));
        assert_eq!(
            c.leader.as_ref().map(|l| (l.name.as_str(), l.version)),
            Some(("node1", 7))
        );
        assert_eq!(
            c.members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["node1", "node2"]
        );
        assert_eq!(c.config.as_ref().unwrap().value.ttl, 30);
        assert!(c.failover_request().unwrap().is_switchover());
        assert!(c.sync_state().unwrap().is_sync("NODE2"));
        assert_eq!(c.timeline(), 2);
        assert_eq!(c.leader_optime(), Some(crate::Lsn(1234)));
    }

    #[test]
    fn garbage_becomes_warnings() {
        let huge = vec![b'{'; MAX_VALUE_BYTES + 1];
        let c = decode_cluster([
            raw("leader", b""),
            raw("config", b"{ttl"),
            raw("members/bad", b"\xff\xfe"),
            raw("members/huge", &huge),
            raw("members/ok", b"{}"),
            raw("failover", br#"{"leader":5}"#),
            raw("sync", br#"{"sync_standby":5}"#),
            raw("history", br#"[["x"]]"#),
            raw("status", b"nope"),
            raw("failsafe", b"1"),
        ]);
        assert!(c.leader.is_none() && c.config.is_none() && c.failover.is_none());
        // Both are reported with their version so the leader can repair them.
        assert_eq!(c.failover_unreadable.as_ref().map(|v| v.version), Some(7));
        assert_eq!(c.config_unreadable.as_ref().map(|v| v.version), Some(7));
        assert!(c.sync.is_none() && c.history.is_empty() && c.status.is_none());
        assert_eq!(c.members.len(), 3);
        assert!(c.member("bad").unwrap().unreadable.is_some());
        assert!(c
            .member("huge")
            .unwrap()
            .unreadable
            .as_deref()
            .unwrap()
            .contains("limit"));
        assert!(c.member("ok").unwrap().unreadable.is_none());
        for key in [
            "leader",
            "config",
            "members/bad",
            "members/huge",
            "failover",
            "sync",
            "history",
            "status",
            "failsafe",
        ] {
            assert!(
                c.warnings
                    .iter()
                    .any(|w| w.starts_with(&format!("/{key}:"))),
                "no warning for {key}: {:?}",
                c.warnings
            );
        }
    }

    #[test]
    fn unsafe_config_is_adjusted_and_reported() {
        let c = decode_cluster([raw(
            "config",
            br#"{"ttl":10,"loop_wait":10,"retry_timeout":10}"#,
        )]);
        let v = c.config.unwrap().value;
        assert_eq!((v.ttl, v.loop_wait, v.retry_timeout), (10, 1, 4));
        assert!(c.warnings[0].contains("exceeds ttl"), "{:?}", c.warnings);
    }

    #[test]
    fn empty_config_is_unreadable_not_defaults() {
        for value in [&b"{}"[..], b"", b"  { }\n"] {
            let c = decode_cluster([raw("config", value)]);
            assert!(c.config.is_none(), "{value:?}");
            assert_eq!(
                c.config_unreadable.as_ref().map(|v| v.value.as_str()),
                Some("the key is empty")
            );
        }
        // A partial configuration is Patroni's normal case: the rest are defaults.
        let c = decode_cluster([raw("config", br#"{"ttl":30}"#)]);
        assert!(c.config_unreadable.is_none() && c.config.is_some());
    }

    #[test]
    fn naive_scheduled_at_is_an_unreadable_failover() {
        let c = decode_cluster([raw(
            "failover",
            br#"{"member":"n2","scheduled_at":"2026-12-01T10:00:00"}"#,
        )]);
        assert!(c.failover.is_none());
        assert!(c.failover_unreadable.is_some(), "{:?}", c.warnings);
    }
}
