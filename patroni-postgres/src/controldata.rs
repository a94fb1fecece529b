//! `pg_controldata` output: the control file read while the server is down.

use std::collections::BTreeMap;

use patroni_core::Lsn;

/// The control file's fields by their English labels (the agent runs tools with `LC_ALL=C`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlData(pub BTreeMap<String, String>);

impl ControlData {
    /// Parses `label: value` lines; lines without a colon are skipped.
    pub fn parse(text: &str) -> Self {
        ControlData(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    /// A field's value.
    pub fn get(&self, label: &str) -> Option<&str> {
        self.0.get(label).map(String::as_str)
    }

    /// "Database cluster state": `shut down`, `shut down in recovery`, `in production`, ...
    pub fn state(&self) -> Option<&str> {
        self.get("Database cluster state")
    }

    /// Whether the last shutdown was clean (otherwise the server crashed or is running).
    pub fn cleanly_shut_down(&self) -> bool {
        matches!(self.state(), Some("shut down" | "shut down in recovery"))
    }

    /// "Database system identifier".
    pub fn system_id(&self) -> Option<String> {
        self.get("Database system identifier").map(str::to_string)
    }

    /// The timeline of the latest checkpoint.
    pub fn timeline(&self) -> Option<u64> {
        self.get("Latest checkpoint's TimeLineID")?.parse().ok()
    }

    /// Where the latest checkpoint's record starts.
    pub fn checkpoint_lsn(&self) -> Option<Lsn> {
        self.get("Latest checkpoint location")?.parse().ok()
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
        let c = ControlData::parse(SAMPLE);
        assert_eq!(c.state(), Some("in production"));
        assert!(!c.cleanly_shut_down());
        assert_eq!(c.system_id().as_deref(), Some("7441612338446096478"));
        assert_eq!(c.timeline(), Some(2));
        assert_eq!(c.checkpoint_lsn(), Some(Lsn(0x3000060)));
        assert!(!c.rewind_possible());
        let hinted = ControlData::parse(
            &SAMPLE.replace("setting:                off", "setting:                on"),
        );
        assert!(hinted.rewind_possible());
        let sums =
            ControlData::parse(&SAMPLE.replace("version:           0", "version:           1"));
        assert!(sums.rewind_possible());
        assert!(
            ControlData::parse("Database cluster state: shut down in recovery").cleanly_shut_down()
        );
    }
}
