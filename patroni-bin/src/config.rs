//! The agent's YAML file in Patroni's layout, with `PATRONI_*` environment overrides.
//!
//! Operators keep their Patroni files: the same sections and keys, unknown keys warned about
//! by name instead of silently ignored, and malformed files reported with file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use patroni_core::{DynamicConfig, Tags};
use patroni_etcd::Etcd3Config;
use patroni_opengauss::{detect_flavour, Flavour, OpenGaussSettings};
use patroni_postgres::methods::{BootstrapPlan, MethodError, ReplicaMethods, Section};
use patroni_postgres::{InitdbOption, PostgresConfig};
use serde::{Deserialize, Serialize};

/// Why a configuration could not be used; the text names the file and the place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or a value has the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What serde expected.
        message: String,
    },
    /// A required key is missing or empty.
    #[error("{path}: `{key}` is required")]
    Missing {
        /// The file.
        path: String,
        /// The dotted key.
        key: &'static str,
    },
    /// A value parsed but makes no sense (timing rule, bad address).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The tool PostgreSQL rejoins a diverged member with, as [`patroni_core::Node::rewind_tool`]
/// names it: `pg_rewind` when `use_pg_rewind` is in force, else none (a full copy).
pub(crate) fn postgres_rewind_tool(use_pg_rewind: bool) -> Option<String> {
    use_pg_rewind.then(|| "pg_rewind".to_string())
}

/// A boolean environment value as Patroni reads one (`true`, `on`, `yes`, `1`, any case).
fn env_flag(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "on" | "yes" | "1"
    )
}

/// `restapi`: where the agent's HTTP API listens and how peers reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestApiConfig {
    /// `host:port` to bind.
    pub listen: String,
    /// `host:port` others use to reach us; defaults to `listen`.
    pub connect_address: Option<String>,
    /// Basic-auth credentials required for unsafe verbs.
    pub authentication: Option<Credentials>,
    /// Seconds a client has, from a request's first byte, to send its header and body before
    /// it is disconnected (default 10).
    pub header_timeout: u64,
    /// Seconds a keep-alive connection may stay idle before it is closed (default 60).
    pub idle_timeout: u64,
    /// Open connections at most (default 256); when full, a new connection closes the one idle
    /// the longest, so health checks keep answering.
    pub max_connections: usize,
    /// Server certificate (PEM, may hold the chain); when set the API speaks only HTTPS.
    pub certfile: Option<PathBuf>,
    /// Private key (PEM) of `certfile`; defaults to `certfile` itself.
    pub keyfile: Option<PathBuf>,
    /// Password of an encrypted (PKCS#8) `keyfile`.
    pub keyfile_password: Option<String>,
    /// CA certificates (PEM) that client certificates are checked against.
    pub cafile: Option<PathBuf>,
    /// Whether clients must show a certificate signed by `cafile`.
    pub verify_client: Option<crate::rest::tls::VerifyClient>,
    /// Addresses, networks (CIDR) and host names allowed to use the unsafe verbs.
    pub allowlist: Vec<String>,
    /// Also allow the members' REST API hosts (from their `api_url` in the DCS).
    pub allowlist_include_members: bool,
    /// Headers added to every answer.
    pub http_extra_headers: BTreeMap<String, String>,
    /// Headers added to every answer when the API speaks HTTPS.
    pub https_extra_headers: BTreeMap<String, String>,
}

impl Default for RestApiConfig {
    fn default() -> Self {
        RestApiConfig {
            listen: "127.0.0.1:8008".into(),
            connect_address: None,
            authentication: None,
            header_timeout: crate::rest::limits::DEFAULT_HEADER_TIMEOUT_SECS,
            idle_timeout: crate::rest::limits::DEFAULT_IDLE_TIMEOUT_SECS,
            max_connections: crate::rest::limits::DEFAULT_MAX_CONNECTIONS,
            certfile: None,
            keyfile: None,
            keyfile_password: None,
            cafile: None,
            verify_client: None,
            allowlist: Vec::new(),
            allowlist_include_members: false,
            http_extra_headers: BTreeMap::new(),
            https_extra_headers: BTreeMap::new(),
        }
    }
}

impl RestApiConfig {
    /// The connection limits these settings ask for (a zero is taken as the smallest sane value).
    pub fn limits(&self) -> crate::rest::RestLimits {
        crate::rest::RestLimits {
            header_timeout: std::time::Duration::from_secs(self.header_timeout.max(1)),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout.max(1)),
            max_connections: self.max_connections.max(2),
        }
    }

    /// `https` when a `certfile` is configured, else `http`: the scheme of this API's URL.
    pub fn scheme(&self) -> &'static str {
        if self.certfile.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// `ctl`: how `patronictl` (and the agent, for its peers) reaches the members' REST APIs, as
/// Patroni reads it: only the CA falls back to `restapi.cafile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CtlSection {
    /// Basic auth for the members' APIs, preferred over `restapi.authentication`.
    pub authentication: Option<Credentials>,
    /// Accept HTTPS APIs without verifying their certificates.
    pub insecure: bool,
    /// Client certificate (PEM) shown to the APIs.
    pub certfile: Option<PathBuf>,
    /// Private key (PEM) of `certfile`; defaults to `certfile` itself.
    pub keyfile: Option<PathBuf>,
    /// Password of an encrypted `keyfile`.
    pub keyfile_password: Option<String>,
    /// CA certificates (PEM) that the APIs' certificates are checked against; else `restapi.cafile`.
    pub cacert: Option<PathBuf>,
}

/// A user name and password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// `bootstrap`: what a new cluster starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BootstrapSection {
    /// Seeds `/config` once.
    pub dcs: DynamicConfig,
    /// Extra `initdb` options: `- data-checksums` or `- encoding: UTF8`.
    pub initdb: Vec<InitdbOption>,
    /// `initdb` (the default) or the name of a custom bootstrap method with its own section.
    pub method: Option<String>,
    /// A command run with the superuser's connection string once the new cluster is up.
    pub post_bootstrap: Option<String>,
    /// Patroni's older name of `post_bootstrap`.
    pub post_init: Option<String>,
    /// The section `method` names (`bootstrap.<method>`), picked out of the YAML.
    #[serde(skip)]
    pub method_sections: BTreeMap<String, Section>,
}

impl BootstrapSection {
    /// The `initdb` list as command-line options (`--data-checksums`, `--encoding=UTF8`).
    pub fn initdb_args(&self) -> Vec<String> {
        self.initdb.iter().flat_map(InitdbOption::to_args).collect()
    }
}

/// `postgresql`: the local database. The adapter's keys are [`PostgresConfig`]'s, embedded here
/// so each key has one definition; this struct adds what the agent itself reads.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct PostgresqlSection {
    /// `postgresql` (default) or `opengauss`; a `bin_dir` holding `gs_ctl` also selects openGauss.
    pub flavour: Option<Flavour>,
    /// Run the server as this OS user (we may be started as root).
    pub run_as: Option<String>,
    /// Replica creation methods, tried in order (default `[basebackup]`); each but
    /// `basebackup` names a `postgresql.<name>` section with its command.
    pub create_replica_methods: Vec<String>,
    /// Patroni's older name of `create_replica_methods`.
    pub create_replica_method: Vec<String>,
    /// The sections of those methods and `basebackup`'s options, picked out of the YAML.
    #[serde(skip)]
    pub method_sections: BTreeMap<String, Section>,
    /// Scripts run after database events (`on_start`, `on_role_change`, ...); see [`crate::callbacks`].
    pub callbacks: crate::callbacks::CallbacksSection,
    /// A script run before a promotion; a failure cancels it and gives the leader lock back.
    pub pre_promote: Option<String>,
    /// A script run (and waited for) before the database is stopped.
    pub before_stop: Option<String>,
    /// openGauss-only settings, read by the openGauss adapter; an unknown key fails the load.
    pub opengauss: Option<OpenGaussSettings>,
    /// The PostgreSQL adapter's keys (`listen`, `data_dir`, `authentication`, `parameters`, ...);
    /// keys nobody knows land in its `other` map and are warned about.
    #[serde(flatten)]
    pub postgres: PostgresConfig,
}

impl PostgresqlSection {
    /// The engine to drive, from `flavour` or from what `bin_dir` holds (the openGauss adapter's rule).
    pub fn flavour(&self) -> Flavour {
        detect_flavour(self.flavour, self.postgres.bin_dir.as_deref())
    }

    /// The address peers connect to.
    pub fn connect_address(&self) -> &str {
        if self.postgres.connect_address.is_empty() {
            &self.postgres.listen
        } else {
            &self.postgres.connect_address
        }
    }
}

/// `watchdog`: the fencing mode (see [`crate::watchdog`]); Patroni's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WatchdogSection {
    /// `off`, `automatic` (the default), `required`.
    pub mode: Option<String>,
    /// The device.
    pub device: Option<String>,
    /// Seconds before the lease expiry the watchdog fires.
    pub safety_margin: Option<i64>,
}

/// `log`: verbosity and format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSection {
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`.
    pub level: String,
    /// `plain` or `json` (only plain is implemented).
    #[serde(rename = "type")]
    pub kind: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "INFO".into(),
            kind: "plain".into(),
        }
    }
}

impl LogSection {
    /// The level as a `tracing` filter directive.
    pub fn filter(&self) -> String {
        match self.level.to_ascii_uppercase().as_str() {
            "DEBUG" => "debug",
            "WARNING" | "WARN" => "warn",
            "ERROR" | "CRITICAL" => "error",
            _ => "info",
        }
        .to_string()
    }
}

/// The whole local configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Cluster name: the DCS prefix is `<namespace>/<scope>`.
    pub scope: String,
    /// DCS namespace, `/service` by default.
    pub namespace: String,
    /// This member's unique name.
    pub name: String,
    /// The REST API.
    pub restapi: RestApiConfig,
    /// How clients (`patronictl`, peer probes) reach the REST APIs.
    pub ctl: CtlSection,
    /// The etcd cluster.
    pub etcd3: Etcd3Config,
    /// Seed settings of a new cluster; a node without it never initialises one.
    pub bootstrap: Option<BootstrapSection>,
    /// The local database.
    pub postgresql: PostgresqlSection,
    /// This member's tags.
    pub tags: Tags,
    /// Hardware watchdog settings.
    pub watchdog: WatchdogSection,
    /// Logging.
    pub log: LogSection,
    /// The file this was read from, for reloads; not a YAML key.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scope: String::new(),
            namespace: "/service".into(),
            name: String::new(),
            restapi: RestApiConfig::default(),
            ctl: CtlSection::default(),
            etcd3: Etcd3Config::default(),
            bootstrap: None,
            postgresql: PostgresqlSection::default(),
            tags: Tags::default(),
            watchdog: WatchdogSection::default(),
            log: LogSection::default(),
            source: None,
        }
    }
}

/// A YAML error with its position. serde reports a duplicate key at the start of the mapping
/// that holds it; the operator wants the line of the duplicate itself (and of the first one).
fn syntax_error(source: &str, text: &str, e: &yaml_serde::Error) -> ConfigError {
    let (mut line, mut column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let full = e.to_string();
    // The YAML error text ends with " at line L column C", which the error prefix already says.
    let mut message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let duplicate = message
        .split_once("duplicate field `")
        .or_else(|| message.split_once("duplicate entry with key \""))
        .and_then(|(_, rest)| rest.split(['`', '"']).next())
        .map(str::to_string);
    if let (Some(key), true) = (duplicate, line > 0) {
        let indent = column.saturating_sub(1);
        let mut seen = Vec::new();
        for (i, l) in text.lines().enumerate().skip(line - 1) {
            let trimmed = l.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let here = l.len() - trimmed.len();
            if here < indent {
                break;
            }
            let is_key = trimmed
                .strip_prefix(key.as_str())
                .is_some_and(|r| r.trim_start().starts_with(':'));
            if here == indent && is_key {
                seen.push(i + 1);
            }
        }
        if let [first, second, ..] = seen[..] {
            line = second;
            column = indent + 1;
            message = format!("duplicate key `{key}` (first at line {first})");
        }
    }
    ConfigError::Syntax {
        path: source.to_string(),
        line,
        column,
        message,
    }
}

/// A configuration plus the warnings found while reading it (unknown keys, ignored features).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// One line per problem that did not stop loading.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads `path`, applies `PATRONI_*` variables from the process environment, and validates.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut loaded = Self::parse(&text, &path.display().to_string(), std::env::vars())?;
        loaded.config.source = Some(path.to_path_buf());
        Ok(loaded)
    }

    /// Parses YAML text named `source` (for messages), applies `env` overrides and validates.
    pub fn parse(
        text: &str,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        Self::parse_with(text, source, env, true)
    }

    /// Reads a file for `patronictl`, which needs no member `name`.
    pub fn load_for_ctl(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut loaded =
            Self::parse_with(&text, &path.display().to_string(), std::env::vars(), false)?;
        loaded.config.source = Some(path.to_path_buf());
        Ok(loaded)
    }

    fn parse_with(
        text: &str,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
        require_name: bool,
    ) -> Result<Loaded, ConfigError> {
        let mut warnings = Vec::new();
        let mut config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            let de = yaml_serde::Deserializer::from_str(text);
            serde_ignored::deserialize(de, |p| {
                warnings.push(format!("{source}: unknown key `{p}` ignored"))
            })
            .map_err(|e: yaml_serde::Error| syntax_error(source, text, &e))?
        };
        if let Ok(doc) = yaml_serde::from_str::<yaml_serde::Value>(text) {
            config.read_method_sections(&doc, source, &mut warnings)?;
            config.warn_unknown_postgres_keys(&doc, source, &mut warnings);
        }
        config.apply_env(source, env, &mut warnings)?;
        config.validate(source, require_name, &mut warnings)?;
        Ok(Loaded { config, warnings })
    }

    fn apply_env(
        &mut self,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("PATRONI_") else {
                continue;
            };
            match rest {
                "NAME" => self.name = value,
                "SCOPE" => self.scope = value,
                "NAMESPACE" => self.namespace = value,
                "RESTAPI_LISTEN" => self.restapi.listen = value,
                "RESTAPI_CONNECT_ADDRESS" => self.restapi.connect_address = Some(value),
                "RESTAPI_USERNAME" => {
                    self.restapi
                        .authentication
                        .get_or_insert_with(Default::default)
                        .username = value
                }
                "RESTAPI_PASSWORD" => {
                    self.restapi
                        .authentication
                        .get_or_insert_with(Default::default)
                        .password = value
                }
                "RESTAPI_CERTFILE" => self.restapi.certfile = Some(value.into()),
                "RESTAPI_KEYFILE" => self.restapi.keyfile = Some(value.into()),
                "RESTAPI_KEYFILE_PASSWORD" => self.restapi.keyfile_password = Some(value),
                "RESTAPI_CAFILE" => self.restapi.cafile = Some(value.into()),
                "RESTAPI_VERIFY_CLIENT" => match value.try_into() {
                    Ok(v) => self.restapi.verify_client = Some(v),
                    Err(e) => warnings.push(format!("environment: {key}: {e}")),
                },
                "RESTAPI_ALLOWLIST" => {
                    // Patroni reads a YAML list here; a plain comma-separated one works too.
                    self.restapi.allowlist = yaml_serde::from_str::<Vec<String>>(&value)
                        .unwrap_or_else(|_| {
                            value
                                .split(',')
                                .map(|h| h.trim().to_string())
                                .filter(|h| !h.is_empty())
                                .collect()
                        })
                }
                "RESTAPI_ALLOWLIST_INCLUDE_MEMBERS" => {
                    self.restapi.allowlist_include_members = env_flag(&value)
                }
                "CTL_INSECURE" => self.ctl.insecure = env_flag(&value),
                "CTL_CACERT" => self.ctl.cacert = Some(value.into()),
                "CTL_CERTFILE" => self.ctl.certfile = Some(value.into()),
                "CTL_KEYFILE" => self.ctl.keyfile = Some(value.into()),
                "CTL_KEYFILE_PASSWORD" => self.ctl.keyfile_password = Some(value),
                // Patroni documents the quoted form, `'h1:2379','h2:2379'`.
                "ETCD3_HOSTS" => {
                    self.etcd3.hosts = value
                        .split(',')
                        .map(|h| h.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
                        .filter(|h| !h.is_empty())
                        .collect()
                }
                "ETCD3_CACERT" => self.etcd3.cacert = Some(value.into()),
                "ETCD3_CERT" => self.etcd3.cert = Some(value.into()),
                "ETCD3_KEY" => self.etcd3.key = Some(value.into()),
                // Read by the fence launcher, not a configuration key.
                "FENCE_PROGRAM" => {}
                "ETCD3_HOST" => self.etcd3.host = Some(value),
                // A port that does not parse is refused, not replaced by etcd's default: that
                // could be another cluster's etcd.
                "ETCD3_PORT" => match value.trim().parse::<u16>() {
                    Ok(p) if p != 0 => self.etcd3.port = Some(p),
                    _ => {
                        return Err(ConfigError::Invalid {
                            path: source.to_string(),
                            message: format!("{key}={value:?} is not a port from 1 to 65535"),
                        })
                    }
                },
                "ETCD3_URL" => self.etcd3.url = Some(value),
                "ETCD3_PROTOCOL" => self.etcd3.protocol = Some(value),
                "ETCD3_USERNAME" => self.etcd3.username = Some(value),
                "ETCD3_PASSWORD" => self.etcd3.password = Some(value),
                "POSTGRESQL_LISTEN" => self.postgresql.postgres.listen = value,
                "POSTGRESQL_CONNECT_ADDRESS" => self.postgresql.postgres.connect_address = value,
                "POSTGRESQL_DATA_DIR" => self.postgresql.postgres.data_dir = value.into(),
                "POSTGRESQL_BIN_DIR" => self.postgresql.postgres.bin_dir = Some(value.into()),
                "POSTGRESQL_PGPASS" => self.postgresql.postgres.pgpass = Some(value.into()),
                "LOG_LEVEL" => self.log.level = value,
                other => {
                    let role_cred = other
                        .split_once('_')
                        .filter(|(_, f)| matches!(*f, "USERNAME" | "PASSWORD"));
                    match role_cred {
                        Some((role, field))
                            if matches!(role, "SUPERUSER" | "REPLICATION" | "REWIND") =>
                        {
                            let auth = &mut self.postgresql.postgres.authentication;
                            let unset = || patroni_postgres::Credentials {
                                username: String::new(),
                                password: None,
                            };
                            let c = match role {
                                "SUPERUSER" => &mut auth.superuser,
                                "REPLICATION" => auth.replication.get_or_insert_with(unset),
                                _ => auth.rewind.get_or_insert_with(unset),
                            };
                            if field == "USERNAME" {
                                c.username = value
                            } else {
                                c.password = Some(value)
                            }
                        }
                        _ => warnings.push(format!("environment: unknown variable {key} ignored")),
                    }
                }
            }
        }
        Ok(())
    }

    fn validate(
        &self,
        source: &str,
        require_name: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let missing = |key| ConfigError::Missing {
            path: source.to_string(),
            key,
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: source.to_string(),
            message,
        };
        if self.scope.trim().is_empty() {
            return Err(missing("scope"));
        }
        let unknown = self.bootstrap.as_ref().map(|b| b.dcs.unknown_keys());
        for key in unknown.unwrap_or_default() {
            warnings.push(format!(
                "{source}: `bootstrap.dcs.{key}` is not a Patroni setting; it is written to /config but nothing reads it"
            ));
        }
        if require_name && self.name.trim().is_empty() {
            return Err(missing("name"));
        }
        self.etcd3
            .endpoints()
            .and(self.etcd3.credentials())
            .map_err(|e| invalid(e.to_string()))?;
        for (key, addr) in [
            ("restapi.listen", Some(self.restapi.listen.as_str())),
            (
                "restapi.connect_address",
                self.restapi.connect_address.as_deref(),
            ),
            (
                "postgresql.listen",
                Some(self.postgresql.postgres.listen.as_str()),
            ),
            (
                "postgresql.connect_address",
                Some(self.postgresql.postgres.connect_address.as_str()),
            ),
        ] {
            if let Some(a) = addr {
                if !a.is_empty() {
                    // Caught at start rather than at bind time.
                    patroni_core::Endpoint::from_host_port(a)
                        .map_err(|e| invalid(format!("{key}: {e}")))?;
                }
            }
        }
        if let Some(b) = &self.bootstrap {
            warnings.extend(
                b.dcs
                    .adjusted()
                    .1
                    .into_iter()
                    .map(|w| format!("{source}: bootstrap.dcs: {w}")),
            );
            let standby = b
                .dcs
                .standby_cluster()
                .map_err(|e| invalid(format!("bootstrap.dcs.{e}")))?;
            if standby.is_some() && self.postgresql.flavour() == Flavour::OpenGauss {
                return Err(invalid(format!(
                    "bootstrap.dcs.{}",
                    patroni_opengauss::STANDBY_CLUSTER_UNSUPPORTED
                )));
            }
        }
        self.check_methods().map_err(invalid)?;
        if self.tags.nostream && self.postgresql.flavour() == Flavour::OpenGauss {
            return Err(invalid("tags.nostream: an openGauss standby always streams from its primary (replconninfo); archive-only replay is not supported".into()));
        }
        crate::watchdog::Settings::from_section(&self.watchdog).map_err(invalid)?;
        if self.log.kind != "plain" {
            warnings.push(format!(
                "{source}: log.type {:?} is not supported; logging plain text",
                self.log.kind
            ));
        }
        Ok(())
    }

    /// Method sections have free-form names (`postgresql.<method>`, `bootstrap.<method>`), so
    /// serde leaves them as unknown keys: the ones the method lists name are read from the
    /// document here, and their unknown-key warnings dropped.
    fn read_method_sections(
        &mut self,
        doc: &yaml_serde::Value,
        source: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let mut wanted: Vec<(&str, String)> = self
            .replica_method_names()
            .iter()
            .chain(std::iter::once(
                &patroni_postgres::methods::BASEBACKUP.to_string(),
            ))
            .map(|n| ("postgresql", n.clone()))
            .collect();
        if let Some(m) = self.bootstrap.as_ref().and_then(|b| b.method.clone()) {
            wanted.push(("bootstrap", m));
        }
        for (parent, name) in wanted {
            let Some(value) = doc.get(parent).and_then(|p| p.get(name.as_str())) else {
                continue;
            };
            let section =
                Section::deserialize(value.clone()).map_err(|e| ConfigError::Invalid {
                    path: source.to_string(),
                    message: format!("{parent}.{name}: {e}"),
                })?;
            // `bootstrap` is optional: serde_ignored writes its path as `bootstrap.?.<name>`.
            let unknown = [
                format!("{source}: unknown key `{parent}.{name}` ignored"),
                format!("{source}: unknown key `{parent}.?.{name}` ignored"),
            ];
            warnings.retain(|w| !unknown.contains(w));
            let into = match parent {
                "postgresql" => &mut self.postgresql.method_sections,
                _ => match self.bootstrap.as_mut() {
                    Some(b) => &mut b.method_sections,
                    None => continue,
                },
            };
            into.insert(name, section);
        }
        Ok(())
    }

    /// The adapter's part of `postgresql` is embedded flattened, which serde_ignored cannot see
    /// into: its unknown keys are the adapter's leftovers (minus the method sections), and the
    /// unknown keys nested in its values are found by reading the section once more on its own.
    fn warn_unknown_postgres_keys(
        &self,
        doc: &yaml_serde::Value,
        source: &str,
        warnings: &mut Vec<String>,
    ) {
        let pg = &self.postgresql;
        for key in pg.postgres.ignored_keys() {
            if !pg.method_sections.contains_key(key) {
                warnings.push(format!("{source}: unknown key `postgresql.{key}` ignored"));
            }
        }
        if let Some(section) = doc.get("postgresql") {
            let _ = serde_ignored::deserialize(section.clone(), |p| {
                warnings.push(format!("{source}: unknown key `postgresql.{p}` ignored"))
            })
            .map(|_: PostgresConfig| ());
        }
    }

    fn replica_method_names(&self) -> &[String] {
        let p = &self.postgresql;
        if p.create_replica_methods.is_empty() {
            &p.create_replica_method
        } else {
            &p.create_replica_methods
        }
    }

    /// `create_replica_methods` resolved against the method sections.
    pub fn replica_methods(&self) -> Result<ReplicaMethods, MethodError> {
        ReplicaMethods::resolve(
            self.replica_method_names(),
            &self.postgresql.method_sections,
        )
    }

    /// `bootstrap.method` with its section, and `post_bootstrap` (or `post_init`).
    pub fn bootstrap_plan(&self) -> Result<BootstrapPlan, MethodError> {
        let Some(b) = &self.bootstrap else {
            return Ok(BootstrapPlan::default());
        };
        BootstrapPlan::resolve(
            b.method.as_deref(),
            &b.method_sections,
            b.post_bootstrap.as_deref().or(b.post_init.as_deref()),
        )
    }

    /// The methods resolve, and openGauss (which builds replicas with `gs_ctl build` and
    /// bootstraps with `gs_initdb` only) is not asked for custom ones.
    fn check_methods(&self) -> Result<(), String> {
        self.replica_methods().map_err(|e| e.to_string())?;
        let plan = self.bootstrap_plan().map_err(|e| e.to_string())?;
        if self.postgresql.flavour() == Flavour::OpenGauss {
            let custom_replica = self
                .replica_method_names()
                .iter()
                .any(|n| n != patroni_postgres::methods::BASEBACKUP);
            if custom_replica {
                return Err("postgresql.create_replica_methods: openGauss creates replicas with gs_ctl build only; custom replica methods are not supported".into());
            }
            if plan.custom.is_some() || plan.post_bootstrap.is_some() {
                return Err("bootstrap: openGauss bootstraps with gs_initdb only; bootstrap.method and post_bootstrap are not supported".into());
            }
        }
        Ok(())
    }

    /// Checks what the agent (not patronictl) needs beyond [`parse`](Self::parse): a database section.
    pub fn require_agent_keys(&self, source: &str) -> Result<(), ConfigError> {
        let missing = |key| ConfigError::Missing {
            path: source.to_string(),
            key,
        };
        if self.postgresql.postgres.data_dir.as_os_str().is_empty() {
            return Err(missing("postgresql.data_dir"));
        }
        if self.postgresql.postgres.listen.trim().is_empty() {
            return Err(missing("postgresql.listen"));
        }
        Ok(())
    }

    /// The DCS key prefix `/<namespace>/<scope>/`.
    pub fn dcs_prefix(&self) -> String {
        format!(
            "/{}/{}/",
            self.namespace.trim_matches('/'),
            self.scope.trim_matches('/')
        )
        .replace("//", "/")
    }

    /// The REST address others reach this agent at.
    pub fn api_address(&self) -> &str {
        self.restapi
            .connect_address
            .as_deref()
            .unwrap_or(&self.restapi.listen)
    }

    /// The dynamic configuration this node uses until `/config` exists.
    pub fn bootstrap_dcs(&self) -> DynamicConfig {
        self.bootstrap
            .as_ref()
            .map(|b| b.dcs.adjusted().0)
            .unwrap_or_default()
    }

    /// Whether pg_rewind is used until `/config` is read: the node's own `postgresql.use_pg_rewind`
    /// when set, else `bootstrap.dcs`'s (Patroni merges the local `postgresql` keys over the
    /// dynamic ones). The daemon then follows `/config`'s value each cycle.
    pub fn use_pg_rewind(&self) -> bool {
        self.postgresql
            .postgres
            .use_pg_rewind
            .unwrap_or_else(|| self.bootstrap_dcs().postgresql.use_pg_rewind)
    }

    /// This node's identity for the state machine.
    pub fn node(&self) -> patroni_core::Node {
        // Written back through `Endpoint`'s display so an IPv6 host keeps its brackets.
        let db = patroni_core::Endpoint::from_host_port(self.postgresql.connect_address())
            .unwrap_or_else(|_| patroni_core::Endpoint {
                host: "127.0.0.1".into(),
                port: patroni_core::DEFAULT_PORT,
            });
        let api = patroni_core::Endpoint::from_host_port(self.api_address())
            .map_or_else(|_| self.api_address().to_string(), |e| e.to_string());
        let user = Some(&self.postgresql.postgres.authentication.superuser.username)
            .filter(|u| !u.is_empty())
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        patroni_core::Node {
            name: self.name.clone(),
            conn_url: format!("postgres://{user}@{db}/postgres"),
            api_url: format!("{}://{api}/patroni", self.restapi.scheme()),
            tags: self.tags.clone(),
            bootstrap_config: self.bootstrap_dcs(),
            can_bootstrap: self.bootstrap.is_some(),
            clone_without_leader: self.replica_methods().is_ok_and(|m| m.any_without_leader()),
            version: crate::status::PATRONI_API_VERSION.to_string(),
            watchdog_required: crate::watchdog::Settings::from_section(&self.watchdog)
                .is_ok_and(|w| w.mode == crate::watchdog::Mode::Required),
            rewind_tool: match self.postgresql.flavour() {
                Flavour::OpenGauss => Some("gs_ctl build".into()),
                Flavour::Postgres => postgres_rewind_tool(self.use_pg_rewind()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
  authentication: {username: admin, password: secret}
etcd3:
  hosts: [127.0.0.1:2379, 127.0.0.1:2380]
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    postgresql:
      parameters: {max_connections: 50}
  initdb:
    - data-checksums
    - encoding: UTF8
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /tmp/pg
  authentication:
    superuser: {username: postgres, password: pw}
    replication: {username: repl, password: rpw}
tags:
  nofailover: false
  site: dc1
"#;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn parses_patroni_layout() {
        let l = Config::parse(SAMPLE, "a.yml", no_env()).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let c = l.config;
        assert_eq!(c.dcs_prefix(), "/service/demo/");
        assert_eq!(
            c.etcd3.endpoints().unwrap(),
            vec!["http://127.0.0.1:2379", "http://127.0.0.1:2380"]
        );
        let b = c.bootstrap.as_ref().unwrap();
        assert_eq!(
            (b.dcs.ttl, b.dcs.loop_wait, b.dcs.retry_timeout),
            (10, 2, 4)
        );
        assert_eq!(b.initdb_args(), vec!["--data-checksums", "--encoding=UTF8"]);
        assert_eq!(c.postgresql.postgres.replication_user().username, "repl");
        assert_eq!(c.tags.custom_str("site").as_deref(), Some("dc1"));
        let n = c.node();
        assert_eq!(n.conn_url, "postgres://postgres@127.0.0.1:5432/postgres");
        assert_eq!(n.api_url, "http://127.0.0.1:8008/patroni");
        assert!(n.can_bootstrap);
        c.require_agent_keys("a.yml").unwrap();
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_member_urls() {
        let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\nrestapi: {listen: '[::1]:8008'}\npostgresql: {listen: '[::1]:5432', connect_address: '[fe80::2]:5433', data_dir: /d}\n";
        let n = Config::parse(text, "v6.yml", no_env())
            .unwrap()
            .config
            .node();
        assert_eq!(n.conn_url, "postgres://postgres@[fe80::2]:5433/postgres");
        assert_eq!(n.api_url, "http://[::1]:8008/patroni");
        // Peers and patronictl read them back to the same host and port.
        let db = patroni_core::Endpoint::from_conn_url(&n.conn_url).unwrap();
        assert!(db.is("fe80::2", 5433), "{db:?}");
        let api = patroni_core::Endpoint::from_url(&n.api_url, 80).unwrap();
        assert!(api.is("::1", 8008), "{api:?}");
    }

    #[test]
    fn malformed_yaml_names_file_line_and_column() {
        let text = "scope: demo\nname: n\nrestapi:\n  listen: [unclosed\n";
        let e = Config::parse(text, "bad.yml", no_env()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("bad.yml:"), "{msg}");
        match e {
            ConfigError::Syntax { line, .. } => assert!(line >= 4, "{msg}"),
            other => panic!("{other:?}"),
        }
        let e = Config::parse("scope: demo\nname: n\nrestapi: 5\n", "t.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.yml:3:") && e.contains("expected"), "{e}");
    }

    #[test]
    fn unknown_keys_are_warned_by_name() {
        let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\nrestapi:\n  listen: 127.0.0.1:1\n  lisen: x\nfoo: 1\n";
        let l = Config::parse(text, "u.yml", no_env()).unwrap();
        assert!(
            l.warnings.iter().any(|w| w.contains("restapi.lisen")),
            "{:?}",
            l.warnings
        );
        assert!(l.warnings.iter().any(|w| w.contains("`foo`")));
    }

    #[test]
    fn unknown_bootstrap_dcs_keys_are_warned_but_patroni_ones_are_not() {
        let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\nbootstrap:\n  dcs:\n    loop_wiat: 5\n    permanent_slots: {a: {type: physical}}\n    postgresql:\n      pg_hba: [x]\n      bogus: 1\n";
        let l = Config::parse(text, "u.yml", no_env()).unwrap();
        let about: Vec<&String> = l
            .warnings
            .iter()
            .filter(|w| w.contains("bootstrap.dcs"))
            .collect();
        assert_eq!(about.len(), 2, "{:?}", l.warnings);
        assert!(about[0].contains("`bootstrap.dcs.loop_wiat`"), "{about:?}");
        assert!(
            about[1].contains("`bootstrap.dcs.postgresql.bogus`"),
            "{about:?}"
        );
    }

    #[test]
    fn a_duplicate_key_is_reported_at_its_own_line() {
        let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\npostgresql:\n  listen: 127.0.0.1:5432\n  # a comment\n  data_dir: /a\n  parameters: {x: 1}\n  data_dir: /b\n";
        let e = Config::parse(text, "d.yml", no_env()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.yml:9:3: duplicate key `data_dir` (first at line 7)"
        );
    }

    #[test]
    fn an_etcd_port_from_the_environment_fills_in_portless_hosts_or_is_refused() {
        let env = |port: &str| {
            vec![
                ("PATRONI_ETCD3_HOSTS".to_string(), "e1,e2:2381".to_string()),
                ("PATRONI_ETCD3_PORT".to_string(), port.to_string()),
            ]
        };
        let l = Config::parse(SAMPLE, "a.yml", env("2380")).unwrap();
        assert_eq!(
            l.config.etcd3.endpoints().unwrap(),
            ["http://e1:2380", "http://e2:2381"]
        );
        for bad in ["", "0", "x", "70000"] {
            let e = Config::parse(SAMPLE, "a.yml", env(bad)).unwrap_err();
            assert!(e.to_string().contains("PATRONI_ETCD3_PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            ("PATRONI_NAME".to_string(), "node9".to_string()),
            (
                "PATRONI_ETCD3_HOSTS".into(),
                "'10.1.1.1:2379', \"h2:2379\"".into(),
            ),
            ("PATRONI_ETCD3_CACERT".into(), "/etc/ca.pem".into()),
            ("PATRONI_FENCE_PROGRAM".into(), "/usr/bin/patroni".into()),
            ("PATRONI_POSTGRESQL_DATA_DIR".into(), "/data/x".into()),
            (
                "PATRONI_RESTAPI_CONNECT_ADDRESS".into(),
                "127.0.0.2:8008".into(),
            ),
            ("PATRONI_REPLICATION_PASSWORD".into(), "zz".into()),
            ("PATRONI_BOGUS".into(), "1".into()),
            ("HOME".into(), "/root".into()),
        ];
        let l = Config::parse(SAMPLE, "a.yml", env).unwrap();
        let c = &l.config;
        assert_eq!(c.name, "node9");
        // A CA file makes the scheme https, as in the file.
        assert_eq!(
            c.etcd3.endpoints().unwrap(),
            vec!["https://10.1.1.1:2379", "https://h2:2379"]
        );
        assert_eq!(c.postgresql.postgres.data_dir, Path::new("/data/x"));
        assert_eq!(c.api_address(), "127.0.0.2:8008");
        assert_eq!(
            c.postgresql.postgres.replication_user().password.as_deref(),
            Some("zz")
        );
        assert_eq!(
            c.etcd3.cacert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert!(l.warnings.iter().any(|w| w.contains("PATRONI_BOGUS")));
        assert!(
            !l.warnings.iter().any(|w| w.contains("FENCE_PROGRAM")),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn timing_rule_and_required_keys() {
        let text =
            "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\nbootstrap:\n  dcs: {ttl: 10, loop_wait: 5, retry_timeout: 5}\n";
        // Adjusted as Patroni does, with a warning, not refused.
        let l = Config::parse(text, "t.yml", no_env()).unwrap();
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("bootstrap.dcs") && w.contains("ttl (10)")),
            "{:?}",
            l.warnings
        );
        let d = l.config.bootstrap_dcs();
        assert_eq!((d.ttl, d.loop_wait, d.retry_timeout), (10, 1, 4));
        let e = Config::parse("name: n\n", "t.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`scope` is required"), "{e}");
        let l = Config::parse(
            "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\n",
            "t.yml",
            no_env(),
        )
        .unwrap();
        // No etcd configured is an error, never a silent 127.0.0.1:2379.
        let e = Config::parse("scope: s\nname: n\n", "t.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("etcd3.hosts"), "{e}");
        let e = l
            .config
            .require_agent_keys("t.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("postgresql.data_dir"), "{e}");
        let e = Config::parse(
            "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\nrestapi: {listen: 'localhost:99999'}\n",
            "t.yml",
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("restapi.listen") && e.contains("99999"), "{e}");
    }

    #[test]
    fn nostream_is_refused_for_opengauss_only() {
        let yaml = |flavour: &str| {
            format!("scope: s\nname: n\netcd3: {{hosts: 127.0.0.1:2379}}\npostgresql: {{flavour: {flavour}, listen: '127.0.0.1:1', data_dir: /d}}\ntags: {{nostream: true, replicatefrom: n2}}\n")
        };
        let e = Config::parse(&yaml("opengauss"), "g.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tags.nostream") && e.contains("openGauss"),
            "{e}"
        );
        let l = Config::parse(&yaml("postgresql"), "p.yml", no_env()).unwrap();
        assert!(l.config.tags.nostream);
        assert_eq!(l.config.tags.replicatefrom.as_deref(), Some("n2"));
    }

    #[test]
    fn standby_cluster_is_checked_at_load_and_refused_for_opengauss() {
        let parse = |flavour: &str, section: &str| {
            let yaml = format!("scope: s\nname: n\netcd3: {{hosts: 127.0.0.1:2379}}\npostgresql: {{flavour: {flavour}, listen: '127.0.0.1:1', data_dir: /d}}\nbootstrap: {{dcs: {{standby_cluster: {section}}}}}\n");
            Config::parse(&yaml, "c.yml", no_env()).map_err(|e| e.to_string())
        };
        let ok = parse("postgresql", "{host: 10.0.0.9, port: 5433}").unwrap();
        assert!(ok.config.bootstrap.unwrap().dcs.is_standby_cluster());
        let bad = parse("postgresql", "{host: h, port: nope}").unwrap_err();
        assert!(
            bad.contains("standby_cluster") && bad.contains("nope"),
            "{bad}"
        );
        let og = parse("opengauss", "{host: h}").unwrap_err();
        assert!(
            og.contains("standby_cluster") && og.contains("openGauss"),
            "{og}"
        );
    }

    #[test]
    fn flavour_selection() {
        let l = Config::parse(
            "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\npostgresql: {flavour: opengauss, listen: '127.0.0.1:1', data_dir: /d}\n",
            "f.yml",
            no_env(),
        )
        .unwrap();
        assert_eq!(l.config.postgresql.flavour(), Flavour::OpenGauss);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gs_ctl"), "").unwrap();
        let mut s = PostgresqlSection::default();
        s.postgres.bin_dir = Some(dir.path().to_path_buf());
        assert_eq!(s.flavour(), Flavour::OpenGauss);
        assert_eq!(PostgresqlSection::default().flavour(), Flavour::Postgres);
    }

    #[test]
    fn every_postgresql_key_reaches_the_adapter() {
        let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\npostgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /d\n  use_unix_socket: false\n  use_pg_rewind: true\n  remove_data_directory_on_rewind_failure: true\n  remove_data_directory_on_diverged_timelines: true\n  pg_ctl_timeout: 7\n  parameters: {wal_log_hints: on, max_connections: 9}\n  authentication:\n    superuser: {username: su}\n    rewind: {username: rw, password: p}\n";
        let l = Config::parse(text, "k.yml", no_env()).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let pg = crate::runtime::postgres_config(&l.config).unwrap();
        assert!(!pg.use_unix_socket);
        assert!(pg.use_pg_rewind == Some(true) && pg.remove_data_directory_on_rewind_failure);
        assert!(pg.remove_data_directory_on_diverged_timelines);
        assert_eq!(pg.pg_ctl_timeout, 7);
        assert_eq!(pg.connect_address, "127.0.0.1:5432");
        assert_eq!(pg.parameters["wal_log_hints"].0, "on");
        assert_eq!(pg.rewind_user().username, "rw");
        assert_eq!(
            l.config.node().conn_url,
            "postgres://su@127.0.0.1:5432/postgres"
        );
        assert_eq!(l.config.node().rewind_tool.as_deref(), Some("pg_rewind"));
        pg.validate().unwrap();
    }

    #[test]
    fn unknown_postgresql_keys_are_warned_with_their_path() {
        let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\npostgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /d\n  lisen: x\n  authentication:\n    superuser: {username: su, sslmode: require}\n  callbacks: {on_strat: /bin/true}\n";
        let l = Config::parse(text, "u.yml", no_env()).unwrap();
        let mut w = l.warnings.clone();
        w.sort();
        assert_eq!(
            w,
            [
                "u.yml: unknown key `postgresql.authentication.superuser.sslmode` ignored",
                "u.yml: unknown key `postgresql.callbacks.on_strat` ignored",
                "u.yml: unknown key `postgresql.lisen` ignored",
            ]
        );
        let e = Config::parse(
            &text.replace("lisen: x", "pg_ctl_timeout: soon"),
            "t.yml",
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("t.yml:") && e.contains("soon"), "{e}");
    }

    #[test]
    fn the_opengauss_block_is_typed() {
        let text = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\npostgresql:\n  flavour: opengauss\n  listen: 127.0.0.1:5432\n  data_dir: /d\n  bin_dir: /og/bin\n  opengauss: {os_user: omm, ctl_timeout: 5, peers: [{name: b, host: 127.0.0.2}]}\n";
        let l = Config::parse(text, "g.yml", no_env()).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let og = crate::runtime::opengauss_config(&l.config);
        assert_eq!(og.name, "n");
        assert_eq!(og.connect_address, "127.0.0.1:5432");
        assert_eq!(og.opengauss.peers[0].port, 5432);
        assert_eq!(og.ctl_timeout(), std::time::Duration::from_secs(5));
        assert_eq!(crate::runtime::opengauss_sql_user(&l.config, &og), "omm");
        let named = text.replace("os_user: omm", "os_user: gauss");
        let l2 = Config::parse(&named, "g.yml", no_env()).unwrap();
        let og2 = crate::runtime::opengauss_sql_user(
            &l2.config,
            &crate::runtime::opengauss_config(&l2.config),
        );
        assert_eq!(og2, "gauss");
        let su = named.replace(
            "data_dir: /d",
            "data_dir: /d\n  authentication: {superuser: {username: admin}}",
        );
        let l3 = Config::parse(&su, "g.yml", no_env()).unwrap();
        let og3 = crate::runtime::opengauss_config(&l3.config);
        assert_eq!(
            crate::runtime::opengauss_sql_user(&l3.config, &og3),
            "admin"
        );
        og.validate().unwrap();
        let e = Config::parse(&text.replace("os_user", "os_usr"), "g.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("g.yml:9:") && e.contains("os_usr"), "{e}");
    }

    const METHODS: &str = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\n\
bootstrap:\n  method: pitr\n  pitr:\n    command: /opt/restore --x\n    backup: b1\n    recovery_conf: {restore_command: 'cp /a/%f %p'}\n  post_init: /opt/post\n\
postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /d\n  create_replica_methods: [wal_g, basebackup]\n  wal_g:\n    command: /opt/wal-g fetch\n    no_master: true\n  basebackup:\n    - verbose\n    - max-rate: 10M\n  typo_key: 1\n";

    #[test]
    fn method_sections_are_read_and_not_warned_about() {
        let l = Config::parse(METHODS, "m.yml", no_env()).unwrap();
        assert_eq!(
            l.warnings,
            ["m.yml: unknown key `postgresql.typo_key` ignored"]
        );
        let replica = l.config.replica_methods().unwrap();
        assert!(replica.any_without_leader());
        assert_eq!(
            replica.methods[1],
            patroni_postgres::methods::ReplicaMethod::Basebackup {
                options: vec!["--verbose".into(), "--max-rate=10M".into()]
            }
        );
        let plan = l.config.bootstrap_plan().unwrap();
        assert_eq!(
            plan.custom.unwrap().argv("s", "/d"),
            [
                "/opt/restore",
                "--x",
                "--scope=s",
                "--datadir=/d",
                "--backup=b1"
            ]
        );
        assert_eq!(plan.post_bootstrap, Some(vec!["/opt/post".to_string()]));
    }

    #[test]
    fn unknown_methods_and_opengauss_methods_are_refused() {
        let no_section = METHODS.replace("wal_g:", "walg:");
        let e = Config::parse(&no_section, "m.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("postgresql.create_replica_methods") && e.contains("\"wal_g\""),
            "{e}"
        );
        let no_boot = METHODS.replace("method: pitr", "method: barman");
        let e = Config::parse(&no_boot, "m.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bootstrap.method") && e.contains("\"barman\""),
            "{e}"
        );
        let og = METHODS.replace(
            "listen: 127.0.0.1:5432",
            "flavour: opengauss\n  listen: 127.0.0.1:5432",
        );
        let e = Config::parse(&og, "m.yml", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("openGauss") && !e.contains('\n'), "{e}");
    }
}
