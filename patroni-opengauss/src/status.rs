//! `gs_ctl status`, `gs_ctl query -L` (offline max LSN) and `gs_ctl querybuild`.

use patroni_core::Lsn;

use crate::query::{parse_ha, HaState};
use crate::sections::{field, parse_sections};
use crate::text::messages;
use crate::ParseError;

/// What `gs_ctl status` said about the postmaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStatus {
    /// Running, with its PID and the mode recorded in `postmaster.opts` (rewritten on promote/demote).
    Running {
        /// The postmaster PID.
        pid: u32,
        /// `-M` from the options line (`primary`, `standby`, `pending`, ...), if present.
        mode: Option<String>,
        /// The whole options line.
        options: String,
    },
    /// `no server running` (exit 3).
    NotRunning,
}

/// Parses `gs_ctl status -D <dir>` output.
pub fn parse_status(output: &str) -> Result<ServerStatus, ParseError> {
    let lines = messages(output);
    if lines.iter().any(|l| l == "no server running") {
        return Ok(ServerStatus::NotRunning);
    }
    let idx = lines
        .iter()
        .position(|l| l.contains("server is running (PID:"))
        .ok_or_else(|| ParseError::new("gs_ctl status", "no running/not running line", output))?;
    let line = &lines[idx];
    let pid = line
        .split("(PID:")
        .nth(1)
        .and_then(|s| s.trim().trim_end_matches(')').trim().parse().ok())
        .ok_or_else(|| ParseError::new("gs_ctl status", "unreadable PID", line))?;
    let options = lines.get(idx + 1).cloned().unwrap_or_default();
    let words: Vec<String> = options
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    let mode = words
        .iter()
        .position(|w| w == "-M")
        .and_then(|i| words.get(i + 1).cloned());
    Ok(ServerStatus::Running { pid, mode, options })
}

/// What `gs_ctl query -D <dir> -L <lsn>` found in the local WAL (works while stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineLsn {
    /// The furthest record on disk.
    pub max_lsn: Lsn,
    /// The check of the given LSN, in gs_ctl's words, when printed.
    pub input_check: Option<String>,
}

/// Parses `gs_ctl query -L` output.
pub fn parse_query_lsn(output: &str) -> Result<OfflineLsn, ParseError> {
    let lines = messages(output);
    let max = lines
        .iter()
        .find_map(|l| l.strip_prefix("MAX_LSN:"))
        .ok_or_else(|| ParseError::new("gs_ctl query -L", "no MAX_LSN line", output))?;
    let max_lsn = max
        .trim()
        .parse()
        .map_err(|e| ParseError::new("gs_ctl query -L", &format!("{e}"), max))?;
    Ok(OfflineLsn {
        max_lsn,
        input_check: lines.iter().find(|l| l.starts_with("Input LSN")).cloned(),
    })
}

/// Build progress from `gs_ctl querybuild`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildProgress {
    /// The HA block (from `gaussdb.state`).
    pub ha: HaState,
    /// `Full`, `Incremental`, ...
    pub build_mode: Option<String>,
    /// Percent done.
    pub percent: Option<u8>,
    /// gs_ctl's estimate, as printed (`00:02:41`).
    pub remaining: Option<String>,
}

/// Parses `gs_ctl querybuild -D <dir>` output.
pub fn parse_querybuild(output: &str) -> Result<BuildProgress, ParseError> {
    let parsed = parse_sections(output);
    let ha = parsed
        .get("HA state")
        .map(parse_ha)
        .ok_or_else(|| ParseError::new("gs_ctl querybuild", "no HA state block", output))?;
    let build: Vec<(String, String)> = parsed
        .get("Build state")
        .map(|s| s.rows.iter().flatten().cloned().collect())
        .unwrap_or_default();
    Ok(BuildProgress {
        ha,
        build_mode: field(&build, "build_mode").map(str::to_string),
        percent: field(&build, "process_schedule")
            .and_then(|v| v.trim_end_matches('%').parse().ok()),
        remaining: field(&build, "estimated_remaining_time").map(str::to_string),
    })
}
