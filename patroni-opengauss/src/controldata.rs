//! `pg_controldata`: tells a clean shutdown from a crash, and gives the system identifier and checkpoint.

use patroni_core::Lsn;

use crate::ParseError;

/// The fields of `pg_controldata` the adapter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlData {
    /// `Database system identifier`.
    pub system_id: String,
    /// `Database cluster state` (`in production`, `shut down`, `shut down in recovery`, ...).
    pub cluster_state: String,
    /// `Latest checkpoint location`: a record start, usable with `gs_ctl query -L`.
    pub checkpoint: Option<Lsn>,
    /// `Minimum recovery ending location` (standbys).
    pub min_recovery_end: Option<Lsn>,
    /// `Latest checkpoint's TimeLineID`: always 1 on openGauss.
    pub checkpoint_timeline: Option<u64>,
}

impl ControlData {
    /// Whether the last shutdown was clean (anything else means crash recovery runs at the next start).
    pub fn shut_down_cleanly(&self) -> bool {
        matches!(
            self.cluster_state.as_str(),
            "shut down" | "shut down in recovery"
        )
    }
}

/// Parses `pg_controldata <dir>` output.
pub fn parse_controldata(output: &str) -> Result<ControlData, ParseError> {
    let get = |key: &str| {
        output.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let lsn = |key: &str| get(key).and_then(|v| v.parse::<Lsn>().ok());
    let system_id = get("Database system identifier")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ParseError::new("pg_controldata", "no system identifier", output))?;
    let cluster_state = get("Database cluster state")
        .ok_or_else(|| ParseError::new("pg_controldata", "no cluster state", output))?;
    Ok(ControlData {
        system_id,
        cluster_state,
        checkpoint: lsn("Latest checkpoint location"),
        min_recovery_end: lsn("Minimum recovery ending location"),
        checkpoint_timeline: get("Latest checkpoint's TimeLineID").and_then(|v| v.parse().ok()),
    })
}
