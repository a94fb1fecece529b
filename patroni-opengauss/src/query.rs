//! `gs_ctl query`: the server's own view of its HA role, health, senders and receiver.

use patroni_core::{Endpoint, Lsn};

use crate::sections::{field, parse_sections, Layout, Section};
use crate::ParseError;

/// What `gs_ctl query` reported (one per observation, so the size difference does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryOutput {
    /// No postmaster (no `postmaster.pid`): the server is not running.
    NotRunning {
        /// gs_ctl's words.
        detail: String,
    },
    /// The postmaster runs; its HA state and streams.
    Running(QueryReport),
}

/// The HA picture of a running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryReport {
    /// Live SQL values, or the `gaussdb.state` fallback (SQL connection failed: starting up, overloaded).
    pub layout: Layout,
    /// The `HA state` block.
    pub ha: HaState,
    /// One row per connected standby (primary only).
    pub senders: Vec<StreamRow>,
    /// The WAL receiver (standby only).
    pub receiver: Option<StreamRow>,
}

/// The `HA state` block (`pg_stat_get_stream_replications()`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HaState {
    /// `Primary`, `Standby`, `Pending`, `Normal`, `Cascade Standby`, ...
    pub local_role: String,
    /// How many `replconninfoN` are set.
    pub static_connections: Option<u32>,
    /// `Normal`, `Need repair`, `Catchup`, `Starting`, `Building`, ...
    pub db_state: String,
    /// `Normal`, `Connecting...`, `Disconnected`, `WAL segment removed`, ... or a libpq error text.
    pub detail_information: String,
    /// Only in the state-file fallback: `Sync` / `Async`.
    pub sync_mode: Option<String>,
}

/// One sender or receiver row: the two ends' positions seen from this server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamRow {
    /// `sender_pid` or `receiver_pid`.
    pub pid: Option<u64>,
    /// This server's role.
    pub local_role: String,
    /// The other end's role.
    pub peer_role: String,
    /// The other end's state.
    pub peer_state: String,
    /// `Streaming`, `Catchup`, `Normal`, ...
    pub state: String,
    /// What the primary sent.
    pub sender_sent: Option<Lsn>,
    /// What the primary wrote.
    pub sender_write: Option<Lsn>,
    /// What the primary flushed.
    pub sender_flush: Option<Lsn>,
    /// What the primary replayed.
    pub sender_replay: Option<Lsn>,
    /// What the standby received.
    pub receiver_received: Option<Lsn>,
    /// What the standby wrote.
    pub receiver_write: Option<Lsn>,
    /// What the standby flushed.
    pub receiver_flush: Option<Lsn>,
    /// What the standby replayed.
    pub receiver_replay: Option<Lsn>,
    /// Estimated percent (an estimate only; lag is measured with LSNs).
    pub sync_percent: Option<u8>,
    /// Senders: `Sync`, `Async`, `Potential`, `Quorum`.
    pub sync_state: Option<String>,
    /// Senders: position in `synchronous_standby_names`.
    pub sync_priority: Option<u32>,
    /// Senders: `most_available_sync` as the primary applies it.
    pub sync_most_available: Option<bool>,
    /// The connection's two ends.
    pub channel: Option<Channel>,
}

/// `local:port-->remote:port` (sender) or `local:port<--remote:port` (receiver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// This server's address.
    pub local_host: String,
    /// This server's port.
    pub local_port: u16,
    /// The other end's address.
    pub remote_host: String,
    /// The other end's port.
    pub remote_port: u16,
}

impl Channel {
    /// Parses either arrow direction; `None` for an empty or malformed channel.
    pub fn parse(text: &str) -> Option<Channel> {
        let (local, remote) = text.split_once("-->").or_else(|| text.split_once("<--"))?;
        let local = Endpoint::from_host_port(local.trim()).ok()?;
        let remote = Endpoint::from_host_port(remote.trim()).ok()?;
        Some(Channel {
            local_host: local.host,
            local_port: local.port,
            remote_host: remote.host,
            remote_port: remote.port,
        })
    }
}

/// Parses `gs_ctl query -D <dir>` output (either layout, or the not-running answer).
pub fn parse_query(output: &str) -> Result<QueryOutput, ParseError> {
    let parsed = parse_sections(output);
    let Some(ha_section) = parsed.get("HA state") else {
        let detail = parsed.other.join("\n");
        if detail.contains("does not exist") || detail.contains("Is server running?") {
            return Ok(QueryOutput::NotRunning {
                detail: parsed
                    .other
                    .iter()
                    .filter(|l| !l.starts_with("gs_ctl query"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        return Err(ParseError::new("gs_ctl query", "no HA state block", output));
    };
    let ha = parse_ha(ha_section);
    if ha.local_role.is_empty() {
        return Err(ParseError::new(
            "gs_ctl query",
            "HA state has no local_role",
            output,
        ));
    }
    let rows = |title: &str| -> Result<Vec<StreamRow>, ParseError> {
        parsed
            .get(title)
            .map(|s| s.rows.iter().map(|r| stream_row(r)).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    };
    let senders = rows("Senders info")?;
    let receiver = rows("Receiver info")?.into_iter().next();
    Ok(QueryOutput::Running(QueryReport {
        layout: parsed.layout.unwrap_or(Layout::Sql),
        ha,
        senders,
        receiver,
    }))
}

/// The HA block; the fallback's blank line after a multi-line error splits it into rows, so all rows merge.
pub(crate) fn parse_ha(section: &Section) -> HaState {
    let all: Vec<(String, String)> = section.rows.iter().flatten().cloned().collect();
    HaState {
        local_role: field(&all, "local_role").unwrap_or_default().to_string(),
        static_connections: field(&all, "static_connections").and_then(|v| v.parse().ok()),
        db_state: field(&all, "db_state").unwrap_or_default().to_string(),
        detail_information: field(&all, "detail_information")
            .unwrap_or_default()
            .to_string(),
        sync_mode: field(&all, "sync_mode").map(str::to_string),
    }
}

/// One sender/receiver row from `(name, value)` pairs (also used for SQL rows).
pub(crate) fn stream_row(row: &[(String, String)]) -> Result<StreamRow, ParseError> {
    let text = |n: &str| field(row, n).unwrap_or_default().to_string();
    let lsn = |n: &str| -> Result<Option<Lsn>, ParseError> {
        match field(row, n).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<Lsn>()
                .map(Some)
                .map_err(|e| ParseError::new("stream row", &format!("{n}: {e}"), v)),
        }
    };
    Ok(StreamRow {
        pid: field(row, "sender_pid")
            .or_else(|| field(row, "receiver_pid"))
            .and_then(|v| v.parse().ok()),
        local_role: text("local_role"),
        peer_role: text("peer_role"),
        peer_state: text("peer_state"),
        state: text("state"),
        sender_sent: lsn("sender_sent_location")?,
        sender_write: lsn("sender_write_location")?,
        sender_flush: lsn("sender_flush_location")?,
        sender_replay: lsn("sender_replay_location")?,
        receiver_received: lsn("receiver_received_location")?,
        receiver_write: lsn("receiver_write_location")?,
        receiver_flush: lsn("receiver_flush_location")?,
        receiver_replay: lsn("receiver_replay_location")?,
        sync_percent: field(row, "sync_percent").and_then(|v| v.trim_end_matches('%').parse().ok()),
        sync_state: field(row, "sync_state")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        sync_priority: field(row, "sync_priority").and_then(|v| v.parse().ok()),
        sync_most_available: field(row, "sync_most_available").and_then(|v| match v {
            "On" | "on" => Some(true),
            "Off" | "off" => Some(false),
            _ => None,
        }),
        channel: field(row, "channel").and_then(Channel::parse),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_parses_both_directions() {
        let s = Channel::parse("10.10.0.11:5433-->10.10.0.12:49382").unwrap();
        assert_eq!(
            (s.remote_host.as_str(), s.remote_port),
            ("10.10.0.12", 49382)
        );
        let r = Channel::parse("10.10.0.12:49382<--10.10.0.11:5433").unwrap();
        assert_eq!(
            (r.remote_host.as_str(), r.remote_port),
            ("10.10.0.11", 5433)
        );
        assert_eq!(Channel::parse(""), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_state() {
        assert!(parse_query("hello\nworld\n").is_err());
    }
}
