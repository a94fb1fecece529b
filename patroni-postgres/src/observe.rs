//! Observing the local server every loop: process table and control file first, SQL only when it runs.
//!
//! **Cannot-follow detection.** A standby that cannot follow its leader keeps running: its WAL
//! receiver connects, is refused (or its startup process refuses the leader's new timeline) and
//! retries every few seconds, logging why each time. So the cheap, reliable signal is: the server is
//! a standby, `pg_stat_wal_receiver` shows no streaming receiver, and the server log written since
//! we last (re)pointed it at a leader holds one of PostgreSQL's terminal replication errors. We read
//! only the log written after that mark, so an error from before a rebuild or follow never counts.
//! "could not receive data from WAL stream" on its own is not a signal: it is also what a standby
//! logs when its primary merely restarts; we only classify the server's reason that follows it.
//! Comparing against the upstream's `TIMELINE_HISTORY` (Patroni's rewind check) needs a replication
//! connection per loop and only says what the log already says once the standby tried; the rebuild
//! itself decides between rewind and a full copy from the control file.

use patroni_core::{
    CannotFollow, CannotFollowReason, DataDirState, DbRole, LocalDb, Lsn, ProcessState,
    ReceiverStatus, ReplicationRow, Timestamp, WalSender,
};

use crate::config::PostgresConfig;
use crate::controldata::ControlData;
use crate::datadir::{data_dir_state, live_postmaster, read_log_since, read_pid_file};
use crate::sql::{Row, SqlError};
use crate::Postgres;

/// Log fragments that mean the standby will never catch up, most specific first.
const TERMINAL: [(&str, CannotFollowReason); 8] = [
    (
        "forked off current database system timeline",
        CannotFollowReason::Diverged,
    ),
    (
        "is not a child of this server's history",
        CannotFollowReason::Diverged,
    ),
    (
        "is not in this server's history",
        CannotFollowReason::Diverged,
    ),
    // The standby was promoted on its own (a higher timeline) and then pointed at the old line.
    (
        "of the primary is behind recovery timeline",
        CannotFollowReason::Diverged,
    ),
    ("has already been removed", CannotFollowReason::WalRemoved),
    (
        "database system identifier differs",
        CannotFollowReason::SystemIdMismatch,
    ),
    (
        "does not contain minimum recovery point",
        CannotFollowReason::TimelineMismatch,
    ),
    (
        "timeline history was not contiguous",
        CannotFollowReason::TimelineMismatch,
    ),
];

/// A standby whose history diverged from the leader's is rewound when `use_pg_rewind` is on,
/// copied again with `remove_data_directory_on_diverged_timelines` (our default), else left as
/// it is (with a warning) for the operator to reinitialize, as Patroni does. Other reasons pass.
/// `use_pg_rewind` is the value in force (the node's own, else the cluster's).
pub(crate) fn rebuild_allowed(
    cfg: &PostgresConfig,
    use_pg_rewind: bool,
    cf: Option<CannotFollow>,
) -> Option<CannotFollow> {
    let diverged = cf.as_ref().is_some_and(|c| {
        matches!(
            c.reason,
            CannotFollowReason::Diverged | CannotFollowReason::TimelineMismatch
        )
    });
    if diverged && !use_pg_rewind && !cfg.remove_data_directory_on_diverged_timelines {
        tracing::warn!(
            "cannot follow the leader ({}); not rebuilding: use_pg_rewind is off and remove_data_directory_on_diverged_timelines is false (reinitialize this member)",
            cf.as_ref().map_or("", |c| c.detail.as_str())
        );
        return None;
    }
    cf
}

/// The last terminal replication error in a stretch of server log, classified.
pub fn classify_log(log: &str) -> Option<CannotFollow> {
    log.lines().rev().find_map(|line| {
        TERMINAL
            .iter()
            .find(|(needle, _)| line.contains(needle))
            .map(|(_, reason)| CannotFollow {
                reason: *reason,
                detail: line.trim().to_string(),
            })
    })
}

fn col(row: &Row, i: usize) -> Option<&str> {
    row.get(i).and_then(|v| v.as_deref())
}

fn lsn(row: &Row, i: usize) -> Option<Lsn> {
    col(row, i).and_then(|v| v.parse().ok())
}

fn num(row: &Row, i: usize) -> Option<u64> {
    col(row, i).and_then(|v| v.parse().ok())
}

fn epoch_ms(row: &Row, i: usize) -> Option<Timestamp> {
    col(row, i).and_then(|v| v.parse().ok()).map(Timestamp)
}

const STATUS_SQL: &str = "SELECT pg_is_in_recovery(), \
 CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, \
 pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
 (SELECT system_identifier FROM pg_control_system()), \
 (SELECT timeline_id FROM pg_control_checkpoint()), \
 CASE WHEN pg_is_in_recovery() THEN NULL \
  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END, \
 current_setting('server_version'), \
 EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart), \
 (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint, \
 (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::bigint, \
 CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, \
 current_setting('restore_command', true) <> ''";

const REPLICATION_SQL: &str = "SELECT application_name, state, sync_state, flush_lsn, replay_lsn, \
 usename, client_addr, sync_priority \
 FROM pg_stat_replication ORDER BY application_name";

const RECEIVER_SQL: &str =
    "SELECT status, received_tli, sender_host, sender_port FROM pg_stat_wal_receiver";

impl Postgres {
    pub(crate) async fn observe_impl(&self) -> LocalDb {
        let cfg = self.config();
        let mut db = LocalDb {
            data_dir: data_dir_state(&cfg.data_dir),
            ..LocalDb::default()
        };
        db.report.copy = self.copy_meter.current();
        let pid = live_postmaster(&cfg.data_dir);
        if let Some(p) = &pid {
            self.remember_postmaster(p.pid);
        }
        if db.data_dir != DataDirState::Initialized {
            // `postmaster.pid` may have gone with the data directory: the postmaster last seen
            // still runs, and may still accept writes, until it is stopped.
            db.process = if pid.is_some() || self.known_postmaster().is_some() {
                ProcessState::Starting
            } else {
                ProcessState::Stopped
            };
            return db;
        }
        let Some(pid) = pid else {
            self.observe_down(&mut db).await;
            return db;
        };
        db.process = match pid.status.as_str() {
            "ready" | "standby" => ProcessState::Running,
            _ => ProcessState::Starting,
        };
        if let Err(failure) = self.observe_sql(&mut db).await {
            // Alive but not answering (recovery, startup, overload): report it as starting, and
            // why when it is no mere startup (a wrong password must not look like recovery).
            db.process = ProcessState::Starting;
            db.report.sql_error = failure.problem();
            // A standby that never becomes consistent can still say why in its log.
            db.cannot_follow = rebuild_allowed(
                self.config(),
                self.use_pg_rewind(),
                classify_log(&self.log_since_mark()),
            );
            return db;
        }
        if db.role == DbRole::Standby && !db.receiver.as_ref().is_some_and(|r| r.streaming) {
            db.cannot_follow = rebuild_allowed(
                self.config(),
                self.use_pg_rewind(),
                classify_log(&self.log_since_mark()),
            );
        }
        db
    }

    async fn observe_down(&self, db: &mut LocalDb) {
        let cfg = self.config();
        let stale_pid = read_pid_file(&cfg.data_dir).is_some();
        match self.controldata().await {
            Ok(cd) => {
                db.process = if cd.cleanly_shut_down() {
                    ProcessState::Stopped
                } else {
                    ProcessState::Crashed
                };
                db.system_id = cd.system_id();
                db.timeline = cd.timeline();
                db.controldata_state = cd.state().map(str::to_string);
                self.observe_control(&cd);
            }
            Err(_) => {
                db.process = if stale_pid {
                    ProcessState::Crashed
                } else {
                    ProcessState::Stopped
                };
            }
        }
    }

    async fn observe_sql(&self, db: &mut LocalDb) -> Result<(), SqlError> {
        let rows = self.sql.query_diagnosed(STATUS_SQL).await?;
        let row = rows
            .first()
            .ok_or_else(|| SqlError::Other("status query returned no row".into()))?;
        let in_recovery = col(row, 0) == Some("t");
        db.role = if in_recovery {
            DbRole::Standby
        } else {
            DbRole::Primary
        };
        db.write_lsn = lsn(row, 1);
        db.replay_lsn = lsn(row, 3);
        // After a restart the receiver starts again at a segment boundary, below what was already
        // replayed: nothing received is ever behind what is replayed, so report the larger one.
        db.receive_lsn = match (lsn(row, 2), db.replay_lsn) {
            (Some(r), Some(p)) => Some(r.max(p)),
            (r, _) => r,
        };
        db.system_id = col(row, 4).map(str::to_string);
        let checkpoint_tli = num(row, 5);
        db.timeline = num(row, 6).or(checkpoint_tli);
        db.version = col(row, 7).map(str::to_string);
        db.pending_restart = col(row, 8) == Some("t");
        db.report.postmaster_start_time = epoch_ms(row, 9);
        db.report.replayed_timestamp = epoch_ms(row, 10);
        db.report.replay_paused = col(row, 11) == Some("t");
        db.report.restore_command = in_recovery && col(row, 12) == Some("t");
        let senders = self.sql.query_diagnosed(REPLICATION_SQL).await?;
        db.replication = senders
            .iter()
            .map(|r| ReplicationRow {
                application_name: col(r, 0).unwrap_or("").to_string(),
                state: col(r, 1).unwrap_or("").into(),
                sync_state: col(r, 2).unwrap_or("").into(),
                flush_lsn: lsn(r, 3),
                replay_lsn: lsn(r, 4),
            })
            .collect();
        db.report.replication = senders
            .iter()
            .map(|r| WalSender {
                usename: col(r, 5).map(str::to_string),
                application_name: col(r, 0).unwrap_or("").to_string(),
                client_addr: col(r, 6).map(str::to_string),
                state: col(r, 1).unwrap_or("").to_string(),
                sync_state: col(r, 2).unwrap_or("").to_string(),
                sync_priority: col(r, 7).and_then(|v| v.parse().ok()),
            })
            .collect();
        if in_recovery {
            let receiver = self.sql.query_diagnosed(RECEIVER_SQL).await?;
            if let Some(r) = receiver.first() {
                let received_tli = num(r, 1);
                db.timeline = match (received_tli, checkpoint_tli) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                db.receiver = Some(ReceiverStatus {
                    streaming: col(r, 0) == Some("streaming"),
                    upstream_host: col(r, 2).map(str::to_string),
                    upstream_port: col(r, 3).and_then(|p| p.parse().ok()),
                });
            }
        }
        Ok(())
    }

    /// Reads the control file with `pg_controldata`.
    pub async fn controldata(&self) -> Result<ControlData, patroni_core::DbError> {
        let out = self
            .run_checked(
                "pg_controldata",
                vec!["-D".into(), self.config().data_dir.display().to_string()],
                self.config().timeout(),
            )
            .await?;
        ControlData::parse(&out.stdout).map_err(|e| patroni_core::DbError::CommandFailed {
            command: "pg_controldata".into(),
            status: out.status_text(),
            output: e.to_string(),
        })
    }

    fn log_since_mark(&self) -> String {
        read_log_since(&self.config().log_file(), self.log_mark(), 256 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverged_standby_is_rebuilt_only_as_configured() {
        let diverged =
            classify_log("FATAL:  highest timeline 1 of the primary is behind recovery timeline 2");
        let gone = classify_log("ERROR:  requested WAL segment 0003 has already been removed");
        let mut cfg = PostgresConfig::new("127.0.0.1:5432", "/d");
        // By default a diverged standby is copied again: it must be able to follow.
        assert_eq!(rebuild_allowed(&cfg, false, diverged.clone()), diverged);
        // Neither pg_rewind nor the removal switch: left as it is, as Patroni does.
        cfg.remove_data_directory_on_diverged_timelines = false;
        assert_eq!(rebuild_allowed(&cfg, false, diverged.clone()), None);
        assert_eq!(rebuild_allowed(&cfg, false, gone.clone()), gone);
        assert_eq!(rebuild_allowed(&cfg, true, diverged.clone()), diverged);
    }

    #[test]
    fn classifies_terminal_replication_errors() {
        let log = "2026-11-26 06:00:01 UTC [10] LOG:  started streaming WAL from primary at 0/3000000 on timeline 1
2026-11-26 06:00:05 UTC [10] FATAL:  could not receive data from WAL stream: ERROR:  requested WAL segment 000000010000000000000003 has already been removed
";
        let cf = classify_log(log).unwrap();
        assert_eq!(cf.reason, CannotFollowReason::WalRemoved);
        assert!(cf.detail.contains("000000010000000000000003"));
        let forked = "LOG:  new timeline 2 forked off current database system timeline 1 before current recovery point 0/3000148";
        assert_eq!(
            classify_log(forked).unwrap().reason,
            CannotFollowReason::Diverged
        );
        let ahead = "FATAL:  highest timeline 1 of the primary is behind recovery timeline 2";
        assert_eq!(
            classify_log(ahead).unwrap().reason,
            CannotFollowReason::Diverged
        );
        let sysid = "FATAL:  database system identifier differs between the primary and standby";
        assert_eq!(
            classify_log(sysid).unwrap().reason,
            CannotFollowReason::SystemIdMismatch
        );
        // A primary that merely restarted is not a reason to rebuild.
        assert_eq!(
            classify_log("FATAL:  could not receive data from WAL stream: server closed the connection unexpectedly"),
            None
        );
        assert_eq!(classify_log(""), None);
    }
}
