//! Creating a replica's data directory with `create_replica_methods`: each method in order
//! (`pg_basebackup` or a user command) until one succeeds, then a start as standby.

use std::time::Duration;

use patroni_core::{DbError, Member};

use crate::conf::{self, ConfRole};
use crate::conninfo::{conninfo, member_endpoint};
use crate::datadir::{ensure_dir, is_empty_dir};
use crate::methods::{CommandMethod, ReplicaMethod};
use crate::Postgres;

/// Patroni tries `pg_basebackup` this many times, pausing [`BASEBACKUP_PAUSE`] in between.
const BASEBACKUP_ATTEMPTS: u32 = 2;
/// The pause between two `pg_basebackup` attempts.
const BASEBACKUP_PAUSE: Duration = Duration::from_secs(5);

impl Postgres {
    /// The `postgresql.basebackup` options of the configured methods.
    pub(crate) fn basebackup_options(&self) -> &[String] {
        self.replica_methods()
            .methods
            .iter()
            .find_map(|m| match m {
                ReplicaMethod::Basebackup { options } => Some(options.as_slice()),
                ReplicaMethod::Command(_) => None,
            })
            .unwrap_or(&[])
    }

    pub(crate) async fn clone_impl(&self, source: &Member) -> Result<(), DbError> {
        self.create_replica(Some(source)).await
    }

    /// Tries the configured methods in order; with no `source` (no leader runs) only those marked
    /// `no_leader`. On success the server starts as a standby of `source` (or of nobody).
    pub(crate) async fn create_replica(&self, source: Option<&Member>) -> Result<(), DbError> {
        self.require_empty("clone")?;
        let cfg = self.config();
        let upstream = source.map(|s| self.upstream_conninfo(s)).transpose()?;
        let connstring = match source {
            Some(s) => self.method_connstring(s)?,
            None => String::new(),
        };
        ensure_dir(&cfg.data_dir, cfg.run_as)?;
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
        let mut created = false;
        for method in methods {
            let result = match (method, source) {
                (ReplicaMethod::Basebackup { options }, Some(source)) => {
                    self.basebackup_attempts(source, options).await
                }
                (ReplicaMethod::Basebackup { .. }, None) => continue,
                (ReplicaMethod::Command(c), _) => self.replica_command(c, &connstring).await,
            };
            match result {
                Ok(()) => {
                    tracing::info!(method = method.name(), "replica has been created");
                    created = true;
                    break;
                }
                Err(e) => {
                    tracing::error!(method = method.name(), error = %e, "error creating replica");
                    failure = e;
                }
            }
        }
        if !created {
            self.empty_data_dir().await;
            return Err(failure);
        }
        self.prepare(&ConfRole::Standby {
            primary_conninfo: upstream,
        })?;
        self.pg_start().await
    }

    /// `pg_basebackup` into the emptied data directory, tried twice as Patroni does.
    async fn basebackup_attempts(
        &self,
        source: &Member,
        options: &[String],
    ) -> Result<(), DbError> {
        let data_dir = self.config().data_dir.clone();
        let mut attempt = 1;
        loop {
            if !is_empty_dir(&data_dir) {
                self.empty_data_dir().await;
            }
            match self.basebackup(source, &data_dir, options).await {
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

    /// A user's replica command, with the data directory emptied first unless `keep_data`.
    async fn replica_command(
        &self,
        method: &CommandMethod,
        connstring: &str,
    ) -> Result<(), DbError> {
        let cfg = self.config();
        if !is_empty_dir(&cfg.data_dir) && !method.keep_data {
            self.empty_data_dir().await;
        }
        let argv = method.argv(
            self.scope(),
            &cfg.data_dir.display().to_string(),
            connstring,
        );
        let spec = self
            .user_spec(&argv, self.copy_timeout())
            .with_progress(&cfg.data_dir, self.stall_timeout());
        let _measuring = self.copy_meter.measure(
            &format!("replica method {}", method.name),
            cfg.data_dir.clone(),
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
