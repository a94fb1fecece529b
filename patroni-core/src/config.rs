//! The cluster-wide dynamic configuration (Patroni's `/config` key) and its timing rule.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How commits wait for standbys; Patroni accepts `true`/`false` or `"on"`/`"off"`/`"quorum"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynchronousMode {
    /// Asynchronous replication: any healthy standby within the lag limit may be promoted.
    #[default]
    Off,
    /// `FIRST n (...)`: only a standby recorded in the `/sync` key may be promoted.
    On,
    /// `ANY n (...)`: promotion needs a quorum of voters (PostgreSQL 10+).
    Quorum,
}

impl SynchronousMode {
    /// Whether commits wait for nobody (Patroni's default).
    pub fn is_off(&self) -> bool {
        *self == SynchronousMode::Off
    }
}

impl Serialize for SynchronousMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SynchronousMode::Off => s.serialize_bool(false),
            SynchronousMode::On => s.serialize_bool(true),
            SynchronousMode::Quorum => s.serialize_str("quorum"),
        }
    }
}

impl<'de> Deserialize<'de> for SynchronousMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(if b {
                SynchronousMode::On
            } else {
                SynchronousMode::Off
            }),
            Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" => Ok(SynchronousMode::On),
                "off" | "false" | "no" => Ok(SynchronousMode::Off),
                "quorum" => Ok(SynchronousMode::Quorum),
                other => Err(serde::de::Error::custom(format!(
                    "synchronous_mode {other:?}: expected on, off or quorum"
                ))),
            },
        }
    }
}

// Only what differs from Patroni's defaults is written to `/config`, as Patroni writes only what
// was set: a reader (ours or Python's) applies the same defaults to what is absent. The timing
// (`ttl`, `loop_wait`, `retry_timeout`) is always written, so `/config` is never the empty object
// that an emptied key looks like.
fn eq_u64<const N: u64>(v: &u64) -> bool {
    *v == N
}
fn eq_u32<const N: u32>(v: &u32) -> bool {
    *v == N
}
fn eq_i64<const N: i64>(v: &i64) -> bool {
    *v == N
}
fn is_false(v: &bool) -> bool {
    !*v
}
fn is_true(v: &bool) -> bool {
    *v
}

/// Database settings that live in the dynamic configuration (`postgresql:` under `/config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamicPostgresql {
    /// Rejoin a diverged former primary with `pg_rewind` (openGauss: incremental build) instead of a full copy.
    #[serde(skip_serializing_if = "is_false")]
    pub use_pg_rewind: bool,
    /// Keep a physical replication slot per member on the primary.
    #[serde(skip_serializing_if = "is_true")]
    pub use_slots: bool,
    /// Server parameters applied on every node.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Keys we do not interpret, kept so a round trip through `/config` loses nothing.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl DynamicPostgresql {
    /// Whether nothing differs from the defaults (then `/config` carries no `postgresql` key).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for DynamicPostgresql {
    fn default() -> Self {
        DynamicPostgresql {
            use_pg_rewind: false,
            use_slots: true,
            parameters: serde_json::Map::new(),
            extra: serde_json::Map::new(),
        }
    }
}

/// The cluster-wide settings every agent obeys, with Patroni's names and defaults (seconds, bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamicConfig {
    /// Lease of the leader and member keys, seconds.
    pub ttl: u64,
    /// Seconds between HA cycles.
    pub loop_wait: u64,
    /// Seconds a DCS or database call may take before it counts as failed.
    pub retry_timeout: u64,
    /// Bytes a standby may lag behind the last known primary position and still be promoted.
    #[serde(skip_serializing_if = "eq_u64::<1_048_576>")]
    pub maximum_lag_on_failover: u64,
    /// Bytes a synchronous standby may lag before it is replaced; negative disables the check.
    #[serde(skip_serializing_if = "eq_i64::<{ -1 }>")]
    pub maximum_lag_on_syncnode: i64,
    /// Seconds a crashed primary may take to come back before the cluster fails over; 0 fails over at once.
    #[serde(alias = "master_start_timeout")]
    #[serde(skip_serializing_if = "eq_u64::<300>")]
    pub primary_start_timeout: u64,
    /// Seconds a primary may take to stop in synchronous mode before it is killed; 0 waits.
    #[serde(skip_serializing_if = "eq_u64::<0>")]
    pub primary_stop_timeout: u64,
    /// Seconds to hold back the leader race while WAL is still arriving.
    #[serde(skip_serializing_if = "eq_u64::<0>")]
    pub primary_race_backoff: u64,
    /// Whether commits wait for standbys, and so which standbys may be promoted.
    #[serde(skip_serializing_if = "SynchronousMode::is_off")]
    pub synchronous_mode: SynchronousMode,
    /// In synchronous mode, block commits rather than fall back to asynchronous when no standby is left.
    #[serde(skip_serializing_if = "is_false")]
    pub synchronous_mode_strict: bool,
    /// How many synchronous standbys to keep.
    #[serde(skip_serializing_if = "eq_u32::<1>")]
    pub synchronous_node_count: u32,
    /// Keep a primary running through a DCS outage when every member confirms it.
    #[serde(skip_serializing_if = "is_false")]
    pub failsafe_mode: bool,
    /// Refuse to promote a member whose timeline is behind the cluster's.
    #[serde(skip_serializing_if = "is_false")]
    pub check_timeline: bool,
    /// How many entries of the `/history` key to keep; 0 keeps all.
    #[serde(skip_serializing_if = "eq_u64::<0>")]
    pub max_timelines_history: u64,
    /// Maintenance mode: agents take no automatic action on their databases.
    #[serde(skip_serializing_if = "is_false")]
    pub pause: bool,
    /// Settings for the database itself.
    #[serde(skip_serializing_if = "DynamicPostgresql::is_default")]
    pub postgresql: DynamicPostgresql,
    /// Keys we do not interpret (slots, standby_cluster, ...), kept so a round trip loses nothing.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig {
            ttl: 30,
            loop_wait: 10,
            retry_timeout: 10,
            maximum_lag_on_failover: 1_048_576,
            maximum_lag_on_syncnode: -1,
            primary_start_timeout: 300,
            primary_stop_timeout: 0,
            primary_race_backoff: 0,
            synchronous_mode: SynchronousMode::Off,
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            failsafe_mode: false,
            check_timeline: false,
            max_timelines_history: 0,
            pause: false,
            postgresql: DynamicPostgresql::default(),
            extra: serde_json::Map::new(),
        }
    }
}

/// The names Patroni accepts for the permanent slots section, the preferred first: Patroni 4
/// spells it `permanent_slots` and still reads `permanent_replication_slots` and `slots`.
pub const PERMANENT_SLOTS_KEYS: [&str; 3] =
    ["permanent_slots", "permanent_replication_slots", "slots"];

/// Patroni's `/config` keys that have no typed field here: kept and carried through every write
/// (some read by other parts, such as the slot plan), never reported as unknown.
const CARRIED_KEYS: [&str; 10] = [
    PERMANENT_SLOTS_KEYS[0],
    PERMANENT_SLOTS_KEYS[1],
    PERMANENT_SLOTS_KEYS[2],
    "ignore_slots",
    "member_slots_ttl",
    "standby_cluster",
    "master_start_timeout",
    "master_stop_timeout",
    "citus",
    "failsafe",
];

/// Patroni's `postgresql` keys of `/config` without a typed field here.
const CARRIED_PG_KEYS: [&str; 5] = [
    "pg_hba",
    "pg_ident",
    "recovery_conf",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
];

impl DynamicConfig {
    /// Keys that are no Patroni setting (a typo such as `loop_wiat`): kept in `/config` like any
    /// other, but nothing reads them, which the operator should hear about.
    pub fn unknown_keys(&self) -> Vec<String> {
        let top = self
            .extra
            .keys()
            .filter(|k| !CARRIED_KEYS.contains(&k.as_str()))
            .cloned();
        let pg = self
            .postgresql
            .extra
            .keys()
            .filter(|k| !CARRIED_PG_KEYS.contains(&k.as_str()))
            .map(|k| format!("postgresql.{k}"));
        top.chain(pg).collect()
    }
}

/// A dynamic configuration that would let two primaries coexist or stall the loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A primary must be able to read and renew within one lease, or it could lose the lock unnoticed.
    #[error(
        "timing rule violated: loop_wait ({loop_wait}) + 2 * retry_timeout ({retry_timeout}) = {total} must not exceed ttl ({ttl})"
    )]
    Timing {
        /// The configured `loop_wait`.
        loop_wait: u64,
        /// The configured `retry_timeout`.
        retry_timeout: u64,
        /// `loop_wait + 2 * retry_timeout`.
        total: u64,
        /// The configured `ttl`.
        ttl: u64,
    },
    /// A timing value of zero would make the agent spin or never wait.
    #[error("{name} must be at least 1 second, got {value}")]
    TooSmall {
        /// The setting's name.
        name: &'static str,
        /// Its value.
        value: u64,
    },
    /// Synchronous mode with no standby to wait for is a contradiction.
    #[error("synchronous_node_count must be at least 1, got 0")]
    NoSyncNodes,
}

impl DynamicConfig {
    /// Checks the settings the safety argument depends on, naming the offending values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("ttl", self.ttl),
            ("loop_wait", self.loop_wait),
            ("retry_timeout", self.retry_timeout),
        ] {
            if value == 0 {
                return Err(ConfigError::TooSmall { name, value });
            }
        }
        let total = self
            .loop_wait
            .saturating_add(self.retry_timeout.saturating_mul(2));
        if total > self.ttl {
            return Err(ConfigError::Timing {
                loop_wait: self.loop_wait,
                retry_timeout: self.retry_timeout,
                total,
                ttl: self.ttl,
            });
        }
        if self.synchronous_node_count == 0 {
            return Err(ConfigError::NoSyncNodes);
        }
        Ok(())
    }

    /// What an agent runs with: the settings Patroni accepts, adjusted as Patroni adjusts them
    /// rather than refused, with one warning per change.
    ///
    /// A zero timing becomes 1 s; when `loop_wait + 2 * retry_timeout` exceeds `ttl`, `loop_wait`
    /// is lowered first, then `retry_timeout`, and only then `ttl` raised; a zero
    /// `synchronous_node_count` becomes 1. A stored `/config` that breaks the rule thus never
    /// blocks an agent, nor a later unrelated change (a `pause` through `PATCH /config`).
    pub fn adjusted(&self) -> (DynamicConfig, Vec<String>) {
        let mut c = self.clone();
        let mut warnings = Vec::new();
        for (name, value) in [
            ("ttl", &mut c.ttl),
            ("loop_wait", &mut c.loop_wait),
            ("retry_timeout", &mut c.retry_timeout),
        ] {
            if *value == 0 {
                *value = 1;
                warnings.push(format!("{name} 0 is raised to 1"));
            }
        }
        let total = |c: &DynamicConfig| {
            c.loop_wait
                .saturating_add(c.retry_timeout.saturating_mul(2))
        };
        if total(&c) > c.ttl {
            let before = (c.loop_wait, c.retry_timeout, c.ttl);
            c.loop_wait = c.loop_wait.min(
                c.ttl
                    .saturating_sub(c.retry_timeout.saturating_mul(2))
                    .max(1),
            );
            if total(&c) > c.ttl {
                c.retry_timeout = (c.ttl.saturating_sub(c.loop_wait) / 2).max(1);
            }
            if total(&c) > c.ttl {
                c.ttl = total(&c);
            }
            warnings.push(format!(
                "loop_wait ({}) + 2 * retry_timeout ({}) exceeds ttl ({}): running with loop_wait {}, retry_timeout {}, ttl {}",
                before.0, before.1, before.2, c.loop_wait, c.retry_timeout, c.ttl
            ));
        }
        if c.synchronous_node_count == 0 {
            c.synchronous_node_count = 1;
            warnings.push("synchronous_node_count 0 is raised to 1".into());
        }
        (c, warnings)
    }

    /// The lease length (`ttl`), as the [`Duration`] the state machine measures time with.
    pub fn ttl_duration(&self) -> Duration {
        Duration::from_secs(self.ttl)
    }

    /// The loop period (`loop_wait`).
    pub fn loop_wait_duration(&self) -> Duration {
        Duration::from_secs(self.loop_wait)
    }

    /// The per-call deadline (`retry_timeout`).
    pub fn retry_timeout_duration(&self) -> Duration {
        Duration::from_secs(self.retry_timeout)
    }

    /// How long a crashed primary may take to start before a failover (`primary_start_timeout`).
    pub fn primary_start_timeout_duration(&self) -> Duration {
        Duration::from_secs(self.primary_start_timeout)
    }

    /// How long a standby whose WAL still arrives waits before racing (`primary_race_backoff`).
    pub fn primary_race_backoff_duration(&self) -> Duration {
        Duration::from_secs(self.primary_race_backoff)
    }

    /// Whether promotion is restricted to the recorded synchronous standbys.
    pub fn synchronous(&self) -> bool {
        self.synchronous_mode != SynchronousMode::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_set_is_written_besides_the_timing() {
        let d = DynamicConfig::default();
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"ttl":30,"loop_wait":10,"retry_timeout":10}"#
        );
        let mut c = d.clone();
        c.pause = true;
        c.postgresql.use_pg_rewind = true;
        c.postgresql
            .parameters
            .insert("work_mem".into(), "8MB".into());
        c.extra
            .insert("permanent_slots".into(), serde_json::json!({}));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["pause"], true);
        assert_eq!(
            v["postgresql"],
            serde_json::json!({"use_pg_rewind": true, "parameters": {"work_mem": "8MB"}})
        );
        assert!(v.get("synchronous_mode").is_none() && v.get("maximum_lag_on_failover").is_none());
        let back: DynamicConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn defaults_are_patronis_and_valid() {
        let c = DynamicConfig::default();
        assert_eq!((c.ttl, c.loop_wait, c.retry_timeout), (30, 10, 10));
        assert_eq!(c.maximum_lag_on_failover, 1_048_576);
        assert_eq!(c.primary_start_timeout, 300);
        c.validate().unwrap();
    }

    #[test]
    fn timing_rule_names_the_values() {
        let c = DynamicConfig {
            ttl: 20,
            loop_wait: 10,
            retry_timeout: 10,
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(
            e,
            ConfigError::Timing {
                loop_wait: 10,
                retry_timeout: 10,
                total: 30,
                ttl: 20
            }
        );
        assert!(e.to_string().contains("ttl (20)"), "{e}");
    }

    #[test]
    fn parses_patroni_json_and_keeps_unknown_keys() {
        let c: DynamicConfig = serde_json::from_str(
            r#"{"ttl":10,"loop_wait":2,"retry_timeout":4,"master_start_timeout":0,
                "synchronous_mode":"quorum","slots":{"a":{"type":"physical"}},
                "postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100},"pg_hba":["x"]}}"#,
        )
        .unwrap();
        assert_eq!(c.primary_start_timeout, 0);
        assert_eq!(c.synchronous_mode, SynchronousMode::Quorum);
        assert!(c.extra.contains_key("slots"));
        assert!(c.postgresql.use_pg_rewind && c.postgresql.extra.contains_key("pg_hba"));
        let back: DynamicConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(
            serde_json::from_str::<DynamicConfig>(r#"{"synchronous_mode":"sometimes"}"#).is_err()
        );
    }

    #[test]
    fn a_broken_timing_is_adjusted_as_patroni_does() {
        let c = DynamicConfig {
            ttl: 10,
            loop_wait: 10,
            retry_timeout: 10,
            ..Default::default()
        };
        let (a, w) = c.adjusted();
        assert_eq!((a.ttl, a.loop_wait, a.retry_timeout), (10, 1, 4));
        a.validate().unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        let zero = DynamicConfig {
            ttl: 0,
            loop_wait: 0,
            retry_timeout: 0,
            synchronous_node_count: 0,
            ..Default::default()
        };
        let (a, w) = zero.adjusted();
        a.validate().unwrap();
        assert!(w.len() >= 4, "{w:?}");
        let (same, none) = DynamicConfig::default().adjusted();
        assert!(none.is_empty() && same == DynamicConfig::default());
    }
}
