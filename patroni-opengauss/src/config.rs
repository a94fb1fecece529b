//! The adapter's configuration: where openGauss lives and how this node reaches its peers.
//!
//! It deserialises from the `postgresql` section of a Patroni-style YAML file (unknown keys such
//! as `authentication` are ignored here), with the openGauss-only settings in a nested
//! `opengauss` block; see `examples/opengauss_cluster.yml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use patroni_postgres::ParamValue;
use serde::{Deserialize, Serialize};

/// Which `Database` adapter a `postgresql` section asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// PostgreSQL: pg_ctl, pg_basebackup, pg_rewind.
    #[serde(alias = "postgresql")]
    Postgres,
    /// openGauss: gs_ctl, gs_guc.
    OpenGauss,
}

/// Picks the adapter: an explicit `flavour` wins, else a `bin_dir` holding `gs_ctl` means openGauss.
///
/// Lets the daemon keep Patroni's keys and still run openGauss without an extra switch.
pub fn detect_flavour(explicit: Option<Flavour>, bin_dir: Option<&Path>) -> Flavour {
    match explicit {
        Some(f) => f,
        None if bin_dir.is_some_and(|d| d.join("gs_ctl").is_file()) => Flavour::OpenGauss,
        None => Flavour::Postgres,
    }
}

/// One other member, written into a `replconninfoN` line; openGauss only replicates with listed hosts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Peer {
    /// The member name (its `application_name`).
    pub name: String,
    /// The address its HA port listens on.
    pub host: String,
    /// Its client port; the HA port is this + 1.
    #[serde(default = "default_port")]
    pub port: u16,
}

/// Settings that only openGauss has (the nested `opengauss:` block).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpenGaussSettings {
    /// The OS user that ran `gs_initdb` (gs_ctl refuses root); commands run as it when the agent does not.
    #[serde(default)]
    pub os_user: Option<String>,
    /// The database user for SQL; defaults to `os_user` (the initial user, trusted on the Unix socket).
    #[serde(default)]
    pub db_user: Option<String>,
    /// Server log for `gs_ctl start/restart/build -l`; without `-l` the server would hold gs_ctl's stdout.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Directory of the Unix socket (`unix_socket_directory`), default `/tmp`.
    #[serde(default)]
    pub unix_socket_dir: Option<PathBuf>,
    /// `gs_ctl -t` and the deadline of each gs_ctl call (seconds), default 60.
    #[serde(default)]
    pub ctl_timeout: Option<u64>,
    /// Deadline of `gs_ctl build` (seconds), default 3600: a full build copies the whole data directory.
    #[serde(default)]
    pub build_timeout: Option<u64>,
    /// `most_available_sync`: on lets the primary stop waiting when no synchronous standby is connected.
    #[serde(default)]
    pub most_available_sync: bool,
    /// Password file for `gs_initdb --pwfile` at bootstrap (openGauss requires an initial password).
    #[serde(default)]
    pub initdb_pwfile: Option<PathBuf>,
    /// Every other member of the cluster.
    #[serde(default)]
    pub peers: Vec<Peer>,
}

/// The `postgresql` section as the openGauss adapter reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpenGaussConfig {
    /// This member's name: `application_name`, `--nodename`. Filled from the top-level `name`.
    #[serde(default)]
    pub name: String,
    /// `postgresql` or `opengauss`; absent means "detect from bin_dir".
    #[serde(default)]
    pub flavour: Option<Flavour>,
    /// The data directory (`-D`).
    pub data_dir: PathBuf,
    /// Where `gs_ctl`, `gs_guc`, `pg_controldata` live; default `$GAUSSHOME/bin`.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// `host:port` the server listens on (Patroni's `listen`); the port is the client port.
    pub listen: String,
    /// `host:port` other members use to reach this one (Patroni's `connect_address`).
    pub connect_address: String,
    /// The node's own server parameters (`postgresql.parameters`), set with gs_guc over
    /// `/config`'s as PostgreSQL's adapter does, except the ones every member must share.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamValue>,
    /// openGauss-only settings.
    #[serde(default)]
    pub opengauss: OpenGaussSettings,
}

/// Why a configuration cannot be used, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is malformed.
    #[error("postgresql.{key}: {problem}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

fn default_port() -> u16 {
    5432
}

/// `host:port` of `key`, read by the shared parser; openGauss also needs port + 1 (its HA port).
fn host_port(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let bad = |problem: String| ConfigError::Invalid {
        key: key.to_string(),
        problem,
    };
    let e = patroni_core::Endpoint::from_host_port(value).map_err(bad)?;
    if e.port == u16::MAX {
        return Err(bad(format!(
            "{value:?}: port {} leaves no port + 1 for HA",
            e.port
        )));
    }
    Ok((e.host, e.port))
}

impl OpenGaussConfig {
    /// Checks the values that would otherwise fail later, far from their cause.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        };
        if self.name.is_empty() {
            return Err(invalid("name", "empty: set the top-level name"));
        }
        if !self.data_dir.is_absolute() {
            return Err(invalid("data_dir", "must be an absolute path"));
        }
        host_port("listen", &self.listen)?;
        host_port("connect_address", &self.connect_address)?;
        if self.opengauss.peers.len() > 8 {
            return Err(invalid(
                "opengauss.peers",
                "openGauss has replconninfo1..8: at most 8 peers",
            ));
        }
        if self.bin_dir.is_none() && std::env::var_os("GAUSSHOME").is_none() {
            return Err(invalid("bin_dir", "not set and GAUSSHOME is not set"));
        }
        Ok(())
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        host_port("listen", &self.listen)
            .map(|h| h.1)
            .unwrap_or(5432)
    }

    /// The address the server listens on (`listen_addresses`).
    pub fn listen_host(&self) -> String {
        host_port("listen", &self.listen)
            .map(|h| h.0)
            .unwrap_or_default()
    }

    /// The address peers reach this node at (its `localhost` in replconninfo).
    pub fn connect_host(&self) -> String {
        host_port("connect_address", &self.connect_address)
            .map(|h| h.0)
            .unwrap_or_default()
    }

    /// The directory of gs_ctl and friends.
    pub fn bin_dir(&self) -> PathBuf {
        self.bin_dir.clone().unwrap_or_else(|| {
            std::env::var_os("GAUSSHOME")
                .map(|h| PathBuf::from(h).join("bin"))
                .unwrap_or_default()
        })
    }

    /// The server log given to `-l`; default `<data_dir>.log` beside the data directory, so a full build (which wipes the directory) keeps it.
    pub fn log_file(&self) -> PathBuf {
        self.opengauss.log_file.clone().unwrap_or_else(|| {
            let mut p = self.data_dir.clone().into_os_string();
            p.push(".log");
            PathBuf::from(p)
        })
    }

    /// The Unix socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.opengauss
            .unix_socket_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    }

    /// The gs_ctl wait (`-t`).
    pub fn ctl_timeout(&self) -> Duration {
        Duration::from_secs(self.opengauss.ctl_timeout.unwrap_or(60))
    }

    /// The gs_ctl build deadline.
    pub fn build_timeout(&self) -> Duration {
        Duration::from_secs(self.opengauss.build_timeout.unwrap_or(3600))
    }

    /// The SQL user.
    pub fn db_user(&self) -> String {
        self.opengauss
            .db_user
            .clone()
            .or_else(|| self.opengauss.os_user.clone())
            .unwrap_or_else(|| "omm".to_string())
    }
}
