//! `pg_controldata` output: the control file read while the server is down.
//!
//! Shared plumbing: openGauss keeps PostgreSQL's control file and its tool, so both adapters
//! read it here.

use std::collections::BTreeMap;

use patroni_core::Lsn;

const SYSTEM_ID: &str = "Database system identifier";
const STATE: &str = "Database cluster state";

/// The control file's fields by their English labels (the agent runs tools with `LC_ALL=C`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlData(pub BTreeMap<String, String>);

/// Output that is no control file listing: without the system identifier and the cluster state
/// nothing can be told about the data directory, so it is refused rather than read as a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pg_controldata output has no {missing:?}: {excerpt:?}")]
pub struct ControlDataError {
    /// The label that is missing.
    pub missing: &'static str,
    /// The start of the output.
    pub excerpt: String,
}

impl ControlData {
    /// Parses `label: value` lines (lines without a colon are skipped); the system identifier and
    /// the cluster state must be there.
    pub fn parse(text: &str) -> Result<Self, ControlDataError> {
        let cd = ControlData(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        );
        for label in [SYSTEM_ID, STATE] {
            if cd.get(label).is_none_or(str::is_empty) {
                return Err(ControlDataError {
                    missing: label,
                    excerpt: text.chars().take(200).collect(),
                });
            }
        }
        Ok(cd)
    }

    /// A field's value.
    pub fn get(&self, label: &str) -> Option<&str> {
        self.0.get(label).map(String::as_str)
    }

    /// "Database cluster state": `shut down`, `shut down in recovery`, `in production`, ...
    pub fn state(&self) -> Option<&str> {
        self.get(STATE)
    }

    /// Whether the last shutdown was clean (otherwise the server crashed or is running).
    pub fn cleanly_shut_down(&self) -> bool {
        matches!(self.state(), Some("shut down" | "shut down in recovery"))
    }

    /// "Database system identifier".
    pub fn system_id(&self) -> Option<String> {
        self.get(SYSTEM_ID).map(str::to_string)
    }

    /// The timeline of the latest checkpoint.
    pub fn timeline(&self) -> Option<u64> {
        self.get("Latest checkpoint's TimeLineID")?.parse().ok()
    }

    /// Where the latest checkpoint's record starts.
    pub fn checkpoint_lsn(&self) -> Option<Lsn> {
        self.get("Latest checkpoint location")?.parse().ok()
    }

    /// Where recovery must at least get to before the server is consistent (standbys).
    pub fn min_recovery_end(&self) -> Option<Lsn> {
        self.get("Minimum recovery ending location")?.parse().ok()
    }

    /// Whether pg_rewind can work on this data directory: `wal_log_hints` on or data checksums enabled.
    pub fn rewind_possible(&self) -> bool {
        self.get("wal_log_hints setting") == Some("on")
            || self
                .get("Data page checksum version")
                .is_some_and(|v| v != "0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7441612338446096478
Database cluster state:               in production
pg_control last modified:             Thu 26 Nov 2026 06:00:00 AM UTC
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's TimeLineID:       2
wal_log_hints setting:                off
Data page checksum version:           0
";

    #[test]
    fn parses_the_fields_the_agent_needs() {
        let c = ControlData::parse(SAMPLE).unwrap();
        assert_eq!(c.state(), Some("in production"));
        assert!(!c.cleanly_shut_down());
        assert_eq!(c.system_id().as_deref(), Some("7441612338446096478"));
        assert_eq!(c.timeline(), Some(2));
        assert_eq!(c.checkpoint_lsn(), Some(Lsn(0x3000060)));
        assert!(!c.rewind_possible());
        let hinted = ControlData::parse(
            &SAMPLE.replace("setting:                off", "setting:                on"),
        )
        .unwrap();
        assert!(hinted.rewind_possible());
        let sums =
            ControlData::parse(&SAMPLE.replace("version:           0", "version:           1"))
                .unwrap();
        assert!(sums.rewind_possible());
        assert!(ControlData::parse(
            "Database system identifier: 1\nDatabase cluster state: shut down in recovery"
        )
        .unwrap()
        .cleanly_shut_down());
        assert_eq!(c.min_recovery_end(), None);
    }

    #[test]
    fn output_without_identity_is_refused() {
        let err = ControlData::parse("Database cluster state: shut down").unwrap_err();
        assert_eq!(err.missing, "Database system identifier");
        let err = ControlData::parse("Database system identifier: 7\n").unwrap_err();
        assert_eq!(err.missing, "Database cluster state");
        assert!(ControlData::parse("pg_controldata: could not open file").is_err());
    }
}
