//! `patronictl`: operator commands over the DCS and the members' REST APIs.
//!
//! Reads come straight from the DCS; actions that a member must carry out go to its REST API,
//! so the same safety checks apply as for any other client.

use std::sync::Arc;
use std::time::Duration;

use patroni_core::{Cluster, Dcs, DynamicConfig, FailoverRequest, Timestamp};
use serde_json::{json, Value};

use crate::config::Credentials;
use crate::members::{cluster_json, rows, MemberRow};
use crate::rest::config::deep_merge;

/// Why a command failed, with what the operator should know.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The DCS could not be read or written.
    #[error("DCS: {0}")]
    Dcs(#[from] patroni_core::DcsError),
    /// The cluster state forbids the command.
    #[error("{0}")]
    Refused(String),
    /// A member's REST API answered with an error or not at all.
    #[error("{member}: {message}")]
    Api {
        /// The member asked.
        member: String,
        /// What went wrong.
        message: String,
    },
}

/// Output format of `list` and `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A bordered table.
    #[default]
    Pretty,
    /// JSON.
    Json,
}

/// A connection to one cluster: its DCS and the members' APIs.
pub struct Ctl {
    dcs: Arc<dyn Dcs>,
    scope: String,
    auth: Option<Credentials>,
    http: reqwest::Client,
}

/// Draws rows as a bordered table with a title in the top border.
pub fn table(title: &str, header: &[&str], body: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in body {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let sep: String = widths
        .iter()
        .map(|w| "-".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("+");
    let top = {
        let t = format!("+ {title} ");
        let full = format!("+{sep}+");
        if t.len() < full.len() {
            format!("{t}{}", &full[t.len()..])
        } else {
            t
        }
    };
    let line = |cells: Vec<String>| {
        let inner: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!(" {c:<w$} ", w = widths[i]))
            .collect();
        format!("|{}|", inner.join("|"))
    };
    let mut out = vec![
        top,
        line(header.iter().map(|h| h.to_string()).collect()),
        format!("+{sep}+"),
    ];
    for row in body {
        out.push(line(row.clone()));
    }
    out.push(format!("+{sep}+"));
    out.join("\n")
}

/// The REST base of a member from its `api_url` (`http://h:8008/patroni` → `http://h:8008`).
pub fn api_base(api_url: &str) -> String {
    api_url
        .trim_end_matches('/')
        .trim_end_matches("/patroni")
        .to_string()
}

/// Sets a dotted key (`postgresql.parameters.work_mem`) to a YAML-typed value; `null` deletes.
pub fn set_dotted(doc: &mut Value, key: &str, raw: &str) -> Result<(), String> {
    let value: Value = serde_yaml::from_str::<serde_yaml::Value>(raw)
        .map_err(|e| format!("{key}: {e}"))
        .and_then(|v| serde_json::to_value(v).map_err(|e| format!("{key}: {e}")))?;
    let mut patch = value;
    for part in key.split('.').rev() {
        if part.is_empty() {
            return Err(format!("{key:?} is not a dotted key"));
        }
        patch = json!({ part: patch });
    }
    deep_merge(doc, &patch);
    Ok(())
}

impl Ctl {
    /// A controller over `dcs` for cluster `scope`; `auth` is the REST API's basic auth.
    pub fn new(dcs: Arc<dyn Dcs>, scope: impl Into<String>, auth: Option<Credentials>) -> Self {
        Ctl {
            dcs,
            scope: scope.into(),
            auth,
            http: reqwest::Client::new(),
        }
    }

    async fn load(&self) -> Result<Cluster, CtlError> {
        Ok(self.dcs.load().await?)
    }

    /// `list`: members with role, state, timeline and lag.
    pub async fn list(&self, format: Format) -> Result<String, CtlError> {
        let c = self.load().await?;
        if format == Format::Json {
            return Ok(serde_json::to_string_pretty(&rows(&c)).unwrap_or_default());
        }
        let body: Vec<Vec<String>> = rows(&c).iter().map(row_cells).collect();
        let title = match &c.initialize {
            Some(id) if !id.is_empty() => format!("Cluster: {} ({id})", self.scope),
            _ => format!("Cluster: {}", self.scope),
        };
        let mut out = table(
            &title,
            &["Member", "Host", "Role", "State", "TL", "Lag in MB"],
            &body,
        );
        if c.config.as_ref().is_some_and(|c| c.value.pause) {
            out.push_str("\n Maintenance mode: on");
        }
        Ok(out)
    }

    /// `topology`: like `list`, replicas indented under the leader.
    pub async fn topology(&self) -> Result<String, CtlError> {
        let c = self.load().await?;
        let body: Vec<Vec<String>> = rows(&c)
            .iter()
            .map(|r| {
                let mut cells = row_cells(r);
                if r.role != "leader" && c.leader.is_some() {
                    cells[0] = format!("+ {}", cells[0]);
                }
                cells
            })
            .collect();
        Ok(table(
            &format!("Cluster: {}", self.scope),
            &["Member", "Host", "Role", "State", "TL", "Lag in MB"],
            &body,
        ))
    }

    /// `history`: one row per promotion.
    pub async fn history(&self, format: Format) -> Result<String, CtlError> {
        let c = self.load().await?;
        if format == Format::Json {
            return Ok(serde_json::to_string_pretty(&c.history).unwrap_or_default());
        }
        let body: Vec<Vec<String>> = c
            .history
            .iter()
            .map(|h| {
                vec![
                    h.timeline.to_string(),
                    h.lsn.0.to_string(),
                    h.reason.clone(),
                    h.timestamp.map(|t| t.to_string()).unwrap_or_default(),
                    h.new_leader.clone().unwrap_or_default(),
                ]
            })
            .collect();
        Ok(table(
            &format!("Cluster: {}", self.scope),
            &["TL", "LSN", "Reason", "Timestamp", "New Leader"],
            &body,
        ))
    }

    /// `show-config`: the dynamic configuration as YAML.
    pub async fn show_config(&self) -> Result<String, CtlError> {
        let c = self.load().await?;
        let cfg = c
            .config
            .ok_or_else(|| CtlError::Refused("the cluster has no /config key yet".into()))?;
        Ok(serde_yaml::to_string(&cfg.value).unwrap_or_default())
    }

    /// `edit-config -s k=v`: applies the settings with compare-and-swap, refusing invalid timings.
    pub async fn edit_config(&self, sets: &[String]) -> Result<DynamicConfig, CtlError> {
        let c = self.load().await?;
        let (mut doc, version) = match &c.config {
            Some(v) => (
                serde_json::to_value(&v.value).unwrap_or(Value::Null),
                Some(v.version),
            ),
            None => (
                serde_json::to_value(DynamicConfig::default()).unwrap_or(Value::Null),
                None,
            ),
        };
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| CtlError::Refused(format!("{s:?}: expected key=value")))?;
            set_dotted(&mut doc, k.trim(), v.trim()).map_err(CtlError::Refused)?;
        }
        let new: DynamicConfig = serde_json::from_value(doc)
            .map_err(|e| CtlError::Refused(format!("invalid configuration: {e}")))?;
        // Stored as written, as Patroni does: every agent adjusts a broken timing on read.
        for w in new.adjusted().1 {
            tracing::warn!("the agents will adjust it: {w}");
        }
        if !self.dcs.write_config(&new, version).await? {
            return Err(CtlError::Refused(
                "the configuration changed while editing; nothing written, try again".into(),
            ));
        }
        Ok(new)
    }

    /// `pause` / `resume`: maintenance mode through the DCS with compare-and-swap.
    pub async fn set_pause(&self, pause: bool) -> Result<(), CtlError> {
        let c = self.load().await?;
        let Some(cfg) = c.config else {
            return Err(CtlError::Refused(
                "the cluster has no /config key yet".into(),
            ));
        };
        if cfg.value.pause == pause {
            return Err(CtlError::Refused(format!(
                "Cluster is {} paused",
                if pause { "already" } else { "not" }
            )));
        }
        let mut new = cfg.value.clone();
        new.pause = pause;
        if !self.dcs.write_config(&new, Some(cfg.version)).await? {
            return Err(CtlError::Refused(
                "the configuration changed concurrently; try again".into(),
            ));
        }
        Ok(())
    }

    fn member_api(&self, c: &Cluster, name: &str) -> Result<String, CtlError> {
        let m = c
            .member(name)
            .ok_or_else(|| CtlError::Refused(format!("{name} is not a member of the cluster")))?;
        Ok(api_base(&m.data.api_url))
    }

    async fn call(
        &self,
        member: &str,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
        wait: Duration,
    ) -> Result<String, CtlError> {
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .timeout(wait)
            .json(&body);
        if let Some(a) = &self.auth {
            req = req.basic_auth(&a.username, Some(&a.password));
        }
        let api = |message: String| CtlError::Api {
            member: member.to_string(),
            message,
        };
        let resp = req.send().await.map_err(|e| api(e.to_string()))?;
        let code = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if code.is_success() {
            Ok(text)
        } else {
            Err(api(format!("{code}: {text}")))
        }
    }

    /// `switchover`: asks the leader's API; falls back to writing `/failover` when it is unreachable.
    pub async fn switchover(
        &self,
        leader: Option<&str>,
        candidate: Option<&str>,
        scheduled: Option<&str>,
    ) -> Result<String, CtlError> {
        let c = self.load().await?;
        let current = c
            .leader
            .as_ref()
            .map(|l| l.name.clone())
            .ok_or_else(|| CtlError::Refused("This cluster has no leader".into()))?;
        let leader = leader.unwrap_or(&current).to_string();
        if leader != current {
            return Err(CtlError::Refused(format!(
                "Member {leader} is not the leader of cluster {}",
                self.scope
            )));
        }
        let scheduled_at = match scheduled {
            None | Some("now") => None,
            Some(s) => Some(s.to_string()),
        };
        let body = json!({"leader": leader, "candidate": candidate, "scheduled_at": scheduled_at});
        let base = self.member_api(&c, &leader)?;
        match self
            .call(
                &leader,
                &base,
                reqwest::Method::POST,
                "/switchover",
                body,
                Duration::from_secs(60),
            )
            .await
        {
            Ok(t) => Ok(t),
            Err(CtlError::Api { message, .. }) if message.contains("error sending request") => {
                let req = FailoverRequest {
                    leader: Some(leader),
                    candidate: candidate.map(String::from),
                    scheduled_at: match scheduled_at {
                        Some(s) => Some(
                            s.parse::<Timestamp>()
                                .map_err(|e| CtlError::Refused(e.to_string()))?,
                        ),
                        None => None,
                    },
                };
                let version = c.failover.as_ref().map(|f| f.version);
                if self.dcs.set_failover(&req, version).await? {
                    Ok(
                        "the leader's API did not answer; switchover request written to the DCS"
                            .into(),
                    )
                } else {
                    Err(CtlError::Refused(
                        "another failover request was written concurrently".into(),
                    ))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `failover --candidate`: promote a named member, through the candidate's API.
    pub async fn failover(&self, candidate: &str) -> Result<String, CtlError> {
        let c = self.load().await?;
        let base = self.member_api(&c, candidate)?;
        self.call(
            candidate,
            &base,
            reqwest::Method::POST,
            "/failover",
            json!({"candidate": candidate}),
            Duration::from_secs(60),
        )
        .await
    }

    /// `restart`, `reinit`, `reload` on named members (all members when none are named).
    pub async fn member_verb(
        &self,
        verb: &str,
        members: &[String],
        force: bool,
    ) -> Result<Vec<String>, CtlError> {
        let c = self.load().await?;
        let names: Vec<String> = if members.is_empty() {
            c.members.iter().map(|m| m.name.clone()).collect()
        } else {
            members.to_vec()
        };
        let (path, body) = match verb {
            "restart" => ("/restart", json!({})),
            "reinit" => ("/reinitialize", json!({"force": force})),
            "reload" => ("/reload", json!({})),
            other => return Err(CtlError::Refused(format!("unknown verb {other}"))),
        };
        let mut out = Vec::new();
        for name in names {
            let base = self.member_api(&c, &name)?;
            let r = self
                .call(
                    &name,
                    &base,
                    reqwest::Method::POST,
                    path,
                    body.clone(),
                    Duration::from_secs(120),
                )
                .await?;
            out.push(format!("{name}: {r}"));
        }
        Ok(out)
    }

    /// `version`: this tool's version and each member's agent and database versions.
    pub async fn versions(&self) -> Result<Vec<String>, CtlError> {
        let c = self.load().await?;
        let mut out = vec![format!("patronictl version {}", env!("CARGO_PKG_VERSION"))];
        for m in &c.members {
            let base = api_base(&m.data.api_url);
            let doc: Option<Value> = async {
                self.http
                    .get(format!("{base}/patroni"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()
            }
            .await;
            match doc {
                Some(d) => out.push(format!(
                    "{}: patroni {} on {}",
                    m.name,
                    d["patroni"]["version"].as_str().unwrap_or("?"),
                    d.get("server_version")
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "?".into())
                )),
                None => out.push(format!("{}: no answer", m.name)),
            }
        }
        Ok(out)
    }

    /// The `GET /cluster` document, read from the DCS.
    pub async fn cluster_json(&self) -> Result<Value, CtlError> {
        Ok(cluster_json(&self.scope, &self.load().await?))
    }
}

fn row_cells(r: &MemberRow) -> Vec<String> {
    vec![
        r.name.clone(),
        format!("{}:{}", r.host, r.port),
        r.role.clone(),
        r.state.clone(),
        r.timeline.map(|t| t.to_string()).unwrap_or_default(),
        r.lag
            .map(|l| format!("{}", l / (1 << 20)))
            .unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            "Cluster: demo",
            &["Member", "Role"],
            &[
                vec!["node1".into(), "leader".into()],
                vec!["n2".into(), "replica".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("+ Cluster: demo "));
        assert_eq!(lines[1], "| Member | Role    |");
        assert_eq!(lines[3], "| node1  | leader  |");
        assert!(lines.iter().skip(1).all(|l| l.len() == lines[1].len()));
    }

    #[test]
    fn dotted_settings_are_typed() {
        let mut doc = json!({"ttl": 30, "postgresql": {"parameters": {"a": 1}}});
        set_dotted(&mut doc, "ttl", "20").unwrap();
        set_dotted(&mut doc, "postgresql.parameters.work_mem", "8MB").unwrap();
        set_dotted(&mut doc, "pause", "true").unwrap();
        set_dotted(&mut doc, "postgresql.parameters.a", "null").unwrap();
        assert_eq!(
            doc,
            json!({"ttl": 20, "pause": true, "postgresql": {"parameters": {"work_mem": "8MB"}}})
        );
        assert!(set_dotted(&mut doc, "a..b", "1").is_err());
        assert_eq!(
            api_base("http://127.0.0.1:8008/patroni"),
            "http://127.0.0.1:8008"
        );
    }
}
