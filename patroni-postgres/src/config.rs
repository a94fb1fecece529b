//! The `postgresql:` section of the agent's YAML, with Patroni's field names.
//!
//! The daemon's loader embeds [`PostgresConfig`]; `bootstrap.initdb` lives elsewhere in the YAML and
//! is handed over separately as a list of [`InitdbOption`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use patroni_core::Endpoint;
use serde::{Deserialize, Deserializer, Serialize};

/// Why a `postgresql:` section cannot be used, with the offending field named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postgresql.{field}: {reason}")]
pub struct PgConfigError {
    /// The field, as written in the YAML.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A user name with an optional password, as Patroni's `authentication.*` entries hold them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The role name.
    pub username: String,
    /// Its password; `None` relies on `trust`/peer authentication or the pgpass file.
    #[serde(default)]
    pub password: Option<String>,
}

/// The roles the agent uses: its own superuser, the one standbys stream with, and the one pg_rewind uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    /// The superuser the agent connects as locally and creates at bootstrap.
    #[serde(default = "default_superuser")]
    pub superuser: Credentials,
    /// The replication role standbys connect with; created at bootstrap when set.
    #[serde(default)]
    pub replication: Option<Credentials>,
    /// The role pg_rewind connects to the source with; the superuser when unset.
    #[serde(default)]
    pub rewind: Option<Credentials>,
}

impl Default for Authentication {
    fn default() -> Self {
        Authentication {
            superuser: default_superuser(),
            replication: None,
            rewind: None,
        }
    }
}

fn default_superuser() -> Credentials {
    Credentials {
        username: "postgres".into(),
        password: None,
    }
}

/// A server parameter value: YAML writes them as strings, numbers or booleans, PostgreSQL wants text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ParamValue(pub String);

impl ParamValue {
    /// The value quoted for `postgresql.conf`.
    pub fn to_conf(&self) -> String {
        format!("'{}'", self.0.replace('\\', "\\\\").replace('\'', "''"))
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ParamValue {
    fn from(s: &str) -> Self {
        ParamValue(s.to_string())
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Int(i64),
            Float(f64),
            Text(String),
        }
        Ok(ParamValue(match Raw::deserialize(d)? {
            Raw::Bool(b) => if b { "on" } else { "off" }.to_string(),
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Text(t) => t,
        }))
    }
}

/// One `bootstrap.initdb` entry: a bare flag (`data-checksums`) or a setting (`{encoding: UTF8}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InitdbOption {
    /// `--flag`.
    Flag(String),
    /// `--key=value` for each entry.
    Settings(BTreeMap<String, ParamValue>),
}

impl InitdbOption {
    /// The `initdb` arguments this entry stands for.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            InitdbOption::Flag(f) => vec![format!("--{}", f.trim_start_matches('-'))],
            InitdbOption::Settings(m) => m
                .iter()
                .map(|(k, v)| format!("--{}={}", k.trim_start_matches('-'), v.0))
                .collect(),
        }
    }
}

/// Patroni's `postgresql:` section: where the server lives and how the agent runs and reaches it.
///
/// The daemon embeds it (`#[serde(flatten)]`) in its own `postgresql` section, so each key has
/// this one definition. Patroni keys this section does not hold (`callbacks`, `pg_ident`, the
/// replica methods, which come through [`crate::methods`], ...) and misspelt keys land in
/// [`other`](Self::other) instead of failing the load, so an existing `patroni.yml` still starts;
/// the loader must warn about each of [`ignored_keys`](Self::ignored_keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostgresConfig {
    /// `host[,host...]:port` the server listens on; the port is also the local socket's.
    /// Required: empty fails [`validate`](Self::validate).
    #[serde(default)]
    pub listen: String,
    /// `host:port` other members use to reach this server; published in the member key's `conn_url`.
    /// Required: empty fails [`validate`](Self::validate).
    #[serde(default)]
    pub connect_address: String,
    /// The data directory (`PGDATA`). Required: empty fails [`validate`](Self::validate).
    #[serde(default)]
    pub data_dir: PathBuf,
    /// Where `pg_ctl`, `initdb` & co live; `None` looks them up in `PATH`.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// Where the managed `postgresql.conf` and `pg_hba.conf` go, when not in the data directory.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
    /// The password file the agent writes for replication and rewind connections (default `<data_dir>.pgpass`, beside the data directory).
    #[serde(default)]
    pub pgpass: Option<PathBuf>,
    /// The roles the agent uses.
    #[serde(default)]
    pub authentication: Authentication,
    /// Server parameters written to the managed `postgresql.conf`.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamValue>,
    /// `pg_hba.conf` lines; empty keeps a safe default (local trust for the agent's OS user, scram on 127.0.0.1).
    #[serde(default)]
    pub pg_hba: Vec<String>,
    /// Seconds any `pg_ctl` call (and every other command or query) may take before it is killed.
    #[serde(default = "default_pg_ctl_timeout")]
    pub pg_ctl_timeout: u64,
    /// Rewind a diverged standby in place with `pg_rewind` instead of copying everything again.
    /// The node's own setting, which wins over the cluster's (`/config`); `None` leaves it to the
    /// cluster's, which the agent hands over with [`Postgres::set_use_pg_rewind`](crate::Postgres::set_use_pg_rewind)
    /// (off until then).
    #[serde(default)]
    pub use_pg_rewind: Option<bool>,
    /// Connect locally over the Unix socket (otherwise TCP to the first `listen` host).
    #[serde(default = "default_true")]
    pub use_unix_socket: bool,
    /// When `pg_rewind` fails, fall back to a full copy instead of reporting the failure.
    #[serde(default)]
    pub remove_data_directory_on_rewind_failure: bool,
    /// Copy a standby whose history diverged from the leader's again when `use_pg_rewind` is off.
    /// On by default, unlike Patroni, because a standby that cannot follow must be rebuilt; set it
    /// to `false` to leave such a standby as it is for the operator, as Patroni does.
    #[serde(default = "default_true")]
    pub remove_data_directory_on_diverged_timelines: bool,
    /// Server log file the agent starts the server with (`pg_ctl -l`); default `<data_dir>.log`, outside
    /// the data directory so a rebuild does not take it away. Not in Patroni's YAML.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Keys of the section this adapter does not know, kept so the loader can name them in a warning.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
    /// The OS user (uid, gid) the server runs as; set by the agent, never read from YAML.
    #[serde(skip)]
    pub run_as: Option<(u32, u32)>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig::new(String::new(), PathBuf::new())
    }
}

fn default_pg_ctl_timeout() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

impl PostgresConfig {
    /// A configuration with defaults for everything but the addresses and directories.
    pub fn new(listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let listen = listen.into();
        PostgresConfig {
            connect_address: listen.clone(),
            listen,
            data_dir: data_dir.into(),
            bin_dir: None,
            config_dir: None,
            pgpass: None,
            authentication: Authentication::default(),
            parameters: BTreeMap::new(),
            pg_hba: Vec::new(),
            pg_ctl_timeout: default_pg_ctl_timeout(),
            use_pg_rewind: None,
            use_unix_socket: true,
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: true,
            log_file: None,
            other: BTreeMap::new(),
            run_as: None,
        }
    }

    /// Checks what can be checked without touching the machine, naming the bad field.
    pub fn validate(&self) -> Result<(), PgConfigError> {
        let bad = |field: &str, reason: String| PgConfigError {
            field: field.into(),
            reason,
        };
        self.port()?;
        Endpoint::from_host_port(&self.connect_address)
            .map_err(|reason| bad("connect_address", reason))?;
        if !self.data_dir.is_absolute() {
            return Err(bad(
                "data_dir",
                format!("{} must be an absolute path", self.data_dir.display()),
            ));
        }
        if self.pg_ctl_timeout == 0 {
            return Err(bad("pg_ctl_timeout", "must be at least 1 second".into()));
        }
        if self.authentication.superuser.username.is_empty() {
            return Err(bad(
                "authentication.superuser.username",
                "must not be empty".into(),
            ));
        }
        for (name, _) in self.parameters.iter() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(bad(
                    "parameters",
                    format!("{name:?} is not a parameter name"),
                ));
            }
        }
        Ok(())
    }

    /// Keys in the YAML section that this adapter ignores (unsupported Patroni features or typos).
    pub fn ignored_keys(&self) -> Vec<&str> {
        self.other.keys().map(String::as_str).collect()
    }

    /// The port from `listen`.
    pub fn port(&self) -> Result<u16, PgConfigError> {
        Endpoint::from_host_port(&self.listen)
            .map(|e| e.port)
            .map_err(|reason| PgConfigError {
                field: "listen".into(),
                reason,
            })
    }

    /// The hosts from `listen`, comma separated as `listen_addresses` wants them.
    pub fn listen_hosts(&self) -> String {
        Endpoint::from_host_port(&self.listen)
            .map(|e| e.host)
            .unwrap_or_else(|_| "127.0.0.1".into())
    }

    /// The address the agent reaches its own server at over TCP: the first `listen` host, with a
    /// wildcard (`*`, `0.0.0.0`) taken as the loopback.
    pub fn local_tcp_host(&self) -> String {
        let hosts = self.listen_hosts();
        let first = hosts.split(',').next().unwrap_or("127.0.0.1").trim();
        if matches!(first, "*" | "0.0.0.0" | "") {
            "127.0.0.1".into()
        } else {
            first.to_string()
        }
    }

    /// The `conn_url` this member publishes, from `connect_address`.
    pub fn conn_url(&self) -> String {
        format!("postgres://{}/postgres", self.connect_address)
    }

    /// The deadline for each command and query.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.pg_ctl_timeout)
    }

    /// The path of a PostgreSQL program.
    pub fn binary(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// Where the managed `postgresql.conf` and `pg_hba.conf` live.
    pub fn config_dir(&self) -> &Path {
        self.config_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// The directory of the local Unix socket: the first `unix_socket_directories` entry, else
    /// `<data_dir>.sock` — never inside the data directory, where pg_rewind would try to copy the socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.parameters
            .get("unix_socket_directories")
            .and_then(|v| v.0.split(',').map(str::trim).find(|s| !s.is_empty()))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let mut s = self.data_dir.clone().into_os_string();
                s.push(".sock");
                PathBuf::from(s)
            })
    }

    /// The server log file.
    pub fn log_file(&self) -> PathBuf {
        self.log_file.clone().unwrap_or_else(|| {
            let mut s = self.data_dir.clone().into_os_string();
            s.push(".log");
            PathBuf::from(s)
        })
    }

    /// The password file used for connections to other members.
    pub fn pgpass(&self) -> PathBuf {
        self.pgpass.clone().unwrap_or_else(|| {
            let mut s = self.data_dir.clone().into_os_string();
            s.push(".pgpass");
            PathBuf::from(s)
        })
    }

    /// The role pg_rewind connects as.
    pub fn rewind_user(&self) -> &Credentials {
        self.authentication
            .rewind
            .as_ref()
            .unwrap_or(&self.authentication.superuser)
    }

    /// The role standbys stream with.
    pub fn replication_user(&self) -> &Credentials {
        self.authentication
            .replication
            .as_ref()
            .unwrap_or(&self.authentication.superuser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_patroni_yaml_names() {
        let yaml = r#"
listen: 127.0.0.1,10.0.0.1:5433
connect_address: 10.0.0.1:5433
data_dir: /var/lib/pg/data
bin_dir: /usr/lib/postgresql/15/bin
pgpass: /tmp/pgpass0
authentication:
  superuser: {username: postgres, password: zalando}
  replication: {username: replicator, password: rep-pass}
  rewind: {username: rewind_user, password: rewind_password}
parameters:
  max_connections: 100
  wal_log_hints: true
  shared_buffers: 16MB
  checkpoint_completion_target: 0.9
pg_hba:
  - host replication replicator 127.0.0.1/32 scram-sha-256
use_pg_rewind: true
remove_data_directory_on_rewind_failure: true
"#;
        let c: PostgresConfig = yaml_serde::from_str(yaml).unwrap();
        c.validate().unwrap();
        assert_eq!(c.port().unwrap(), 5433);
        assert_eq!(c.listen_hosts(), "127.0.0.1,10.0.0.1");
        assert_eq!(c.pg_ctl_timeout, 60);
        assert!(c.use_unix_socket && c.use_pg_rewind == Some(true));
        assert_eq!(c.parameters["wal_log_hints"].0, "on");
        assert_eq!(c.parameters["max_connections"].0, "100");
        assert_eq!(c.parameters["checkpoint_completion_target"].0, "0.9");
        assert_eq!(c.rewind_user().username, "rewind_user");
        assert_eq!(c.conn_url(), "postgres://10.0.0.1:5433/postgres");
        assert_eq!(c.log_file(), PathBuf::from("/var/lib/pg/data.log"));
        assert_eq!(c.run_as, None);
    }

    #[test]
    fn bad_input_names_the_field() {
        let mut c = PostgresConfig::new("127.0.0.1:5432", "/data");
        c.validate().unwrap();
        c.listen = "127.0.0.1".into();
        assert_eq!(c.validate().unwrap_err().field, "listen");
        c.listen = "127.0.0.1:99999".into();
        assert_eq!(c.validate().unwrap_err().field, "listen");
        c.listen = "127.0.0.1:5432".into();
        c.data_dir = "relative".into();
        assert_eq!(c.validate().unwrap_err().field, "data_dir");
        c.data_dir = "/data".into();
        c.parameters.insert("x; DROP".into(), "1".into());
        assert_eq!(c.validate().unwrap_err().field, "parameters");
        let unknown = yaml_serde::from_str::<PostgresConfig>(
            "listen: a:1\nconnect_address: a:1\ndata_dir: /d\nlisten_adress: x\ncallbacks: {on_start: /bin/true}\n",
        )
        .unwrap();
        assert_eq!(unknown.ignored_keys(), ["callbacks", "listen_adress"]);
        let wrong_type = yaml_serde::from_str::<PostgresConfig>(
            "listen: a:1\nconnect_address: a:1\ndata_dir: /d\npg_ctl_timeout: soon\n",
        );
        assert!(wrong_type
            .unwrap_err()
            .to_string()
            .contains("pg_ctl_timeout"));
    }

    #[test]
    fn initdb_options_become_arguments() {
        let opts: Vec<InitdbOption> =
            yaml_serde::from_str("- data-checksums\n- encoding: UTF8\n- locale: C\n").unwrap();
        let args: Vec<String> = opts.iter().flat_map(InitdbOption::to_args).collect();
        assert_eq!(args, ["--data-checksums", "--encoding=UTF8", "--locale=C"]);
    }

    #[test]
    fn parameter_values_are_quoted_for_the_conf_file() {
        assert_eq!(ParamValue("it's".into()).to_conf(), "'it''s'");
        assert_eq!(ParamValue("a\\b".into()).to_conf(), "'a\\\\b'");
    }
}
