//! Patroni's custom replica creation and bootstrap methods: the configuration
//! (`postgresql.create_replica_methods` with one section per method, `bootstrap.method` with its
//! section, `bootstrap.post_bootstrap`) and the exact command lines Patroni builds from it.
//!
//! Nothing here runs anything; [`crate::Postgres`] runs the commands through its runner.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// Why a method's configuration cannot be used, with the offending key named in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct MethodError {
    /// The dotted key, as written in the YAML (`postgresql.create_replica_methods`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The built-in replica method's name.
pub const BASEBACKUP: &str = "basebackup";

/// `pg_basebackup` options Patroni sets itself and refuses from the user.
const BASEBACKUP_NOT_ALLOWED: [&str; 12] = [
    "pgdata",
    "format",
    "wal-method",
    "xlog-method",
    "gzip",
    "version",
    "compress",
    "dbname",
    "host",
    "port",
    "username",
    "password",
];

/// Keys of a bootstrap method's section that are settings, not `--key=value` arguments.
const BOOTSTRAP_RESERVED: [&str; 6] = [
    "command",
    "no_params",
    "keep_existing_recovery_conf",
    "recovery_conf",
    "scope",
    "datadir",
];

/// One method's YAML section as written: a mapping in file order (Patroni passes its keys in that
/// order) or, for `basebackup`, also a list of options.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Section {
    /// Nothing configured.
    #[default]
    Empty,
    /// `key: value` entries in the order of the file.
    Map(Vec<(String, Value)>),
    /// A list (`basebackup`'s `- opt` / `- {opt: value}` form).
    List(Vec<Value>),
}

impl<'de> Deserialize<'de> for Section {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Section;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping or a list")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Section, E> {
                Ok(Section::Empty)
            }
            fn visit_none<E: de::Error>(self) -> Result<Section, E> {
                Ok(Section::Empty)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Section, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Section::Map(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Section, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<Value>()? {
                    out.push(v);
                }
                Ok(Section::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Section {
    fn entries(&self) -> &[(String, Value)] {
        match self {
            Section::Map(m) => m,
            _ => &[],
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.entries()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Python's truthiness of a setting, as Patroni reads `keep_data`, `no_params` & co.
    fn flag(&self, key: &str) -> bool {
        match self.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
        }
    }
}

/// A value as Python's `str()` writes it into `--key={value}`.
fn python_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Patroni's `unquote`: a value that is one shell word in quotes loses the quotes.
fn unquote(s: &str) -> String {
    match shlex::split(s) {
        Some(words) if words.len() == 1 => words.into_iter().next().unwrap_or_default(),
        _ => s.to_string(),
    }
}

/// A command as written (`/usr/bin/restore --fast`), split into words as `shlex.split` does.
fn split_command(field: &str, command: &Value) -> Result<Vec<String>, MethodError> {
    let bad = |reason: &str| MethodError {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let text = command
        .as_str()
        .ok_or_else(|| bad("the command must be text"))?;
    let words = shlex::split(text).ok_or_else(|| bad("unbalanced quotes in the command"))?;
    if words.is_empty() {
        return Err(bad("the command is empty"));
    }
    Ok(words)
}

/// A user-defined replica method: `postgresql.<name>: {command, keep_data, no_leader, no_params, ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandMethod {
    /// The method's name in `create_replica_methods`.
    pub name: String,
    /// The command split into words (the method's name when the section has no `command`).
    pub command: Vec<String>,
    /// Keep what is in the data directory instead of emptying it first.
    pub keep_data: bool,
    /// Usable without a running leader (`no_leader`, or its old name `no_master`).
    pub no_leader: bool,
    /// Pass only the section's own keys, not `--scope --role --datadir --connstring`.
    pub no_params: bool,
    /// The section's keys but `command`, in file order, as Patroni passes them.
    pub params: Vec<(String, Value)>,
}

impl CommandMethod {
    /// The full command line Patroni runs: the command's words, then `--key=value` for each of the
    /// section's keys (`keep_data` & co included), then `--scope= --role=replica --datadir=
    /// --connstring=` unless `no_params` (which also drops `no_params`, `no_master`, `no_leader`
    /// and `keep_data`). A section key named like a default argument is overwritten in place.
    pub fn argv(&self, scope: &str, data_dir: &str, connstring: &str) -> Vec<String> {
        let mut params: Vec<(String, String)> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), python_str(v)))
            .collect();
        if self.no_params {
            params.retain(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "no_params" | "no_master" | "no_leader" | "keep_data"
                )
            });
        } else {
            for (k, v) in [
                ("scope", scope),
                ("role", "replica"),
                ("datadir", data_dir),
                ("connstring", connstring),
            ] {
                match params.iter_mut().find(|(key, _)| key == k) {
                    Some(p) => p.1 = v.to_string(),
                    None => params.push((k.to_string(), v.to_string())),
                }
            }
        }
        self.command
            .iter()
            .cloned()
            .chain(params.into_iter().map(|(k, v)| format!("--{k}={v}")))
            .collect()
    }
}

/// One entry of `create_replica_methods`.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaMethod {
    /// The built-in `pg_basebackup`, with the user's extra options from `postgresql.basebackup`.
    Basebackup {
        /// Extra `pg_basebackup` arguments (`--max-rate=100M`, `--verbose`).
        options: Vec<String>,
    },
    /// A user command.
    Command(CommandMethod),
}

impl ReplicaMethod {
    /// The name the method has in `create_replica_methods`.
    pub fn name(&self) -> &str {
        match self {
            ReplicaMethod::Basebackup { .. } => BASEBACKUP,
            ReplicaMethod::Command(c) => &c.name,
        }
    }

    /// Whether the method works without a replication connection to a running member.
    pub fn works_without_leader(&self) -> bool {
        matches!(self, ReplicaMethod::Command(c) if c.no_leader)
    }
}

/// `postgresql.create_replica_methods` resolved against the method sections, in priority order.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaMethods {
    /// The methods, tried in this order until one succeeds.
    pub methods: Vec<ReplicaMethod>,
}

impl Default for ReplicaMethods {
    fn default() -> Self {
        ReplicaMethods {
            methods: vec![ReplicaMethod::Basebackup {
                options: Vec::new(),
            }],
        }
    }
}

impl ReplicaMethods {
    /// Resolves `names` (empty means `[basebackup]`, as Patroni defaults) against `sections`
    /// (`postgresql.<name>`); a user method without a section is an error naming it.
    pub fn resolve(
        names: &[String],
        sections: &BTreeMap<String, Section>,
    ) -> Result<Self, MethodError> {
        if names.is_empty() {
            let options = match sections.get(BASEBACKUP) {
                Some(s) => basebackup_options(s)?,
                None => Vec::new(),
            };
            return Ok(ReplicaMethods {
                methods: vec![ReplicaMethod::Basebackup { options }],
            });
        }
        let mut methods = Vec::new();
        for name in names {
            let section = sections.get(name);
            if name == BASEBACKUP {
                let options = match section {
                    Some(s) => basebackup_options(s)?,
                    None => Vec::new(),
                };
                methods.push(ReplicaMethod::Basebackup { options });
                continue;
            }
            let field = format!("postgresql.{name}");
            let section = match section {
                Some(s @ Section::Map(_)) => s,
                Some(_) => {
                    return Err(MethodError {
                        field,
                        reason: "a replica method's section must be a mapping with a command"
                            .into(),
                    })
                }
                None => {
                    return Err(MethodError {
                        field: "postgresql.create_replica_methods".into(),
                        reason: format!(
                            "method {name:?} has no `postgresql.{name}` section with its command"
                        ),
                    })
                }
            };
            let command = match section.get("command") {
                Some(c) => split_command(&format!("postgresql.{name}.command"), c)?,
                None => vec![name.clone()],
            };
            methods.push(ReplicaMethod::Command(CommandMethod {
                name: name.clone(),
                command,
                keep_data: section.flag("keep_data"),
                no_leader: section.flag("no_leader") || section.flag("no_master"),
                no_params: section.flag("no_params"),
                params: section
                    .entries()
                    .iter()
                    .filter(|(k, _)| k != "command")
                    .cloned()
                    .collect(),
            }));
        }
        Ok(ReplicaMethods { methods })
    }

    /// Whether some method can create a replica with no leader running (Patroni's
    /// `can_create_replica_without_replication_connection`).
    pub fn any_without_leader(&self) -> bool {
        self.methods.iter().any(ReplicaMethod::works_without_leader)
    }
}

/// `postgresql.basebackup` as `pg_basebackup` arguments: a list of `opt` / `{opt: value}`, or a
/// mapping; the options Patroni sets itself are refused.
pub fn basebackup_options(section: &Section) -> Result<Vec<String>, MethodError> {
    let bad = |reason: String| MethodError {
        field: "postgresql.basebackup".into(),
        reason,
    };
    let allowed = |name: &str| {
        if BASEBACKUP_NOT_ALLOWED.contains(&name) {
            Err(bad(format!(
                "{name} option for basebackup is not allowed (the agent sets it)"
            )))
        } else {
            Ok(())
        }
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(unquote(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    match section {
        Section::Empty => {}
        Section::Map(entries) => {
            for (k, v) in entries {
                allowed(k)?;
                // Patroni skips entries whose value is empty.
                match scalar(v) {
                    Some(v) if !v.is_empty() && v != "false" => out.push(format!("--{k}={v}")),
                    _ => {}
                }
            }
        }
        Section::List(items) => {
            for item in items {
                match item {
                    Value::String(opt) => {
                        allowed(opt)?;
                        out.push(format!("--{opt}"));
                    }
                    Value::Object(m) if m.len() == 1 => {
                        let (k, v) = m.iter().next().expect("one entry");
                        allowed(k)?;
                        let v = scalar(v)
                            .ok_or_else(|| bad(format!("the value of {k} must be a string")))?;
                        out.push(format!("--{k}={v}"));
                    }
                    other => {
                        return Err(bad(format!(
                            "option {other} should be a string or a single key-value pair"
                        )))
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A custom bootstrap: `bootstrap.<method>: {command, no_params, keep_existing_recovery_conf, recovery_conf}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomBootstrap {
    /// The method's name (`bootstrap.method`).
    pub name: String,
    /// The command split into words.
    pub command: Vec<String>,
    /// Pass only the section's own keys, not `--scope= --datadir=`.
    pub no_params: bool,
    /// Leave the recovery settings and signal files the command wrote alone.
    pub keep_existing_recovery_conf: bool,
    /// Recovery settings (`restore_command`, `recovery_target_*`) to recover with, via `recovery.signal`.
    pub recovery_conf: Option<BTreeMap<String, String>>,
    /// The section's other keys, in file order, passed as `--key=value`.
    pub params: Vec<(String, Value)>,
}

impl CustomBootstrap {
    /// Patroni's command line: the command's words, `--scope= --datadir=` unless `no_params`,
    /// then `--key=value` for the section's other keys.
    pub fn argv(&self, scope: &str, data_dir: &str) -> Vec<String> {
        let mut argv = self.command.clone();
        if !self.no_params {
            argv.push(format!("--scope={scope}"));
            argv.push(format!("--datadir={data_dir}"));
        }
        argv.extend(
            self.params
                .iter()
                .map(|(k, v)| format!("--{k}={}", python_str(v))),
        );
        argv
    }
}

/// How a new cluster's data directory is made, and what runs once it is up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BootstrapPlan {
    /// The custom method, when `bootstrap.method` names one; `None` runs `initdb`.
    pub custom: Option<CustomBootstrap>,
    /// `bootstrap.post_bootstrap` (or `post_init`) split into words: run with the superuser's
    /// connection string once the new primary is up; its failure fails the bootstrap.
    pub post_bootstrap: Option<Vec<String>>,
}

impl BootstrapPlan {
    /// Reads `method` (`initdb` or absent: initdb), its section among `sections`
    /// (`bootstrap.<name>`), and `post_bootstrap` / `post_init`.
    pub fn resolve(
        method: Option<&str>,
        sections: &BTreeMap<String, Section>,
        post_bootstrap: Option<&str>,
    ) -> Result<Self, MethodError> {
        let bad = |field: String, reason: String| MethodError { field, reason };
        let post_bootstrap = match post_bootstrap.filter(|c| !c.trim().is_empty()) {
            Some(c) => Some(split_command(
                "bootstrap.post_bootstrap",
                &Value::String(c.into()),
            )?),
            None => None,
        };
        let custom = match method.filter(|m| !m.is_empty() && *m != "initdb") {
            None => None,
            Some(name) => {
                let field = format!("bootstrap.{name}");
                let section = match sections.get(name) {
                    Some(s @ Section::Map(_)) => s,
                    _ => {
                        return Err(bad(
                            "bootstrap.method".into(),
                            format!(
                            "method {name:?} has no `bootstrap.{name}` section with its command"
                        ),
                        ))
                    }
                };
                let command = section.get("command").ok_or_else(|| {
                    bad(field.clone(), "a bootstrap method needs a `command`".into())
                })?;
                let recovery_conf = match section.get("recovery_conf") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(m)) => Some(
                        m.iter()
                            .map(|(k, v)| (k.clone(), recovery_value(v)))
                            .collect(),
                    ),
                    Some(_) => {
                        return Err(bad(
                            format!("{field}.recovery_conf"),
                            "must be a mapping of recovery settings".into(),
                        ))
                    }
                };
                Some(CustomBootstrap {
                    name: name.to_string(),
                    command: split_command(&format!("{field}.command"), command)?,
                    no_params: section.flag("no_params"),
                    keep_existing_recovery_conf: section.flag("keep_existing_recovery_conf"),
                    recovery_conf,
                    params: section
                        .entries()
                        .iter()
                        .filter(|(k, _)| !BOOTSTRAP_RESERVED.contains(&k.as_str()))
                        .cloned()
                        .collect(),
                })
            }
        };
        Ok(BootstrapPlan {
            custom,
            post_bootstrap,
        })
    }
}

/// A recovery setting's value as PostgreSQL reads it (booleans as `on`/`off`).
fn recovery_value(v: &Value) -> String {
    match v {
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(yaml: &str) -> BTreeMap<String, Section> {
        yaml_serde::from_str(yaml).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_user_method_gets_patronis_arguments_in_file_order() {
        let s = sections(
            "wal_e:\n  command: /usr/bin/wale_restore --x 'a b'\n  no_leader: 1\n  envdir: /etc/env\n  threads: 4\n  keep_data: true\n",
        );
        let m = ReplicaMethods::resolve(&names(&["wal_e", "basebackup"]), &s).unwrap();
        assert!(m.any_without_leader());
        let ReplicaMethod::Command(c) = &m.methods[0] else {
            panic!("{m:?}")
        };
        assert!(c.keep_data && c.no_leader && !c.no_params);
        assert_eq!(
            c.argv(
                "demo",
                "/pg/data",
                "dbname=postgres user=rep host=h port=5432"
            ),
            [
                "/usr/bin/wale_restore",
                "--x",
                "a b",
                "--no_leader=1",
                "--envdir=/etc/env",
                "--threads=4",
                "--keep_data=True",
                "--scope=demo",
                "--role=replica",
                "--datadir=/pg/data",
                "--connstring=dbname=postgres user=rep host=h port=5432",
            ]
        );
        assert_eq!(m.methods[1], ReplicaMethod::Basebackup { options: vec![] });
    }

    #[test]
    fn no_params_passes_only_the_sections_own_keys() {
        let s = sections(
            "restore:\n  command: restore.sh\n  no_params: true\n  no_master: true\n  keep_data: false\n  from: s3\n",
        );
        let m = ReplicaMethods::resolve(&names(&["restore"]), &s).unwrap();
        let ReplicaMethod::Command(c) = &m.methods[0] else {
            panic!()
        };
        assert!(c.no_leader, "no_master is no_leader's old name");
        assert_eq!(c.argv("x", "/d", ""), ["restore.sh", "--from=s3"]);
        // A key named like a default argument is replaced where it stands.
        let s = sections("m:\n  role: master\n  command: m.sh\n");
        let m = ReplicaMethods::resolve(&names(&["m"]), &s).unwrap();
        let ReplicaMethod::Command(c) = &m.methods[0] else {
            panic!()
        };
        assert_eq!(
            c.argv("s", "/d", "c"),
            [
                "m.sh",
                "--role=replica",
                "--scope=s",
                "--datadir=/d",
                "--connstring=c"
            ]
        );
    }

    #[test]
    fn a_method_without_a_section_is_refused_by_name() {
        let err = ReplicaMethods::resolve(&names(&["basebackup", "pgbackrest"]), &BTreeMap::new())
            .unwrap_err();
        assert_eq!(err.field, "postgresql.create_replica_methods");
        assert!(err.to_string().contains("\"pgbackrest\""), "{err}");
        let default = ReplicaMethods::resolve(&[], &BTreeMap::new()).unwrap();
        assert_eq!(default, ReplicaMethods::default());
        assert!(!default.any_without_leader());
    }

    #[test]
    fn basebackup_options_in_list_and_map_form() {
        let s = sections(
            "basebackup:\n  - verbose\n  - max-rate: '100M'\n  - label: '\"a b\"'\n  - checkpoint: fast\n",
        );
        let m = ReplicaMethods::resolve(&[], &s).unwrap();
        assert_eq!(
            m.methods,
            [ReplicaMethod::Basebackup {
                options: names(&[
                    "--verbose",
                    "--max-rate=100M",
                    "--label=a b",
                    "--checkpoint=fast"
                ])
            }]
        );
        let map = sections("basebackup:\n  max-rate: 10M\n  label: ''\n  waldir: /w\n");
        assert_eq!(
            basebackup_options(&map["basebackup"]).unwrap(),
            ["--max-rate=10M", "--waldir=/w"]
        );
        for bad in [
            "basebackup: [pgdata]\n",
            "basebackup:\n  - {a: x, b: y}\n",
            "basebackup:\n  dbname: x\n",
        ] {
            let err = basebackup_options(&sections(bad)["basebackup"]).unwrap_err();
            assert_eq!(err.field, "postgresql.basebackup", "{bad}");
        }
    }

    #[test]
    fn custom_bootstrap_arguments_and_recovery_settings() {
        let s = sections(
            "pitr:\n  command: /opt/restore.sh --fast\n  keep_existing_recovery_conf: false\n  backup: latest\n  scope: ignored\n  recovery_conf:\n    restore_command: cp /a/%f %p\n    recovery_target_action: promote\n    recovery_target_inclusive: false\n",
        );
        let plan = BootstrapPlan::resolve(Some("pitr"), &s, Some("psql -f /x.sql")).unwrap();
        let c = plan.custom.clone().unwrap();
        assert_eq!(
            c.argv("demo", "/pg/data"),
            [
                "/opt/restore.sh",
                "--fast",
                "--scope=demo",
                "--datadir=/pg/data",
                "--backup=latest"
            ]
        );
        let rc = c.recovery_conf.unwrap();
        assert_eq!(rc["restore_command"], "cp /a/%f %p");
        assert_eq!(rc["recovery_target_inclusive"], "off");
        assert_eq!(plan.post_bootstrap, Some(names(&["psql", "-f", "/x.sql"])));
        let initdb = BootstrapPlan::resolve(Some("initdb"), &s, None).unwrap();
        assert_eq!(initdb, BootstrapPlan::default());
        let missing = BootstrapPlan::resolve(Some("barman"), &s, None).unwrap_err();
        assert_eq!(missing.field, "bootstrap.method");
        assert!(missing.to_string().contains("\"barman\""), "{missing}");
        let s = sections("nocmd:\n  no_params: true\n");
        let err = BootstrapPlan::resolve(Some("nocmd"), &s, None).unwrap_err();
        assert_eq!(err.field, "bootstrap.nocmd");
    }
}
