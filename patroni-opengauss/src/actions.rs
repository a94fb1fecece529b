//! The port methods: each runs its gs_ctl/gs_guc command, then observes again and reports
//! `NotEffective` when the command claimed success but nothing changed.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use patroni_core::{
    DataDirState, Database, DbError, DbRole, LocalDb, Member, RebuildMode, StartRole, StopMode,
};

use crate::commands::{quoted, sync_standby_names, ServerMode};
use crate::ctl_output::{CtlOutcome, CtlReport, Verb};
use crate::OpenGauss;
use patroni_core::parameters::{cluster_wide, value_text};
use patroni_postgres::command::{CommandOutput, CommandSpec};
use patroni_postgres::conninfo::member_endpoint;
use std::collections::BTreeMap;

impl OpenGauss {
    /// A failed start or restart, with the command, its exit status, what gs_ctl said and the server log tail.
    async fn start_failed(
        &self,
        spec: &CommandSpec,
        out: &CommandOutput,
        report: &CtlReport,
    ) -> DbError {
        DbError::StartFailed {
            reason: format!(
                "`{}` ({}): {}",
                spec.command_line(),
                out.status_text(),
                report.summary()
            ),
            log_tail: self.log_tail().await,
        }
    }

    async fn start_mode(&self, mode: ServerMode) -> Result<(), DbError> {
        self.configure(false).await?;
        let spec = self.cmds.start(mode);
        let (out, report) = self.ctl(Verb::Start, &spec).await?;
        if report.outcome == CtlOutcome::StartFailed
            || (!out.success() && report.outcome != CtlOutcome::LockHeld)
        {
            return Err(self.start_failed(&spec, &out, &report).await);
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
        let host = member_endpoint(source)?.host;
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
            return Err(self.start_failed(&spec, &out, &report).await);
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
            Err(self.start_failed(&spec, &out, &report).await)
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

    async fn set_sync_standbys(
        &self,
        names: &[String],
        count: u32,
        quorum: bool,
    ) -> Result<(), DbError> {
        let running = self.inspect().await.db.process.is_alive();
        let params = vec![
            (
                "synchronous_standby_names".to_string(),
                sync_standby_names(names, count, quorum),
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

    /// openGauss takes what `/config` sets and the node's own `postgresql.parameters` over it
    /// (except the ones every member must share, which only `/config` sets), but not Patroni's
    /// PostgreSQL defaults (openGauss's differ); changed values only, through `gs_guc`: `reload`
    /// on a running server, `set` otherwise.
    async fn apply_parameters(
        &self,
        cluster: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, DbError> {
        if self.data_dir_state() != DataDirState::Initialized {
            return Ok(false);
        }
        let mut wanted: BTreeMap<String, String> = cluster
            .iter()
            .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), value_text(v)?)))
            .collect();
        for (k, v) in &self.config.parameters {
            let key = k.to_ascii_lowercase();
            if cluster_wide(&key).is_none() {
                wanted.insert(key, v.0.clone());
            }
        }
        let changed: Vec<(String, String)> = {
            let applied = self.applied_params.lock().expect("params lock");
            wanted
                .into_iter()
                .filter(|(k, v)| applied.get(k) != Some(v))
                .collect()
        };
        if changed.is_empty() {
            return Ok(false);
        }
        let args: Vec<(String, String)> = changed
            .iter()
            .map(|(k, v)| {
                let plain = v.parse::<f64>().is_ok() || matches!(v.as_str(), "on" | "off");
                (k.clone(), if plain { v.clone() } else { quoted(v) })
            })
            .collect();
        let running = self.inspect().await.db.process.is_alive();
        self.guc(running, &args).await?;
        self.applied_params
            .lock()
            .expect("params lock")
            .extend(changed);
        Ok(true)
    }

    /// An openGauss standby creates its physical slot on the primary itself (named by its
    /// `application_name`) and takes no `primary_slot_name`, so the agent only drops what is
    /// left behind: on a running primary, an inactive physical slot of no member the plan keeps.
    async fn sync_slots(&self, plan: &patroni_core::slots::SlotPlan) -> Result<bool, DbError> {
        if !plan.use_slots || !self.inspect().await.db.is_running_primary() {
            return Ok(false);
        }
        let rows = self
            .sql
            .query("SELECT slot_name, slot_type, active FROM pg_replication_slots")
            .await?;
        let mut changed = false;
        for i in 0..rows.rows.len() {
            let (Some(name), Some("physical"), Some(active)) = (
                rows.get(i, "slot_name"),
                rows.get(i, "slot_type"),
                rows.get(i, "active"),
            ) else {
                continue;
            };
            if matches!(active, "t" | "true")
                || !plan.may_drop(&patroni_core::slots::slot_name(name))
            {
                continue;
            }
            self.sql
                .query(&format!(
                    "SELECT * FROM pg_drop_replication_slot({})",
                    quoted(name)
                ))
                .await?;
            changed = true;
        }
        Ok(changed)
    }
}
