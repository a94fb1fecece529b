//! The adapter itself: one local PostgreSQL server driven through `pg_ctl` and SQL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patroni_core::{DataDirState, DbError, Member, StartRole, StopMode};

use crate::command::{CommandOutput, CommandRunner, CommandSpec};
use crate::conf::{self, ConfRole};
use crate::config::{InitdbOption, PgConfigError, PostgresConfig};
use crate::conninfo::member_endpoint;
use crate::datadir::{self, chown, file_len, live_postmaster, log_tail, ProcessId};
use crate::methods::{BootstrapPlan, ReplicaMethods};
use crate::settings::Settings;
use crate::sql::{Row, Sql};

/// Programs that refuse to run as root or would leave root-owned data behind.
const SERVER_PROGRAMS: [&str; 5] = ["initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "postgres"];

/// Extra seconds the runner waits beyond `pg_ctl -t`, so `pg_ctl` reports its own timeout first.
const GRACE: Duration = Duration::from_secs(5);

/// The server's own words for why it did not start: its FATAL line, after the configuration
/// complaints it logs first (a bad parameter is a LOG line followed by "contains errors").
fn start_failure_reason(log_tail: &str) -> Option<String> {
    let strip = |l: &str| l.trim().to_string();
    let lines: Vec<&str> = log_tail.lines().collect();
    let fatal = lines
        .iter()
        .rposition(|l| l.contains("FATAL:") || l.contains("PANIC:"))?;
    let mut parts: Vec<String> = lines[..fatal]
        .iter()
        .filter(|l| {
            l.contains("parameter") || l.contains("syntax error") || l.contains("could not")
        })
        .map(|l| strip(l))
        .collect();
    parts.push(strip(lines[fatal]));
    Some(parts.join("; "))
}

/// One local PostgreSQL server: configuration, the runner every command goes through, and a SQL session.
pub struct Postgres {
    name: String,
    cfg: PostgresConfig,
    initdb: Vec<InitdbOption>,
    /// The cluster's name, passed to custom methods as `--scope=`.
    scope: String,
    replica_methods: ReplicaMethods,
    bootstrap_plan: BootstrapPlan,
    runner: Arc<dyn CommandRunner>,
    pub(crate) sql: Sql,
    /// Log length when the server was last started or pointed at a leader: older lines are history.
    log_mark: Mutex<u64>,
    /// The postmaster last seen running: it can still be found (and stopped) when its data
    /// directory, and the `postmaster.pid` in it, can no longer be read.
    postmaster: Mutex<Option<ProcessId>>,
    /// The cluster's parameters and the control file's floors (see [`crate::settings`]).
    pub(crate) settings: Mutex<Settings>,
    /// `/config`'s `postgresql.use_pg_rewind`, as last handed over (the node's own setting wins).
    cluster_use_pg_rewind: AtomicBool,
    /// How far a running clone or rebuild has got.
    pub(crate) copy_meter: crate::copy_meter::CopyMeter,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("name", &self.name)
            .field("data_dir", &self.cfg.data_dir)
            .finish()
    }
}

impl Postgres {
    /// An adapter for member `name` (its `application_name` upstream), after checking the configuration.
    pub fn new(
        name: impl Into<String>,
        cfg: PostgresConfig,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<Self, PgConfigError> {
        cfg.validate()?;
        let name = name.into();
        if name.is_empty() {
            return Err(PgConfigError {
                field: "name".into(),
                reason: "the member name must not be empty".into(),
            });
        }
        let mark = file_len(&cfg.log_file());
        Ok(Postgres {
            name,
            sql: Sql::new(&cfg),
            cfg,
            initdb: Vec::new(),
            scope: String::new(),
            replica_methods: ReplicaMethods::default(),
            bootstrap_plan: BootstrapPlan::default(),
            runner,
            log_mark: Mutex::new(mark),
            postmaster: Mutex::new(None),
            settings: Mutex::new(Settings::default()),
            cluster_use_pg_rewind: AtomicBool::new(false),
            copy_meter: Default::default(),
        })
    }

    /// Sets the `bootstrap.initdb` options used by [`bootstrap`](patroni_core::Database::bootstrap).
    pub fn with_initdb(mut self, options: Vec<InitdbOption>) -> Self {
        self.initdb = options;
        self
    }

    pub(crate) fn initdb_options(&self) -> &[InitdbOption] {
        &self.initdb
    }

    /// Sets Patroni's custom methods: how replicas are created (`create_replica_methods`), how
    /// a new cluster is made (`bootstrap.method`, `post_bootstrap`), and the `scope` they are told.
    pub fn with_methods(
        mut self,
        scope: impl Into<String>,
        replica: ReplicaMethods,
        bootstrap: BootstrapPlan,
    ) -> Self {
        self.scope = scope.into();
        self.replica_methods = replica;
        self.bootstrap_plan = bootstrap;
        self
    }

    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    pub(crate) fn replica_methods(&self) -> &ReplicaMethods {
        &self.replica_methods
    }

    pub(crate) fn bootstrap_plan(&self) -> &BootstrapPlan {
        &self.bootstrap_plan
    }

    /// The configuration.
    pub fn config(&self) -> &PostgresConfig {
        &self.cfg
    }

    /// Whether a diverged standby is rewound with `pg_rewind`: the node's own `use_pg_rewind`
    /// when set, else the cluster's, as Patroni merges them.
    pub fn use_pg_rewind(&self) -> bool {
        self.cfg
            .use_pg_rewind
            .unwrap_or_else(|| self.cluster_use_pg_rewind.load(Ordering::Relaxed))
    }

    /// Takes the cluster's `postgresql.use_pg_rewind` (from `/config`, or `bootstrap.dcs` before
    /// there is one), so a change applies from the next rebuild without a restart of the agent.
    /// Returns whether the value in force changed.
    pub fn set_use_pg_rewind(&self, cluster: bool) -> bool {
        let before = self.use_pg_rewind();
        self.cluster_use_pg_rewind.store(cluster, Ordering::Relaxed);
        let now = self.use_pg_rewind();
        if now != before {
            tracing::info!(
                "use_pg_rewind is now {} (from the dynamic configuration)",
                if now { "on" } else { "off" }
            );
        }
        now != before
    }

    /// The member name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The live postmaster's pid, if one runs for this data directory.
    pub fn postmaster_pid(&self) -> Option<u32> {
        live_postmaster(&self.cfg.data_dir).map(|p| p.pid)
    }

    /// Remembers the postmaster `postmaster.pid` names, for when the file cannot be read again.
    pub(crate) fn remember_postmaster(&self, pid: u32) {
        if let Some(id) = ProcessId::of(pid) {
            *self.postmaster.lock().expect("postmaster lock") = Some(id);
        }
    }

    /// The postmaster last seen, if that very process still runs.
    pub(crate) fn known_postmaster(&self) -> Option<ProcessId> {
        let known = *self.postmaster.lock().expect("postmaster lock");
        known.filter(ProcessId::is_alive)
    }

    /// Runs SQL as the agent's superuser, bounded by `pg_ctl_timeout`; rows come back as text.
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, DbError> {
        self.sql.query(sql).await
    }

    /// The last lines of the server log since the last start.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.cfg.log_file(), self.log_mark(), lines)
    }

    pub(crate) fn log_mark(&self) -> u64 {
        *self.log_mark.lock().expect("log mark lock")
    }

    pub(crate) fn set_log_mark(&self) {
        *self.log_mark.lock().expect("log mark lock") = file_len(&self.cfg.log_file());
    }

    /// A command for a PostgreSQL program, as the server's OS user with C locale and our pgpass file.
    pub(crate) fn spec(&self, program: &str, args: Vec<String>, timeout: Duration) -> CommandSpec {
        self.spec_for(self.cfg.binary(program), args, timeout)
    }

    /// A user's command (`argv[0]` as written, looked up in `PATH`), run like the server programs.
    pub(crate) fn user_spec(&self, argv: &[String], timeout: Duration) -> CommandSpec {
        let (program, args) = argv.split_first().expect("a command has a program");
        let mut spec = self.spec_for(program.into(), args.to_vec(), timeout);
        spec.kill_group_on_cancel = true;
        spec
    }

    fn spec_for(
        &self,
        program: std::path::PathBuf,
        args: Vec<String>,
        timeout: Duration,
    ) -> CommandSpec {
        let mut spec = CommandSpec::new(program, args, timeout);
        spec.env = vec![
            ("LC_ALL".into(), "C".into()),
            ("PGPASSFILE".into(), self.cfg.pgpass().display().to_string()),
            ("PGCONNECT_TIMEOUT".into(), "5".into()),
        ];
        spec.run_as = self.cfg.run_as;
        spec.cwd = self.cfg.data_dir.parent().map(|p| p.to_path_buf());
        spec
    }

    /// Runs a prepared command as the server's OS user; the server programs refuse root.
    pub(crate) async fn run_spec(
        &self,
        spec: CommandSpec,
    ) -> Result<(String, CommandOutput), DbError> {
        let program = spec
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if spec.run_as.is_none()
            && SERVER_PROGRAMS.contains(&program.as_str())
            && datadir::current_euid() == 0
        {
            return Err(DbError::Unsupported(format!(
                "{program} refuses to run as root: run the agent as the database's OS user, or set run_as"
            )));
        }
        let out = self.runner.run(&spec).await?;
        Ok((spec.command_line(), out))
    }

    /// Runs a program and fails with [`DbError::CommandFailed`] on a non-zero exit.
    pub(crate) async fn run_checked(
        &self,
        program: &str,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<CommandOutput, DbError> {
        self.run_spec_checked(self.spec(program, args, timeout))
            .await
    }

    /// Runs a prepared command and fails with [`DbError::CommandFailed`] on a non-zero exit.
    pub(crate) async fn run_spec_checked(
        &self,
        spec: CommandSpec,
    ) -> Result<CommandOutput, DbError> {
        let (command, out) = self.run_spec(spec).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(DbError::CommandFailed {
                command,
                status: out.status_text(),
                output: out.combined().trim().to_string(),
            })
        }
    }

    fn data_dir_arg(&self) -> String {
        self.cfg.data_dir.display().to_string()
    }

    fn pg_ctl_args(&self, verb: &str) -> Vec<String> {
        vec![
            verb.into(),
            "-D".into(),
            self.data_dir_arg(),
            "-w".into(),
            "-t".into(),
            self.cfg.pg_ctl_timeout.to_string(),
        ]
    }

    /// Writes our configuration files for `role` (the data directory must exist).
    pub(crate) fn prepare(&self, role: &ConfRole) -> Result<(), DbError> {
        match datadir::data_dir_state(&self.cfg.data_dir) {
            DataDirState::Initialized => {}
            DataDirState::Empty => {
                return Err(DbError::Unsupported(format!(
                    "{} holds no cluster yet: bootstrap or clone first",
                    self.cfg.data_dir.display()
                )))
            }
            DataDirState::Unreadable(why) => return Err(DbError::Io(why)),
        }
        datadir::check_owner(&self.cfg.data_dir, self.cfg.run_as)?;
        if matches!(
            role,
            ConfRole::Standby {
                primary_conninfo: Some(_)
            }
        ) {
            // `primary_conninfo` names the password file instead of carrying the password.
            conf::write_pgpass(&self.cfg)?;
        }
        conf::prepare(&self.cfg, &self.run_parameters(role), role)
    }

    /// The managed-config role for a start request, resolving the upstream's conninfo.
    pub(crate) fn conf_role(&self, role: &StartRole) -> Result<ConfRole, DbError> {
        Ok(match role {
            StartRole::Primary => ConfRole::Primary,
            StartRole::Standby { upstream: None } => ConfRole::Standby {
                primary_conninfo: None,
            },
            StartRole::Standby {
                upstream: Some(leader),
            } => ConfRole::Standby {
                primary_conninfo: Some(self.upstream_conninfo(leader)?),
            },
        })
    }

    pub(crate) fn upstream_conninfo(&self, leader: &Member) -> Result<String, DbError> {
        let ep = member_endpoint(leader)?;
        Ok(conf::replication_conninfo(&self.cfg, &self.name, &ep))
    }

    /// Starts the server with the files as they are and waits until it accepts connections (or,
    /// as a standby, read-only ones); a server that does not come up fails with its log.
    ///
    /// `postgres` runs as our own child (as Patroni runs it), not through `pg_ctl start`: a killed
    /// server is then reaped by us at once, where an orphan waits for init, sometimes for seconds,
    /// and its zombie's pid in `postmaster.pid` keeps the next start from running. Readiness is
    /// read from `postmaster.pid` every 20 ms, where `pg_ctl -w` looks every 100 ms.
    pub(crate) async fn pg_start(&self) -> Result<(), DbError> {
        if live_postmaster(&self.cfg.data_dir).is_some() {
            return Ok(());
        }
        datadir::check_owner(&self.cfg.data_dir, self.cfg.run_as)?;
        if self.cfg.run_as.is_none() && datadir::current_euid() == 0 {
            return Err(DbError::Unsupported(
                "postgres refuses to run as root: run the agent as the database's OS user, or set run_as".into(),
            ));
        }
        self.wait_for_reaped_postmaster().await;
        let log = self.cfg.log_file();
        if !log.exists() {
            datadir::write_file(&log, "", 0o600, self.cfg.run_as)?;
        }
        chown(&log, self.cfg.run_as)?;
        let socket_dir = self.cfg.socket_dir();
        if !socket_dir.exists() {
            datadir::ensure_dir(&socket_dir, self.cfg.run_as)?;
        }
        self.set_log_mark();
        let mut args = vec!["-D".to_string(), self.data_dir_arg()];
        args.extend(conf::config_file_option(&self.cfg).into_iter().flatten());
        let spec = self.spec("postgres", args, self.cfg.timeout());
        let command = spec.command_line();
        let spawned = self.runner.spawn_server(&spec, &log).await;
        self.sql.reset().await;
        let failed = |reason: String| {
            let tail = self.log_tail(20);
            DbError::StartFailed {
                reason: start_failure_reason(&tail).unwrap_or(reason),
                log_tail: tail,
            }
        };
        let pid = spawned.map_err(|e| failed(e.to_string()))?;
        // Known from this instant: a start cancelled before `postmaster.pid` is written (a lost
        // lock, a shutdown) still leaves a server a stop must find.
        self.remember_postmaster(pid);
        let deadline = tokio::time::Instant::now() + self.cfg.timeout();
        loop {
            if let Some(p) = datadir::read_pid_file(&self.cfg.data_dir) {
                if p.pid == pid && matches!(p.status.as_str(), "ready" | "standby") {
                    return Ok(());
                }
            }
            if !datadir::process_alive(pid) {
                return Err(failed(format!("`{command}` exited during start-up")));
            }
            if tokio::time::Instant::now() >= deadline {
                // Still recovering (or waiting for WAL as a standby): it lives on.
                return Err(DbError::Timeout {
                    command,
                    limit: self.cfg.timeout(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A killed postmaster stays a zombie until init reaps it, and PostgreSQL takes a zombie's pid
    /// in `postmaster.pid` for a live server: give init a moment rather than fail the start.
    async fn wait_for_reaped_postmaster(&self) {
        let Some(stale) = datadir::read_pid_file(&self.cfg.data_dir) else {
            return;
        };
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", stale.pid));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        // Only a zombie is worth waiting for; a live process with that pid is somebody else's.
        while proc_dir.exists()
            && !datadir::process_alive(stale.pid)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `pg_ctl stop`; a server that is not running counts as stopped. When the data directory
    /// (and so `postmaster.pid`) cannot be read, the postmaster last seen is signalled directly:
    /// a server must never outlive a stop because its files went away under it.
    pub(crate) async fn pg_stop(&self, mode: StopMode) -> Result<(), DbError> {
        if live_postmaster(&self.cfg.data_dir).is_none() {
            return match self.known_postmaster() {
                Some(id) => self.signal_stop(id, mode).await,
                None => Ok(()),
            };
        }
        let mut args = self.pg_ctl_args("stop");
        args.push("-m".into());
        args.push(
            match mode {
                StopMode::Fast => "fast",
                StopMode::Immediate => "immediate",
            }
            .into(),
        );
        let result = self
            .run_checked("pg_ctl", args, self.cfg.timeout() + GRACE)
            .await;
        self.sql.reset().await;
        match result {
            Ok(_) => Ok(()),
            Err(_) if live_postmaster(&self.cfg.data_dir).is_none() => {
                match self.known_postmaster() {
                    Some(id) => self.signal_stop(id, mode).await,
                    None => Ok(()),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Stops a postmaster by signal, as `pg_ctl stop` would (SIGINT fast, SIGQUIT immediate),
    /// then SIGKILL to it and its backends when it does not go within `pg_ctl_timeout`.
    async fn signal_stop(&self, id: ProcessId, mode: StopMode) -> Result<(), DbError> {
        let signal = match mode {
            StopMode::Fast => "INT",
            StopMode::Immediate => "QUIT",
        };
        self.kill(signal, id.pid).await;
        if self.wait_gone(id, self.cfg.timeout()).await {
            self.sql.reset().await;
            return Ok(());
        }
        let backends = id.children();
        self.kill("KILL", id.pid).await;
        for pid in backends {
            if let Some(child) = ProcessId::of(pid) {
                self.kill("KILL", child.pid).await;
            }
        }
        self.sql.reset().await;
        if self.wait_gone(id, GRACE).await {
            Ok(())
        } else {
            Err(DbError::CommandFailed {
                command: format!("kill -s KILL {}", id.pid),
                status: "still running".into(),
                output: format!("postmaster {} survived SIGKILL", id.pid),
            })
        }
    }

    /// `kill -s SIGNAL -- PID` as the server's OS user, bounded like every command.
    async fn kill(&self, signal: &str, pid: u32) {
        let mut spec = CommandSpec::new(
            "kill",
            ["-s", signal, "--", &pid.to_string()],
            Duration::from_secs(5),
        );
        spec.run_as = self.cfg.run_as;
        let _ = self.runner.run(&spec).await;
    }

    /// Waits up to `limit` for `id` to exit.
    async fn wait_gone(&self, id: ProcessId, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while id.is_alive() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Whether the running server is a standby (`None` when not running or not answering).
    pub(crate) async fn in_recovery(&self) -> Option<bool> {
        live_postmaster(&self.cfg.data_dir)?;
        let rows = self.query("SELECT pg_is_in_recovery()").await.ok()?;
        rows.first()
            .and_then(|r| r.first().cloned().flatten())
            .map(|v| v == "t")
    }

    pub(crate) async fn start_impl(&self, role: &StartRole) -> Result<(), DbError> {
        if live_postmaster(&self.cfg.data_dir).is_some() {
            match (role, self.in_recovery().await) {
                (StartRole::Primary, Some(false)) => return Ok(()),
                (
                    StartRole::Standby {
                        upstream: Some(leader),
                    },
                    Some(true),
                ) => {
                    return self.follow_impl(leader).await;
                }
                (StartRole::Standby { upstream: None }, Some(true)) => {
                    return self.stream_from_nobody().await
                }
                _ => self.pg_stop(StopMode::Fast).await?,
            }
        }
        let conf_role = self.conf_role(role)?;
        self.prepare(&conf_role)?;
        self.pg_start().await
    }

    /// A running standby asked to have no upstream (`nostream`): drop `primary_conninfo` by
    /// reload, leaving replay to `restore_command`; nothing to do when it has none.
    async fn stream_from_nobody(&self) -> Result<(), DbError> {
        if conf::current_primary_conninfo(&self.cfg).is_none_or(|c| c.is_empty()) {
            return Ok(());
        }
        self.prepare(&ConfRole::Standby {
            primary_conninfo: None,
        })?;
        self.set_log_mark();
        self.reload_impl().await
    }

    pub(crate) async fn restart_impl(&self) -> Result<(), DbError> {
        self.pg_stop(StopMode::Fast).await?;
        self.pg_start().await
    }

    pub(crate) async fn reload_impl(&self) -> Result<(), DbError> {
        let args = vec!["reload".into(), "-D".into(), self.data_dir_arg()];
        self.run_checked("pg_ctl", args, self.cfg.timeout()).await?;
        Ok(())
    }

    pub(crate) async fn promote_impl(&self) -> Result<(), DbError> {
        match self.in_recovery().await {
            Some(false) => return Ok(()),
            None if live_postmaster(&self.cfg.data_dir).is_none() => {
                return Err(DbError::NotEffective {
                    action: "promote".into(),
                    observed: "not running".into(),
                })
            }
            _ => {}
        }
        let args = self.pg_ctl_args("promote");
        self.run_checked("pg_ctl", args, self.cfg.timeout() + GRACE)
            .await?;
        if self.in_recovery().await != Some(false) {
            return Err(DbError::NotEffective {
                action: "promote".into(),
                observed: "still in recovery".into(),
            });
        }
        // The control file carries the new timeline only after a checkpoint; pg_rewind against
        // this server reads it from there, so old primaries can rewind right away.
        self.query("CHECKPOINT").await?;
        // Later restarts must come up as primary whatever the old conninfo said.
        let role = ConfRole::Primary;
        conf::prepare(&self.cfg, &self.run_parameters(&role), &role)
    }

    pub(crate) async fn demote_impl(&self, mode: StopMode) -> Result<(), DbError> {
        self.pg_stop(mode).await?;
        self.prepare(&ConfRole::Standby {
            primary_conninfo: None,
        })?;
        self.pg_start().await
    }

    pub(crate) async fn follow_impl(&self, leader: &Member) -> Result<(), DbError> {
        let conninfo = self.upstream_conninfo(leader)?;
        let role = ConfRole::Standby {
            primary_conninfo: Some(conninfo.clone()),
        };
        match self.in_recovery().await {
            Some(true) => {
                if conf::current_primary_conninfo(&self.cfg).as_deref() == Some(conninfo.as_str()) {
                    return Ok(());
                }
                self.prepare(&role)?;
                // primary_conninfo is reloadable since PostgreSQL 13: no restart needed.
                self.set_log_mark();
                self.reload_impl().await
            }
            Some(false) => {
                self.pg_stop(StopMode::Fast).await?;
                self.prepare(&role)?;
                self.pg_start().await
            }
            None => {
                if live_postmaster(&self.cfg.data_dir).is_some() {
                    self.pg_stop(StopMode::Fast).await?;
                }
                self.prepare(&role)?;
                self.pg_start().await
            }
        }
    }

    pub(crate) async fn set_sync_impl(
        &self,
        names: &[String],
        count: u32,
        quorum: bool,
    ) -> Result<(), DbError> {
        let value = sync_standby_names(names, count, quorum);
        // ALTER SYSTEM refuses to run inside a transaction block, so it goes alone.
        self.query(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = {}",
            crate::sql::literal(&value)
        ))
        .await?;
        self.query("SELECT pg_reload_conf()").await?;
        // The reload is asynchronous; the caller records the sync state next, so wait until it applies.
        // The backends pick the reload up within a millisecond or two: the first polls come
        // soon, so a promotion that waits on this is not held up by a fixed step.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut step = Duration::from_millis(1);
        loop {
            let rows = self.query("SHOW synchronous_standby_names").await?;
            let now = rows.first().and_then(|r| r.first().cloned().flatten());
            if now.as_deref() == Some(value.as_str()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(DbError::NotEffective {
                    action: format!("synchronous_standby_names = '{value}'"),
                    observed: format!("still {:?} after reload", now.unwrap_or_default()),
                });
            }
            tokio::time::sleep(step).await;
            step = (step * 2).min(Duration::from_millis(20));
        }
    }
}

/// `synchronous_standby_names` for `count` of `names`: `FIRST` in order, or `ANY` with `quorum`
/// (quorum commit); empty when nobody is waited for.
fn sync_standby_names(names: &[String], count: u32, quorum: bool) -> String {
    if names.is_empty() {
        return String::new();
    }
    let list: Vec<String> = names.iter().map(|n| crate::sql::ident(n)).collect();
    let method = if quorum { "ANY" } else { "FIRST" };
    format!("{method} {} ({})", count.max(1), list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::RecordingRunner;
    use patroni_core::Database;
    use std::path::PathBuf;

    fn adapter(runner: Arc<RecordingRunner>) -> (Postgres, PathBuf) {
        // One directory per test: tests run side by side and each removes its own at the end.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pg-cmd-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cfg = PostgresConfig::new("127.0.0.1:5499", dir.join("data"));
        cfg.bin_dir = Some("/pg/bin".into());
        cfg.pg_ctl_timeout = 7;
        cfg.run_as = Some((1234, 5678));
        (Postgres::new("n1", cfg, runner).unwrap(), dir)
    }

    #[tokio::test]
    async fn issues_exact_commands_as_the_server_user() {
        let runner = Arc::new(RecordingRunner::new());
        let (pg, dir) = adapter(runner.clone());
        runner.reply_stdout(
            0,
            "Database system identifier:           7441612338446096478\n\
             Database cluster state:               shut down\n\
             Latest checkpoint's TimeLineID:       3\n",
        );
        let cd = pg.controldata().await.unwrap();
        assert_eq!((cd.cleanly_shut_down(), cd.timeline()), (true, Some(3)));
        pg.reload().await.unwrap();
        // No postmaster: stopping issues nothing, and starting an empty directory is refused typed.
        pg.stop(StopMode::Fast).await.unwrap();
        let err = pg.start(&StartRole::Primary).await.unwrap_err();
        assert!(matches!(err, DbError::Unsupported(_)), "{err}");
        let data = dir.join("data").display().to_string();
        assert_eq!(
            runner.command_lines(),
            [
                format!("/pg/bin/pg_controldata -D {data}"),
                format!("/pg/bin/pg_ctl reload -D {data}"),
            ]
        );
        let calls = runner.calls();
        assert!(calls.iter().all(|c| c.run_as == Some((1234, 5678))));
        assert!(calls[1].env.contains(&("LC_ALL".into(), "C".into())));
        assert_eq!(calls[1].timeout, Duration::from_secs(7));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The cluster's `use_pg_rewind` handed over at run time decides the next rebuild (a copy,
    /// then a rewind once it is switched on), and the node's own setting wins over it.
    #[tokio::test]
    async fn use_pg_rewind_follows_the_cluster_unless_the_node_sets_it() {
        let runner = Arc::new(RecordingRunner::new());
        let (pg, dir) = adapter(runner.clone());
        let leader = Member::new(
            "leader",
            patroni_core::MemberData {
                conn_url: "postgres://127.0.0.1:5498/postgres".into(),
                ..Default::default()
            },
        );
        let first_program = |runner: &RecordingRunner, from: usize| {
            let calls = runner.calls();
            calls.get(from).map(|c| c.program.display().to_string())
        };
        // Off: an automatic rebuild copies everything.
        assert!(!pg.use_pg_rewind());
        let _ = pg
            .rebuild(&leader, patroni_core::RebuildMode::Auto, 2)
            .await;
        assert_eq!(
            first_program(&runner, 0).as_deref(),
            Some("/pg/bin/pg_basebackup")
        );
        // Switched on in /config: the next rebuild rewinds in place (the control file allows it).
        assert!(pg.set_use_pg_rewind(true));
        assert!(!pg.set_use_pg_rewind(true));
        assert!(pg.use_pg_rewind());
        let from = runner.calls().len();
        runner.reply_stdout(
            0,
            "Database system identifier:           7441612338446096478\n\
             Database cluster state:               shut down\n\
             wal_log_hints setting:                on\n",
        );
        let _ = pg
            .rebuild(&leader, patroni_core::RebuildMode::Auto, 2)
            .await;
        let programs: Vec<String> = runner.calls()[from..]
            .iter()
            .map(|c| c.program.display().to_string())
            .collect();
        assert_eq!(
            programs[..2],
            ["/pg/bin/pg_controldata", "/pg/bin/pg_rewind"]
        );
        // Switched off again: back to a copy.
        assert!(pg.set_use_pg_rewind(false));
        assert!(!pg.use_pg_rewind());
        std::fs::remove_dir_all(&dir).unwrap();
        // The node's own setting wins either way.
        for local in [false, true] {
            let (mut pg, dir) = adapter(Arc::new(RecordingRunner::new()));
            pg.cfg.use_pg_rewind = Some(local);
            for cluster in [false, true] {
                pg.set_use_pg_rewind(cluster);
                assert_eq!(pg.use_pg_rewind(), local);
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[tokio::test]
    async fn a_failing_command_is_typed_with_its_output() {
        let runner = Arc::new(RecordingRunner::new());
        let (pg, dir) = adapter(runner.clone());
        runner.reply(Ok(CommandOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: "pg_ctl: PID file does not exist\n".into(),
        }));
        match pg.reload().await.unwrap_err() {
            DbError::CommandFailed { status, output, .. } => {
                assert_eq!(status, "exit code 1");
                assert_eq!(output, "pg_ctl: PID file does not exist");
            }
            other => panic!("{other}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn start_failure_reason_names_the_bad_setting() {
        let tail = "2026-11-26 06:11:36.058 UTC [1] LOG:  invalid value for parameter \"shared_buffers\": \"lots\"\n\
                    2026-11-26 06:11:36.058 UTC [1] FATAL:  configuration file \"/d/postgresql.conf\" contains errors";
        let reason = start_failure_reason(tail).unwrap();
        assert!(
            reason.contains("shared_buffers") && reason.contains("contains errors"),
            "{reason}"
        );
        assert_eq!(start_failure_reason("LOG:  database system is ready"), None);
    }

    #[test]
    fn synchronous_standby_names_first_or_any() {
        let names = vec!["b".to_string(), "C".to_string()];
        assert_eq!(
            sync_standby_names(&names, 1, false),
            "FIRST 1 (\"b\", \"C\")"
        );
        assert_eq!(sync_standby_names(&names, 2, true), "ANY 2 (\"b\", \"C\")");
        assert_eq!(sync_standby_names(&[], 0, true), "");
    }
}
