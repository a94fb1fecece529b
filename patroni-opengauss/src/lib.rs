//! The [`Database`](patroni_core::Database) port over openGauss.
//!
//! openGauss differs from PostgreSQL where HA is concerned: roles are chosen at start (`-M`),
//! promotion is `gs_ctl failover`/`switchover`, fencing uses a *term* (`-T`) instead of a new
//! timeline, rebuilds are `gs_ctl build`, and replication peers must be listed in
//! `replconninfoN`. The parsers read gs_ctl's human output (all on stdout, with log prefixes),
//! and every action is followed by a fresh observation because several commands exit 0 without
//! doing anything.
//!
//! What openGauss keeps from PostgreSQL is not copied here but used from `patroni_postgres`'s
//! shared plumbing: the command runner (`command`), the SQL session and its failure kinds
//! (`sql`, behind [`sql_rows::SqlSource`]), `pg_controldata` output (`controldata`), the data
//! directory and OS-user checks (`datadir`) and a member's endpoint (`conninfo`). The modules
//! named like PostgreSQL's do the same job: `adapter` (the struct), `config`, `observe`, `sql`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod actions;
mod adapter;
pub mod commands;
mod config;
pub mod ctl_output;
pub mod observe;
pub mod query;
pub mod sections;
pub mod sql;
pub mod sql_rows;
pub mod status;
pub mod text;

pub use adapter::OpenGauss;

/// Why an openGauss cluster cannot be a standby cluster: its standbys replicate only with the
/// hosts listed in `replconninfoN` of both sides, which a remote primary outside the cluster's
/// configuration does not have, so no standby leader can stream from it.
pub const STANDBY_CLUSTER_UNSUPPORTED: &str = "standby_cluster is not supported with openGauss: a standby replicates only with the peers in replconninfoN, and the remote primary is not one; remove standby_cluster from /config";
pub use config::{detect_flavour, ConfigError, Flavour, OpenGaussConfig, OpenGaussSettings, Peer};

/// Output that does not have the shape a parser expects, kept with the text for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {what} output: {problem}: {excerpt:?}")]
pub struct ParseError {
    /// Which command's output.
    pub what: String,
    /// What was missing or malformed.
    pub problem: String,
    /// The start of the offending text.
    pub excerpt: String,
}

impl ParseError {
    pub(crate) fn new(what: &str, problem: &str, text: &str) -> Self {
        ParseError {
            what: what.to_string(),
            problem: problem.to_string(),
            excerpt: text.chars().take(200).collect(),
        }
    }
}
