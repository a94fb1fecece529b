//! SQL access behind a small trait, and typed readers for the rows the adapter asks for.
//!
//! Every query goes through [`SqlSource`] in text mode (as `psql` shows it), so the live client
//! and the `sql_*.tsv` fixture rows feed the same readers.

use async_trait::async_trait;
use patroni_core::Lsn;

use crate::query::{stream_row, HaState, StreamRow};
use crate::sql::SqlError;
use crate::ParseError;

/// Result rows in text form: column names, and values with `None` for NULL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqlRows {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Rows; each has one value per column.
    pub rows: Vec<Vec<Option<String>>>,
}

impl SqlRows {
    /// Reads the fixture form: header line, TAB-separated values, empty string for NULL/empty.
    pub fn from_tsv(text: &str) -> SqlRows {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let columns = lines
            .next()
            .map(|h| h.split('\t').map(|c| c.trim().to_string()).collect())
            .unwrap_or_default();
        let rows = lines
            .map(|l| {
                l.split('\t')
                    .map(|v| (!v.is_empty()).then(|| v.to_string()))
                    .collect()
            })
            .collect();
        SqlRows { columns, rows }
    }

    /// Row `i` as `(column, value)` pairs, NULL as the empty string.
    pub fn pairs(&self, i: usize) -> Vec<(String, String)> {
        self.columns
            .iter()
            .cloned()
            .zip(
                self.rows[i]
                    .iter()
                    .map(|v| v.clone().unwrap_or_default())
                    .chain(std::iter::repeat(String::new())),
            )
            .collect()
    }

    /// The value of `column` in row `i`, `None` for NULL or a missing column.
    pub fn get(&self, i: usize, column: &str) -> Option<&str> {
        let c = self.columns.iter().position(|n| n == column)?;
        self.rows.get(i)?.get(c)?.as_deref()
    }
}

/// Runs one read-only query and returns its rows as text.
#[async_trait]
pub trait SqlSource: Send + Sync {
    /// Runs `sql`; a failure says its kind ([`SqlError`]), which the adapter maps to the
    /// operator's words with [`SqlError::problem`].
    async fn query(&self, sql: &str) -> Result<SqlRows, SqlError>;
}

/// Role and health: one row.
pub const SQL_STREAM_REPLICATIONS: &str = "SELECT local_role, static_connections, db_state, detail_information FROM pg_stat_get_stream_replications()";
/// The term and the last replayed position (a record of two text columns).
pub const SQL_TERM_LSN: &str = "SELECT term, lsn FROM pg_last_xlog_replay_location()";
/// The primary's write position.
pub const SQL_CURRENT_LSN: &str = "SELECT pg_current_xlog_location() AS location";
/// Connected standbys with their application names.
pub const SQL_REPLICATION: &str = "SELECT application_name, client_addr, client_port, state, receiver_flush_location, receiver_replay_location, sync_state FROM pg_stat_replication";

/// Reads the one row of `pg_stat_get_stream_replications()`.
pub fn ha_state(rows: &SqlRows) -> Result<HaState, ParseError> {
    if rows.rows.is_empty() {
        return Err(ParseError::new("stream replications", "no row", ""));
    }
    Ok(HaState {
        local_role: rows.get(0, "local_role").unwrap_or_default().to_string(),
        static_connections: rows
            .get(0, "static_connections")
            .and_then(|v| v.parse().ok()),
        db_state: rows.get(0, "db_state").unwrap_or_default().to_string(),
        detail_information: rows
            .get(0, "detail_information")
            .unwrap_or_default()
            .to_string(),
        sync_mode: None,
    })
}

/// `(term, replayed lsn)`; both zero before redo has a position.
pub fn term_lsn(rows: &SqlRows) -> Result<(u64, Lsn), ParseError> {
    let term = rows
        .get(0, "term")
        .ok_or_else(|| ParseError::new("replay location", "no term", ""))?;
    let lsn = rows
        .get(0, "lsn")
        .ok_or_else(|| ParseError::new("replay location", "no lsn", ""))?;
    Ok((
        term.trim()
            .parse()
            .map_err(|_| ParseError::new("replay location", "term is not a number", term))?,
        lsn.parse()
            .map_err(|e| ParseError::new("replay location", &format!("{e}"), lsn))?,
    ))
}

/// Sender or receiver rows (`pg_stat_get_wal_senders()`, `pg_stat_get_wal_receiver()`).
pub fn stream_rows(rows: &SqlRows) -> Result<Vec<StreamRow>, ParseError> {
    (0..rows.rows.len())
        .map(|i| stream_row(&rows.pairs(i)))
        .collect()
}

/// One standby as `pg_stat_replication` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedStandby {
    /// Its `application_name` (the member name).
    pub application_name: String,
    /// The address it connects from.
    pub client_addr: Option<String>,
    /// The port it connects from: with the address, matches a sender's channel.
    pub client_port: Option<u16>,
    /// `Streaming`, `Catchup`, ...
    pub state: String,
    /// What it flushed.
    pub flush: Option<Lsn>,
    /// What it replayed.
    pub replay: Option<Lsn>,
    /// `Sync`, `Async`, `Potential`, `Quorum`.
    pub sync_state: String,
}

/// Reads `pg_stat_replication` rows.
pub fn named_standbys(rows: &SqlRows) -> Vec<NamedStandby> {
    (0..rows.rows.len())
        .map(|i| NamedStandby {
            application_name: rows.get(i, "application_name").unwrap_or_default().into(),
            client_addr: rows.get(i, "client_addr").map(str::to_string),
            client_port: rows.get(i, "client_port").and_then(|v| v.parse().ok()),
            state: rows.get(i, "state").unwrap_or_default().into(),
            flush: rows
                .get(i, "receiver_flush_location")
                .and_then(|v| v.parse().ok()),
            replay: rows
                .get(i, "receiver_replay_location")
                .and_then(|v| v.parse().ok()),
            sync_state: rows.get(i, "sync_state").unwrap_or_default().into(),
        })
        .collect()
}
