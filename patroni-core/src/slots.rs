//! Which physical replication slots a member keeps, as Patroni manages them with `use_slots`.
//!
//! A standby streaming through a slot cannot lose the WAL it still needs to a checkpoint, so a
//! restarted replica catches up instead of being rebuilt. The member it streams from keeps one
//! slot per downstream member (named from the member name, as Patroni names them), the slots
//! `permanent_slots` in `/config` lists, and nothing else it manages: a slot of a member that left
//! is dropped after `member_slots_ttl`, so a restart (a member key that expires for a moment)
//! never costs a replica its slot, and a member gone for good stops holding WAL. Slots that
//! `ignore_slots` matches, and logical slots, are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::{Cluster, DynamicConfig};

/// Patroni's default `member_slots_ttl`: 30 minutes.
pub const DEFAULT_MEMBER_SLOTS_TTL: Duration = Duration::from_secs(30 * 60);

/// Patroni's slot name for a member: lower case, `-` and `.` as `_`, any other character outside
/// `[a-z0-9_]` as `u` and its code point in four digits, at most 63 characters.
pub fn slot_name(member: &str) -> String {
    let mut out = String::new();
    for c in member.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => out.push(c),
            '-' | '.' => out.push('_'),
            other => out.push_str(&format!("u{:04}", other as u32)),
        }
    }
    out.chars().take(63).collect()
}

/// One `ignore_slots` entry: a slot matching every field given is left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRule {
    /// Slot name.
    pub name: Option<String>,
    /// `physical` or `logical`.
    pub kind: Option<String>,
    /// Database (logical slots).
    pub database: Option<String>,
    /// Output plugin (logical slots).
    pub plugin: Option<String>,
}

impl IgnoreRule {
    /// Whether a slot with these properties matches the rule.
    pub fn matches(
        &self,
        name: &str,
        kind: &str,
        database: Option<&str>,
        plugin: Option<&str>,
    ) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        eq(&self.name, Some(name))
            && eq(&self.kind, Some(kind))
            && eq(&self.database, database)
            && eq(&self.plugin, plugin)
    }
}

/// What the database must do about its slots this cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotPlan {
    /// `use_slots` is on: with it off nothing is created, dropped or used.
    pub use_slots: bool,
    /// The slot this node's standby streams through (`primary_slot_name`), when it streams.
    pub primary_slot_name: Option<String>,
    /// The physical slots this node keeps (created when missing).
    pub keep: BTreeSet<String>,
    /// Of `keep`, the permanent ones a standby moves forward with its own replay position, so
    /// they are ready, and hold no more WAL than needed, if it is promoted.
    pub advance: BTreeSet<String>,
    /// Slots never dropped whatever `keep` says.
    pub ignore: Vec<IgnoreRule>,
}

impl SlotPlan {
    /// Whether a physical slot that exists but is not kept may be dropped.
    pub fn may_drop(&self, name: &str) -> bool {
        self.use_slots
            && !self.keep.contains(name)
            && !self
                .ignore
                .iter()
                .any(|r| r.matches(name, "physical", None, None))
    }
}

/// Plans each cycle's slots, remembering when each downstream member was last seen.
#[derive(Debug, Clone, Default)]
pub struct SlotKeeper {
    seen: BTreeMap<String, u64>,
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

/// `permanent_slots` (or one of its other names) of `/config`: name to `type`, physical unless
/// a `type` or `database` says logical.
fn permanent(config: &DynamicConfig) -> BTreeMap<String, bool> {
    let section = crate::config::PERMANENT_SLOTS_KEYS
        .iter()
        .find_map(|k| config.extra.get(*k));
    let mut out = BTreeMap::new();
    match section {
        Some(Value::Object(m)) => {
            for (name, spec) in m {
                let logical = spec.get("type").and_then(Value::as_str) == Some("logical")
                    || spec.get("database").is_some();
                out.insert(name.clone(), logical);
            }
        }
        // A list of names is Patroni's shorthand for physical slots.
        Some(Value::Array(names)) => {
            for n in names.iter().filter_map(Value::as_str) {
                out.insert(n.to_string(), false);
            }
        }
        _ => {}
    }
    out
}

/// `ignore_slots` of `/config`.
fn ignore_rules(config: &DynamicConfig) -> Vec<IgnoreRule> {
    let Some(Value::Array(rules)) = config.extra.get("ignore_slots") else {
        return Vec::new();
    };
    rules
        .iter()
        .map(|r| IgnoreRule {
            name: text(r.get("name")),
            kind: text(r.get("type")),
            database: text(r.get("database")),
            plugin: text(r.get("plugin")),
        })
        .collect()
}

/// `member_slots_ttl` of `/config`: seconds, or a string with `s`, `min`, `h` or `d`.
fn member_slots_ttl(config: &DynamicConfig) -> Duration {
    match config.extra.get("member_slots_ttl") {
        Some(Value::Number(n)) => n
            .as_u64()
            .map_or(DEFAULT_MEMBER_SLOTS_TTL, Duration::from_secs),
        Some(Value::String(s)) => {
            let s = s.trim();
            let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: u64 = num.parse().unwrap_or(0);
            match unit.trim() {
                "" | "s" => Duration::from_secs(n),
                "min" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3_600)),
                "d" => Duration::from_secs(n.saturating_mul(86_400)),
                _ => DEFAULT_MEMBER_SLOTS_TTL,
            }
        }
        _ => DEFAULT_MEMBER_SLOTS_TTL,
    }
}

impl SlotKeeper {
    /// A keeper with no member seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The slots `me` keeps at `now` (ms), running as primary or not, in `cluster` under `config`.
    pub fn plan(
        &mut self,
        cluster: &Cluster,
        config: &DynamicConfig,
        me: &str,
        primary: bool,
        now: u64,
    ) -> SlotPlan {
        let use_slots = config.postgresql.use_slots;
        let mut plan = SlotPlan {
            use_slots,
            ignore: ignore_rules(config),
            ..SlotPlan::default()
        };
        if !use_slots {
            self.seen.clear();
            return plan;
        }
        let leader = cluster.leader.as_ref().map(|l| l.name.as_str());
        // Whom does `member` stream from: what the follower side of the state machine picks.
        let upstream_of =
            |m: &crate::Member| crate::topology::upstream_name(cluster, &m.name, &m.data.tags);
        if let Some(mine) = cluster.member(me) {
            if !primary && upstream_of(mine).is_some_and(|u| u != me) {
                plan.primary_slot_name = Some(slot_name(me));
            }
        } else if !primary && leader.is_some_and(|l| l != me) {
            plan.primary_slot_name = Some(slot_name(me));
        }
        if !primary && leader == Some(me) {
            // A standby leader streams from the remote primary through the slot named there.
            if let Ok(Some(sc)) = config.standby_cluster() {
                plan.primary_slot_name = sc.primary_slot_name;
            }
        }
        for m in &cluster.members {
            if m.name == me {
                continue;
            }
            // A `nostream` member streams from nobody: no member keeps a slot for it.
            let streams_from_me = !m.data.tags.nostream
                && match upstream_of(m) {
                    Some(u) => u == me,
                    None => primary && leader != Some(m.name.as_str()),
                };
            if streams_from_me {
                self.seen.insert(m.name.clone(), now);
            } else {
                self.seen.remove(&m.name);
            }
        }
        let ttl = member_slots_ttl(config);
        self.seen
            .retain(|_, at| crate::instant::between(*at, now) < ttl.max(Duration::from_millis(1)));
        plan.keep.extend(self.seen.keys().map(|n| slot_name(n)));
        let own = slot_name(me);
        for (name, logical) in permanent(config) {
            if logical || name == own {
                continue;
            }
            plan.keep.insert(name.clone());
            if !primary {
                plan.advance.insert(name);
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Leader, Member, MemberData, MemberState, Tags};

    fn member(name: &str, replicatefrom: Option<&str>) -> Member {
        Member::new(
            name,
            MemberData {
                conn_url: format!("postgres://{name}:5432/postgres"),
                state: MemberState::Running,
                tags: Tags {
                    replicatefrom: replicatefrom.map(str::to_string),
                    ..Tags::default()
                },
                ..MemberData::default()
            },
        )
    }

    fn cluster(leader: Option<&str>, members: Vec<Member>) -> Cluster {
        Cluster {
            leader: leader.map(|n| Leader {
                name: n.into(),
                version: 1,
            }),
            members,
            ..Cluster::default()
        }
    }

    #[test]
    fn patroni_slot_names() {
        assert_eq!(slot_name("node-1.example"), "node_1_example");
        assert_eq!(slot_name("Node_A"), "node_a");
        assert_eq!(slot_name("db@x"), "dbu0064x");
        assert_eq!(slot_name(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn the_leader_keeps_a_slot_per_member_streaming_from_it() {
        let c = cluster(
            Some("n1"),
            vec![
                member("n1", None),
                member("n2", None),
                member("n3", Some("n2")),
            ],
        );
        let mut k = SlotKeeper::new();
        let p = k.plan(&c, &DynamicConfig::default(), "n1", true, 0);
        assert_eq!(p.keep, BTreeSet::from(["n2".to_string()]));
        assert_eq!(p.primary_slot_name, None);
        // The cascading member's slot lives on its upstream.
        let p2 = SlotKeeper::new().plan(&c, &DynamicConfig::default(), "n2", false, 0);
        assert_eq!(p2.keep, BTreeSet::from(["n3".to_string()]));
        assert_eq!(p2.primary_slot_name.as_deref(), Some("n2"));
        assert!(p2.may_drop("n2"));
    }

    #[test]
    fn no_slot_anywhere_for_a_nostream_member() {
        let mut quiet = member("n3", Some("n2"));
        quiet.data.tags.nostream = true;
        let c = cluster(
            Some("n1"),
            vec![member("n1", None), member("n2", None), quiet],
        );
        let p = SlotKeeper::new().plan(&c, &DynamicConfig::default(), "n1", true, 0);
        assert_eq!(p.keep, BTreeSet::from(["n2".to_string()]));
        let p2 = SlotKeeper::new().plan(&c, &DynamicConfig::default(), "n2", false, 0);
        assert!(p2.keep.is_empty());
        let p3 = SlotKeeper::new().plan(&c, &DynamicConfig::default(), "n3", false, 0);
        assert_eq!(p3.primary_slot_name, None);
    }

    #[test]
    fn a_member_that_left_keeps_its_slot_for_member_slots_ttl() {
        let mut cfg = DynamicConfig::default();
        cfg.extra.insert("member_slots_ttl".into(), "10min".into());
        let mut k = SlotKeeper::new();
        let both = cluster(Some("n1"), vec![member("n1", None), member("n2", None)]);
        k.plan(&both, &cfg, "n1", true, 0);
        let alone = cluster(Some("n1"), vec![member("n1", None)]);
        assert!(k
            .plan(&alone, &cfg, "n1", true, 599_000)
            .keep
            .contains("n2"));
        assert!(!k
            .plan(&alone, &cfg, "n1", true, 600_000)
            .keep
            .contains("n2"));
    }

    #[test]
    fn permanent_and_ignored_slots() {
        let mut cfg = DynamicConfig::default();
        cfg.extra.insert(
            "permanent_slots".into(),
            serde_json::json!({"archiver": {"type": "physical"}, "cdc": {"type": "logical", "database": "db", "plugin": "pgoutput"}}),
        );
        cfg.extra.insert(
            "ignore_slots".into(),
            serde_json::json!([{"name": "manual"}]),
        );
        let c = cluster(Some("n1"), vec![member("n1", None), member("n2", None)]);
        let p = SlotKeeper::new().plan(&c, &cfg, "n1", true, 0);
        assert!(p.keep.contains("archiver") && !p.keep.contains("cdc"));
        assert!(p.advance.is_empty());
        assert!(!p.may_drop("manual"));
        assert!(p.may_drop("stale"));
        let r = SlotKeeper::new().plan(&c, &cfg, "n2", false, 0);
        assert_eq!(r.advance, BTreeSet::from(["archiver".to_string()]));
        assert_eq!(r.primary_slot_name.as_deref(), Some("n2"));
    }

    /// Every name Patroni reads the section under counts, the preferred one first.
    #[test]
    fn permanent_slots_under_their_other_names() {
        let c = cluster(Some("n1"), vec![member("n1", None)]);
        for key in ["permanent_replication_slots", "slots"] {
            let mut cfg = DynamicConfig::default();
            cfg.extra.insert(
                key.into(),
                serde_json::json!({"archiver": {"type": "physical"}}),
            );
            let p = SlotKeeper::new().plan(&c, &cfg, "n1", true, 0);
            assert!(p.keep.contains("archiver"), "{key}");
            assert!(cfg.unknown_keys().is_empty(), "{key}");
        }
        let mut cfg = DynamicConfig::default();
        cfg.extra
            .insert("permanent_slots".into(), serde_json::json!(["new"]));
        cfg.extra.insert(
            "permanent_replication_slots".into(),
            serde_json::json!(["old"]),
        );
        let p = SlotKeeper::new().plan(&c, &cfg, "n1", true, 0);
        assert!(p.keep.contains("new") && !p.keep.contains("old"));
    }

    #[test]
    fn nothing_without_use_slots() {
        let mut cfg = DynamicConfig::default();
        cfg.postgresql.use_slots = false;
        let c = cluster(Some("n1"), vec![member("n1", None), member("n2", None)]);
        let p = SlotKeeper::new().plan(&c, &cfg, "n2", false, 0);
        assert_eq!(p.primary_slot_name, None);
        assert!(p.keep.is_empty());
        assert!(!p.may_drop("n1"));
    }
}
