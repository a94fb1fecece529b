//! Creating a replica's data directory with `create_replica_methods`: each method in order
//! (`pg_basebackup` or a user command) until one succeeds, then a start as standby. A clone fills
//! the data directory itself; a full rebuild fills a staging directory with the same methods.

use std::path::Path;
use std::time::Duration;

use patroni_core::{DbError, Member};

use crate::conf::{self, ConfRole};
use crate::conninfo::{conninfo, member_endpoint};
use crate::datadir::{empty_dir, ensure_dir, is_empty_dir};
use crate::methods::{CommandMethod, ReplicaMethod};
use crate::Postgres;

/// Patroni tries `pg_basebackup` this many times, pausing [`BASEBACKUP_PAUSE`] in between.
const BASEBACKUP_ATTEMPTS: u32 = 2;
/// The pause between two `pg_basebackup` attempts.
const BASEBACKUP_PAUSE: Duration = Duration::from_secs(5);

impl Postgres {
    pub(crate) async fn clone_impl(&self, source: &Member) -> Result<(), DbError> {
        self.create_replica(Some(source)).await
    }

    /// Tries the configured methods in order; with no `source` (no leader runs) only those marked
    /// `no_leader`. On success the server starts as a standby of `source` (or of nobody).
    pub(crate) async fn create_replica(&self, source: Option<&Member>) -> Result<(), DbError> {
        self.require_empty("clone")?;
        let cfg = self.config();
        let upstream = source.map(|s| self.upstream_conninfo(s)).transpose()?;
        ensure_dir(&cfg.data_dir, cfg.run_as)?;
        if let Err(e) = self.run_replica_methods(source, &cfg.data_dir).await {
            self.empty_data_dir().await;
            return Err(e);
        }
        self.prepare(&ConfRole::Standby {
            primary_conninfo: upstream,
        })?;
        self.pg_start().await
    }

    /// Fills `target` (an existing directory: the data directory for a clone, the staging
    /// directory for a rebuild) by the configured methods, each in order until one succeeds, as
    /// Patroni's `create_replica` does; with no `source` only the `no_leader` ones. A method that
    /// exits 0 but leaves no `PG_VERSION` in `target` (it wrote elsewhere) counts as failed.
    /// A `no_params` method is not told where to write, so it may write into the live data
    /// directory: a rebuild (whose `target` is not the data directory) skips it.
    /// On failure `target` may hold what the last method left.
    pub(crate) async fn run_replica_methods(
        &self,
        source: Option<&Member>,
        target: &Path,
    ) -> Result<(), DbError> {
        let cfg = self.config();
        let connstring = match source {
            Some(s) => self.method_connstring(s)?,
            None => String::new(),
        };
        // Every method reads the passwords from PGPASSFILE, a restore from backup too.
        conf::write_pgpass(cfg)?;
        // A standby cluster's remote primary names the methods to copy it with.
        let only: Option<Vec<String>> = source
            .and_then(|s| s.data.extra.get("create_replica_methods"))
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let methods: Vec<&ReplicaMethod> = self
            .replica_methods()
            .methods
            .iter()
            .filter(|m| source.is_some() || m.works_without_leader())
            .filter(|m| {
                only.as_ref()
                    .is_none_or(|o| o.iter().any(|n| n == m.name()))
            })
            .collect();
        let mut failure = DbError::Unsupported(
            "no replica method works without a running leader (none has no_leader set)".into(),
        );
        for method in methods {
            if let ReplicaMethod::Command(c) = method {
                if c.no_params && target != cfg.data_dir {
                    tracing::warn!(
                        method = method.name(),
                        "skipped for a rebuild: with no_params it cannot be pointed at {}",
                        target.display()
                    );
                    continue;
                }
            }
            let result = match (method, source) {
                (ReplicaMethod::Basebackup { options }, Some(source)) => {
                    self.basebackup_attempts(source, target, options).await
                }
                (ReplicaMethod::Basebackup { .. }, None) => continue,
                (ReplicaMethod::Command(c), _) => {
                    self.replica_command(c, target, &connstring).await
                }
            };
            let result = result.and_then(|()| {
                if target.join("PG_VERSION").is_file() {
                    Ok(())
                } else {
                    Err(DbError::NotEffective {
                        action: format!("replica method {}", method.name()),
                        observed: format!("missing from {}", target.display()),
                    })
                }
            });
            match result {
                Ok(()) => {
                    tracing::info!(method = method.name(), "replica has been created");
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(method = method.name(), error = %e, "error creating replica");
                    failure = e;
                }
            }
        }
        Err(failure)
    }

    /// `pg_basebackup` into the emptied `target`, tried twice as Patroni does.
    async fn basebackup_attempts(
        &self,
        source: &Member,
        target: &Path,
        options: &[String],
    ) -> Result<(), DbError> {
        let mut attempt = 1;
        loop {
            if !is_empty_dir(target) {
                empty_target(target).await;
            }
            match self.basebackup(source, target, options).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= BASEBACKUP_ATTEMPTS => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "pg_basebackup failed; trying again in 5 seconds");
                    attempt += 1;
                    tokio::time::sleep(BASEBACKUP_PAUSE).await;
                }
            }
        }
    }

    /// A user's replica command writing into `target` (its `--datadir=`), with `target` emptied
    /// first unless `keep_data`.
    async fn replica_command(
        &self,
        method: &CommandMethod,
        target: &Path,
        connstring: &str,
    ) -> Result<(), DbError> {
        if !is_empty_dir(target) && !method.keep_data {
            empty_target(target).await;
        }
        let argv = method.argv(self.scope(), &target.display().to_string(), connstring);
        let spec = self
            .user_spec(&argv, self.copy_timeout())
            .with_progress(target, self.stall_timeout());
        let _measuring = self.copy_meter.measure(
            &format!("replica method {}", method.name),
            target.to_path_buf(),
        );
        self.run_spec_checked(spec).await.map(|_| ())
    }

    /// The `--connstring=` Patroni gives a replica command: the source's address with the
    /// replication user, the password left to the pgpass file.
    fn method_connstring(&self, source: &Member) -> Result<String, DbError> {
        let cfg = self.config();
        let ep = member_endpoint(source)?;
        Ok(conninfo(&[
            ("dbname", "postgres"),
            ("user", &cfg.replication_user().username),
            ("host", &ep.host),
            ("port", &ep.port.to_string()),
        ]))
    }
}

/// Removes what is in `dir`, keeping `dir` itself; what cannot be removed is logged and left (a
/// method after it then finds a non-empty directory and fails).
pub(crate) async fn empty_target(dir: &Path) {
    if let Err(e) = empty_dir(dir).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot empty {}: {e}", dir.display());
        }
    }
}
