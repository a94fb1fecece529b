//! Read-only commands: `list`, `topology`, `history`, `show-config` and `version`.

use std::time::Duration;

use serde_json::json;

use super::listing::{listing, render};
use super::output::{Format, Rows};
use super::{failed, timestamp, yaml, CtlError, RoleFilter, Session};
use crate::status::ServerVersion;

/// How often `list` redraws: `-W` every 2 seconds, `-w N` every N.
pub fn watch_interval(w: bool, watch: Option<f64>) -> Option<Duration> {
    match (w, watch) {
        (_, Some(s)) if s > 0.0 => Some(Duration::from_secs_f64(s)),
        (true, _) => Some(Duration::from_secs(2)),
        _ => None,
    }
}

/// `list [CLUSTER_NAMES]... [-e] [-t] [-f FMT] [-W | -w SECONDS]` (and `topology`).
pub async fn list(
    s: &mut Session,
    names: &[String],
    extended: bool,
    ts: bool,
    fmt: Format,
    every: Option<Duration>,
) -> Result<(), CtlError> {
    let names: Vec<String> = if names.is_empty() {
        if s.config.scope.is_empty() {
            return Err(failed("Listing members: No cluster names were provided"));
        }
        vec![s.config.scope.clone()]
    } else {
        names.to_vec()
    };
    loop {
        if every.is_some() {
            s.term.clear();
        }
        if ts {
            s.term.say(timestamp(0));
        }
        for name in &names {
            let (_, cluster) = s.load(name).await?;
            let l = listing(&cluster, name, extended, fmt);
            let text = render(&l, fmt);
            s.term.write(&text);
        }
        match every {
            Some(d) => tokio::time::sleep(d).await,
            None => return Ok(()),
        }
    }
}

/// `history [CLUSTER] [-f FMT]`: one row per promotion.
pub async fn history(s: &mut Session, name: &str, fmt: Format) -> Result<(), CtlError> {
    let (_, cluster) = s.load(name).await?;
    let rows = cluster
        .history
        .iter()
        .map(|h| {
            vec![
                json!(h.timeline),
                json!(h.lsn.0),
                json!(h.reason),
                h.timestamp.map_or(json!(""), |t| json!(t.to_string())),
                json!(h.new_leader.clone().unwrap_or_default()),
            ]
        })
        .collect();
    let r = Rows {
        columns: Some(
            ["TL", "LSN", "Reason", "Timestamp", "New Leader"]
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
        rows,
        right: vec!["TL", "LSN"],
        title: String::new(),
    };
    let text = r.render(fmt, "\t");
    s.term.write(&text);
    Ok(())
}

/// `show-config [CLUSTER]`: the dynamic configuration as YAML that reads back to the same values.
pub async fn show_config(s: &mut Session, name: &str) -> Result<(), CtlError> {
    let (_, cluster) = s.load(name).await?;
    if let Some(c) = cluster.config {
        let doc = serde_json::to_value(&c.value).map_err(|e| failed(e.to_string()))?;
        s.term.say(yaml::dump(&doc));
    }
    Ok(())
}

/// Python's `format_pg_version`: `150004` → `15.4`, `90624` → `9.6.24`.
pub fn format_pg_version(v: u64) -> String {
    if v < 100_000 {
        format!("{}.{}.{}", v / 10_000, v / 100 % 100, v % 100)
    } else {
        format!("{}.{}", v / 10_000, v % 100)
    }
}

/// `version [CLUSTER [MEMBERS]...]`: this tool's version, then each member's.
pub async fn version(
    s: &mut Session,
    name: Option<&str>,
    members: &[String],
) -> Result<(), CtlError> {
    // The Patroni version whose behaviour this reproduces (what the agents' APIs report), then ours.
    s.term.say(format!(
        "patronictl version {} (patroni-rs {})",
        crate::status::PATRONI_API_VERSION,
        env!("CARGO_PKG_VERSION")
    ));
    let Some(name) = name else {
        return Ok(());
    };
    s.term.say("");
    let (_, cluster) = s.load(name).await?;
    for m in super::members_with_role(&cluster, RoleFilter::Any) {
        if m.data.api_url.is_empty() || !(members.is_empty() || members.contains(&m.name)) {
            continue;
        }
        match s.api.status(m).await {
            Ok(status) => {
                let v = match status.patroni.version.as_str() {
                    "" => "None",
                    v => v,
                };
                let pg = match status.server_version {
                    Some(ServerVersion::Number(n)) => {
                        format!(" PostgreSQL {}", format_pg_version(n))
                    }
                    _ => String::new(),
                };
                s.term.say(format!("{}: Patroni {v}{pg}", m.name));
            }
            Err(e) => s
                .term
                .say(format!("{}: failed to get version: {e}", m.name)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_intervals() {
        assert_eq!(format_pg_version(150004), "15.4");
        assert_eq!(format_pg_version(90624), "9.6.24");
        assert_eq!(watch_interval(true, None), Some(Duration::from_secs(2)));
        assert_eq!(
            watch_interval(false, Some(0.5)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(watch_interval(false, None), None);
    }
}
