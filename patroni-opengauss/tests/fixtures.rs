//! Every fixture transcript parsed into the expected observation: one case per file (all 48).
//!
//! The transcripts were reconstructed from the openGauss source (no binaries can run here), so
//! these tests pin the parsers to the documented byte layout, not to a captured server.

mod common;

use common::{fixture_dir, load, manifest, Fixture};
use patroni_core::{CannotFollowReason, DataDirState, DbRole, LocalDb, Lsn, ProcessState};
use patroni_opengauss::ctl_output::{parse_ctl, parse_guc, CtlOutcome, Verb};
use patroni_opengauss::observe::{local_db, role_of, Facts};
use patroni_opengauss::query::{parse_query, QueryOutput, QueryReport};
use patroni_opengauss::sections::Layout;
use patroni_opengauss::sql_rows::{ha_state, named_standbys, stream_rows, term_lsn, SqlRows};
use patroni_opengauss::status::{parse_query_lsn, parse_querybuild, parse_status, ServerStatus};
use patroni_postgres::controldata::ControlData;

fn lsn(s: &str) -> Lsn {
    s.parse().unwrap()
}

fn peers() -> Vec<(String, String)> {
    vec![
        ("10.10.0.12".into(), "dn_6002".into()),
        ("10.10.0.13".into(), "dn_6003".into()),
    ]
}

fn report(f: &Fixture) -> QueryReport {
    match parse_query(&f.text).unwrap_or_else(|e| panic!("{}: {e}", f.name)) {
        QueryOutput::Running(r) => r,
        other => panic!("{}: expected a running report, got {other:?}", f.name),
    }
}

/// The observation a query fixture maps to, with the fixture cluster's peers and no SQL.
fn observed(f: &Fixture, was_primary: bool) -> LocalDb {
    local_db(&Facts {
        data_dir: DataDirState::Initialized,
        query: Some(parse_query(&f.text).unwrap()),
        peer_names: peers(),
        was_primary,
        ..Facts::default()
    })
}

fn outcome(verb: Verb, f: &Fixture) -> CtlOutcome {
    parse_ctl(verb, &f.text).outcome
}

fn rows(f: &Fixture) -> SqlRows {
    SqlRows::from_tsv(&f.text)
}

macro_rules! cases {
    ($($test:ident => $file:literal, $check:expr;)*) => {
        const FILES: &[&str] = &[$($file),*];
        $(
            #[test]
            fn $test() {
                let f = load($file);
                let check: fn(&Fixture) = $check;
                check(&f);
            }
        )*
    };
}

cases! {
    query_primary_sync_and_async => "gs_ctl_query_primary_sync_and_async_standbys.txt", |f| {
        assert_eq!(f.exit_code, Some(0));
        let r = report(f);
        assert_eq!(r.layout, Layout::Sql);
        assert_eq!((r.ha.local_role.as_str(), r.ha.static_connections), ("Primary", Some(2)));
        assert_eq!(r.senders.len(), 2);
        assert_eq!(r.senders[0].sync_priority, Some(1));
        assert_eq!(r.senders[1].sync_priority, Some(0));
        assert_eq!(r.senders[0].sync_most_available, Some(false));
        assert_eq!(r.senders[1].sync_percent, Some(99));
        assert!(r.receiver.is_none());
        let db = observed(f, false);
        assert_eq!((db.process, db.role), (ProcessState::Running, DbRole::Primary));
        assert_eq!(db.write_lsn, Some(lsn("0/5F3A1B8")));
        let names: Vec<_> = db.replication.iter().map(|r| (r.application_name.as_str(), r.sync_state.as_str(), r.state.as_str())).collect();
        assert_eq!(names, vec![("dn_6002", "sync", "streaming"), ("dn_6003", "async", "streaming")]);
        assert_eq!(db.replication[1].flush_lsn, Some(lsn("0/5F39F20")));
        assert_eq!(db.replication[1].replay_lsn, Some(lsn("0/5F39E00")));
        assert_eq!(db.sync_standbys().collect::<Vec<_>>(), vec!["dn_6002"]);
        assert!(db.cannot_follow.is_none());
    };
    query_primary_quorum => "gs_ctl_query_primary_quorum_any1_most_available_on.txt", |f| {
        let r = report(f);
        assert!(r.senders.iter().all(|s| s.sync_state.as_deref() == Some("Quorum") && s.sync_most_available == Some(true)));
        let db = observed(f, false);
        assert_eq!(db.write_lsn, Some(lsn("0/6A01C40")));
        assert_eq!(db.sync_standbys().collect::<Vec<_>>(), vec!["dn_6002", "dn_6003"]);
        assert_eq!(db.replication[1].replay_lsn, Some(lsn("0/6A01B08")));
    };
    query_primary_no_standby => "gs_ctl_query_primary_no_standby_connected.txt", |f| {
        let r = report(f);
        assert!(r.senders.is_empty() && r.receiver.is_none());
        let db = observed(f, false);
        assert!(db.is_running_primary());
        assert!(db.replication.is_empty());
        assert_eq!(db.write_lsn, None);
    };
    query_standby_streaming => "gs_ctl_query_standby_streaming_normal.txt", |f| {
        let r = report(f);
        assert_eq!(r.receiver.as_ref().unwrap().pid, Some(98211));
        let db = observed(f, false);
        assert_eq!((db.process, db.role), (ProcessState::Running, DbRole::Standby));
        let rx = db.receiver.clone().unwrap();
        assert!(rx.streaming);
        // The channel shows the HA port 5433; the upstream is reported by its client port.
        assert_eq!((rx.upstream_host.as_deref(), rx.upstream_port), (Some("10.10.0.11"), Some(5432)));
        assert_eq!(db.receive_lsn, Some(lsn("0/5F3A1B8")));
        assert_eq!(db.replay_lsn, Some(lsn("0/5F3A160")));
        assert!(db.cannot_follow.is_none());
    };
    query_standby_catchup => "gs_ctl_query_standby_catchup.txt", |f| {
        let r = report(f);
        assert_eq!(r.ha.db_state, "Catchup");
        assert_eq!(r.receiver.as_ref().unwrap().sync_percent, Some(47));
        let db = observed(f, false);
        assert!(db.receiver.as_ref().unwrap().streaming);
        assert_eq!(db.receive_lsn, Some(lsn("0/7B2E0000")));
        assert_eq!(db.replay_lsn, Some(lsn("0/7A119C20")));
        assert_eq!(db.wal_position(), lsn("0/7B2E0000"));
        assert!(db.cannot_follow.is_none());
    };
    query_standby_primary_down => "gs_ctl_query_standby_primary_down_connecting.txt", |f| {
        let r = report(f);
        assert_eq!((r.ha.db_state.as_str(), r.ha.detail_information.as_str()), ("Need repair", "Connecting..."));
        let db = observed(f, false);
        assert_eq!((db.process, db.role), (ProcessState::Running, DbRole::Standby));
        assert!(db.receiver.is_none());
        // Waiting for a primary is not "cannot follow": no rebuild.
        assert!(db.cannot_follow.is_none());
        assert!(observed(f, true).cannot_follow.is_none());
    };
    query_standby_wal_removed => "gs_ctl_query_standby_need_repair_wal_segment_removed.txt", |f| {
        let db = observed(f, false);
        let cf = db.cannot_follow.unwrap();
        assert_eq!(cf.reason, CannotFollowReason::WalRemoved);
        assert!(cf.detail.contains("Need repair / WAL segment removed"), "{}", cf.detail);
    };
    query_old_primary_diverged => "gs_ctl_query_old_primary_rejoined_diverged.txt", |f| {
        // Same words as a lagging standby; the adapter's memory that this node was primary tells divergence.
        let db = observed(f, true);
        assert_eq!(db.role, DbRole::Standby);
        assert_eq!(db.cannot_follow.unwrap().reason, CannotFollowReason::Diverged);
        assert_eq!(observed(f, false).cannot_follow.unwrap().reason, CannotFollowReason::WalRemoved);
    };
    query_standby_timeline => "gs_ctl_query_standby_timeline_not_matched.txt", |f| {
        let cf = observed(f, false).cannot_follow.unwrap();
        assert_eq!(cf.reason, CannotFollowReason::TimelineMismatch);
        assert!(cf.detail.contains("Timeline not matched"));
    };
    query_pending => "gs_ctl_query_pending.txt", |f| {
        let r = report(f);
        assert_eq!(r.ha.local_role, "Pending");
        let db = observed(f, false);
        assert_eq!((db.process, db.role), (ProcessState::Running, DbRole::Standby));
        assert!(db.cannot_follow.is_none());
    };
    query_standby_no_replconninfo => "gs_ctl_query_standby_no_replconninfo.txt", |f| {
        let r = report(f);
        assert_eq!(r.ha.static_connections, Some(0));
        assert_eq!(r.ha.detail_information, "Disconnected");
        assert!(observed(f, false).cannot_follow.is_none());
    };
    query_state_file_fallback => "gs_ctl_query_connect_failed_state_file_fallback.txt", |f| {
        let r = report(f);
        assert_eq!(r.layout, Layout::StateFile);
        assert_eq!(r.ha.local_role, "Standby");
        assert_eq!(r.ha.db_state, "Starting");
        assert_eq!(r.ha.detail_information, "FATAL:  the database system is starting up");
        assert_eq!(r.ha.sync_mode.as_deref(), Some("Async"));
        assert!(r.senders.is_empty() && r.receiver.is_none());
        let db = observed(f, false);
        assert_eq!((db.process, db.role), (ProcessState::Starting, DbRole::Standby));
    };
    query_not_running => "gs_ctl_query_server_not_running.txt", |f| {
        assert_eq!(f.exit_code, Some(1));
        match parse_query(&f.text).unwrap() {
            QueryOutput::NotRunning { detail } => assert!(detail.contains("postmaster.pid\" does not exist"), "{detail}"),
            other => panic!("{other:?}"),
        }
        let db = observed(f, false);
        assert_eq!((db.process, db.role), (ProcessState::Stopped, DbRole::Unknown));
    };
    query_lsn_offline => "gs_ctl_query_L_offline_max_lsn.txt", |f| {
        assert!(f.command.contains("-L 0/5F3A238"));
        let o = parse_query_lsn(&f.text).unwrap();
        assert_eq!(o.max_lsn, lsn("0/5F3A2B0"));
        assert!(o.input_check.unwrap().contains("check success"));
    };
    querybuild_full => "gs_ctl_querybuild_building_full.txt", |f| {
        let b = parse_querybuild(&f.text).unwrap();
        assert_eq!((b.ha.local_role.as_str(), b.ha.db_state.as_str()), ("Standby", "Building"));
        assert_eq!(b.ha.sync_mode.as_deref(), Some("Async"));
        assert_eq!(b.build_mode.as_deref(), Some("Full"));
        assert_eq!(b.percent, Some(37));
        assert_eq!(b.remaining.as_deref(), Some("00:02:41"));
    };
    status_running_standby => "gs_ctl_status_running_standby.txt", |f| {
        match parse_status(&f.text).unwrap() {
            ServerStatus::Running { pid, mode, options } => {
                assert_eq!((pid, mode.as_deref()), (38811, Some("standby")));
                assert!(options.starts_with("/usr/local/opengauss/bin/gaussdb"));
            }
            other => panic!("{other:?}"),
        }
    };
    status_not_running => "gs_ctl_status_not_running.txt", |f| {
        assert_eq!(f.exit_code, Some(3));
        assert_eq!(parse_status(&f.text).unwrap(), ServerStatus::NotRunning);
    };
    start_standby_success => "gs_ctl_start_standby_success.txt", |f| {
        assert_eq!(outcome(Verb::Start, f), CtlOutcome::Started);
    };
    start_already_running => "gs_ctl_start_already_running.txt", |f| {
        // Exit 0, yet nothing happened.
        assert_eq!(f.exit_code, Some(0));
        assert_eq!(outcome(Verb::Start, f), CtlOutcome::AlreadyRunning);
    };
    start_failed => "gs_ctl_start_failed.txt", |f| {
        assert_eq!(f.exit_code, Some(1));
        let r = parse_ctl(Verb::Start, &f.text);
        assert_eq!(r.outcome, CtlOutcome::StartFailed);
        // The dots ran into the prefixed line; the message after them is still found.
        assert!(r.messages.iter().any(|m| m.starts_with("waitpid 22611 failed")));
        assert!(r.summary().contains("Examine the log output."));
    };
    stop_success => "gs_ctl_stop_success.txt", |f| {
        assert_eq!(outcome(Verb::Stop, f), CtlOutcome::Stopped);
    };
    stop_not_running => "gs_ctl_stop_not_running.txt", |f| {
        assert_eq!(f.exit_code, Some(1));
        assert_eq!(outcome(Verb::Stop, f), CtlOutcome::NotRunning);
    };
    reload_success => "gs_ctl_reload_success.txt", |f| {
        assert_eq!(outcome(Verb::Reload, f), CtlOutcome::Signaled);
    };
    failover_success => "gs_ctl_failover_success.txt", |f| {
        let r = parse_ctl(Verb::Failover, &f.text);
        assert_eq!((r.outcome, r.term), (CtlOutcome::Completed { waited: true }, Some(3)));
    };
    failover_already_primary => "gs_ctl_failover_already_primary.txt", |f| {
        let r = parse_ctl(Verb::Failover, &f.text);
        assert_eq!((r.outcome, r.term), (CtlOutcome::Completed { waited: false }, Some(3)));
    };
    failover_timeout => "gs_ctl_failover_timeout.txt", |f| {
        assert_eq!(f.exit_code, Some(1));
        assert_eq!(outcome(Verb::Failover, f), CtlOutcome::Timeout);
    };
    switchover_success => "gs_ctl_switchover_success.txt", |f| {
        let r = parse_ctl(Verb::Switchover, &f.text);
        assert_eq!((r.outcome, r.term), (CtlOutcome::Completed { waited: true }, Some(4)));
    };
    switchover_timeout_exit0 => "gs_ctl_switchover_timeout_exit0.txt", |f| {
        assert_eq!(f.exit_code, Some(0));
        assert_eq!(outcome(Verb::Switchover, f), CtlOutcome::Timeout);
    };
    switchover_on_primary_noop => "gs_ctl_switchover_on_primary_noop.txt", |f| {
        let r = parse_ctl(Verb::Switchover, &f.text);
        assert_eq!((r.outcome, r.term), (CtlOutcome::Completed { waited: false }, Some(1)));
    };
    notify_pending_to_primary => "gs_ctl_notify_pending_to_primary.txt", |f| {
        // Four messages on one physical line.
        assert_eq!(f.text.lines().count(), 2);
        let r = parse_ctl(Verb::Notify, &f.text);
        assert_eq!(r.outcome, CtlOutcome::Notified { mode: "Primary".into() });
        assert_eq!(r.term, Some(2));
        assert!(r.messages.contains(&"done".to_string()));
    };
    notify_not_pending => "gs_ctl_notify_not_pending_error.txt", |f| {
        assert_eq!(f.exit_code, Some(1));
        assert_eq!(outcome(Verb::Notify, f), CtlOutcome::NotifyRejected);
    };
    build_incremental_success => "gs_ctl_build_auto_incremental_success.txt", |f| {
        assert_eq!(outcome(Verb::Build, f), CtlOutcome::BuildCompleted { failed_incremental: 0, fell_back_to_full: false });
    };
    build_fallback_full => "gs_ctl_build_auto_incremental_failed_fallback_full.txt", |f| {
        let r = parse_ctl(Verb::Build, &f.text);
        assert_eq!(r.outcome, CtlOutcome::BuildCompleted { failed_incremental: 3, fell_back_to_full: true });
        // `\r`-separated progress lines are split apart.
        assert!(r.messages.iter().any(|m| m.starts_with("Progress:") && m.contains("100%")));
    };
    build_full_success => "gs_ctl_build_full_success.txt", |f| {
        let r = parse_ctl(Verb::Build, &f.text);
        assert_eq!(r.outcome, CtlOutcome::BuildCompleted { failed_incremental: 0, fell_back_to_full: false });
        assert!(r.messages.iter().any(|m| m == "full build build completed(/opt/og/data)."));
    };
    build_primary_unreachable => "gs_ctl_build_failed_primary_unreachable.txt", |f| {
        assert_eq!(f.exit_code, Some(1));
        assert_eq!(outcome(Verb::Build, f), CtlOutcome::BuildNoPrimary);
    };
    build_refused_on_primary => "gs_ctl_build_refused_local_is_primary.txt", |f| {
        assert_eq!(outcome(Verb::Build, f), CtlOutcome::BuildRefused { role: "Primary".into() });
    };
    build_lock_held => "gs_ctl_build_another_gs_ctl_running.txt", |f| {
        assert_eq!(f.exit_code, Some(1));
        assert_eq!(outcome(Verb::Build, f), CtlOutcome::LockHeld);
    };
    guc_reload_success => "gs_guc_reload_success.txt", |f| {
        let g = parse_guc(&f.text);
        assert!(g.success && g.signaled);
        assert_eq!((g.total, g.failed), (Some(1), Some(0)));
    };
    controldata_standby => "pg_controldata_standby_shutdown_in_recovery.txt", |f| {
        let c = ControlData::parse(&f.text).unwrap();
        assert_eq!(c.system_id().as_deref(), Some("7345120376011297582"));
        assert_eq!(c.state(), Some("shut down in recovery"));
        assert!(c.cleanly_shut_down());
        assert_eq!(c.checkpoint_lsn(), Some(lsn("0/5F3A238")));
        assert_eq!(c.min_recovery_end(), Some(lsn("0/5F3A2B0")));
        assert_eq!(c.timeline(), Some(1));
        // Stopped node: position from the control file, no role.
        let db = local_db(&Facts { data_dir: DataDirState::Initialized, control: Some(c), ..Facts::default() });
        assert_eq!((db.process, db.role), (ProcessState::Stopped, DbRole::Unknown));
        assert_eq!(db.system_id.as_deref(), Some("7345120376011297582"));
        assert_eq!(db.replay_lsn, Some(lsn("0/5F3A2B0")));
    };
    sql_control_checkpoint => "sql_control_checkpoint.tsv", |f| {
        let r = rows(f);
        assert_eq!(r.get(0, "timeline_id"), Some("1"));
        assert_eq!(r.get(0, "checkpoint_lsn").unwrap().parse::<Lsn>().unwrap(), lsn("0/5F3A238"));
    };
    sql_replay_pending => "sql_last_xlog_replay_location_pending_before_redo_done.tsv", |f| {
        assert_eq!(term_lsn(&rows(f)).unwrap(), (0, Lsn::ZERO));
        let db = local_db(&Facts { term_lsn: Some((0, Lsn::ZERO)), ..Facts::default() });
        assert_eq!(db.timeline, None);
    };
    sql_replay_standby => "sql_last_xlog_replay_location_standby.tsv", |f| {
        let (term, at) = term_lsn(&rows(f)).unwrap();
        assert_eq!((term, at), (3, lsn("0/5F3A160")));
        let q = load("gs_ctl_query_standby_primary_down_connecting.txt");
        let db = local_db(&Facts {
            data_dir: DataDirState::Initialized,
            query: Some(parse_query(&q.text).unwrap()),
            term_lsn: Some((term, at)),
            known_term: 2,
            ..Facts::default()
        });
        // The term is openGauss's generation: it fills `timeline`.
        assert_eq!(db.timeline, Some(3));
        assert_eq!(db.replay_lsn, Some(lsn("0/5F3A160")));
    };
    sql_pg_stat_replication => "sql_pg_stat_replication_primary.tsv", |f| {
        let named = named_standbys(&rows(f));
        assert_eq!(named.len(), 2);
        assert_eq!((named[0].application_name.as_str(), named[0].client_port, named[0].sync_state.as_str()), ("dn_6002", Some(49382), "Sync"));
        assert_eq!(named[1].flush, Some(lsn("0/5F39F20")));
        // Names senders by channel even when no peer list is configured.
        let q = load("gs_ctl_query_primary_sync_and_async_standbys.txt");
        let db = local_db(&Facts {
            data_dir: DataDirState::Initialized,
            query: Some(parse_query(&q.text).unwrap()),
            named,
            ..Facts::default()
        });
        let names: Vec<_> = db.replication.iter().map(|r| r.application_name.as_str()).collect();
        assert_eq!(names, vec!["dn_6002", "dn_6003"]);
    };
    sql_stream_pending => "sql_stream_replications_pending.tsv", |f| {
        let ha = ha_state(&rows(f)).unwrap();
        assert_eq!((ha.local_role.as_str(), ha.db_state.as_str(), ha.detail_information.as_str()), ("Pending", "Need repair", "Disconnected"));
        assert_eq!(role_of(&ha.local_role), DbRole::Standby);
        assert!(patroni_opengauss::observe::cannot_follow(&ha, false).is_none());
    };
    sql_stream_primary => "sql_stream_replications_primary.tsv", |f| {
        let ha = ha_state(&rows(f)).unwrap();
        assert_eq!(role_of(&ha.local_role), DbRole::Primary);
        assert_eq!(ha.static_connections, Some(2));
    };
    sql_stream_standby_need_repair => "sql_stream_replications_standby_need_repair.tsv", |f| {
        let ha = ha_state(&rows(f)).unwrap();
        assert_eq!(ha.detail_information, "Connecting...");
        assert_eq!(role_of(&ha.local_role), DbRole::Standby);
        assert!(patroni_opengauss::observe::cannot_follow(&ha, true).is_none());
    };
    sql_wal_receiver => "sql_wal_receiver_standby.tsv", |f| {
        let rx = stream_rows(&rows(f)).unwrap();
        assert_eq!(rx.len(), 1);
        assert_eq!(rx[0].pid, Some(98211));
        assert_eq!(rx[0].receiver_replay, Some(lsn("0/5F3A160")));
        let ch = rx[0].channel.clone().unwrap();
        assert_eq!((ch.remote_host.as_str(), ch.remote_port), ("10.10.0.11", 5433));
    };
    sql_wal_senders => "sql_wal_senders_primary.tsv", |f| {
        let tx = stream_rows(&rows(f)).unwrap();
        assert_eq!(tx.len(), 2);
        assert_eq!(tx[0].pid, Some(140233));
        assert_eq!(tx.iter().map(|s| s.sync_state.clone().unwrap()).collect::<Vec<_>>(), vec!["Sync", "Async"]);
        assert_eq!(tx[1].receiver_flush, Some(lsn("0/5F39F20")));
    };
}

#[test]
fn every_fixture_file_has_exactly_one_case() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md" && n != "MANIFEST.tsv")
        .collect();
    on_disk.sort();
    let mut covered: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    covered.sort();
    let missing: Vec<_> = on_disk.iter().filter(|f| !covered.contains(f)).collect();
    assert!(missing.is_empty(), "fixtures without a case: {missing:?}");
    covered.dedup();
    assert_eq!(covered.len(), FILES.len(), "a fixture has two cases");
    assert_eq!(on_disk.len(), 48);
    let m = manifest();
    assert!(
        on_disk.iter().all(|f| m.contains_key(f)),
        "every fixture is in MANIFEST.tsv"
    );
}

#[test]
fn the_kept_copy_matches_the_shared_fixtures_when_present() {
    // The research `shared/` beside the workspace (or beside its parent, for a worktree).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        root.join("../shared/fixtures/opengauss"),
        root.join("../../shared/fixtures/opengauss"),
    ];
    let Some(shared) = candidates.iter().find(|p| p.join("MANIFEST.tsv").is_file()) else {
        eprintln!("SKIPPED: no shared/fixtures/opengauss beside the workspace; the kept copy is not compared");
        return;
    };
    for name in FILES {
        let a = std::fs::read(shared.join(name)).unwrap();
        let b = std::fs::read(fixture_dir().join(name)).unwrap();
        assert_eq!(a, b, "{name} differs from the shared fixture");
    }
}
