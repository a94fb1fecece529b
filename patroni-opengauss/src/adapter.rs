//! [`OpenGauss`]: the `Database` port, executing actions with gs_ctl/gs_guc and verifying each one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patroni_core::{DataDirState, DbError, LocalDb, Member};
use patroni_postgres::command::{CommandOutput, CommandRunner, CommandSpec, SystemRunner};
use patroni_postgres::controldata::ControlData;
use patroni_postgres::datadir;

use crate::commands::{replication_params, Commands};
use crate::config::{ConfigError, OpenGaussConfig};
use crate::ctl_output::{parse_ctl, parse_guc, CtlReport, Verb};
use crate::observe::{local_db, Facts};
use crate::query::{parse_query, HaState, QueryOutput};
use crate::sql::{PgSql, SqlError};
use crate::sql_rows::{
    named_standbys, term_lsn, SqlSource, SQL_CURRENT_LSN, SQL_REPLICATION, SQL_TERM_LSN,
};
use crate::status::parse_query_lsn;

/// How many lines of the server log a start failure carries.
const LOG_TAIL_LINES: usize = 30;

/// The openGauss adapter for one node.
pub struct OpenGauss {
    pub(crate) config: OpenGaussConfig,
    pub(crate) cmds: Commands,
    pub(crate) runner: Arc<dyn CommandRunner>,
    pub(crate) sql: Arc<dyn SqlSource>,
    pub(crate) known_term: AtomicU64,
    pub(crate) was_primary: AtomicBool,
    /// The first SQL failure of the last observation (`None` when its SQL all answered).
    pub(crate) last_sql_error: Mutex<Option<SqlError>>,
    /// The `/config` parameters last written with gs_guc, so only changes are sent.
    pub(crate) applied_params: Mutex<std::collections::BTreeMap<String, String>>,
}

/// One observation with the raw HA block kept (Pending is a Standby to the core, not to gs_ctl).
pub(crate) struct Seen {
    pub(crate) db: LocalDb,
    pub(crate) ha: Option<HaState>,
}

impl Seen {
    pub(crate) fn is_pending(&self) -> bool {
        self.ha.as_ref().is_some_and(|h| h.local_role == "Pending")
    }

    pub(crate) fn describe(&self) -> String {
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
            applied_params: Mutex::new(Default::default()),
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
    /// its first failing statement's, so the agent can log it:
    /// [`observe`](patroni_core::Database::observe) itself never fails.
    pub fn last_sql_error(&self) -> Option<DbError> {
        let failure = self.last_sql_error.lock().expect("sql error lock").clone();
        failure.map(DbError::from)
    }

    /// Runs `SELECT 1` to check SQL access now, for a clear error at agent start-up.
    pub async fn check_sql(&self) -> Result<(), DbError> {
        self.sql.query("SELECT 1").await.map(|_| ())?;
        Ok(())
    }

    /// Runs one statement of an observation; its failure is kept in `failure` unless an earlier
    /// statement already failed, so a later success never hides why the observation was partial.
    async fn sql(
        &self,
        statement: &str,
        failure: &mut Option<SqlError>,
    ) -> Option<crate::sql_rows::SqlRows> {
        match self.sql.query(statement).await {
            Ok(rows) => Some(rows),
            Err(e) => {
                failure.get_or_insert(e);
                None
            }
        }
    }

    pub(crate) async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, DbError> {
        Ok(self.runner.run(spec).await?)
    }

    /// openGauss keeps PostgreSQL's data directory layout (`PG_VERSION` included), so the ancestor's check applies.
    pub(crate) fn data_dir_state(&self) -> DataDirState {
        datadir::data_dir_state(&self.config.data_dir)
    }

    pub(crate) async fn inspect(&self) -> Seen {
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
            *self.last_sql_error.lock().expect("sql error lock") = None;
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
            facts.control = ControlData::parse(&out.combined()).ok();
        }
        let mut ha = None;
        let mut sql_failure = None;
        match &facts.query {
            Some(QueryOutput::Running(report)) => {
                ha = Some(report.ha.clone());
                if let Some(rows) = self.sql(SQL_TERM_LSN, &mut sql_failure).await {
                    facts.term_lsn = term_lsn(&rows).ok();
                }
                if matches!(report.ha.local_role.as_str(), "Primary" | "Normal") {
                    if let Some(rows) = self.sql(SQL_CURRENT_LSN, &mut sql_failure).await {
                        facts.current_lsn = rows
                            .rows
                            .first()
                            .and_then(|r| r.first().cloned().flatten())
                            .and_then(|v| v.parse().ok());
                    }
                    if let Some(rows) = self.sql(SQL_REPLICATION, &mut sql_failure).await {
                        facts.named = named_standbys(&rows);
                    }
                }
                facts.sql_error = sql_failure.as_ref().and_then(SqlError::problem);
            }
            Some(QueryOutput::NotRunning { .. }) => {
                if let Some(ckpt) = facts.control.as_ref().and_then(|c| c.checkpoint_lsn()) {
                    if let Ok(out) = self.run(&self.cmds.query_lsn(ckpt)).await {
                        facts.offline_lsn =
                            parse_query_lsn(&out.combined()).ok().map(|o| o.max_lsn);
                    }
                }
            }
            None => {}
        }
        *self.last_sql_error.lock().expect("sql error lock") = sql_failure;
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

    pub(crate) async fn guc(
        &self,
        running: bool,
        params: &[(String, String)],
    ) -> Result<(), DbError> {
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

    pub(crate) async fn ctl(
        &self,
        verb: Verb,
        spec: &CommandSpec,
    ) -> Result<(CommandOutput, CtlReport), DbError> {
        let out = self.run(spec).await?;
        let report = parse_ctl(verb, &out.combined());
        Ok((out, report))
    }

    pub(crate) async fn log_tail(&self) -> String {
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

    pub(crate) fn peer_of(&self, member: &Member) -> Result<(), DbError> {
        if member.name == patroni_core::REMOTE_MEMBER {
            return Err(DbError::Unsupported(
                crate::STANDBY_CLUSTER_UNSUPPORTED.into(),
            ));
        }
        let host = patroni_core::Endpoint::from_conn_url(&member.data.conn_url)
            .ok()
            .map(|e| e.host);
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
}

/// `(uid, gid)` to run commands as, when the configured OS user is not the one running the agent.
fn resolve_run_as(config: &OpenGaussConfig) -> Result<Option<(u32, u32)>, ConfigError> {
    let Some(user) = &config.opengauss.os_user else {
        return Ok(None);
    };
    let (uid, gid) = datadir::lookup_user(user).map_err(|problem| ConfigError::Invalid {
        key: "opengauss.os_user".into(),
        problem,
    })?;
    Ok((datadir::current_euid() != uid).then_some((uid, gid)))
}
