//! Member verbs: `restart`, `reload`, `reinit` and `flush`, with Python's member selection,
//! prompts and per-member result lines.

use std::time::Duration;

use patroni_core::{Cluster, Member, MemberState};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{
    failed, members_leader_first, members_with_role, next_hour_example, parse_scheduled, timestamp,
    CtlError, Format, Reply, RoleFilter, Session,
};

/// Which members a verb applies to, and how to ask.
#[derive(Debug, Clone, Copy)]
pub struct Pick<'a> {
    /// The names given on the command line.
    pub names: &'a [String],
    /// Only members with this role.
    pub role: RoleFilter,
    /// No prompts.
    pub force: bool,
    /// The verb, as the prompts name it (`restart`, `reinitialize`).
    pub action: &'a str,
    /// Ask "Are you sure...?" once the members are chosen.
    pub ask_confirmation: bool,
}

/// Python's `get_members`: shows the cluster, selects the named members that have `role`
/// (all of them when none are named, except for `reinitialize`), asks which one when still
/// none, and asks for confirmation unless `force`.
pub fn select_members(
    s: &mut Session,
    cluster: &Cluster,
    name: &str,
    pick: Pick<'_>,
) -> Result<Vec<Member>, CtlError> {
    let Pick {
        names,
        role,
        force,
        action,
        ask_confirmation,
    } = pick;
    let with_role: Vec<&Member> = members_with_role(cluster, role);
    let candidates: Vec<String> = with_role.iter().map(|m| m.name.clone()).collect();
    if names.is_empty() && candidates.is_empty() {
        return Err(failed(format!("{name} cluster doesn't have any members")));
    }
    s.show_members(cluster, name, Format::Pretty);
    // A name that is no member at all is a mistake; Python drops it silently with the others
    // that lack the role.
    if let Some(unknown) = names.iter().find(|n| cluster.member(n).is_none()) {
        return Err(failed(format!("{unknown} is not a member of cluster")));
    }
    let mut chosen: Vec<String> = if !names.is_empty() {
        let kept: Vec<String> = names
            .iter()
            .filter(|n| candidates.contains(n))
            .cloned()
            .collect();
        if kept.is_empty() {
            return Err(failed(format!("No {} among provided members", role.name())));
        }
        kept
    } else if action != "reinitialize" {
        candidates.clone()
    } else {
        Vec::new()
    };
    if chosen.is_empty() && !force {
        let q = format!(
            "Which member do you want to {action} [{}]?",
            candidates.join(", ")
        );
        chosen = vec![s.term.prompt(&q, Some(""), "MEMBER_NAMES")?];
    }
    for n in &chosen {
        if !candidates.contains(n) {
            return Err(failed(format!("{n} is not a member of cluster")));
        }
    }
    let members: Vec<Member> = with_role
        .into_iter()
        .filter(|m| chosen.contains(&m.name))
        .cloned()
        .collect();
    if ask_confirmation {
        confirm_members(s, &members, force, action, None, false)?;
    }
    Ok(members)
}

/// Python's `confirm_members_action`.
fn confirm_members(
    s: &mut Session,
    members: &[Member],
    force: bool,
    action: &str,
    scheduled_at: Option<&str>,
    pending: bool,
) -> Result<(), CtlError> {
    if force {
        return Ok(());
    }
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    match scheduled_at {
        Some(at) => {
            let q = if pending {
                "The nodes needing a restart will be identified at the scheduled time, and might be different from the ones showing pending restart right now. Is this fine?".to_string()
            } else {
                format!(
                    "Are you sure you want to schedule {action} of members {} at {at}?",
                    names.join(", ")
                )
            };
            if !s.term.confirm(&q)? {
                return Err(failed(format!("Aborted scheduled {action}")));
            }
        }
        None => {
            let q = format!(
                "Are you sure you want to {action} members {}?",
                names.join(", ")
            );
            if !s.term.confirm(&q)? {
                return Err(failed(format!("Aborted {action}")));
            }
        }
    }
    Ok(())
}

/// Counts the members an action failed on, for the final error.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn result(self, action: &str) -> Result<(), CtlError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(failed(format!("{action} failed on {}", self.0.join(", "))))
        }
    }
}

/// `--timeout` as the REST API takes it: whole seconds (`60`, `60s`, `2min`, `1h`).
pub fn timeout_seconds(raw: &str) -> Result<u64, CtlError> {
    crate::scheduled::timeout_seconds(&Value::String(raw.into()))
        .and_then(|t| u64::try_from(t).ok())
        .ok_or_else(|| failed(format!("--timeout {raw:?} is not a duration")))
}

/// The options of `restart`.
#[derive(Debug, Clone, Default)]
pub struct RestartArgs {
    /// Which members.
    pub members: Vec<String>,
    /// Only members with this role.
    pub role: Option<RoleFilter>,
    /// One member, chosen at random among the selected.
    pub any: bool,
    /// When (ISO 8601 with a zone), or `now`.
    pub scheduled: Option<String>,
    /// Only when the running version is older.
    pub pg_version: Option<String>,
    /// Only members with a pending restart.
    pub pending: bool,
    /// How long the restart may take.
    pub timeout: Option<String>,
    /// No prompts.
    pub force: bool,
}

/// `restart CLUSTER [MEMBERS]...`.
pub async fn restart(s: &mut Session, name: &str, a: RestartArgs) -> Result<(), CtlError> {
    let (_, cluster) = s.load(name).await?;
    let role = a.role.unwrap_or(RoleFilter::Any);
    let mut members = select_members(
        s,
        &cluster,
        name,
        Pick {
            names: &a.members,
            role,
            force: a.force,
            action: "restart",
            ask_confirmation: false,
        },
    )?;
    let mut scheduled = a.scheduled.clone();
    if scheduled.is_none() && !a.force {
        let q = format!(
            "When should the restart take place (e.g. {}) ",
            next_hour_example()
        );
        scheduled = Some(s.term.prompt(&q, Some("now"), "--scheduled")?);
    }
    let scheduled_at = parse_scheduled(scheduled.as_deref())?;
    let mut content = Map::new();
    if a.pending {
        content.insert("restart_pending".into(), json!(true));
        if scheduled_at.is_none() {
            members.retain(|m| m.data.pending_restart);
        }
    }
    if a.any && members.len() > 1 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos() as usize;
        let pick = members.swap_remove(nanos % members.len());
        members = vec![pick];
    }
    let at_text = scheduled_at.map(super::listing::python_isoformat);
    confirm_members(
        s,
        &members,
        a.force,
        "restart",
        at_text.as_deref(),
        a.pending,
    )?;
    let mut version = a.pg_version.clone();
    if version.is_none() && !a.force {
        version = Some(s.term.prompt(
            "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ",
            Some(""),
            "--pg-version",
        )?);
    }
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        crate::scheduled::postgres_version_to_int(&v).map_err(failed)?;
        content.insert("postgres_version".into(), json!(v));
    }
    if let Some(at) = &at_text {
        if cluster.config.as_ref().is_some_and(|c| c.value.pause) {
            return Err(failed("Can't schedule restart in the paused state"));
        }
        content.insert("schedule".into(), json!(at));
    }
    let wait = match &a.timeout {
        Some(t) => {
            let secs = timeout_seconds(t)?;
            content.insert("timeout".into(), json!(secs));
            Duration::from_secs(secs + 30)
        }
        None => Duration::from_secs(300),
    };
    let body = Value::Object(content);
    let mut failures = Failures::default();
    for m in &members {
        if body.get("schedule").is_some()
            && a.force
            && m.data.extra.contains_key("scheduled_restart")
        {
            if let Ok(r) = s.api.call(m, Method::DELETE, "restart", None, wait).await {
                check_response(s, &r, &m.name, "flush scheduled restart", true);
            }
        }
        let r = match s
            .api
            .call(m, Method::POST, "restart", Some(&body), wait)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                s.term
                    .say(format!("Failed: restart for member {}, {e}", m.name));
                failures.0.push(m.name.clone());
                continue;
            }
        };
        match r.status {
            200 => s.term.say(format!("Success: restart on member {}", m.name)),
            202 => s
                .term
                .say(format!("Success: restart scheduled on member {}", m.name)),
            409 => {
                s.term.say(format!(
                    "Failed: another restart is already scheduled on member {}",
                    m.name
                ));
                failures.0.push(m.name.clone());
            }
            code => {
                s.term.say(format!(
                    "Failed: restart for member {}, status code={code}, ({})",
                    m.name, r.body
                ));
                failures.0.push(m.name.clone());
            }
        }
    }
    failures.result("restart")
}

/// Python's `check_response`: a `Failed:` line for a 4xx/5xx, else `Success:` unless silent.
fn check_response(s: &mut Session, r: &Reply, member: &str, action: &str, silent: bool) -> bool {
    if r.status >= 400 {
        s.term.say(format!(
            "Failed: {action} for member {member}, status code={}, ({})",
            r.status, r.body
        ));
        false
    } else {
        if !silent {
            s.term.say(format!("Success: {action} for member {member}"));
        }
        true
    }
}

/// `reload CLUSTER [MEMBERS]... [--role] [--force]`.
pub async fn reload(
    s: &mut Session,
    name: &str,
    names: &[String],
    role: Option<RoleFilter>,
    force: bool,
) -> Result<(), CtlError> {
    let (_, cluster) = s.load(name).await?;
    let members = select_members(
        s,
        &cluster,
        name,
        Pick {
            names,
            role: role.unwrap_or(RoleFilter::Any),
            force,
            action: "reload",
            ask_confirmation: true,
        },
    )?;
    let loop_wait = cluster
        .config
        .as_ref()
        .map_or(s.config.bootstrap_dcs().loop_wait, |c| c.value.loop_wait);
    let mut failures = Failures::default();
    for m in &members {
        match s
            .api
            .call(m, Method::POST, "reload", None, Duration::from_secs(30))
            .await
        {
            Ok(r) if r.status == 200 => s
                .term
                .say(format!("No changes to apply on member {}", m.name)),
            Ok(r) if r.status == 202 => s.term.say(format!(
                "Reload request received for member {} and will be processed within {loop_wait} seconds",
                m.name
            )),
            Ok(r) => {
                s.term.say(format!(
                    "Failed: reload for member {}, status code={}, ({})",
                    m.name, r.status, r.body
                ));
                failures.0.push(m.name.clone());
            }
            Err(e) => {
                s.term.say(format!("Failed: reload for member {}, {e}", m.name));
                failures.0.push(m.name.clone());
            }
        }
    }
    failures.result("reload")
}

/// `reinit CLUSTER [MEMBERS]... [--from-leader] [--wait] [--force]`.
pub async fn reinit(
    s: &mut Session,
    name: &str,
    names: &[String],
    force: bool,
    from_leader: bool,
    wait: bool,
) -> Result<(), CtlError> {
    let (_, cluster) = s.load(name).await?;
    let members = select_members(
        s,
        &cluster,
        name,
        Pick {
            names,
            role: RoleFilter::Replica,
            force,
            action: "reinitialize",
            ask_confirmation: true,
        },
    )?;
    let mut waiting: Vec<Member> = Vec::new();
    let mut failures = Failures::default();
    for m in &members {
        let mut body = json!({"force": force, "from_leader": from_leader});
        loop {
            let r = match s
                .api
                .call(
                    m,
                    Method::POST,
                    "reinitialize",
                    Some(&body),
                    Duration::from_secs(60),
                )
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    s.term
                        .say(format!("Failed: reinitialize for member {}, {e}", m.name));
                    failures.0.push(m.name.clone());
                    break;
                }
            };
            let started = check_response(s, &r, &m.name, "reinitialize", false);
            if !started
                && r.body.ends_with(" already in progress")
                && !force
                && s.term
                    .confirm("Do you want to cancel it and reinitialize anyway?")?
            {
                body["force"] = json!(true);
                continue;
            }
            if started && wait {
                waiting.push(m.clone());
            }
            if !started {
                failures.0.push(m.name.clone());
            }
            break;
        }
    }
    let mut shown: Vec<String> = Vec::new();
    while !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|m| m.name.clone()).collect();
        if names != shown {
            s.term.say(format!(
                "Waiting for reinitialize to complete on: {}",
                names.join(", ")
            ));
            shown = names;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut still = Vec::new();
        for m in waiting {
            let status = s.api.status(&m).await.ok();
            // Ours: the copy's progress, as the member's `/patroni` reports it.
            if let Some(c) = status.as_ref().and_then(|d| d.copy_progress) {
                let mib = |v: u64| v as f64 / 1048576.0;
                s.term.say(format!(
                    "{}: {:.1} MiB copied in {} s ({:.1} MiB/s)",
                    m.name,
                    mib(c.bytes),
                    c.seconds,
                    mib(c.bytes_per_second)
                ));
            }
            // No answer is no sign the copy is over (the member's API may be restarting).
            match status.map(|d| d.state) {
                None | Some(MemberState::CreatingReplica | MemberState::Rebuilding) => {
                    still.push(m)
                }
                Some(_) => s
                    .term
                    .say(format!("Reinitialize is completed on: {}", m.name)),
            }
        }
        waiting = still;
    }
    failures.result("reinitialize")
}

/// `flush CLUSTER [MEMBERS]... restart|switchover [--role] [--force]`: discards scheduled events.
pub async fn flush(
    s: &mut Session,
    name: &str,
    names: &[String],
    target: &str,
    role: Option<RoleFilter>,
    force: bool,
) -> Result<(), CtlError> {
    let (dcs, cluster) = s.load(name).await?;
    match target {
        "restart" => {
            let members = select_members(
                s,
                &cluster,
                name,
                Pick {
                    names,
                    role: role.unwrap_or(RoleFilter::Any),
                    force,
                    action: "flush",
                    ask_confirmation: true,
                },
            )?;
            let mut failures = Failures::default();
            for m in &members {
                if m.data.extra.contains_key("scheduled_restart") {
                    match s
                        .api
                        .call(m, Method::DELETE, "restart", None, Duration::from_secs(30))
                        .await
                    {
                        Ok(r) => {
                            if !check_response(s, &r, &m.name, "flush scheduled restart", false) {
                                failures.0.push(m.name.clone());
                            }
                        }
                        Err(e) => {
                            s.term.say(format!(
                                "Failed: flush scheduled restart for member {}, {e}",
                                m.name
                            ));
                            failures.0.push(m.name.clone());
                        }
                    }
                } else {
                    s.term
                        .say(format!("No scheduled restart for member {}", m.name));
                }
            }
            failures.result("flush")
        }
        "switchover" => {
            let Some(f) = cluster
                .failover
                .as_ref()
                .filter(|f| f.value.scheduled_at.is_some())
            else {
                s.term.say("No pending scheduled switchover");
                return Ok(());
            };
            for m in members_leader_first(&cluster) {
                match s
                    .api
                    .call(
                        m,
                        Method::DELETE,
                        "switchover",
                        None,
                        Duration::from_secs(30),
                    )
                    .await
                {
                    Ok(r) if r.status == 200 => {
                        s.term.say(format!("Success: {}", r.body));
                        return Ok(());
                    }
                    Ok(r) if r.status == 404 => {
                        s.term.say(format!("Failed: {}", r.body));
                        return Err(failed(format!("flush switchover: {}", r.body)));
                    }
                    Ok(r) => s.term.say(format!(
                        "Failed: member={}, status_code={}, ({})",
                        m.name, r.status, r.body
                    )),
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
            s.term.say(format!(
                "{} Could not find any accessible member of cluster {name}",
                timestamp(6)
            ));
            use patroni_core::Dcs;
            if dcs.clear_failover(f.version).await? {
                Ok(())
            } else {
                Err(failed(
                    "the scheduled switchover changed concurrently; nothing deleted",
                ))
            }
        }
        other => Err(failed(format!(
            "invalid target {other:?}: expected restart or switchover"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(timeout_seconds("60").unwrap(), 60);
        assert_eq!(timeout_seconds("2min").unwrap(), 120);
        assert_eq!(timeout_seconds("1500ms").unwrap(), 2);
        assert!(timeout_seconds("soon").is_err());
    }
}
