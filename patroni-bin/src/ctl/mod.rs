//! `patronictl`: Python Patroni 4's operator tool over patroni-rs clusters, with its commands,
//! arguments, prompts and output formats, so runbooks and scripts keep working.
//!
//! Reads come straight from the DCS; whatever a member must carry out goes to its REST API, so
//! the same checks apply as for any other client. Prompts are asked only on a terminal.

pub mod admin;
pub(crate) mod api;
pub(crate) mod diff;
pub mod dynconf;
pub mod info;
pub mod listing;
pub(crate) mod output;
pub(crate) mod pretty;
pub mod query;
pub mod remove;
pub mod switchover;
pub(crate) mod term;
pub(crate) mod yaml;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use patroni_core::{Cluster, Dcs, DcsError, Member, Timestamp};
use patroni_etcd::{EtcdDcs, EtcdIdentity};

use crate::config::Config;
pub use api::{Api, Reply};
pub use output::Format;
pub use term::Term;

/// Why a command failed, as one line for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// The command was refused or failed; the text says why (Python's wording where it has one).
    #[error("{0}")]
    Failed(String),
    /// The DCS could not be read or written.
    #[error("DCS: {0}")]
    Dcs(#[from] DcsError),
    /// A member's REST API did not answer.
    #[error("member {member} is not accessible: {message}")]
    Unreachable {
        /// The member asked.
        member: String,
        /// What went wrong.
        message: String,
    },
}

/// Shorthand for a refusal with Python's text.
pub fn failed(text: impl Into<String>) -> CtlError {
    CtlError::Failed(text.into())
}

/// A role filter, as Python 4 names them (`-r/--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleFilter {
    /// The lock holder.
    Leader,
    /// The lock holder when it is a primary (not a standby leader).
    Primary,
    /// The lock holder of a standby cluster.
    StandbyLeader,
    /// Everybody but the lock holder.
    Replica,
    /// Same as `replica`.
    Standby,
    /// Everybody.
    Any,
}

impl RoleFilter {
    /// Parses Python's choices.
    pub fn parse(s: &str) -> Option<RoleFilter> {
        Some(match s {
            "leader" => RoleFilter::Leader,
            "primary" | "master" => RoleFilter::Primary,
            "standby-leader" => RoleFilter::StandbyLeader,
            "replica" => RoleFilter::Replica,
            "standby" => RoleFilter::Standby,
            "any" => RoleFilter::Any,
            _ => return None,
        })
    }

    /// Python's name for it.
    pub fn name(self) -> &'static str {
        match self {
            RoleFilter::Leader => "leader",
            RoleFilter::Primary => "primary",
            RoleFilter::StandbyLeader => "standby-leader",
            RoleFilter::Replica => "replica",
            RoleFilter::Standby => "standby",
            RoleFilter::Any => "any",
        }
    }
}

/// Python's `get_all_members`: the members a role filter selects, in the cluster's order.
pub fn members_with_role(cluster: &Cluster, role: RoleFilter) -> Vec<&Member> {
    let leader = cluster.leader_member();
    match role {
        RoleFilter::Leader => leader.into_iter().collect(),
        RoleFilter::Primary => leader
            .filter(|m| m.data.role != patroni_core::MemberRole::StandbyLeader)
            .into_iter()
            .collect(),
        RoleFilter::StandbyLeader => leader
            .filter(|m| m.data.role != patroni_core::MemberRole::Primary)
            .into_iter()
            .collect(),
        RoleFilter::Replica | RoleFilter::Standby => cluster
            .members
            .iter()
            .filter(|m| !cluster.is_leader(&m.name))
            .collect(),
        RoleFilter::Any => cluster.members.iter().collect(),
    }
}

/// Python's `get_all_members_leader_first`: members with an API, the leader first.
pub fn members_leader_first(cluster: &Cluster) -> Vec<&Member> {
    let leader = cluster
        .leader_member()
        .filter(|m| !m.data.api_url.is_empty());
    leader
        .into_iter()
        .chain(cluster.members.iter().filter(|m| {
            !m.data.api_url.is_empty() && Some(m.name.as_str()) != leader.map(|l| l.name.as_str())
        }))
        .collect()
}

/// Python's `timestamp(precision)`: `YYYY-MM-DD HH:MM:SS` and `precision - 1` digits of the
/// second's fraction (none for 0). Printed in UTC.
pub fn timestamp(precision: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let t = Timestamp(now.as_millis() as i64).to_string();
    let base = t.get(..19).unwrap_or(&t).replacen('T', " ", 1);
    if precision == 0 {
        return base;
    }
    let micros = format!("{:06}", now.subsec_micros());
    format!("{base}.{}", &micros[..precision.saturating_sub(1).min(6)])
}

/// A moment an hour from now, as the prompts' example (`2026-11-26T11:00+00:00`).
pub fn next_hour_example() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_secs(3600);
    let t = Timestamp(now.as_millis() as i64).to_string();
    format!("{}+00:00", t.get(..16).unwrap_or(&t))
}

/// Python's `parse_scheduled`: `None` for now; otherwise an ISO 8601 time with a zone (seconds
/// may be left out).
pub fn parse_scheduled(raw: Option<&str>) -> Result<Option<Timestamp>, CtlError> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(None);
    };
    if raw.is_empty() || raw == "now" {
        return Ok(None);
    }
    let bad = || {
        failed(format!(
            "Unable to parse scheduled timestamp ({raw}). It should be in an unambiguous format (e.g. ISO 8601) with a time zone"
        ))
    };
    if let Ok(t) = raw.parse::<Timestamp>() {
        return Ok(Some(t));
    }
    // `2026-11-26T10:00+02:00`: no seconds.
    if raw.len() > 16 && raw.as_bytes().get(13) == Some(&b':') {
        let with_secs = format!("{}:00{}", &raw[..16], &raw[16..]);
        if let Ok(t) = with_secs.parse::<Timestamp>() {
            return Ok(Some(t));
        }
    }
    Err(bad())
}

pub use crate::config::CtlSection;

/// One invocation: the configuration, the terminal, the API client and a DCS per cluster.
pub struct Session {
    /// The configuration file's settings with `--dcs-url` applied.
    pub config: Config,
    /// Where output goes and answers come from.
    pub term: Term,
    /// The members' APIs.
    pub api: Api,
    dcs: HashMap<String, Arc<EtcdDcs>>,
}

impl Session {
    /// A session over `config`, authenticating to the APIs as `ctl` says (else as the agent's API),
    /// over HTTPS with `ctl`'s certificates (else `restapi`'s).
    pub fn new(config: Config, ctl: &CtlSection, term: Term) -> Result<Session, CtlError> {
        let auth = ctl
            .authentication
            .clone()
            .or_else(|| config.restapi.authentication.clone());
        let http = crate::rest::tls::client(&config.restapi, ctl, ctl.insecure)
            .map_err(|e| failed(e.to_string()))?;
        Ok(Session {
            config,
            term,
            api: Api::new(auth, http),
            dcs: HashMap::new(),
        })
    }

    /// The cluster named on the command line, else the file's `scope`.
    pub fn cluster_name(&self, given: Option<&str>) -> Result<String, CtlError> {
        match given {
            Some(n) if !n.is_empty() => Ok(n.to_string()),
            _ if !self.config.scope.is_empty() => Ok(self.config.scope.clone()),
            _ => Err(failed(
                "no cluster name: give CLUSTER_NAME or a configuration file (-c) with a scope",
            )),
        }
    }

    /// The DCS of cluster `name` (one connection per cluster, kept for the session).
    pub fn dcs(&mut self, name: &str) -> Result<Arc<EtcdDcs>, CtlError> {
        if let Some(d) = self.dcs.get(name) {
            return Ok(d.clone());
        }
        self.config.etcd3.endpoints().map_err(|_| {
            failed("Can not find suitable configuration of distributed configuration store: give -d etcd3://host:port or a configuration file (-c) with an etcd3 section")
        })?;
        let timing = self.config.bootstrap_dcs();
        let mut id = EtcdIdentity::new(name.to_string(), "patronictl");
        id.namespace = self.config.namespace.clone();
        id.ttl = timing.ttl_duration();
        id.retry_timeout = timing.retry_timeout_duration().max(Duration::from_secs(1));
        id.loop_wait = timing.loop_wait_duration();
        let d = Arc::new(EtcdDcs::new(&self.config.etcd3, id).map_err(|e| failed(e.to_string()))?);
        self.dcs.insert(name.to_string(), d.clone());
        Ok(d)
    }

    /// Reads cluster `name` from the DCS.
    pub async fn load(&mut self, name: &str) -> Result<(Arc<EtcdDcs>, Cluster), CtlError> {
        let d = self.dcs(name)?;
        let c = d.load().await?;
        Ok((d, c))
    }

    /// Prints the member table of `cluster` (Python's `output_members`).
    pub fn show_members(&mut self, cluster: &Cluster, name: &str, fmt: Format) {
        let l = listing::listing(cluster, name, false, fmt);
        let text = listing::render(&l, fmt);
        self.term.write(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(parse_scheduled(None).unwrap(), None);
        assert_eq!(parse_scheduled(Some("now")).unwrap(), None);
        let t = parse_scheduled(Some("2026-11-26T10:00+02:00"))
            .unwrap()
            .unwrap();
        assert_eq!(t, "2026-11-26T08:00:00Z".parse().unwrap());
        let e = parse_scheduled(Some("2026-11-26T10:00")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Unable to parse scheduled timestamp (2026-11-26T10:00)"));
        assert_eq!(timestamp(0).len(), 19);
        assert_eq!(timestamp(6).len(), 25);
    }
}
