//! The [`patroni_core::Database`] port over PostgreSQL.
//!
//! [`Postgres`] drives one local server: `pg_ctl` for its process, `initdb`, `pg_basebackup` and
//! `pg_rewind` for its data directory, and SQL over the Unix socket for what it reports. Every
//! command goes through a [`command::CommandRunner`] with a deadline, every query has one too.
//!
//! Also the one home of the plumbing openGauss shares with its ancestor, which its adapter and
//! the daemon use instead of copies of their own:
//!
//! - [`command`]: every external program runs with a deadline, as the server's OS user;
//! - [`sql`]: the local SQL session, and the kinds of its failures ([`sql::SqlError`]) with the
//!   one mapping to what the operator is told;
//! - [`controldata`]: `pg_controldata` output;
//! - [`datadir`]: the data directory's state, whether its postmaster lives (checked by process
//!   name too), the server's OS user, files it owns, the server log;
//! - [`conninfo`]: a member's endpoint from its `conn_url`, libpq conninfo strings, redaction.
//!
//! Pure parsing of addresses (`host:port`, `conn_url`) lives in `patroni_core::Endpoint`.
//!
//! The adapter's own modules carry the same names as openGauss's where they do the same job:
//! `adapter` (the struct and its command helpers), `config`, `observe`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

// Shared plumbing (openGauss uses these too).
pub mod command;
pub mod conninfo;
pub mod controldata;
pub mod datadir;
pub mod sql;

// The PostgreSQL adapter.
mod adapter;
mod bootstrap;
pub mod conf;
mod config;
mod copy_meter;
pub mod methods;
mod observe;
mod rebuild;
mod replica;
mod settings;
mod slots;
#[cfg(feature = "testkit")]
pub mod testkit;

use async_trait::async_trait;
use patroni_core::{Database, DbError, LocalDb, Member, RebuildMode, StartRole, StopMode};

pub use adapter::Postgres;
pub use config::{
    Authentication, Credentials, InitdbOption, ParamValue, PgConfigError, PostgresConfig,
};
pub use observe::classify_log;

#[async_trait]
impl Database for Postgres {
    async fn observe(&self) -> LocalDb {
        self.observe_impl().await
    }

    async fn bootstrap(&self) -> Result<(), DbError> {
        self.bootstrap_impl().await
    }

    async fn clone_from(&self, source: &Member) -> Result<(), DbError> {
        self.clone_impl(source).await
    }

    async fn clone_without_leader(&self) -> Result<(), DbError> {
        self.create_replica(None).await
    }

    async fn start(&self, role: &StartRole) -> Result<(), DbError> {
        self.start_impl(role).await
    }

    async fn stop(&self, mode: StopMode) -> Result<(), DbError> {
        self.pg_stop(mode).await
    }

    async fn restart(&self) -> Result<(), DbError> {
        self.restart_impl().await
    }

    async fn reload(&self) -> Result<(), DbError> {
        self.reload_impl().await
    }

    /// PostgreSQL picks the next timeline itself, so `timeline` and `planned` only matter to openGauss.
    async fn promote(&self, _timeline: u64, _planned: bool) -> Result<(), DbError> {
        self.promote_impl().await
    }

    async fn demote(&self, mode: StopMode) -> Result<(), DbError> {
        self.demote_impl(mode).await
    }

    async fn follow(&self, leader: &Member) -> Result<(), DbError> {
        self.follow_impl(leader).await
    }

    async fn rebuild(
        &self,
        source: &Member,
        mode: RebuildMode,
        _timeline: u64,
    ) -> Result<(), DbError> {
        self.rebuild_impl(source, mode).await
    }

    /// `ALTER SYSTEM` persists the list in `postgresql.auto.conf`, which copies and rewinds carry
    /// along: a promoted standby keeps waiting for the old list until it is set again, which blocks
    /// commits rather than acknowledging unreplicated ones.
    async fn set_sync_standbys(
        &self,
        names: &[String],
        count: u32,
        quorum: bool,
    ) -> Result<(), DbError> {
        self.set_sync_impl(names, count, quorum).await
    }

    async fn apply_parameters(
        &self,
        cluster: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, DbError> {
        self.apply_parameters_impl(cluster).await
    }

    async fn sync_slots(&self, plan: &patroni_core::slots::SlotPlan) -> Result<bool, DbError> {
        self.sync_slots_impl(plan).await
    }
}
