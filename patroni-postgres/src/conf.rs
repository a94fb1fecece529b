//! The files the agent manages in the data directory: `postgresql.conf` (an include of the
//! original plus our settings), `pg_hba.conf`, `standby.signal`, and the password file.
//!
//! `postgresql.conf` is rewritten before every start because `pg_basebackup` and `pg_rewind` copy
//! the source's files, whose port and socket are the source's, not ours.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use patroni_core::{DbError, Endpoint};

use crate::config::{Credentials, PostgresConfig};
use crate::conninfo::conninfo;
use crate::datadir::{remove_file, write_file};

/// First line of every `postgresql.conf` we write, so a re-run knows the original was moved aside.
pub const MARKER: &str =
    "# Managed by patroni-rs: rewritten before every start; change postgresql.parameters instead.";

/// Parameters the agent derives from other fields and never takes from `parameters`.
const DERIVED: [&str; 5] = [
    "port",
    "listen_addresses",
    "primary_conninfo",
    "recovery_target_timeline",
    "hba_file",
];

/// How the next start should run the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfRole {
    /// Writable primary: no `standby.signal`.
    Primary,
    /// Standby; `primary_conninfo` empty means read-only with no upstream.
    Standby {
        /// The libpq conninfo of the upstream, if any.
        primary_conninfo: Option<String>,
    },
    /// Recovering a restored backup (a custom bootstrap) with these recovery settings
    /// (`restore_command`, `recovery_target_*`); the signal files are the caller's.
    Recovery {
        /// The recovery settings, written after the server parameters.
        settings: BTreeMap<String, String>,
    },
}

/// Where the managed `postgresql.conf` lives.
pub(crate) fn conf_path(cfg: &PostgresConfig) -> PathBuf {
    cfg.config_dir().join("postgresql.conf")
}

fn base_conf_path(cfg: &PostgresConfig) -> PathBuf {
    cfg.config_dir().join("postgresql.base.conf")
}

/// The `-c config_file=...` server arguments needed when the configuration does not live in the
/// data directory.
pub fn config_file_option(cfg: &PostgresConfig) -> Option<[String; 2]> {
    (cfg.config_dir() != cfg.data_dir.as_path()).then(|| {
        [
            "-c".to_string(),
            format!("config_file={}", conf_path(cfg).display()),
        ]
    })
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// The managed `postgresql.conf` text for `role` with the server parameters `params` (the
/// merge of `/config`'s and the node's own, see [`patroni_core::parameters::effective`]).
pub fn render(cfg: &PostgresConfig, params: &BTreeMap<String, String>, role: &ConfRole) -> String {
    let mut out = vec![
        MARKER.to_string(),
        "include_if_exists 'postgresql.base.conf'".into(),
        format!("listen_addresses = {}", quote(&cfg.listen_hosts())),
        format!("port = {}", cfg.port().unwrap_or(5432)),
    ];
    if !params.contains_key("unix_socket_directories") {
        out.push(format!(
            "unix_socket_directories = {}",
            quote(&cfg.socket_dir().display().to_string())
        ));
    }
    if config_file_option(cfg).is_some() {
        out.push(format!(
            "hba_file = {}",
            quote(&cfg.config_dir().join("pg_hba.conf").display().to_string())
        ));
    }
    for (k, v) in params {
        if !DERIVED.contains(&k.as_str()) {
            out.push(format!("{k} = {}", quote(v)));
        }
    }
    if let ConfRole::Standby { primary_conninfo } = role {
        out.push(format!(
            "primary_conninfo = {}",
            quote(primary_conninfo.as_deref().unwrap_or(""))
        ));
        out.push("recovery_target_timeline = 'latest'".into());
    }
    if let ConfRole::Recovery { settings } = role {
        for (k, v) in settings {
            out.push(format!("{k} = {}", quote(v)));
        }
    }
    out.push(String::new());
    out.join("\n")
}

/// The managed `postgresql.conf` as it is on disk, if we wrote it.
pub fn managed_text(cfg: &PostgresConfig) -> Option<String> {
    fs::read_to_string(conf_path(cfg))
        .ok()
        .filter(|t| t.starts_with(MARKER))
}

/// Reads back the `primary_conninfo` we wrote, to tell whether a follow changes anything.
pub fn current_primary_conninfo(cfg: &PostgresConfig) -> Option<String> {
    let text = fs::read_to_string(conf_path(cfg)).ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix("primary_conninfo = '")?.strip_suffix('\'')?;
        Some(v.replace("''", "'").replace("\\\\", "\\"))
    })
}

/// The `pg_hba.conf` text: the configured lines, or a default that allows only what the agent needs.
pub fn render_hba(cfg: &PostgresConfig) -> String {
    let mut lines = vec!["# Managed by patroni-rs from postgresql.pg_hba.".to_string()];
    if cfg.pg_hba.is_empty() {
        // The socket lives in a 0700 directory of the server's user, so only root and that user reach it.
        lines.push("local all all trust".into());
        lines.push(format!(
            "host replication {} 127.0.0.1/32 scram-sha-256",
            cfg.replication_user().username
        ));
        lines.push("host all all 127.0.0.1/32 scram-sha-256".into());
    } else {
        lines.extend(cfg.pg_hba.iter().cloned());
    }
    lines.push(String::new());
    lines.join("\n")
}

/// Moves the original `postgresql.conf` aside (once) and writes ours, `pg_hba.conf` and the role's signal file.
pub fn prepare(
    cfg: &PostgresConfig,
    params: &BTreeMap<String, String>,
    role: &ConfRole,
) -> Result<(), DbError> {
    let conf = conf_path(cfg);
    let base = base_conf_path(cfg);
    let ours = fs::read_to_string(&conf)
        .map(|t| t.starts_with(MARKER))
        .unwrap_or(false);
    if conf.exists() && !ours && !base.exists() {
        fs::rename(&conf, &base).map_err(|e| {
            DbError::Io(format!(
                "cannot move {} to {}: {e}",
                conf.display(),
                base.display()
            ))
        })?;
    }
    write_file(&conf, &render(cfg, params, role), 0o600, cfg.run_as)?;
    write_file(
        &cfg.config_dir().join("pg_hba.conf"),
        &render_hba(cfg),
        0o600,
        cfg.run_as,
    )?;
    let signal = cfg.data_dir.join("standby.signal");
    match role {
        ConfRole::Primary => remove_file(&signal),
        ConfRole::Standby { .. } => write_file(&signal, "", 0o600, cfg.run_as),
        ConfRole::Recovery { .. } => Ok(()),
    }
}

/// Writes the password file for connections to other members and returns its path.
pub fn write_pgpass(cfg: &PostgresConfig) -> Result<PathBuf, DbError> {
    let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    let mut lines = Vec::new();
    let users: [&Credentials; 3] = [
        cfg.replication_user(),
        cfg.rewind_user(),
        &cfg.authentication.superuser,
    ];
    for c in users {
        if let Some(pw) = &c.password {
            lines.push(format!("*:*:*:{}:{}", escape(&c.username), escape(pw)));
        }
    }
    lines.push(String::new());
    let path = cfg.pgpass();
    write_file(&path, &lines.join("\n"), 0o600, cfg.run_as)?;
    Ok(path)
}

/// The conninfo a standby (or `pg_basebackup`) streams from `upstream` with. The password stays
/// in the pgpass file ([`write_pgpass`]): `primary_conninfo` is readable by anyone with
/// `pg_read_all_settings`, and a command line by anyone running `ps`.
pub fn replication_conninfo(
    cfg: &PostgresConfig,
    member_name: &str,
    upstream: &Endpoint,
) -> String {
    let user = cfg.replication_user();
    conninfo(&[
        ("host", &upstream.host),
        ("port", &upstream.port.to_string()),
        ("user", &user.username),
        ("passfile", &cfg.pgpass().display().to_string()),
        ("application_name", member_name),
        ("connect_timeout", "5"),
    ])
}

/// The conninfo `pg_rewind` reads the source with (password via the pgpass file).
pub fn rewind_conninfo(cfg: &PostgresConfig, upstream: &Endpoint) -> String {
    conninfo(&[
        ("host", &upstream.host),
        ("port", &upstream.port.to_string()),
        ("user", &cfg.rewind_user().username),
        ("dbname", "postgres"),
        ("connect_timeout", "5"),
    ])
}

/// A sibling path of the data directory with a suffix (same filesystem, so renames are atomic).
pub fn sibling(data_dir: &Path, suffix: &str) -> PathBuf {
    let mut s = data_dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PostgresConfig {
        let mut c = PostgresConfig::new("127.0.0.1:5433", "/srv/pg/data");
        c.parameters.insert("port".into(), "9999".into());
        c.parameters.insert("shared_buffers".into(), "16MB".into());
        c.parameters.insert("wal_log_hints".into(), "on".into());
        c
    }

    fn params(c: &PostgresConfig) -> BTreeMap<String, String> {
        c.parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    }

    #[test]
    fn renders_standby_settings_and_keeps_derived_ones() {
        let text = render(
            &cfg(),
            &params(&cfg()),
            &ConfRole::Standby {
                primary_conninfo: Some("host=h port=1 password='it\\'s'".into()),
            },
        );
        assert!(text.starts_with(MARKER));
        assert!(text.contains("port = 5433\n"));
        assert!(!text.contains("9999"));
        assert!(text.contains("shared_buffers = '16MB'"));
        assert!(text.contains("wal_log_hints = 'on'"));
        assert!(text.contains("unix_socket_directories = '/srv/pg/data.sock'"));
        assert!(text.contains("recovery_target_timeline = 'latest'"));
        let primary = render(&cfg(), &params(&cfg()), &ConfRole::Primary);
        assert!(!primary.contains("primary_conninfo"));
    }

    #[test]
    fn reads_back_the_conninfo_it_wrote() {
        let dir = std::env::temp_dir().join(format!("pgconf-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("postgresql.conf"), "original = 1\n").unwrap();
        let mut c = cfg();
        c.data_dir = dir.clone();
        let ci = "host=h port=1 user=r password='a\\'b''c'".to_string();
        prepare(
            &c,
            &params(&c),
            &ConfRole::Standby {
                primary_conninfo: Some(ci.clone()),
            },
        )
        .unwrap();
        assert_eq!(current_primary_conninfo(&c), Some(ci));
        assert_eq!(
            fs::read_to_string(dir.join("postgresql.base.conf")).unwrap(),
            "original = 1\n"
        );
        assert!(dir.join("standby.signal").exists());
        prepare(&c, &params(&c), &ConfRole::Primary).unwrap();
        assert!(!dir.join("standby.signal").exists());
        assert_eq!(
            fs::read_to_string(dir.join("postgresql.base.conf")).unwrap(),
            "original = 1\n"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
