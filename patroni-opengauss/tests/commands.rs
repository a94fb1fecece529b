//! Each port method against a recording runner: the exact gs_ctl / gs_guc command lines, and
//! the re-observation that catches "exit 0 but nothing happened".

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{guc_set_output, member, reply, Rig};
use patroni_core::{
    DataDirState, Database, DbError, DbRole, Lsn, ProcessState, RebuildMode, StartRole, StopMode,
};
use patroni_opengauss::sql_rows::{SQL_CURRENT_LSN, SQL_REPLICATION, SQL_TERM_LSN};
use patroni_opengauss::OpenGauss;
use patroni_postgres::command::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, RecordingRunner,
};

const GUC_SET_REPLICATION: &str = "/og/bin/gs_guc set -D D \
-c replconninfo1='localhost=10.10.0.11 localport=5433 remotehost=10.10.0.12 remoteport=5433' \
-c replconninfo2='localhost=10.10.0.11 localport=5433 remotehost=10.10.0.13 remoteport=5433' \
-c application_name='dn_6001' -c port=5432 -c listen_addresses='10.10.0.11' \
-c sync_config_strategy='none_node'";

fn lsn(s: &str) -> Lsn {
    s.parse().unwrap()
}

/// Replies for one observation of a running server: `gs_ctl query` then `pg_controldata`.
fn seen_running(rig: &Rig, query_fixture: &str) {
    reply(&rig.runner, query_fixture);
    reply(
        &rig.runner,
        "pg_controldata_standby_shutdown_in_recovery.txt",
    );
}

/// Replies for one observation of a stopped server: query, controldata, query -L.
fn seen_stopped(rig: &Rig) {
    reply(&rig.runner, "gs_ctl_query_server_not_running.txt");
    reply(
        &rig.runner,
        "pg_controldata_standby_shutdown_in_recovery.txt",
    );
    reply(&rig.runner, "gs_ctl_query_L_offline_max_lsn.txt");
}

const SEEN_RUNNING: [&str; 2] = ["/og/bin/gs_ctl query -D D", "/og/bin/pg_controldata D"];
const SEEN_STOPPED: [&str; 3] = [
    "/og/bin/gs_ctl query -D D",
    "/og/bin/pg_controldata D",
    "/og/bin/gs_ctl query -D D -L 0/5F3A238",
];

fn lines(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[tokio::test]
async fn observe_running_primary_reads_query_controldata_and_sql_term() {
    let rig = Rig::new();
    rig.sql
        .answer(SQL_TERM_LSN, "sql_last_xlog_replay_location_standby.tsv")
        .answer(SQL_REPLICATION, "sql_pg_stat_replication_primary.tsv");
    seen_running(&rig, "gs_ctl_query_primary_sync_and_async_standbys.txt");
    let db = rig.db.observe().await;
    assert_eq!(rig.lines(), lines(&[&SEEN_RUNNING]));
    assert_eq!(
        *rig.sql.asked.lock().unwrap(),
        vec![SQL_TERM_LSN, SQL_CURRENT_LSN, SQL_REPLICATION]
    );
    assert!(db.is_running_primary());
    assert_eq!(
        db.timeline,
        Some(3),
        "term from pg_last_xlog_replay_location"
    );
    assert_eq!(db.system_id.as_deref(), Some("7345120376011297582"));
    assert_eq!(db.replication.len(), 2);
    assert_eq!(rig.db.known_term(), 3);
}

#[tokio::test]
async fn observe_stopped_node_reads_offline_max_lsn() {
    let rig = Rig::new();
    seen_stopped(&rig);
    let db = rig.db.observe().await;
    assert_eq!(rig.lines(), lines(&[&SEEN_STOPPED]));
    assert!(rig.sql.asked.lock().unwrap().is_empty());
    assert_eq!(db.process, ProcessState::Stopped);
    assert_eq!(db.replay_lsn, Some(lsn("0/5F3A2B0")));
    assert_eq!(
        db.controldata_state.as_deref(),
        Some("shut down in recovery")
    );
}

#[tokio::test]
async fn observe_empty_data_dir_runs_nothing() {
    let rig = Rig::with(|_| {}, false);
    let db = rig.db.observe().await;
    assert_eq!(db.data_dir, DataDirState::Empty);
    assert_eq!(db.process, ProcessState::Stopped);
    assert!(rig.runner.calls().is_empty());
}

#[tokio::test]
async fn start_primary_configures_then_starts_with_mode_and_log() {
    let rig = Rig::new();
    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    rig.db.start(&StartRole::Primary).await.unwrap();
    assert_eq!(
        rig.lines(),
        lines(&[
            &[
                GUC_SET_REPLICATION,
                "/og/bin/gs_ctl start -D D -M primary -l /og/log/start.log -t 60"
            ],
            &SEEN_RUNNING
        ])
    );
    let start = &rig.runner.calls()[1];
    assert_eq!(start.timeout, Duration::from_secs(90));
    assert!(start
        .env
        .contains(&("GAUSSHOME".to_string(), "/og".to_string())));
}

#[tokio::test]
async fn start_standby_of_a_known_leader_uses_standby_mode() {
    let rig = Rig::new();
    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    let leader = member("dn_6002", "10.10.0.12");
    rig.db
        .start(&StartRole::Standby {
            upstream: Some(leader),
        })
        .await
        .unwrap();
    assert_eq!(
        rig.lines()[1],
        "/og/bin/gs_ctl start -D D -M standby -l /og/log/start.log -t 60"
    );
}

#[tokio::test]
async fn start_with_unknown_leader_uses_pending() {
    let rig = Rig::new();
    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_pending.txt");
    rig.db
        .start(&StartRole::Standby { upstream: None })
        .await
        .unwrap();
    assert_eq!(
        rig.lines()[1],
        "/og/bin/gs_ctl start -D D -M pending -l /og/log/start.log -t 60"
    );
}

#[tokio::test]
async fn start_that_did_nothing_is_not_effective() {
    let rig = Rig::new();
    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_already_running.txt"); // exit 0
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    let err = rig.db.start(&StartRole::Primary).await.unwrap_err();
    match err {
        DbError::NotEffective { action, observed } => {
            assert!(
                action.contains("another server might be running"),
                "{action}"
            );
            assert!(observed.contains("Standby"), "{observed}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn start_following_a_stranger_is_refused_before_any_command() {
    let rig = Rig::new();
    let err = rig
        .db
        .start(&StartRole::Standby {
            upstream: Some(member("dn_9", "10.9.9.9")),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::Unsupported(ref m) if m.contains("replconninfoN")),
        "{err}"
    );
    assert!(rig.runner.calls().is_empty());
}

#[tokio::test]
async fn stop_fast_and_immediate() {
    for (mode, word) in [(StopMode::Fast, "fast"), (StopMode::Immediate, "immediate")] {
        let rig = Rig::new();
        reply(&rig.runner, "gs_ctl_stop_success.txt");
        seen_stopped(&rig);
        rig.db.stop(mode).await.unwrap();
        assert_eq!(
            rig.lines(),
            lines(&[
                &[&format!("/og/bin/gs_ctl stop -D D -m {word} -t 60")],
                &SEEN_STOPPED
            ])
        );
    }
}

#[tokio::test]
async fn stop_that_left_the_server_running_is_not_effective() {
    let rig = Rig::new();
    rig.runner.reply_stdout(0, "");
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    let err = rig.db.stop(StopMode::Fast).await.unwrap_err();
    assert!(matches!(err, DbError::NotEffective { .. }), "{err}");
}

#[tokio::test]
async fn restart_keeps_the_current_mode() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    rig.db.restart().await.unwrap();
    assert_eq!(
        rig.lines(),
        lines(&[
            &SEEN_RUNNING,
            &["/og/bin/gs_ctl restart -D D -M standby -m fast -l /og/log/start.log -t 60"],
            &SEEN_RUNNING
        ])
    );
}

#[tokio::test]
async fn reload_signals() {
    let rig = Rig::new();
    reply(&rig.runner, "gs_ctl_reload_success.txt");
    rig.db.reload().await.unwrap();
    assert_eq!(rig.lines(), vec!["/og/bin/gs_ctl reload -D D"]);
}

#[tokio::test]
async fn promote_unplanned_is_failover_with_the_term() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_standby_primary_down_connecting.txt");
    reply(&rig.runner, "gs_ctl_failover_success.txt");
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    rig.db.promote(7, false).await.unwrap();
    assert_eq!(
        rig.lines(),
        lines(&[
            &SEEN_RUNNING,
            &["/og/bin/gs_ctl failover -D D -T 7 -t 60"],
            &SEEN_RUNNING
        ])
    );
    assert_eq!(rig.db.known_term(), 7);
}

#[tokio::test]
async fn promote_planned_is_switchover_and_a_timeout_with_exit_0_is_caught() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    reply(&rig.runner, "gs_ctl_switchover_timeout_exit0.txt");
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    let err = rig.db.promote(4, true).await.unwrap_err();
    assert_eq!(rig.lines()[2], "/og/bin/gs_ctl switchover -D D -T 4 -t 60");
    match err {
        DbError::NotEffective { action, observed } => {
            assert!(action.contains("switchover timeout"), "{action}");
            assert!(observed.contains("as Standby"), "{observed}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn promote_from_pending_is_notify_primary() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_pending.txt");
    reply(&rig.runner, "gs_ctl_notify_pending_to_primary.txt");
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    rig.db.promote(2, false).await.unwrap();
    assert_eq!(
        rig.lines()[2],
        "/og/bin/gs_ctl notify -M primary -D D -T 2 -t 60"
    );
}

#[tokio::test]
async fn failed_failover_is_reported_with_its_words() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_standby_primary_down_connecting.txt");
    reply(&rig.runner, "gs_ctl_failover_timeout.txt");
    let err = rig.db.promote(3, false).await.unwrap_err();
    match err {
        DbError::CommandFailed {
            command,
            status,
            output,
        } => {
            assert_eq!(
                command,
                "/og/bin/gs_ctl failover -D D -T 3 -t 60"
                    .replace(" D ", &format!(" {} ", rig.data()))
            );
            assert_eq!(status, "exit code 1");
            assert!(output.contains("failover failed"), "{output}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn demote_restarts_as_standby() {
    let rig = Rig::new();
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_standby_primary_down_connecting.txt");
    rig.db.demote(StopMode::Immediate).await.unwrap();
    assert_eq!(
        rig.lines()[0],
        "/og/bin/gs_ctl restart -D D -M standby -m immediate -l /og/log/start.log -t 60"
    );
}

#[tokio::test]
async fn follow_from_pending_notifies_standby_with_the_known_term() {
    let rig = Rig::new();
    rig.sql
        .answer(SQL_TERM_LSN, "sql_last_xlog_replay_location_standby.tsv");
    seen_running(&rig, "gs_ctl_query_pending.txt");
    rig.runner.reply_stdout(
        0,
        "[2025-03-14 09:58:10.010][1][][gs_ctl]: notify server completed, mode change to Standby",
    );
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    rig.db
        .follow(&member("dn_6002", "10.10.0.12"))
        .await
        .unwrap();
    assert_eq!(
        rig.lines()[2],
        "/og/bin/gs_ctl notify -M standby -D D -T 3 -t 60"
    );
}

#[tokio::test]
async fn follow_when_stopped_starts_as_standby() {
    let rig = Rig::new();
    seen_stopped(&rig);
    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    rig.db
        .follow(&member("dn_6002", "10.10.0.12"))
        .await
        .unwrap();
    assert_eq!(
        rig.lines()[4],
        "/og/bin/gs_ctl start -D D -M standby -l /og/log/start.log -t 60"
    );
}

#[tokio::test]
async fn follow_on_a_streaming_standby_issues_nothing() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    rig.db
        .follow(&member("dn_6002", "10.10.0.12"))
        .await
        .unwrap();
    assert_eq!(rig.lines(), lines(&[&SEEN_RUNNING]));
}

#[tokio::test]
async fn rebuild_is_refused_on_a_running_primary() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    let err = rig
        .db
        .rebuild(&member("dn_6002", "10.10.0.12"), RebuildMode::Auto, 5)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::Unsupported(ref m) if m.contains("primary")),
        "{err}"
    );
    assert!(rig.lines().iter().all(|l| !l.contains(" build ")));
}

#[tokio::test]
async fn rebuild_stops_first_then_builds_with_the_term() {
    for (mode, word) in [(RebuildMode::Auto, "auto"), (RebuildMode::Full, "full")] {
        let rig = Rig::new();
        seen_running(
            &rig,
            "gs_ctl_query_standby_need_repair_wal_segment_removed.txt",
        );
        reply(&rig.runner, "gs_ctl_stop_success.txt");
        seen_stopped(&rig);
        reply(&rig.runner, "gs_ctl_build_auto_incremental_success.txt");
        seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
        rig.db
            .rebuild(&member("dn_6002", "10.10.0.12"), mode, 5)
            .await
            .unwrap();
        assert_eq!(
            rig.lines(),
            lines(&[
                &SEEN_RUNNING,
                &["/og/bin/gs_ctl stop -D D -m fast -t 60"],
                &SEEN_STOPPED,
                &[&format!(
                    "/og/bin/gs_ctl build -D D -b {word} -T 5 -l /og/log/start.log"
                )],
                &SEEN_RUNNING
            ])
        );
        assert_eq!(rig.runner.calls()[6].timeout, Duration::from_secs(3600));
    }
}

#[tokio::test]
async fn a_failed_build_reports_the_node_left_stopped() {
    let rig = Rig::new();
    seen_stopped(&rig);
    reply(&rig.runner, "gs_ctl_build_failed_primary_unreachable.txt");
    seen_stopped(&rig);
    let err = rig
        .db
        .rebuild(&member("dn_6002", "10.10.0.12"), RebuildMode::Auto, 5)
        .await
        .unwrap_err();
    match err {
        DbError::CommandFailed { output, .. } => {
            assert!(output.contains("BuildNoPrimary"), "{output}");
            assert!(output.contains("left STOPPED"), "{output}");
            assert!(output.contains("skip full build"), "{output}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn set_sync_standbys_reloads_names_and_most_available() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_primary_sync_and_async_standbys.txt");
    reply(&rig.runner, "gs_guc_reload_success.txt");
    rig.db
        .set_sync_standbys(&["dn_6002".into(), "dn_6003".into()], 1, false)
        .await
        .unwrap();
    assert_eq!(
        rig.lines()[2],
        "/og/bin/gs_guc reload -D D -c synchronous_standby_names='FIRST 1(dn_6002,dn_6003)' -c most_available_sync=off"
    );

    let rig = Rig::with(|c| c.opengauss.most_available_sync = true, true);
    seen_stopped(&rig);
    rig.runner.reply_stdout(0, guc_set_output());
    rig.db.set_sync_standbys(&[], 0, false).await.unwrap();
    assert_eq!(
        rig.lines()[3],
        "/og/bin/gs_guc set -D D -c synchronous_standby_names='' -c most_available_sync=on"
    );
}

#[tokio::test]
async fn a_failed_gs_guc_is_an_error() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    rig.runner.reply_stdout(1, "Failure to perform gs_guc!\n");
    let err = rig
        .db
        .set_sync_standbys(&["dn_6002".into()], 1, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::CommandFailed { ref output, .. } if output.contains("Failure")),
        "{err}"
    );
}

/// Delegates to a recording runner and creates `PG_VERSION` when gs_initdb or gs_ctl build runs,
/// standing in for the files those programs would write.
struct Materialising {
    inner: Arc<RecordingRunner>,
    data: std::path::PathBuf,
}

#[async_trait]
impl CommandRunner for Materialising {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let out = self.inner.run(spec).await;
        let creates =
            spec.program.ends_with("gs_initdb") || spec.args.first().is_some_and(|a| a == "build");
        if creates {
            std::fs::create_dir_all(&self.data).unwrap();
            std::fs::write(self.data.join("PG_VERSION"), "9.2\n").unwrap();
        }
        out
    }
}

fn materialising_rig() -> (Rig, OpenGauss) {
    let rig = Rig::with(|_| {}, false);
    let cfg = common::config(rig.dir.path());
    let runner = Materialising {
        inner: rig.runner.clone(),
        data: rig.dir.path().join("data"),
    };
    let db = OpenGauss::new(cfg, Arc::new(runner), rig.sql.clone()).unwrap();
    (rig, db)
}

#[tokio::test]
async fn bootstrap_initdb_configure_start_primary() {
    let (rig, db) = materialising_rig();
    rig.runner
        .reply_stdout(0, "Success. You can now start the database server\n");
    rig.runner.reply_stdout(0, guc_set_output());
    reply(&rig.runner, "gs_ctl_start_standby_success.txt");
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    db.bootstrap().await.unwrap();
    assert_eq!(
        rig.lines(),
        lines(&[
            &[
                "/og/bin/gs_initdb -D D --nodename=dn_6001",
                GUC_SET_REPLICATION,
                "/og/bin/gs_ctl start -D D -M primary -l /og/log/start.log -t 60"
            ],
            &SEEN_RUNNING
        ])
    );
}

#[tokio::test]
async fn clone_is_a_full_build_from_the_source_then_reload_of_local_settings() {
    let (rig, db) = materialising_rig();
    reply(&rig.runner, "gs_ctl_build_full_success.txt");
    reply(&rig.runner, "gs_guc_reload_success.txt");
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    db.clone_from(&member("dn_6002", "10.10.0.12"))
        .await
        .unwrap();
    let l = rig.lines();
    assert_eq!(
        l[0],
        "/og/bin/gs_ctl build -D D -b full -T 1 -C localhost=10.10.0.11 localport=5433 remotehost=10.10.0.12 remoteport=5433 -l /og/log/start.log"
    );
    assert!(
        l[1].starts_with("/og/bin/gs_guc reload -D D -c replconninfo1="),
        "{}",
        l[1]
    );
    assert_eq!(
        db.observe().await.role,
        DbRole::Unknown,
        "unscripted query: unknown"
    );
}

#[test]
fn the_example_config_loads_and_validates() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/opengauss_cluster.yml");
    let doc: yaml_serde::Value =
        yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut cfg: patroni_opengauss::OpenGaussConfig =
        yaml_serde::from_value(doc["postgresql"].clone()).unwrap();
    cfg.name = doc["name"].as_str().unwrap().to_string();
    cfg.validate().unwrap();
    assert_eq!(
        patroni_opengauss::detect_flavour(cfg.flavour, cfg.bin_dir.as_deref()),
        patroni_opengauss::Flavour::OpenGauss
    );
    assert_eq!(cfg.port(), 5432);
    assert_eq!(cfg.opengauss.peers.len(), 2);
    let params = patroni_opengauss::commands::replication_params(&cfg);
    assert!(params.contains(&(
        "replconninfo2".to_string(),
        "'localhost=10.10.0.11 localport=5433 remotehost=10.10.0.13 remoteport=5433'".to_string()
    )));
}

#[test]
fn bad_config_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.listen = "10.10.0.11".into();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("postgresql.listen"), "{err}");
    let mut cfg = common::config(dir.path());
    cfg.data_dir = "relative/data".into();
    assert!(cfg.validate().unwrap_err().to_string().contains("data_dir"));
    let yaml = "data_dir: /d\nlisten: a:1\nconnect_address: a:1\nopengauss: {typo_key: 1}\n";
    let err = yaml_serde::from_str::<patroni_opengauss::OpenGaussConfig>(yaml).unwrap_err();
    assert!(err.to_string().contains("typo_key"), "{err}");
}

#[test]
fn sync_names_quote_what_the_grammar_needs() {
    use patroni_opengauss::commands::sync_standby_names;
    assert_eq!(
        sync_standby_names(&["dn_6002".into()], 1, false),
        "'FIRST 1(dn_6002)'"
    );
    assert_eq!(
        sync_standby_names(&["Node-A".into(), "b".into()], 5, false),
        "'FIRST 2(\"Node-A\",b)'"
    );
    assert_eq!(sync_standby_names(&[], 1, false), "''");
    assert_eq!(
        sync_standby_names(&["a".into(), "b".into()], 1, true),
        "'ANY 1(a,b)'"
    );
}

#[test]
fn an_unknown_os_user_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.opengauss.os_user = Some("no-such-user-patroni".into());
    let runner = Arc::new(RecordingRunner::new());
    let sql = Arc::new(common::ScriptedSql::default());
    let err = OpenGauss::new(cfg, runner, sql).err().expect("refused");
    assert!(err.to_string().contains("os_user"), "{err}");
}

#[tokio::test]
async fn sql_failures_are_kept_for_the_operator() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_standby_streaming_normal.txt");
    let db = rig.db.observe().await;
    assert_eq!(db.timeline, None);
    assert_eq!(
        rig.db.last_sql_error(),
        Some(DbError::Query("connection refused".into()))
    );
    // ... and reach the operator through the observation (`/patroni`, the member key, the log).
    assert_eq!(
        db.report.sql_error,
        Some(patroni_core::SqlProblem::Refused(
            "connection refused".into()
        ))
    );
    assert!(rig.db.check_sql().await.is_err());
}

/// The first failing statement of an observation is what the operator sees, even when later
/// statements answer; the next observation that answers in full clears it.
#[tokio::test]
async fn an_earlier_sql_failure_survives_later_answers() {
    let rig = Rig::new();
    // The term query is unscripted (refused); the primary's two later statements answer.
    rig.sql
        .answer_rows(SQL_CURRENT_LSN, "location\n0/5F3A2B0\n")
        .answer(SQL_REPLICATION, "sql_pg_stat_replication_primary.tsv");
    seen_running(&rig, "gs_ctl_query_primary_sync_and_async_standbys.txt");
    let db = rig.db.observe().await;
    assert_eq!(
        *rig.sql.asked.lock().unwrap(),
        vec![SQL_TERM_LSN, SQL_CURRENT_LSN, SQL_REPLICATION]
    );
    assert_eq!(
        db.write_lsn,
        Some(lsn("0/5F3A2B0")),
        "the later answers are used"
    );
    assert_eq!(
        db.report.sql_error,
        Some(patroni_core::SqlProblem::Refused(
            "connection refused".into()
        ))
    );
    assert_eq!(
        rig.db.last_sql_error(),
        Some(DbError::Query("connection refused".into()))
    );
    rig.sql
        .answer(SQL_TERM_LSN, "sql_last_xlog_replay_location_standby.tsv");
    seen_running(&rig, "gs_ctl_query_primary_sync_and_async_standbys.txt");
    let db = rig.db.observe().await;
    assert_eq!(db.report.sql_error, None);
    assert_eq!(rig.db.last_sql_error(), None);
}

#[test]
fn legacy_prefix_is_tolerated() {
    use patroni_opengauss::ctl_output::{parse_ctl, CtlOutcome, Verb};
    let out = "2020-07-25 15:58:52  15481 gs_ctl: waiting for server to start...\n.... done\n2020-07-25 15:58:55  15481 gs_ctl: server started (/opt/og/data)\n";
    assert_eq!(parse_ctl(Verb::Start, out).outcome, CtlOutcome::Started);
}

#[tokio::test]
async fn cluster_parameters_are_sent_once_each_with_gs_guc() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    reply(&rig.runner, "gs_guc_reload_success.txt");
    let params =
        serde_json::json!({"work_mem": "8MB", "max_connections": 200, "enable_seqscan": false});
    let params = params.as_object().unwrap();
    assert!(rig.db.apply_parameters(params).await.unwrap());
    assert_eq!(
        rig.lines()[2],
        "/og/bin/gs_guc reload -D D -c enable_seqscan=off -c max_connections=200 -c work_mem='8MB'"
    );
    // Unchanged: nothing is sent again.
    assert!(!rig.db.apply_parameters(params).await.unwrap());
    assert_eq!(rig.lines().len(), 3);
    // One change, on a stopped server: `gs_guc set` with that value only.
    seen_stopped(&rig);
    rig.runner.reply_stdout(0, guc_set_output());
    let mut changed = params.clone();
    changed.insert("work_mem".into(), "16MB".into());
    assert!(rig.db.apply_parameters(&changed).await.unwrap());
    assert_eq!(
        rig.lines().last().unwrap(),
        "/og/bin/gs_guc set -D D -c work_mem='16MB'"
    );
}

/// The node's own `postgresql.parameters` go over `/config`'s, except the ones every member
/// must share, as with PostgreSQL.
#[tokio::test]
async fn local_parameters_are_applied_over_the_cluster_ones() {
    let rig = Rig::with(
        |c| {
            for (k, v) in [
                ("work_mem", "32MB"),
                ("Log_Min_Messages", "debug1"),
                ("max_connections", "9"),
            ] {
                c.parameters.insert(k.into(), v.into());
            }
        },
        true,
    );
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    reply(&rig.runner, "gs_guc_reload_success.txt");
    let params = serde_json::json!({"work_mem": "8MB", "max_connections": 200});
    assert!(rig
        .db
        .apply_parameters(params.as_object().unwrap())
        .await
        .unwrap());
    assert_eq!(
        rig.lines()[2],
        "/og/bin/gs_guc reload -D D -c log_min_messages='debug1' -c max_connections=200 -c work_mem='32MB'"
    );
    // With no /config parameters at all, the node's own are still there (and already applied).
    assert!(!rig.db.apply_parameters(&Default::default()).await.unwrap());
}

#[tokio::test]
async fn cluster_parameters_wait_for_an_initialised_data_directory() {
    let rig = Rig::with(|_| {}, false);
    let params = serde_json::json!({"work_mem": "8MB"});
    assert!(!rig
        .db
        .apply_parameters(params.as_object().unwrap())
        .await
        .unwrap());
    assert!(rig.lines().is_empty());
}

#[tokio::test]
async fn a_primary_drops_the_inactive_slots_of_members_that_left() {
    let rig = Rig::new();
    seen_running(&rig, "gs_ctl_query_primary_no_standby_connected.txt");
    rig.sql.answer_rows(
        "SELECT slot_name, slot_type, active FROM pg_replication_slots",
        "slot_name\tslot_type\tactive\ndn_6002\tphysical\tf\ndn_6003\tphysical\tt\ngone_1\tphysical\tf\ncdc\tlogical\tf\n",
    );
    rig.sql.answer_rows(
        "SELECT * FROM pg_drop_replication_slot('gone_1')",
        "pg_drop_replication_slot\n\n",
    );
    let plan = patroni_core::slots::SlotPlan {
        use_slots: true,
        keep: ["dn_6002".to_string(), "dn_6003".to_string()].into(),
        ..Default::default()
    };
    assert!(rig.db.sync_slots(&plan).await.unwrap());
    let asked = rig.sql.asked.lock().unwrap().clone();
    let drops: Vec<&String> = asked.iter().filter(|q| q.contains("drop")).collect();
    assert_eq!(drops, ["SELECT * FROM pg_drop_replication_slot('gone_1')"]);
}
