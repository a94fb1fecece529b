//! The four seed-rule flows as scripted sequences of fixture outputs: observe, act as the core
//! would decide, and check what the adapter issued and reported.

mod common;

use common::{guc_set_output, load, member, reply, Rig};
use patroni_core::{CannotFollowReason, Database, DbError, ProcessState, RebuildMode, StartRole};
use patroni_opengauss::sql_rows::SQL_TERM_LSN;

fn seen_running(rig: &Rig, query_fixture: &str) {
    reply(&rig.runner, query_fixture);
    reply(
        &rig.runner,
        "pg_controldata_standby_shutdown_in_recovery.txt",
    );
}

/// A stopped node whose control file says `state` (the fixture's own, or a crash-left state).
fn seen_stopped_with_state(rig: &Rig, state: &str) {
    reply(&rig.runner, "gs_ctl_query_server_not_running.txt");
    let control = load("pg_controldata_standby_shutdown_in_recovery.txt")
        .text
        .replace("shut down in recovery", state);
    rig.runner.reply_stdout(0, control);
    reply(&rig.runner, "gs_ctl_query_L_offline_max_lsn.txt");
}

#[tokio::test]
async fn primary_that_fails_to_start_reports_start_failed_with_the_log() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("start.log");
    let mut text: String = (1..=40).map(|i| format!("LOG:  line {i}\n")).collect();
    text.push_str("FATAL:  could not create shared memory segment: Cannot allocate memory\n");
    std::fs::write(&log, text).unwrap();
    let rig = Rig::with(|c| c.opengauss.log_file = Some(log.clone()), true);
    seen_stopped_with_state(&rig, "in production");
    assert_eq!(rig.db.observe().await.process, ProcessState::Crashed);

    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_failed.txt");
    let err = rig.db.start(&StartRole::Primary).await.unwrap_err();
    assert_eq!(
        rig.lines()[4],
        format!(
            "/og/bin/gs_ctl start -D D -M primary -l {} -t 60",
            log.display()
        )
    );
    match err {
        DbError::StartFailed { reason, log_tail } => {
            assert!(reason.contains("could not start server"), "{reason}");
            assert!(reason.contains("exit code 1"), "{reason}");
            assert!(log_tail.ends_with("Cannot allocate memory"), "{log_tail}");
            assert_eq!(log_tail.lines().count(), 30);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn standby_with_wal_segment_removed_is_rebuilt_with_the_current_term() {
    let rig = Rig::new();
    rig.sql
        .answer(SQL_TERM_LSN, "sql_last_xlog_replay_location_standby.tsv");
    seen_running(
        &rig,
        "gs_ctl_query_standby_need_repair_wal_segment_removed.txt",
    );
    let db = rig.db.observe().await;
    let cf = db.cannot_follow.clone().expect("cannot follow");
    assert_eq!(cf.reason, CannotFollowReason::WalRemoved);
    let term = db.timeline.expect("term");
    assert_eq!(term, 3);

    // The core answers with Rebuild{timeline: current generation}.
    seen_running(
        &rig,
        "gs_ctl_query_standby_need_repair_wal_segment_removed.txt",
    );
    reply(&rig.runner, "gs_ctl_stop_success.txt");
    seen_stopped_with_state(&rig, "shut down in recovery");
    reply(&rig.runner, "gs_ctl_build_auto_incremental_success.txt");
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    rig.db
        .rebuild(&member("dn_6002", "10.10.0.12"), RebuildMode::Auto, term)
        .await
        .unwrap();
    let lines = rig.lines();
    assert_eq!(lines[4], "/og/bin/gs_ctl stop -D D -m fast -t 60");
    assert_eq!(
        lines[8],
        "/og/bin/gs_ctl build -D D -b auto -T 3 -l /og/log/start.log"
    );
    assert_eq!(lines.len(), 11, "{lines:#?}");
    assert_eq!(rig.db.known_term(), 3);
}

#[tokio::test]
async fn standby_that_is_down_is_started_as_standby() {
    let rig = Rig::new();
    seen_stopped_with_state(&rig, "shut down in recovery");
    let db = rig.db.observe().await;
    assert_eq!(db.process, ProcessState::Stopped);

    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    rig.db
        .start(&StartRole::Standby {
            upstream: Some(member("dn_6002", "10.10.0.12")),
        })
        .await
        .unwrap();
    assert_eq!(
        rig.lines()[4],
        "/og/bin/gs_ctl start -D D -M standby -l /og/log/start.log -t 60"
    );
}

#[tokio::test]
async fn restartable_primary_is_started_as_primary() {
    let rig = Rig::new();
    seen_stopped_with_state(&rig, "shut down");
    let db = rig.db.observe().await;
    assert_eq!(db.process, ProcessState::Stopped);

    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    rig.db.start(&StartRole::Primary).await.unwrap();
    assert_eq!(
        rig.lines()[4],
        "/og/bin/gs_ctl start -D D -M primary -l /og/log/start.log -t 60"
    );
    assert_eq!(
        rig.lines().len(),
        7,
        "observe 3 + gs_guc + start + observe 2"
    );
}

#[tokio::test]
async fn old_primary_rejoining_is_demoted_and_seen_as_diverged() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    assert!(rig.db.observe().await.is_running_primary());
    // Demote, then the walreceiver's CRC check fails against the new primary.
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_old_primary_rejoined_diverged.txt");
    rig.db.demote(patroni_core::StopMode::Fast).await.unwrap();
    seen_running(&rig, "gs_ctl_query_old_primary_rejoined_diverged.txt");
    let db = rig.db.observe().await;
    assert_eq!(
        db.cannot_follow.map(|c| c.reason),
        Some(CannotFollowReason::Diverged)
    );
}
