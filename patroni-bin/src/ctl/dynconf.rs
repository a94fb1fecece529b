//! The dynamic configuration: `edit-config`, `pause` and `resume`.

use std::time::{Duration, Instant};

use patroni_core::{Dcs, DynamicConfig};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{diff, failed, members_leader_first, yaml, CtlError, Session};

/// A `-s` value as PyYAML's `safe_load` reads it (YAML 1.1: `on` is true, `0x1F` is 31, `~` is
/// null); collections and quoted text go through the YAML parser.
pub fn load_value(raw: &str) -> Result<Value, CtlError> {
    let t = raw.trim();
    let complex = t.starts_with(['{', '[', '\'', '"', '|', '>', '&', '*', '!']) || t.contains('\n');
    if complex {
        let v: yaml_serde::Value =
            yaml_serde::from_str(t).map_err(|e| failed(format!("{raw}: {e}")))?;
        return serde_json::to_value(v).map_err(|e| failed(format!("{raw}: {e}")));
    }
    Ok(scalar_11(t))
}

fn parse_int(digits: &str, radix: u32) -> Option<i64> {
    i64::from_str_radix(&digits.replace('_', ""), radix).ok()
}

/// A plain scalar with YAML 1.1's implicit types.
fn scalar_11(t: &str) -> Value {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return json!(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return json!(false)
        }
        _ => {}
    }
    let probe = Value::String(t.to_string());
    let as_yaml = yaml::dump(&probe);
    // Quoted by the dumper means it would read back as something other than text.
    if !as_yaml.starts_with('\'') && !as_yaml.starts_with('"') {
        return probe;
    }
    let (sign, body) = match t.strip_prefix('-') {
        Some(b) => (-1i64, b),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let int = if let Some(b) = body.strip_prefix("0b") {
        parse_int(b, 2)
    } else if let Some(h) = body.strip_prefix("0x") {
        parse_int(h, 16)
    } else if body.len() > 1 && body.starts_with('0') && !body.contains(['.', ':']) {
        parse_int(&body[1..], 8)
    } else if body.contains(':') && !body.contains('.') {
        body.split(':')
            .try_fold(0i64, |acc, p| parse_int(p, 10).map(|d| acc * 60 + d))
    } else {
        parse_int(body, 10)
    };
    if let Some(i) = int {
        return json!(sign * i);
    }
    let lower = body.to_lowercase();
    if lower == ".inf" || lower == ".nan" {
        // JSON has no infinity or NaN: keep the text.
        return probe;
    }
    let float = if body.contains(':') {
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        whole
            .split(':')
            .try_fold(0f64, |acc, p| {
                p.replace('_', "")
                    .parse::<f64>()
                    .ok()
                    .map(|d| acc * 60.0 + d)
            })
            .and_then(|w| format!("0.{frac}").parse::<f64>().ok().map(|f| w + f))
    } else {
        body.replace('_', "").parse::<f64>().ok()
    };
    match float.and_then(|f| serde_json::Number::from_f64(sign as f64 * f)) {
        Some(n) => Value::Number(n),
        None => probe,
    }
}

/// Python's `set_path_value`: a dotted key; under `postgresql.parameters` the rest of the path
/// is one parameter name (`auto_explain.log_min_duration`); null deletes.
fn set_path(config: &mut Map<String, Value>, path: &[&str], value: &Value, prefix: &[&str]) {
    let joined;
    let path: Vec<&str> = if prefix == ["postgresql", "parameters"] {
        joined = path.join(".");
        vec![joined.as_str()]
    } else {
        path.to_vec()
    };
    let key = path[0];
    if path.len() == 1 {
        if value.is_null() {
            config.remove(key);
        } else {
            config.insert(key.to_string(), value.clone());
        }
        return;
    }
    if !config.get(key).is_some_and(Value::is_object) {
        config.insert(key.to_string(), json!({}));
    }
    let mut next = prefix.to_vec();
    next.push(key);
    if let Some(Value::Object(child)) = config.get_mut(key) {
        set_path(child, &path[1..], value, &next);
        if child.is_empty() {
            config.remove(key);
        }
    }
}

/// Applies `key=value` pairs to a configuration document, as Python's `apply_config_changes`.
pub fn apply_pairs(data: &Value, pairs: &[String]) -> Result<Value, CtlError> {
    let mut doc = data.as_object().cloned().unwrap_or_default();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(failed(format!("Invalid parameter setting {pair}")));
        };
        let value = load_value(v)?;
        let path: Vec<&str> = k.trim().split('.').collect();
        set_path(&mut doc, &path, &value, &[]);
    }
    Ok(Value::Object(doc))
}

/// Python's `patch_config`: merges `patch` into `config`; null deletes a key.
pub fn patch(config: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                config.remove(k);
            }
            Value::Object(p) => match config.get_mut(k) {
                Some(Value::Object(c)) => self::patch(c, p),
                _ => {
                    config.insert(k.clone(), v.clone());
                }
            },
            other => {
                config.insert(k.clone(), other.clone());
            }
        }
    }
}

fn read_yaml_file(name: &str) -> Result<Value, CtlError> {
    let text = if name == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| failed(format!("reading stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(name).map_err(|e| failed(format!("{name}: {e}")))?
    };
    let v: yaml_serde::Value =
        yaml_serde::from_str(&text).map_err(|e| failed(format!("{name}: {e}")))?;
    let v = serde_json::to_value(v).map_err(|e| failed(format!("{name}: {e}")))?;
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(json!({})),
        _ => Err(failed(format!("{name}: expected a YAML mapping"))),
    }
}

/// The editor to open: `$EDITOR`, else `editor` or `vi` on the `PATH`.
fn editor() -> Option<String> {
    if let Ok(e) = std::env::var("EDITOR") {
        if !e.is_empty() {
            return Some(e);
        }
    }
    let path = std::env::var_os("PATH")?;
    ["editor", "vi"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

fn invoke_editor(before: &str, cluster: &str) -> Result<(String, Value), CtlError> {
    let cmd = editor().ok_or_else(|| {
        failed("EDITOR environment variable is not set. editor or vi are not available")
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path = std::env::temp_dir().join(format!(
        "{}-config-{}-{nanos}.yaml",
        cluster.replace('/', "_"),
        std::process::id()
    ));
    std::fs::write(&path, before).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let status = std::process::Command::new(&cmd).arg(&path).status();
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    let status = status.map_err(|e| failed(format!("{cmd}: {e}")))?;
    if !status.success() {
        return Err(failed(format!(
            "Editor exited with return code {}",
            status.code().unwrap_or(-1)
        )));
    }
    let text = text.map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let v: yaml_serde::Value = yaml_serde::from_str(&text).map_err(|e| failed(e.to_string()))?;
    let v = serde_json::to_value(v).map_err(|e| failed(e.to_string()))?;
    Ok((text, v))
}

/// The options of `edit-config`.
#[derive(Debug, Clone, Default)]
pub struct EditArgs {
    /// `-s key=value`.
    pub set: Vec<String>,
    /// `-p name=value`.
    pub pg: Vec<String>,
    /// `--apply FILE|-`.
    pub apply: Option<String>,
    /// `--replace FILE|-`.
    pub replace: Option<String>,
    /// `-q`: no diff, no "Not changed".
    pub quiet: bool,
    /// No confirmation.
    pub force: bool,
}

/// `edit-config [CLUSTER]`: change `/config` with compare-and-swap.
pub async fn edit_config(s: &mut Session, name: &str, a: EditArgs) -> Result<(), CtlError> {
    let (dcs, cluster) = s.load(name).await?;
    let Some(current) = cluster.config else {
        return Err(failed(format!(
            "The config key does not exist in the cluster {name}"
        )));
    };
    let data = serde_json::to_value(&current.value).map_err(|e| failed(e.to_string()))?;
    let before = yaml::dump(&data);
    let mut changed = data.clone();
    let mut edited = false;
    if let Some(f) = &a.replace {
        changed = read_yaml_file(f)?;
        edited = true;
    }
    if let Some(f) = &a.apply {
        let p = read_yaml_file(f)?;
        if let (Value::Object(c), Value::Object(p)) = (&mut changed, &p) {
            patch(c, p);
        }
        edited = true;
    }
    if !a.set.is_empty() || !a.pg.is_empty() {
        let mut pairs = a.set.clone();
        pairs.extend(
            a.pg.iter()
                .map(|p| format!("postgresql.parameters.{}", p.trim_start())),
        );
        changed = apply_pairs(&changed, &pairs)?;
        edited = true;
    }
    if !edited {
        if !s.term.interactive() {
            return Err(failed(
                "missing -s, -p, --apply or --replace: stdin is not a terminal, so patronictl cannot open an editor",
            ));
        }
        changed = invoke_editor(&before, name)?.1;
    }
    // What the agents will read: the document as a typed configuration.
    let new: DynamicConfig = serde_json::from_value(changed.clone())
        .map_err(|e| failed(format!("invalid configuration: {e}")))?;
    let normalized = serde_json::to_value(&new).map_err(|e| failed(e.to_string()))?;
    if normalized == data {
        if !a.quiet {
            s.term.say("Not changed");
        }
        return Ok(());
    }
    if !a.quiet {
        for line in diff::unified(&before, &yaml::dump(&normalized)) {
            s.term.say(line);
        }
    }
    let from_stdin = a.apply.as_deref() == Some("-") || a.replace.as_deref() == Some("-");
    if from_stdin && !a.force {
        return Err(failed("Use --force option to apply changes"));
    }
    if !a.force && !s.term.confirm("Apply these changes?")? {
        return Ok(());
    }
    new.standby_cluster()
        .map_err(|e| failed(format!("invalid configuration: {e}")))?;
    for w in new.adjusted().1 {
        eprintln!("warning: the agents will adjust it: {w}");
    }
    if !dcs.write_config(&new, Some(current.version)).await? {
        return Err(failed(
            "Config modification aborted due to concurrent changes",
        ));
    }
    s.term.say("Configuration changed");
    Ok(())
}

/// `pause` / `resume [CLUSTER] [--wait]`: through the first member API that answers, leader first.
pub async fn toggle_pause(
    s: &mut Session,
    name: &str,
    paused: bool,
    wait: bool,
) -> Result<(), CtlError> {
    let (dcs, cluster) = s.load(name).await?;
    let now = cluster.config.as_ref().is_some_and(|c| c.value.pause);
    if now == paused {
        return Err(failed(format!(
            "Cluster is {} paused",
            if paused { "already" } else { "not" }
        )));
    }
    let (verb, done) = if paused {
        ("pause", "paused")
    } else {
        ("resume", "resumed")
    };
    let body = json!({"pause": if paused { json!(true) } else { Value::Null }});
    for m in members_leader_first(&cluster) {
        let r = match s
            .api
            .call(
                m,
                Method::PATCH,
                "config",
                Some(&body),
                Duration::from_secs(30),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("warning: {e}");
                continue;
            }
        };
        if r.status != 200 {
            return Err(failed(format!(
                "Failed: {verb} cluster management status code={}, ({})",
                r.status, r.body
            )));
        }
        if wait {
            s.term.say(format!(
                "'{verb}' request sent, waiting until it is recognized by all nodes"
            ));
            let old: Vec<(String, u64)> = cluster
                .members
                .iter()
                .filter(|m| !m.data.api_url.is_empty())
                .map(|m| (m.name.clone(), m.version))
                .collect();
            let loop_wait = cluster
                .config
                .as_ref()
                .map_or(Duration::from_secs(10), |c| c.value.loop_wait_duration());
            let deadline = Instant::now() + loop_wait + Duration::from_secs(1);
            loop {
                let c = dcs.load().await?;
                let watched = c
                    .members
                    .iter()
                    .filter(|m| old.iter().any(|(n, _)| *n == m.name));
                let lagging: Vec<&patroni_core::Member> =
                    watched.filter(|m| m.data.pause != paused).collect();
                if lagging.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    let remaining: Vec<&str> = lagging
                        .iter()
                        .filter(|m| old.iter().any(|(n, v)| *n == m.name && *v != m.version))
                        .map(|m| m.name.as_str())
                        .collect();
                    if remaining.is_empty() {
                        break;
                    }
                    return Err(failed(format!(
                        "{} members didn't recognized pause state after {} seconds",
                        remaining.join(", "),
                        loop_wait.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        s.term.say(format!("Success: cluster management is {done}"));
        return Ok(());
    }
    Err(failed("Can not find accessible cluster member"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_pyyaml_does() {
        assert_eq!(load_value("on").unwrap(), json!(true));
        assert_eq!(load_value("'on'").unwrap(), json!("on"));
        assert_eq!(load_value("8MB").unwrap(), json!("8MB"));
        assert_eq!(load_value("100").unwrap(), json!(100));
        assert_eq!(load_value("0x1F").unwrap(), json!(31));
        assert_eq!(load_value("017").unwrap(), json!(15));
        assert_eq!(load_value("1:30").unwrap(), json!(90));
        assert_eq!(load_value("1.5").unwrap(), json!(1.5));
        assert_eq!(load_value("null").unwrap(), Value::Null);
        assert_eq!(load_value("{a: 1}").unwrap(), json!({"a": 1}));
        assert_eq!(load_value("1e3").unwrap(), json!("1e3"));
    }

    #[test]
    fn pairs_set_and_delete_like_python() {
        let data = json!({"ttl": 30, "postgresql": {"parameters": {"a": 1}}});
        let out = apply_pairs(
            &data,
            &[
                "ttl=20".into(),
                "postgresql.parameters.auto_explain.log_min_duration=10s".into(),
                "postgresql.parameters.a=null".into(),
                "synchronous_mode=on".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"ttl": 20, "synchronous_mode": true,
                   "postgresql": {"parameters": {"auto_explain.log_min_duration": "10s"}}})
        );
        assert!(apply_pairs(&data, &["ttl".into()]).is_err());
        let mut c = json!({"a": {"b": 1, "c": 2}, "d": 3})
            .as_object()
            .cloned()
            .unwrap();
        patch(
            &mut c,
            json!({"a": {"b": null, "e": 4}, "d": null})
                .as_object()
                .unwrap(),
        );
        assert_eq!(Value::Object(c), json!({"a": {"c": 2, "e": 4}}));
    }
}
