//! Making a new cluster: `initdb` or the user's custom bootstrap command (a restore, with
//! recovery settings to replay archived WAL), then the roles and `post_bootstrap`.
//!
//! A bootstrap that fails at any step stops the server and leaves the data directory empty, so
//! this or another member can try again (Patroni removes the directory and releases `/initialize`).

use std::collections::BTreeMap;
use std::time::Duration;

use patroni_core::{DbError, StopMode};

use crate::conf::ConfRole;
use crate::conninfo::conninfo;
use crate::datadir::{self, ensure_dir, remove_file, write_file};
use crate::methods::CustomBootstrap;
use crate::sql::{ident, literal};
use crate::{conf, Postgres};

/// How often the end of a custom bootstrap's recovery is looked for.
const RECOVERY_POLL: Duration = Duration::from_millis(500);

impl Postgres {
    pub(crate) async fn bootstrap_impl(&self) -> Result<(), DbError> {
        self.require_empty("bootstrap")?;
        let cfg = self.config();
        ensure_dir(&cfg.data_dir, cfg.run_as)?;
        datadir::check_owner(&cfg.data_dir, cfg.run_as)?;
        let custom = self.bootstrap_plan().custom.clone();
        let made = async {
            match &custom {
                None => self.initdb_and_start().await?,
                Some(c) => self.restore_and_recover(c).await?,
            }
            if custom.is_some() {
                // The restored cluster's superuser may have another password than ours.
                let su = cfg.authentication.superuser.clone();
                self.create_or_update_role(&su.username, su.password.as_deref(), "SUPERUSER")
                    .await?;
            }
            self.post_bootstrap().await?;
            self.create_roles().await?;
            if custom.is_some() {
                // Our own pg_hba.conf instead of the bootstrap's trust, and no recovery settings.
                self.prepare(&ConfRole::Primary)?;
                self.reload_impl().await?;
            }
            Ok(())
        }
        .await;
        if made.is_err() {
            // A half-made cluster must not be mistaken for a bootstrapped one: leave the directory
            // empty so this or another member can try again (the server log keeps the evidence).
            let _ = self.pg_stop(StopMode::Immediate).await;
            self.empty_data_dir().await;
        }
        made
    }

    /// `initdb`, then a start as primary.
    async fn initdb_and_start(&self) -> Result<(), DbError> {
        let cfg = self.config();
        let su = &cfg.authentication.superuser;
        let mut args = vec![
            "-D".to_string(),
            cfg.data_dir.display().to_string(),
            format!("--username={}", su.username),
            "--auth-local=trust".into(),
            "--auth-host=scram-sha-256".into(),
        ];
        let pwfile = conf::sibling(&cfg.data_dir, ".pwfile");
        if let Some(pw) = &su.password {
            write_file(&pwfile, &format!("{pw}\n"), 0o600, cfg.run_as)?;
            args.push(format!("--pwfile={}", pwfile.display()));
        }
        args.extend(self.initdb_args());
        let result = self.run_checked("initdb", args, self.copy_timeout()).await;
        datadir::remove_file(&pwfile)?;
        result?;
        self.prepare(&ConfRole::Primary)?;
        self.pg_start().await
    }

    fn initdb_args(&self) -> Vec<String> {
        self.initdb_options()
            .iter()
            .flat_map(|o| o.to_args())
            .collect()
    }

    /// The custom bootstrap command fills the data directory; the server then starts with the
    /// configured recovery settings (via `recovery.signal`), or the command's own ones when
    /// `keep_existing_recovery_conf`, and this returns once recovery has ended and it is primary.
    async fn restore_and_recover(&self, method: &CustomBootstrap) -> Result<(), DbError> {
        let cfg = self.config();
        let data_dir = cfg.data_dir.display().to_string();
        let argv = method.argv(self.scope(), &data_dir);
        tracing::info!(method = %method.name, "running custom bootstrap script");
        // The command may copy from a server with our replication role: PGPASSFILE names this.
        conf::write_pgpass(cfg)?;
        let spec = self
            .user_spec(&argv, self.copy_timeout())
            .with_progress(&cfg.data_dir, self.stall_timeout());
        self.run_spec_checked(spec).await?;
        let recovery = cfg.data_dir.join("recovery.signal");
        let standby = cfg.data_dir.join("standby.signal");
        let settings = match &method.recovery_conf {
            Some(settings) => {
                remove_file(&standby)?;
                write_file(&recovery, "", 0o600, cfg.run_as)?;
                settings.clone()
            }
            None if method.keep_existing_recovery_conf => BTreeMap::new(),
            None => {
                remove_file(&standby)?;
                remove_file(&recovery)?;
                BTreeMap::new()
            }
        };
        self.prepare(&ConfRole::Recovery { settings })?;
        // Patroni's custom bootstrap opens local trust: the restored cluster's superuser
        // password is not known until it is set again.
        write_file(
            &cfg.config_dir().join("pg_hba.conf"),
            "# Managed by patroni-rs: local trust while a custom bootstrap recovers.\nlocal all all trust\n",
            0o600,
            cfg.run_as,
        )?;
        self.pg_start().await?;
        self.wait_for_end_of_recovery().await
    }

    /// Waits, bounded like a copy, until the server runs as primary; a server that exits
    /// (a recovery target that was not reached is FATAL) fails with its log.
    async fn wait_for_end_of_recovery(&self) -> Result<(), DbError> {
        let deadline = tokio::time::Instant::now() + self.copy_timeout();
        loop {
            match self.in_recovery().await {
                Some(false) => return Ok(()),
                None if datadir::live_postmaster(&self.config().data_dir).is_none() => {
                    let tail = self.log_tail(20);
                    return Err(DbError::StartFailed {
                        reason: "the server stopped during recovery after the custom bootstrap"
                            .into(),
                        log_tail: tail,
                    });
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DbError::NotEffective {
                    action: "recovery after the custom bootstrap".into(),
                    observed: format!(
                        "still in recovery after {} s",
                        self.copy_timeout().as_secs()
                    ),
                });
            }
            tokio::time::sleep(RECOVERY_POLL).await;
        }
    }

    /// The superuser's local connection string, as Patroni hands it to `post_bootstrap`.
    fn local_connstring(&self) -> String {
        let cfg = self.config();
        let host = if cfg.use_unix_socket {
            cfg.socket_dir().display().to_string()
        } else {
            cfg.local_tcp_host()
        };
        conninfo(&[
            ("dbname", "postgres"),
            ("user", &cfg.authentication.superuser.username),
            ("host", &host),
            ("port", &cfg.port().unwrap_or(5432).to_string()),
        ])
    }

    /// `bootstrap.post_bootstrap` with the superuser's connection string as its last argument;
    /// a non-zero exit fails the bootstrap.
    async fn post_bootstrap(&self) -> Result<(), DbError> {
        let Some(command) = &self.bootstrap_plan().post_bootstrap else {
            return Ok(());
        };
        conf::write_pgpass(self.config())?;
        let mut argv = command.clone();
        argv.push(self.local_connstring());
        let mut spec = self.user_spec(&argv, self.copy_timeout());
        spec.env.push((
            "PGOPTIONS".into(),
            "-c synchronous_commit=local -c statement_timeout=0".into(),
        ));
        tracing::info!("running post_bootstrap");
        self.run_spec_checked(spec).await.map(|_| ())
    }

    /// Creates a login role, or (a restored cluster may hold it already) updates it.
    async fn create_or_update_role(
        &self,
        name: &str,
        password: Option<&str>,
        options: &str,
    ) -> Result<(), DbError> {
        // The server stores a SCRAM verifier either way; sending one keeps the password out
        // of the server log (a failed statement is logged with its text) and of our errors.
        let password = match password {
            Some(p) => format!(
                " PASSWORD {}",
                literal(&postgres_protocol::password::scram_sha_256(p.as_bytes()))
            ),
            None => String::new(),
        };
        let with = format!("{options} LOGIN{password}").trim().to_string();
        let role = ident(name);
        let sql = format!(
            "DO $$BEGIN\n  SET LOCAL synchronous_commit = 'local';\n  PERFORM 1 FROM pg_catalog.pg_authid WHERE rolname = {};\n  IF FOUND THEN ALTER ROLE {role} WITH {with};\n  ELSE CREATE ROLE {role} WITH {with};\n  END IF;\nEND;$$",
            literal(name)
        );
        self.query(&sql).await.map(|_| ())
    }

    async fn create_roles(&self) -> Result<(), DbError> {
        let cfg = self.config();
        let su = cfg.authentication.superuser.username.clone();
        if let Some(rep) = &cfg.authentication.replication {
            if rep.username != su {
                self.create_or_update_role(&rep.username, rep.password.as_deref(), "REPLICATION")
                    .await?;
            }
        }
        if let Some(rw) = &cfg.authentication.rewind {
            if rw.username != su {
                self.create_or_update_role(&rw.username, rw.password.as_deref(), "")
                    .await?;
                let role = ident(&rw.username);
                for f in [
                    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                    "pg_catalog.pg_stat_file(text, boolean)",
                    "pg_catalog.pg_read_binary_file(text)",
                    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
                ] {
                    self.query(&format!("GRANT EXECUTE ON FUNCTION {f} TO {role}"))
                        .await?;
                }
            }
        }
        Ok(())
    }
}
