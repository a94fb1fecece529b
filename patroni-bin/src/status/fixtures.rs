//! The local database states the status and REST tests share: a running primary with one
//! streaming standby, and that standby's own view, so both suites describe the same cluster.

use patroni_core::{
    DbRole, LocalDb, Lsn, ProcessState, ReceiverStatus, ReplicationRow, Timestamp, WalSender,
};

/// When the fixture's postmaster started: `2023-11-14 22:13:20.123000+00:00`.
pub(crate) const POSTMASTER_START: Timestamp = Timestamp(1_700_000_000_123);

/// A running PostgreSQL 15.4 primary on timeline 1 that has written up to 1000, with no standby.
pub(crate) fn primary() -> LocalDb {
    let mut db = LocalDb {
        process: ProcessState::Running,
        role: DbRole::Primary,
        write_lsn: Some(Lsn(1000)),
        timeline: Some(1),
        version: Some("15.4".into()),
        ..Default::default()
    };
    db.report.postmaster_start_time = Some(POSTMASTER_START);
    db
}

/// [`primary`] with standby `n2` streaming asynchronously from 10.0.0.2 as `replicator`, flushed
/// up to 900 and with no replay position reported.
pub(crate) fn primary_with_replica() -> LocalDb {
    let mut db = primary();
    db.replication = vec![ReplicationRow {
        application_name: "n2".into(),
        state: "streaming".into(),
        sync_state: "async".into(),
        flush_lsn: Some(Lsn(900)),
        replay_lsn: None,
    }];
    db.report.replication = vec![WalSender {
        usename: Some("replicator".into()),
        application_name: "n2".into(),
        client_addr: Some("10.0.0.2".into()),
        state: "streaming".into(),
        sync_state: "async".into(),
        sync_priority: Some(0),
    }];
    db
}

/// A running standby on timeline 1 streaming from 127.0.0.1:5432, received and replayed up to
/// `replay`.
pub(crate) fn streaming_standby(replay: u64) -> LocalDb {
    LocalDb {
        process: ProcessState::Running,
        role: DbRole::Standby,
        receive_lsn: Some(Lsn(replay)),
        replay_lsn: Some(Lsn(replay)),
        timeline: Some(1),
        receiver: Some(ReceiverStatus {
            streaming: true,
            upstream_host: Some("127.0.0.1".into()),
            upstream_port: Some(5432),
        }),
        ..Default::default()
    }
}
