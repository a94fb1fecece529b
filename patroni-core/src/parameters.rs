//! Which server parameters a member runs with: the cluster's (`postgresql.parameters` in
//! `/config`) overridden by the node's own, except for the ones every member must agree on.
//!
//! A standby cannot replay WAL from a primary that runs with more connections, workers, WAL
//! senders, prepared transactions or locks than it has, and a cluster whose members disagree on
//! `wal_level` or `track_commit_timestamp` breaks on the first failover. Those parameters (Patroni's
//! list) come from `/config` only, with Patroni's defaults when it holds none or an invalid value;
//! a local value for them is ignored with a warning.

use std::collections::BTreeMap;

use serde_json::Value;

/// How a cluster-wide parameter's value is checked before it reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// An integer no smaller than this (a value with a unit passes as written).
    AtLeast(i64),
    /// `on`/`off` (and PostgreSQL's other spellings of a boolean).
    Bool,
    /// Must be on.
    On,
    /// `replica` or `logical` (`hot_standby` is read as `replica`).
    WalLevel,
}

/// One parameter every member must run with the same value, and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterWide {
    /// The parameter's name (lower case).
    pub name: &'static str,
    /// The value used when `/config` has none (or an invalid one): Patroni's.
    pub default: &'static str,
    check: Check,
}

/// The parameters that come from `/config` only, as Patroni keeps them.
pub const CLUSTER_WIDE: [ClusterWide; 12] = [
    ClusterWide {
        name: "max_connections",
        default: "100",
        check: Check::AtLeast(25),
    },
    ClusterWide {
        name: "max_wal_senders",
        default: "10",
        check: Check::AtLeast(3),
    },
    ClusterWide {
        name: "max_replication_slots",
        default: "10",
        check: Check::AtLeast(4),
    },
    ClusterWide {
        name: "max_worker_processes",
        default: "8",
        check: Check::AtLeast(2),
    },
    ClusterWide {
        name: "max_prepared_transactions",
        default: "0",
        check: Check::AtLeast(0),
    },
    ClusterWide {
        name: "max_locks_per_transaction",
        default: "64",
        check: Check::AtLeast(32),
    },
    ClusterWide {
        name: "wal_level",
        default: "replica",
        check: Check::WalLevel,
    },
    ClusterWide {
        name: "hot_standby",
        default: "on",
        check: Check::On,
    },
    ClusterWide {
        name: "track_commit_timestamp",
        default: "off",
        check: Check::Bool,
    },
    ClusterWide {
        name: "wal_log_hints",
        default: "on",
        check: Check::Bool,
    },
    ClusterWide {
        name: "wal_keep_size",
        default: "128MB",
        check: Check::AtLeast(16),
    },
    ClusterWide {
        name: "wal_keep_segments",
        default: "8",
        check: Check::AtLeast(1),
    },
];

/// The parameters a hot standby needs at least as high as its primary's: PostgreSQL records the
/// primary's values in the control file and refuses to run recovery below them.
pub const HOT_STANDBY_FLOORS: [&str; 5] = [
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
];

/// The parameters to run with, and what was overridden or refused on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    /// Name (lower case) to value, as written after `name = ` in `postgresql.conf` (unquoted).
    pub values: BTreeMap<String, String>,
    /// One line per value that was ignored or replaced, for the log.
    pub warnings: Vec<String>,
}

/// A `/config` parameter value as the server reads it: booleans as `on`/`off`, numbers as
/// written; `None` for values a server parameter cannot have (objects, lists, null).
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(true) => Some("on".into()),
        Value::Bool(false) => Some("off".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

impl ClusterWide {
    /// The value to run with for what `/config` says, or why it is refused.
    fn accept(&self, value: &str) -> Result<String, String> {
        let v = value.trim();
        match self.check {
            Check::AtLeast(min) => match v.parse::<i64>() {
                Ok(n) if n >= min => Ok(n.to_string()),
                Ok(n) => Err(format!("{n} is below the minimum {min}")),
                // A size with a unit ("128MB") is the server's to check.
                Err(_) if v.chars().next().is_some_and(|c| c.is_ascii_digit()) => Ok(v.into()),
                Err(_) => Err(format!("'{v}' is not a number")),
            },
            Check::Bool => parse_bool(v)
                .map(|b| if b { "on" } else { "off" }.to_string())
                .ok_or_else(|| format!("'{v}' is not a boolean")),
            Check::On => match parse_bool(v) {
                Some(true) => Ok("on".into()),
                _ => Err(format!("'{v}' is not allowed: it must be on")),
            },
            Check::WalLevel => match v.to_ascii_lowercase().as_str() {
                "replica" | "hot_standby" => Ok("replica".into()),
                "logical" => Ok("logical".into()),
                _ => Err(format!("'{v}' cannot replicate")),
            },
        }
    }
}

/// The cluster-wide entry for `name`, if it is one.
pub fn cluster_wide(name: &str) -> Option<&'static ClusterWide> {
    CLUSTER_WIDE
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
}

/// Merges `/config`'s parameters with the node's own: local values win, except for the
/// [`CLUSTER_WIDE`] ones, which come from `/config` (or their default) only. `major` is the
/// server's major version when known: `wal_keep_segments` applies before 13, `wal_keep_size` from 13.
pub fn effective(
    cluster: &serde_json::Map<String, Value>,
    local: &BTreeMap<String, String>,
    major: Option<u32>,
) -> Effective {
    let mut out = Effective::default();
    for (name, v) in cluster {
        let key = name.to_ascii_lowercase();
        match value_text(v) {
            Some(text) => {
                out.values.insert(key, text);
            }
            None => out.warnings.push(format!(
                "/config postgresql.parameters.{name} is ignored: {v} is not a parameter value"
            )),
        }
    }
    for (name, v) in local {
        let key = name.to_ascii_lowercase();
        if cluster_wide(&key).is_some() {
            out.warnings.push(format!(
                "postgresql.parameters.{name} is ignored: every member must run with the same value, so it comes from /config (postgresql.parameters there, or bootstrap.dcs)"
            ));
            continue;
        }
        out.values.insert(key, v.clone());
    }
    for c in CLUSTER_WIDE {
        let applies = match c.name {
            "wal_keep_size" => major.is_none_or(|m| m >= 13),
            "wal_keep_segments" => major.is_some_and(|m| m < 13),
            _ => true,
        };
        if !applies {
            out.values.remove(c.name);
            continue;
        }
        let value = match out.values.get(c.name) {
            None => c.default.to_string(),
            Some(v) => c.accept(v).unwrap_or_else(|why| {
                out.warnings.push(format!(
                    "/config postgresql.parameters.{}: {why}; using {}",
                    c.name, c.default
                ));
                c.default.to_string()
            }),
        };
        out.values.insert(c.name.to_string(), value);
    }
    out
}

/// Raises the [`HOT_STANDBY_FLOORS`] to the values the primary ran with (from the standby's
/// control file), so a standby never starts with settings its recovery would refuse.
pub fn raise_to_floors(values: &mut BTreeMap<String, String>, floors: &BTreeMap<String, u64>) {
    for name in HOT_STANDBY_FLOORS {
        let Some(&floor) = floors.get(name) else {
            continue;
        };
        let below = values
            .get(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_none_or(|v| v < floor);
        if below {
            values.insert(name.to_string(), floor.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn local(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn local_values_override_the_cluster_except_cluster_wide_ones() {
        let e = effective(
            &cluster(json!({"work_mem": "8MB", "max_connections": 200, "shared_buffers": "64MB"})),
            &local(&[("work_mem", "16MB"), ("max_connections", "50")]),
            Some(15),
        );
        assert_eq!(e.values["work_mem"], "16MB");
        assert_eq!(e.values["shared_buffers"], "64MB");
        assert_eq!(e.values["max_connections"], "200");
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert!(e.warnings[0].contains("postgresql.parameters.max_connections is ignored"));
    }

    #[test]
    fn cluster_wide_defaults_and_invalid_values() {
        let e = effective(
            &cluster(
                json!({"max_wal_senders": 1, "wal_level": "minimal", "hot_standby": "off",
                             "track_commit_timestamp": true, "wal_keep_size": "1GB"}),
            ),
            &BTreeMap::new(),
            Some(15),
        );
        assert_eq!(e.values["max_wal_senders"], "10");
        assert_eq!(e.values["wal_level"], "replica");
        assert_eq!(e.values["hot_standby"], "on");
        assert_eq!(e.values["track_commit_timestamp"], "on");
        assert_eq!(e.values["wal_keep_size"], "1GB");
        assert_eq!(e.values["max_connections"], "100");
        assert_eq!(e.values["wal_log_hints"], "on");
        assert!(!e.values.contains_key("wal_keep_segments"));
        assert_eq!(e.warnings.len(), 3, "{:?}", e.warnings);
    }

    #[test]
    fn wal_keep_segments_before_13_only() {
        let e = effective(&serde_json::Map::new(), &BTreeMap::new(), Some(12));
        assert_eq!(e.values["wal_keep_segments"], "8");
        assert!(!e.values.contains_key("wal_keep_size"));
    }

    #[test]
    fn names_compare_without_case_and_bad_values_are_refused() {
        let e = effective(
            &cluster(json!({"DateStyle": "ISO, MDY", "bad": {"x": 1}})),
            &local(&[("MAX_CONNECTIONS", "5")]),
            None,
        );
        assert_eq!(e.values["datestyle"], "ISO, MDY");
        assert!(!e.values.contains_key("bad"));
        assert_eq!(e.values["max_connections"], "100");
        assert_eq!(e.warnings.len(), 2, "{:?}", e.warnings);
    }

    #[test]
    fn standby_floors_raise_only() {
        let mut v = local(&[("max_connections", "100"), ("max_wal_senders", "20")]);
        let floors = [("max_connections", 300u64), ("max_wal_senders", 10)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        raise_to_floors(&mut v, &floors);
        assert_eq!(v["max_connections"], "300");
        assert_eq!(v["max_wal_senders"], "20");
    }
}
