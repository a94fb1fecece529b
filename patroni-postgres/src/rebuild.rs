//! Rebuilding data directories: a copy by `create_replica_methods` (`pg_basebackup` unless
//! configured otherwise), `pg_rewind` to bring a diverged one back onto the leader's history.
//!
//! A full rebuild copies into a sibling directory and swaps it in only once the copy is complete,
//! so a failed rebuild leaves the old data directory as it was, never an empty one.

use std::fs;
use std::time::Duration;

use patroni_core::{DbError, Member, RebuildMode, StopMode};

use crate::conf::{self, sibling, ConfRole};
use crate::conninfo::member_endpoint;
use crate::datadir::{ensure_dir, is_empty_dir, live_postmaster, remove_tree};
use crate::replica::empty_target;
use crate::Postgres;

/// Copies take longer than `pg_ctl` calls: this many `pg_ctl_timeout`s.
const COPY_TIMEOUT_FACTOR: u32 = 60;

impl Postgres {
    pub(crate) fn copy_timeout(&self) -> Duration {
        self.config().timeout() * COPY_TIMEOUT_FACTOR
    }

    /// How long a base backup may copy nothing before it is killed: it starts with a checkpoint
    /// on the source (`-c fast`), which a busy primary may take a while to finish.
    pub(crate) fn stall_timeout(&self) -> Duration {
        (self.config().timeout() * 2).max(Duration::from_secs(60))
    }

    pub(crate) fn require_empty(&self, what: &str) -> Result<(), DbError> {
        let dir = &self.config().data_dir;
        if is_empty_dir(dir) {
            Ok(())
        } else {
            Err(DbError::Unsupported(format!(
                "{what} needs an empty data directory, but {} holds data",
                dir.display()
            )))
        }
    }

    /// Removes what a failed initdb or clone left, keeping the (empty) directory itself; what
    /// cannot be removed is logged and left (the next attempt then refuses a non-empty directory).
    pub(crate) async fn empty_data_dir(&self) {
        empty_target(&self.config().data_dir).await;
    }

    /// `pg_basebackup` from `source` into `target` (which must not exist or be empty), with the
    /// user's extra `options` (`postgresql.basebackup`) after ours.
    pub(crate) async fn basebackup(
        &self,
        source: &Member,
        target: &std::path::Path,
        options: &[String],
    ) -> Result<(), DbError> {
        let cfg = self.config();
        let ep = member_endpoint(source)?;
        conf::write_pgpass(cfg)?;
        let mut args = vec![
            "-D".to_string(),
            target.display().to_string(),
            "-d".into(),
            conf::replication_conninfo(cfg, self.name(), &ep),
            "-X".into(),
            "stream".into(),
            "-c".into(),
            "fast".into(),
            "--no-password".into(),
        ];
        args.extend(options.iter().cloned());
        let spec = self
            .spec("pg_basebackup", args, self.copy_timeout())
            .with_progress(target, self.stall_timeout());
        let _measuring = self
            .copy_meter
            .measure("pg_basebackup", target.to_path_buf());
        self.run_spec_checked(spec).await.map(|_| ())
    }

    pub(crate) async fn rebuild_impl(
        &self,
        source: &Member,
        mode: RebuildMode,
    ) -> Result<(), DbError> {
        let cfg = self.config();
        if mode == RebuildMode::Auto && self.use_pg_rewind() {
            // A crashed server must finish crash recovery before its control file tells the truth.
            self.pg_stop(StopMode::Fast).await?;
            let rewindable = self.controldata().await.map(|c| c.rewind_possible());
            if let Ok(true) = rewindable {
                match self.rewind(source).await {
                    Ok(()) => return Ok(()),
                    Err(e) if !cfg.remove_data_directory_on_rewind_failure => return Err(e),
                    Err(_) => {}
                }
            }
        }
        self.replace_with_copy(source).await
    }

    /// `pg_rewind` in place, then start as a standby of `source`.
    async fn rewind(&self, source: &Member) -> Result<(), DbError> {
        let cfg = self.config();
        let ep = member_endpoint(source)?;
        let conninfo = self.upstream_conninfo(source)?;
        self.pg_stop(StopMode::Fast).await?;
        conf::write_pgpass(cfg)?;
        let args = vec![
            "-D".to_string(),
            cfg.data_dir.display().to_string(),
            format!("--source-server={}", conf::rewind_conninfo(cfg, &ep)),
        ];
        self.run_checked("pg_rewind", args, self.copy_timeout())
            .await?;
        // pg_rewind copied the source's configuration files: ours go back before the start.
        self.prepare(&ConfRole::Standby {
            primary_conninfo: Some(conninfo),
        })?;
        self.pg_start().await
    }

    /// A fresh copy in a sibling directory, swapped in only when complete. The copy is made by
    /// `create_replica_methods` in order, as a clone is (Patroni's reinitialize clones too), each
    /// method writing into the staging directory (its `--datadir=`); the server keeps running on
    /// the old data meanwhile. The staging directory starts empty, so `keep_data` keeps only what
    /// an earlier method left there: the old data directory is never handed to a method, which
    /// costs a delta restore its speed-up but means a failed method cannot damage it.
    async fn replace_with_copy(&self, source: &Member) -> Result<(), DbError> {
        let cfg = self.config();
        let conninfo = self.upstream_conninfo(source)?;
        let staging = sibling(&cfg.data_dir, ".rebuild");
        let old = sibling(&cfg.data_dir, ".old");
        for leftover in [&staging, &old] {
            if leftover.exists() {
                remove_tree(leftover).await.map_err(|e| {
                    DbError::Io(format!(
                        "cannot remove leftover {}: {e}",
                        leftover.display()
                    ))
                })?;
            }
        }
        ensure_dir(&staging, cfg.run_as)?;
        if let Err(e) = self.run_replica_methods(Some(source), &staging).await {
            let _ = remove_tree(&staging).await;
            return Err(e);
        }
        if let Err(e) = self.pg_stop(StopMode::Fast).await {
            let _ = remove_tree(&staging).await;
            return Err(e);
        }
        if live_postmaster(&cfg.data_dir).is_some() {
            let _ = remove_tree(&staging).await;
            return Err(DbError::NotEffective {
                action: "stop before swapping in the copy".into(),
                observed: "still running".into(),
            });
        }
        let had_old = cfg.data_dir.exists();
        if had_old {
            fs::rename(&cfg.data_dir, &old).map_err(|e| {
                DbError::Io(format!("cannot move {} aside: {e}", cfg.data_dir.display()))
            })?;
        }
        if let Err(e) = fs::rename(&staging, &cfg.data_dir) {
            if had_old {
                let _ = fs::rename(&old, &cfg.data_dir);
            }
            return Err(DbError::Io(format!(
                "cannot move the copy into {}: {e}",
                cfg.data_dir.display()
            )));
        }
        if had_old {
            let _ = remove_tree(&old).await;
        }
        self.prepare(&ConfRole::Standby {
            primary_conninfo: Some(conninfo),
        })?;
        self.pg_start().await
    }
}
