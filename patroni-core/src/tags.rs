//! Per-member tags that steer failover, replication and load balancing.

use serde::{Deserialize, Serialize};

/// A member's tags, as in Patroni's `tags:` section and the `tags` field of its member key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tags {
    /// Never promote this member.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nofailover: bool,
    /// Preference among equally advanced candidates; higher wins, 0 or less means never promote.
    /// Published only when set to something else than the default 1, as Patroni does.
    #[serde(skip_serializing_if = "is_default_priority")]
    pub failover_priority: i64,
    /// Never choose this member as a synchronous standby.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nosync: bool,
    /// Keep this member out of `/replica` load balancing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub noloadbalance: bool,
    /// Other members may take their initial copy from this one instead of the primary.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clonefrom: bool,
    /// Stream from this member instead of the primary (cascading replication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicatefrom: Option<String>,
    /// Never stream WAL: replay only what `restore_command` fetches from the archive.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nostream: bool,
    /// Operator-defined tags (e.g. `site`), which custom policies and `/replica?tag_x=` read.
    #[serde(flatten)]
    pub custom: serde_json::Map<String, serde_json::Value>,
}

impl Default for Tags {
    fn default() -> Self {
        Tags {
            nofailover: false,
            failover_priority: 1,
            nosync: false,
            noloadbalance: false,
            clonefrom: false,
            replicatefrom: None,
            nostream: false,
            custom: serde_json::Map::new(),
        }
    }
}

fn is_default_priority(p: &i64) -> bool {
    *p == 1
}

impl Tags {
    /// Whether the operator allowed this member to become primary (Patroni: priority <= 0 means nofailover).
    pub fn allows_failover(&self) -> bool {
        !self.nofailover && self.failover_priority > 0
    }

    /// A custom tag's value as text, for policies keyed on tags like `site`.
    pub fn custom_str(&self, key: &str) -> Option<String> {
        match self.custom.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_zero_means_nofailover() {
        assert!(Tags::default().allows_failover());
        assert!(!Tags {
            failover_priority: 0,
            ..Default::default()
        }
        .allows_failover());
        assert!(!Tags {
            nofailover: true,
            ..Default::default()
        }
        .allows_failover());
    }

    #[test]
    fn custom_tags_round_trip() {
        let t: Tags = serde_json::from_str(r#"{"nofailover":true,"site":"dc1","rack":3}"#).unwrap();
        assert!(t.nofailover);
        assert_eq!(t.custom_str("site").as_deref(), Some("dc1"));
        assert_eq!(t.custom_str("rack").as_deref(), Some("3"));
        let back: Tags = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
