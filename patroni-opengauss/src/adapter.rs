//! [`OpenGauss`]: the `Database` port, executing actions with gs_ctl/gs_guc and verifying each one.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use patroni_core::{
    DataDirState, Database, DbError, DbRole, LocalDb, Member, RebuildMode, StartRole, StopMode,
};
use patroni_postgres::command::{CommandOutput, CommandRunner, CommandSpec, SystemRunner};

use crate::commands::{replication_params, sync_standby_names, Commands, ServerMode};
use crate::config::{passwd_ids, ConfigError, OpenGaussConfig};
use crate::controldata::parse_controldata;
use crate::ctl_output::{parse_ctl, parse_guc, CtlOutcome, CtlReport, Verb};
use crate::observe::{local_db, Facts};
use crate::query::{parse_query, HaState, QueryOutput};
use crate::sql::PgSql;
use crate::sql_rows::{
    named_standbys, term_lsn, SqlSource, SQL_CURRENT_LSN, SQL_REPLICATION, SQL_TERM_LSN,
};
use crate::status::parse_query_lsn;

/// How many lines of the server log a start failure carries.
const LOG_TAIL_LINES: usize = 30;

/// The openGauss adapter for one node.
pub struct OpenGauss {
    config: OpenGaussConfig,
    cmds: Commands,
    runner: Arc<dyn CommandRunner>,
    sql: Arc<dyn SqlSource>,
    known_term: AtomicU64,
    was_primary: AtomicBool,
    last_sql_error: Mutex<Option<DbError>>,
}

/// One observation with the raw HA block kept (Pending is a Standby to the core, not to gs_ctl).
struct Seen {
    db: LocalDb,
    ha: Option<HaState>,
}

impl Seen {
    fn is_pending(&self) -> bool {
        self.ha.as_ref().is_some_and(|h| h.local_role == "Pending")
    }

    fn describe(&self) -> String {
        match &self.ha {
            Some(h) if self.db.process.is_alive() => format!(
                "{:?} as {} ({} / {})",
                self.db.process, h.local_role, h.db_state, h.detail_information
            ),
            _ => format!("{:?}", self.db.process).to_lowercase(),
        }
    }
}

impl OpenGauss {
    /// An adapter running commands through `runner` and SQL through `sql`.
    pub fn new(
        config: OpenGaussConfig,
        runner: Arc<dyn CommandRunner>,
        sql: Arc<dyn SqlSource>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let run_as = resolve_run_as(&config)?;
        let cmds = Commands::new(&config, run_as);
        Ok(OpenGauss {
            config,
            cmds,
            runner,
            sql,
            known_term: AtomicU64::new(0),
            was_primary: AtomicBool::new(false),
            last_sql_error: Mutex::new(None),
        })
    }

    /// The production adapter: real processes, SQL over the Unix socket.
    pub fn system(config: OpenGaussConfig) -> Result<Self, ConfigError> {
        let sql = PgSql::new(
            config.socket_dir(),
            config.port(),
            config.db_user(),
            Duration::from_secs(10),
        );
        Self::new(config, Arc::new(SystemRunner), Arc::new(sql))
    }

    /// The command builder, so callers (and tests) can see the exact command lines.
    pub fn commands(&self) -> &Commands {
        &self.cmds
    }

    /// The highest term this adapter has passed or seen.
    pub fn known_term(&self) -> u64 {
        self.known_term.load(Ordering::SeqCst)
    }

    /// Why the last observation could not use SQL (e.g. `DbError::Auth` with the setting to change),
    /// so the agent can log it: [`observe`](Database::observe) itself never fails.
    pub fn last_sql_error(&self) -> Option<DbError> {
        self.last_sql_error.lock().expect("sql error lock").clone()
    }

    /// Runs `SELECT 1` to check SQL access now, for a clear error at agent start-up.
    pub async fn check_sql(&self) -> Result<(), DbError> {
        self.sql.query("SELECT 1").await.map(|_| ())
    }

    async fn sql(&self, statement: &str) -> Option<crate::sql_rows::SqlRows> {
        let result = self.sql.query(statement).await;
        let mut last = self.last_sql_error.lock().expect("sql error lock");
        match result {
            Ok(rows) => {
                *last = None;
                Some(rows)
            }
            Err(e) => {
                *last = Some(e);
                None
            }
        }
    }

    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, DbError> {
        Ok(self.runner.run(spec).await?)
    }

    fn data_dir_state(&self) -> DataDirState {
        let dir = &self.config.data_dir;
        match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DataDirState::Empty,
            Err(e) => DataDirState::Unreadable(format!("{}: {e}", dir.display())),
            Ok(mut entries) => {
                if entries.next().is_none() {
                    DataDirState::Empty
                } else if dir.join("PG_VERSION").is_file() {
                    DataDirState::Initialized
                } else {
                    DataDirState::Unreadable(format!(
                        "{} is not empty but holds no PG_VERSION",
                        dir.display()
                    ))
                }
            }
        }
    }

    async fn inspect(&self) -> Seen {
        let mut facts = Facts {
            data_dir: self.data_dir_state(),
            known_term: self.known_term(),
            was_primary: self.was_primary.load(Ordering::SeqCst),
            peer_names: self
                .config
                .opengauss
                .peers
                .iter()
                .map(|p| (p.host.clone(), p.name.clone()))
                .collect(),
            ..Facts::default()
        };
        if facts.data_dir != DataDirState::Initialized {
            return Seen {
                db: local_db(&facts),
                ha: None,
            };
        }
        facts.query = match self.run(&self.cmds.query()).await {
            Ok(out) => parse_query(&out.combined()).ok(),
            Err(_) => None,
        };
        if let Ok(out) = self.run(&self.cmds.controldata()).await {
            facts.control = parse_controldata(&out.combined()).ok();
        }
        let mut ha = None;
        match &facts.query {
            Some(QueryOutput::Running(report)) => {
                ha = Some(report.ha.clone());
                if let Some(rows) = self.sql(SQL_TERM_LSN).await {
                    facts.term_lsn = term_lsn(&rows).ok();
                }
                if matches!(report.ha.local_role.as_str(), "Primary" | "Normal") {
                    if let Some(rows) = self.sql(SQL_CURRENT_LSN).await {
                        facts.current_lsn = rows
                            .rows
                            .first()
                            .and_then(|r| r.first().cloned().flatten())
                            .and_then(|v| v.parse().ok());
                    }
                    if let Some(rows) = self.sql(SQL_REPLICATION).await {
                        facts.named = named_standbys(&rows);
                    }
                }
            }
            Some(QueryOutput::NotRunning { .. }) => {
                if let Some(ckpt) = facts.control.as_ref().and_then(|c| c.checkpoint) {
                    if let Ok(out) = self.run(&self.cmds.query_lsn(ckpt)).await {
                        facts.offline_lsn =
                            parse_query_lsn(&out.combined()).ok().map(|o| o.max_lsn);
                    }
                }
            }
            None => {}
        }
        let db = local_db(&facts);
        if let Some(t) = db.timeline {
            self.known_term.fetch_max(t, Ordering::SeqCst);
        }
        if db.is_running_primary() {
            self.was_primary.store(true, Ordering::SeqCst);
        }
        Seen { db, ha }
    }

    /// Writes this node's replication settings: `gs_guc reload` when running, `gs_guc set` otherwise.
    pub async fn configure(&self, running: bool) -> Result<(), DbError> {
        self.guc(running, &replication_params(&self.config)).await
    }

    async fn guc(&self, running: bool, params: &[(String, String)]) -> Result<(), DbError> {
        let spec = self.cmds.guc(running, params);
        let out = self.run(&spec).await?;
        let report = parse_guc(&out.combined());
        if out.success() && report.success && report.failed.unwrap_or(0) == 0 {
            Ok(())
        } else {
            Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: report.messages.join("; "),
            })
        }
    }

    async fn ctl(
        &self,
        verb: Verb,
        spec: &CommandSpec,
    ) -> Result<(CommandOutput, CtlReport), DbError> {
        let out = self.run(spec).await?;
        let report = parse_ctl(verb, &out.combined());
        Ok((out, report))
    }

    async fn log_tail(&self) -> String {
        let path = self.config.log_file();
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(cannot read {}: {e})", path.display()),
        }
    }

    fn peer_of(&self, member: &Member) -> Result<(), DbError> {
        let host = host_of_conn_url(&member.data.conn_url);
        let known = self
            .config
            .opengauss
            .peers
            .iter()
            .any(|p| p.name == member.name || host.as_deref().is_some_and(|h| h == p.host));
        if known {
            Ok(())
        } else {
            Err(DbError::Unsupported(format!(
                "member {} ({}) is not in postgresql.opengauss.peers: openGauss only replicates with \
                 hosts listed in replconninfoN; add it and reload",
                member.name, member.data.conn_url
            )))
        }
    }

    async fn start_mode(&self, mode: ServerMode) -> Result<(), DbError> {
        self.configure(false).await?;
        let spec = self.cmds.start(mode);
        let (out, report) = self.ctl(Verb::Start, &spec).await?;
        if report.outcome == CtlOutcome::StartFailed
            || (!out.success() && report.outcome != CtlOutcome::LockHeld)
        {
            return Err(DbError::StartFailed {
                reason: format!(
                    "`{}` ({}): {}",
                    spec.command_line(),
                    out.status_text(),
                    report.summary()
                ),
                log_tail: self.log_tail().await,
            });
        }
        let seen = self.inspect().await;
        let wanted = match mode {
            ServerMode::Primary => DbRole::Primary,
            ServerMode::Standby | ServerMode::Pending => DbRole::Standby,
        };
        if seen.db.process.is_alive() && seen.db.role == wanted {
            return Ok(());
        }
        Err(DbError::NotEffective {
            action: format!("`{}` ({})", spec.command_line(), report.summary()),
            observed: seen.describe(),
        })
    }

    async fn promote_inner(&self, term: u64, planned: bool) -> Result<(), DbError> {
        self.known_term.fetch_max(term, Ordering::SeqCst);
        let before = self.inspect().await;
        if before.db.is_running_primary() {
            return Ok(());
        }
        if !before.db.process.is_alive() {
            return Err(DbError::NotEffective {
                action: "promote".into(),
                observed: before.describe(),
            });
        }
        let (verb, spec) = if before.is_pending() {
            (Verb::Notify, self.cmds.notify(ServerMode::Primary, term))
        } else if planned {
            (Verb::Switchover, self.cmds.switchover(term))
        } else {
            (Verb::Failover, self.cmds.failover(term))
        };
        let (out, report) = self.ctl(verb, &spec).await?;
        if !out.success() {
            return Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: report.summary(),
            });
        }
        let after = self.inspect().await;
        if after.db.is_running_primary() {
            Ok(())
        } else {
            Err(DbError::NotEffective {
                action: format!("`{}` ({})", spec.command_line(), report.summary()),
                observed: after.describe(),
            })
        }
    }

    async fn rebuild_inner(&self, mode: RebuildMode, term: u64) -> Result<(), DbError> {
        self.known_term.fetch_max(term, Ordering::SeqCst);
        let before = self.inspect().await;
        if before.db.role == DbRole::Primary && before.db.process.is_alive() {
            return Err(DbError::Unsupported(format!(
                "refusing to rebuild {}: it runs as primary; demote it first",
                self.config.name
            )));
        }
        if before.db.process.is_alive() {
            self.stop(StopMode::Fast).await?;
        }
        let spec = self.cmds.build(mode, term);
        let (out, report) = self.ctl(Verb::Build, &spec).await?;
        let after = self.inspect().await;
        let ok = out.success()
            && matches!(report.outcome, CtlOutcome::BuildCompleted { .. })
            && after.db.process.is_alive()
            && after.db.role == DbRole::Standby;
        if ok {
            self.was_primary.store(false, Ordering::SeqCst);
            return Ok(());
        }
        let left = if after.db.process.is_alive() {
            format!("the server is {}", after.describe())
        } else {
            "the server is left STOPPED".to_string()
        };
        if out.success() {
            Err(DbError::NotEffective {
                action: format!("`{}` ({})", spec.command_line(), report.summary()),
                observed: left,
            })
        } else {
            Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: format!("{:?}: {}; {left}", report.outcome, report.summary()),
            })
        }
    }
}

/// `(uid, gid)` to run commands as, when the configured OS user is not the one running the agent.
fn resolve_run_as(config: &OpenGaussConfig) -> Result<Option<(u32, u32)>, ConfigError> {
    let Some(user) = &config.opengauss.os_user else {
        return Ok(None);
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let (uid, gid) = passwd_ids(&passwd, user).ok_or_else(|| ConfigError::Invalid {
        key: "opengauss.os_user".into(),
        problem: format!("no such OS user {user:?} in /etc/passwd"),
    })?;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    Ok((me != Some(uid)).then_some((uid, gid)))
}

/// The host of a `postgres://host:port/db` URL.
fn host_of_conn_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |h| h.0),
    };
    (!host.is_empty()).then(|| host.to_string())
}

#[async_trait]
impl Database for OpenGauss {
    async fn observe(&self) -> LocalDb {
        self.inspect().await.db
    }

    async fn bootstrap(&self) -> Result<(), DbError> {
        if self.data_dir_state() != DataDirState::Empty {
            return Err(DbError::Unsupported(format!(
                "bootstrap needs an empty data directory, {} is not",
                self.config.data_dir.display()
            )));
        }
        let spec = self.cmds.initdb();
        let out = self.run(&spec).await?;
        if !out.success() {
            return Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: out.combined(),
            });
        }
        self.start_mode(ServerMode::Primary).await
    }

    async fn clone_from(&self, source: &Member) -> Result<(), DbError> {
        self.peer_of(source)?;
        if self.data_dir_state() != DataDirState::Empty {
            return Err(DbError::Unsupported(format!(
                "clone needs an empty data directory, {} is not",
                self.config.data_dir.display()
            )));
        }
        let host = host_of_conn_url(&source.data.conn_url).unwrap_or_default();
        let peer_port = self
            .config
            .opengauss
            .peers
            .iter()
            .find(|p| p.name == source.name || p.host == host)
            .map_or(5432, |p| p.port);
        let conninfo = format!(
            "localhost={} localport={} remotehost={} remoteport={}",
            self.config.connect_host(),
            self.config.port() as u32 + 1,
            host,
            peer_port as u32 + 1
        );
        let term = self.known_term().max(1);
        let spec = self.cmds.build_from(term, &conninfo);
        let (out, report) = self.ctl(Verb::Build, &spec).await?;
        if !out.success() || !matches!(report.outcome, CtlOutcome::BuildCompleted { .. }) {
            return Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: report.summary(),
            });
        }
        self.configure(true).await?;
        let seen = self.inspect().await;
        if seen.db.process.is_alive() && seen.db.role == DbRole::Standby {
            Ok(())
        } else {
            Err(DbError::NotEffective {
                action: format!("`{}`", spec.command_line()),
                observed: seen.describe(),
            })
        }
    }

    async fn start(&self, role: &StartRole) -> Result<(), DbError> {
        let mode = match role {
            StartRole::Primary => ServerMode::Primary,
            StartRole::Standby { upstream: Some(m) } => {
                self.peer_of(m)?;
                ServerMode::Standby
            }
            StartRole::Standby { upstream: None } => ServerMode::Pending,
        };
        self.start_mode(mode).await
    }

    async fn stop(&self, mode: StopMode) -> Result<(), DbError> {
        let spec = self.cmds.stop(mode);
        let (out, report) = self.ctl(Verb::Stop, &spec).await?;
        let seen = self.inspect().await;
        if !seen.db.process.is_alive() {
            return Ok(());
        }
        if out.success() {
            Err(DbError::NotEffective {
                action: format!("`{}`", spec.command_line()),
                observed: seen.describe(),
            })
        } else {
            Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: report.summary(),
            })
        }
    }

    async fn restart(&self) -> Result<(), DbError> {
        let before = self.inspect().await;
        if !before.db.process.is_alive() {
            return Err(DbError::Unsupported(
                "restart: the server is not running; start it in a role instead".into(),
            ));
        }
        let mode = match before.db.role {
            DbRole::Primary => ServerMode::Primary,
            _ if before.is_pending() => ServerMode::Pending,
            _ => ServerMode::Standby,
        };
        let spec = self.cmds.restart(mode, StopMode::Fast);
        let (out, report) = self.ctl(Verb::Restart, &spec).await?;
        if !out.success() || report.outcome == CtlOutcome::StartFailed {
            return Err(DbError::StartFailed {
                reason: format!(
                    "`{}` ({}): {}",
                    spec.command_line(),
                    out.status_text(),
                    report.summary()
                ),
                log_tail: self.log_tail().await,
            });
        }
        let after = self.inspect().await;
        if after.db.process.is_alive() && after.db.role == before.db.role {
            Ok(())
        } else {
            Err(DbError::NotEffective {
                action: format!("`{}`", spec.command_line()),
                observed: after.describe(),
            })
        }
    }

    async fn reload(&self) -> Result<(), DbError> {
        let spec = self.cmds.reload();
        let (out, report) = self.ctl(Verb::Reload, &spec).await?;
        if out.success() && report.outcome == CtlOutcome::Signaled {
            Ok(())
        } else {
            Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: report.summary(),
            })
        }
    }

    async fn promote(&self, timeline: u64, planned: bool) -> Result<(), DbError> {
        self.promote_inner(timeline, planned).await
    }

    async fn demote(&self, mode: StopMode) -> Result<(), DbError> {
        let spec = self.cmds.restart(ServerMode::Standby, mode);
        let (out, report) = self.ctl(Verb::Restart, &spec).await?;
        let seen = self.inspect().await;
        if seen.db.process.is_alive() && seen.db.role == DbRole::Standby {
            return Ok(());
        }
        if out.success() {
            Err(DbError::NotEffective {
                action: format!("`{}` ({})", spec.command_line(), report.summary()),
                observed: seen.describe(),
            })
        } else {
            Err(DbError::StartFailed {
                reason: format!(
                    "`{}` ({}): {}",
                    spec.command_line(),
                    out.status_text(),
                    report.summary()
                ),
                log_tail: self.log_tail().await,
            })
        }
    }

    async fn follow(&self, leader: &Member) -> Result<(), DbError> {
        self.peer_of(leader)?;
        let seen = self.inspect().await;
        if !seen.db.process.is_alive() {
            return self.start_mode(ServerMode::Standby).await;
        }
        if seen.db.role == DbRole::Primary {
            return self.demote(StopMode::Fast).await;
        }
        if !seen.is_pending() {
            // A standby's walreceiver walks replconninfoN by itself and finds the new primary.
            return Ok(());
        }
        let spec = self
            .cmds
            .notify(ServerMode::Standby, self.known_term().max(1));
        let (out, report) = self.ctl(Verb::Notify, &spec).await?;
        let after = self.inspect().await;
        if after.db.process.is_alive() && after.db.role == DbRole::Standby && !after.is_pending() {
            return Ok(());
        }
        if out.success() {
            Err(DbError::NotEffective {
                action: format!("`{}` ({})", spec.command_line(), report.summary()),
                observed: after.describe(),
            })
        } else {
            Err(DbError::CommandFailed {
                command: spec.command_line(),
                status: out.status_text(),
                output: report.summary(),
            })
        }
    }

    async fn rebuild(
        &self,
        source: &Member,
        mode: RebuildMode,
        timeline: u64,
    ) -> Result<(), DbError> {
        self.peer_of(source)?;
        self.rebuild_inner(mode, timeline).await
    }

    async fn set_sync_standbys(&self, names: &[String], count: u32) -> Result<(), DbError> {
        let running = self.inspect().await.db.process.is_alive();
        let params = vec![
            (
                "synchronous_standby_names".to_string(),
                sync_standby_names(names, count),
            ),
            (
                "most_available_sync".to_string(),
                if self.config.opengauss.most_available_sync {
                    "on"
                } else {
                    "off"
                }
                .to_string(),
            ),
        ];
        self.guc(running, &params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_url_hosts() {
        assert_eq!(
            host_of_conn_url("postgres://10.10.0.12:5432/postgres").as_deref(),
            Some("10.10.0.12")
        );
        assert_eq!(
            host_of_conn_url("postgresql://u:p@db2:5432/postgres").as_deref(),
            Some("db2")
        );
        assert_eq!(
            host_of_conn_url("postgres://[::1]:5432/x").as_deref(),
            Some("::1")
        );
        assert_eq!(host_of_conn_url("garbage"), None);
    }
}
