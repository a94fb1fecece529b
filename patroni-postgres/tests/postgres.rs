//! The adapter against real PostgreSQL 15 servers, each run as the unprivileged test user on a free
//! 127.0.0.1 port in its own temp directory; every server is stopped by PID when its `PgNode` drops.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_core::{
    CannotFollowReason, DataDirState, Database, DbError, DbRole, LocalDb, Member, MemberData,
    ProcessState, RebuildMode, StartRole, StopMode,
};
use patroni_postgres::command::SystemRunner;
use patroni_postgres::testkit::{
    free_port, owned_temp_dir, test_config, test_user, PgNode, ServerGuard,
};
use patroni_postgres::{classify_log, ParamValue, Postgres, PostgresConfig};

/// Observes until `ok` holds, panicking with the last observation after `secs`.
async fn wait_until(
    pg: &Postgres,
    what: &str,
    secs: u64,
    ok: impl Fn(&LocalDb) -> bool,
) -> LocalDb {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let db = pg.observe().await;
        if ok(&db) {
            return db;
        }
        if Instant::now() > deadline {
            panic!(
                "{}: not {what} after {secs} s: {db:#?}\n--- log ---\n{}",
                pg.name(),
                pg.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Observes `standby` until it has replayed all `primary` has written so far.
async fn caught_up(standby: &Postgres, primary: &Postgres) -> LocalDb {
    let want = primary.observe().await.write_lsn.unwrap();
    wait_until(standby, "caught up", 20, |db| {
        db.replay_lsn.is_some_and(|l| l >= want)
    })
    .await
}

fn streaming(db: &LocalDb) -> bool {
    db.process == ProcessState::Running
        && db.role == DbRole::Standby
        && db.receiver.as_ref().is_some_and(|r| r.streaming)
}

async fn scalar(pg: &Postgres, sql: &str) -> String {
    let rows = pg.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows[0][0].clone().unwrap_or_default()
}

async fn primary(name: &str) -> PgNode {
    primary_with(name, |_| {}).await
}

async fn primary_with(name: &str, customize: impl FnOnce(&mut PostgresConfig)) -> PgNode {
    let node = PgNode::new(name, customize);
    node.pg.bootstrap().await.expect("bootstrap");
    node
}

/// A primary and a standby cloned from it, already streaming.
async fn pair() -> (PgNode, PgNode) {
    pair_with(|_| {}).await
}

/// As [`pair`], with the primary's settings changed by `customize`.
async fn pair_with(customize: impl FnOnce(&mut PostgresConfig)) -> (PgNode, PgNode) {
    let a = primary_with("a", customize).await;
    let b = PgNode::new("b", |_| {});
    b.pg.clone_from(&a.member()).await.expect("clone");
    wait_until(&b.pg, "streaming", 30, streaming).await;
    (a, b)
}

/// Split brain on purpose: `b` is promoted while `a` keeps accepting writes, then `a` is started
/// as `b`'s standby. Both hold `common`; only `b` holds `new leader`, only `a` holds `lost`.
async fn diverge(a: &PgNode, b: &PgNode) {
    a.pg.query("CREATE TABLE t (v text); INSERT INTO t VALUES ('common')")
        .await
        .unwrap();
    caught_up(&b.pg, &a.pg).await;
    b.pg.promote(2, false).await.unwrap();
    b.pg.query("INSERT INTO t VALUES ('new leader')")
        .await
        .unwrap();
    a.pg.query("INSERT INTO t VALUES ('lost'); SELECT pg_switch_wal()")
        .await
        .unwrap();
    a.pg.stop(StopMode::Fast).await.unwrap();
    a.pg.follow(&b.member())
        .await
        .expect("start as standby of b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstraps_a_primary_and_stops_it_cleanly() {
    let a = primary("a").await;
    let db = a.pg.observe().await;
    assert_eq!(
        (db.process, db.role, db.data_dir.clone()),
        (
            ProcessState::Running,
            DbRole::Primary,
            DataDirState::Initialized
        )
    );
    assert_eq!(db.timeline, Some(1));
    assert!(db.write_lsn.is_some() && db.system_id.is_some());
    assert!(
        db.version.as_deref().is_some_and(|v| v.starts_with("15")),
        "{:?}",
        db.version
    );
    assert_eq!(
        scalar(
            &a.pg,
            "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'"
        )
        .await,
        "t"
    );
    // The data directory is the server user's, and a second bootstrap refuses to touch it.
    let err = a.pg.bootstrap().await.unwrap_err();
    assert!(matches!(err, DbError::Unsupported(_)), "{err}");

    // A parameter that needs a restart shows as pending after a reload, and clears with a restart.
    a.pg.query("ALTER SYSTEM SET max_connections = 25")
        .await
        .unwrap();
    a.pg.reload().await.unwrap();
    wait_until(&a.pg, "pending restart", 10, |db| db.pending_restart).await;
    let pid = a.pg.postmaster_pid();
    a.pg.restart().await.unwrap();
    assert_ne!(a.pg.postmaster_pid(), pid);
    let db = a.pg.observe().await;
    assert!(db.is_running_primary() && !db.pending_restart, "{db:#?}");
    assert_eq!(scalar(&a.pg, "SHOW max_connections").await, "25");

    a.pg.stop(StopMode::Fast).await.unwrap();
    let down = a.pg.observe().await;
    assert_eq!(down.process, ProcessState::Stopped);
    assert_eq!(down.controldata_state.as_deref(), Some("shut down"));
    assert_eq!(down.system_id, db.system_id);
    assert_eq!(a.pg.postmaster_pid(), None);
    // Stopping a stopped server is not an error.
    a.pg.stop(StopMode::Immediate).await.unwrap();

    // The guard e2e tests use for servers an agent started stops it by PID.
    a.pg.start(&StartRole::Primary).await.unwrap();
    let pid = a.pg.postmaster_pid().expect("running");
    drop(ServerGuard::new(&a.pg.config().data_dir));
    assert_eq!(a.pg.postmaster_pid(), None);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_standby_streams_and_replays() {
    let (a, b) = pair().await;
    a.pg.query("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
        .await
        .unwrap();
    let seen = wait_until(&a.pg, "seeing b stream", 20, |db| {
        db.replication
            .iter()
            .any(|r| r.application_name == "b" && r.state == "streaming")
    })
    .await;
    assert_eq!(seen.replication[0].sync_state, "async");
    caught_up(&b.pg, &a.pg).await;
    assert_eq!(scalar(&b.pg, "SELECT v FROM t").await, "42");
    let db = b.pg.observe().await;
    assert_eq!(db.system_id, seen.system_id);
    assert_eq!(db.timeline, Some(1));
    assert_eq!(
        db.receiver.unwrap().upstream_port,
        Some(a.pg.config().port().unwrap())
    );
    assert_eq!(db.cannot_follow, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_seen_crashed_then_restarts() {
    let a = primary("a").await;
    a.pg.query("CREATE TABLE t AS SELECT 1 AS v").await.unwrap();
    a.kill9();
    let db = a.pg.observe().await;
    assert_eq!(db.process, ProcessState::Crashed, "{db:#?}");
    assert_eq!(db.controldata_state.as_deref(), Some("in production"));
    a.pg.start(&StartRole::Primary)
        .await
        .expect("restart after crash");
    let db = a.pg.observe().await;
    assert!(db.is_running_primary(), "{db:#?}");
    assert_eq!(scalar(&a.pg, "SELECT v FROM t").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_promotes_the_standby_and_rewinds_the_old_primary() {
    let (a, b) = pair().await;
    a.pg.query("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    a.pg.stop(StopMode::Fast).await.unwrap();

    let started = Instant::now();
    b.pg.promote(2, true).await.expect("promote");
    let promote = started.elapsed();
    let db = b.pg.observe().await;
    assert!(db.is_running_primary(), "{db:#?}");
    assert_eq!(db.timeline, Some(2));
    b.pg.query("INSERT INTO t VALUES (2)").await.unwrap();

    let started = Instant::now();
    a.pg.rebuild(&b.member(), RebuildMode::Auto, 2)
        .await
        .expect("rewind");
    let rewind = started.elapsed();
    // The receiver reports timeline 1 until it has streamed up to the switch point.
    wait_until(&a.pg, "streaming timeline 2 from b", 30, |db| {
        streaming(db) && db.timeline == Some(2)
    })
    .await;
    caught_up(&a.pg, &b.pg).await;
    assert_eq!(
        scalar(&a.pg, "SELECT string_agg(v::text, ',' ORDER BY v) FROM t").await,
        "1,2"
    );
    // Rewind, not a copy: no sibling directory was made.
    assert!(!a.dir().join("data.rebuild").exists());
    println!("MEASURED promote (pg_ctl promote -w + CHECKPOINT): {promote:?}");
    println!("MEASURED rebuild via pg_rewind, incl. start as standby: {rewind:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_old_primary_cannot_follow_until_rewound() {
    let (a, b) = pair().await;
    diverge(&a, &b).await;

    let db = wait_until(&a.pg, "reporting cannot_follow", 30, |db| {
        db.cannot_follow.is_some()
    })
    .await;
    let cf = db.cannot_follow.unwrap();
    assert_eq!(cf.reason, CannotFollowReason::Diverged, "{cf:?}");
    assert!(!cf.detail.is_empty());
    println!("cannot_follow: {cf:?}");

    let started = Instant::now();
    a.pg.rebuild(&b.member(), RebuildMode::Auto, 2)
        .await
        .expect("rewind");
    let rewind = started.elapsed();
    wait_until(&a.pg, "streaming from b", 30, streaming).await;
    println!("MEASURED pg_rewind of a diverged old primary, incl. start as standby: {rewind:?}");
    let db = caught_up(&a.pg, &b.pg).await;
    assert_eq!(db.cannot_follow, None);
    assert_eq!(
        scalar(&a.pg, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await,
        "common,new leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rebuild_copies_aside_and_a_failed_one_keeps_the_old_data() {
    let (a, b) = pair().await;
    // About 100 MB of table data for the measured copy.
    a.pg.query(
        "CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 400000) g",
    )
    .await
    .unwrap();
    let size: u64 = scalar(&a.pg, "SELECT pg_database_size('postgres')")
        .await
        .parse()
        .unwrap();

    let nowhere = Member::new(
        "ghost",
        MemberData {
            conn_url: format!("postgres://127.0.0.1:{}/postgres", free_port()),
            ..MemberData::default()
        },
    );
    let err =
        b.pg.rebuild(&nowhere, RebuildMode::Full, 1)
            .await
            .unwrap_err();
    assert!(matches!(err, DbError::CommandFailed { .. }), "{err}");
    assert!(!b.dir().join("data.rebuild").exists());
    assert!(
        streaming(&b.pg.observe().await),
        "b kept running on its old data"
    );

    let started = Instant::now();
    b.pg.rebuild(&a.member(), RebuildMode::Full, 1)
        .await
        .expect("full rebuild");
    let copy = started.elapsed();
    wait_until(&b.pg, "streaming", 30, streaming).await;
    assert_eq!(scalar(&b.pg, "SELECT count(*) FROM big").await, "400000");
    assert!(!b.dir().join("data.rebuild").exists() && !b.dir().join("data.old").exists());
    println!(
        "MEASURED full rebuild via pg_basebackup of {} MB, incl. start as standby: {copy:?}",
        size / 1_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_start_reports_its_log() {
    let a = primary("a").await;
    a.pg.stop(StopMode::Fast).await.unwrap();
    let mut cfg = a.pg.config().clone();
    cfg.parameters
        .insert("shared_buffers".into(), ParamValue("lots".into()));
    let broken = Postgres::new("a", cfg, Arc::new(SystemRunner)).unwrap();
    let err = broken.start(&StartRole::Primary).await.unwrap_err();
    match &err {
        DbError::StartFailed { reason, log_tail } => {
            assert!(reason.contains("shared_buffers"), "{reason}");
            assert!(log_tail.contains("lots"), "{log_tail}");
        }
        other => panic!("expected StartFailed, got {other}"),
    }
    assert_eq!(broken.observe().await.process, ProcessState::Stopped);
    // The good configuration still starts it.
    a.pg.start(&StartRole::Primary).await.unwrap();
    assert!(a.pg.observe().await.is_running_primary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_standby_names_show_in_pg_stat_replication() {
    let (a, _b) = pair().await;
    a.pg.set_sync_standbys(&["b".to_string()], 1, false)
        .await
        .unwrap();
    assert_eq!(
        scalar(&a.pg, "SHOW synchronous_standby_names").await,
        "FIRST 1 (\"b\")"
    );
    let db = wait_until(&a.pg, "b sync", 20, |db| {
        db.sync_standbys().any(|n| n == "b")
    })
    .await;
    assert_eq!(db.replication[0].sync_state, "sync");
    // Quorum commit: `ANY`, and the standby reports `quorum`.
    a.pg.set_sync_standbys(&["b".to_string()], 1, true)
        .await
        .unwrap();
    assert_eq!(
        scalar(&a.pg, "SHOW synchronous_standby_names").await,
        "ANY 1 (\"b\")"
    );
    wait_until(&a.pg, "b quorum", 20, |db| {
        db.replication
            .iter()
            .any(|r| r.application_name == "b" && r.sync_state == "quorum")
    })
    .await;
    a.pg.set_sync_standbys(&[], 0, false).await.unwrap();
    wait_until(&a.pg, "b async", 20, |db| {
        db.replication
            .iter()
            .any(|r| r.application_name == "b" && r.sync_state == "async")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_user_is_refused() {
    let dir = owned_temp_dir("patroni-pg-owner-");
    let cfg = test_config(dir.path());
    std::fs::create_dir(&cfg.data_dir).unwrap();
    std::fs::write(cfg.data_dir.join("PG_VERSION"), "15\n").unwrap();
    // Created by root, while the server would run as the test user.
    let pg = Postgres::new("x", cfg, Arc::new(SystemRunner)).unwrap();
    let err = pg.start(&StartRole::Primary).await.unwrap_err();
    assert_eq!(
        err,
        DbError::NotOwner {
            path: pg.config().data_dir.display().to_string(),
            owner: 0,
            running: test_user().0,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_binaries_are_typed() {
    let node = PgNode::new("m", |c| c.bin_dir = Some("/nonexistent/pg/bin".into()));
    let err = node.pg.bootstrap().await.unwrap_err();
    assert!(
        matches!(err, DbError::BinaryMissing { ref binary, .. } if binary.ends_with("initdb")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_follows_the_promoted_standby_without_a_rewind() {
    let (a, b) = pair().await;
    a.pg.query("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    a.pg.demote(StopMode::Fast).await.expect("demote");
    let db = a.pg.observe().await;
    assert_eq!(
        (db.process, db.role),
        (ProcessState::Running, DbRole::Standby),
        "{db:#?}"
    );
    assert_eq!(db.receiver, None, "a demoted primary has no upstream yet");
    assert_eq!(db.cannot_follow, None);
    assert!(
        a.pg.query("INSERT INTO t VALUES (99)").await.is_err(),
        "read-only after demote"
    );

    b.pg.promote(2, true).await.unwrap();
    b.pg.query("INSERT INTO t VALUES (2)").await.unwrap();
    a.pg.follow(&b.member()).await.expect("follow");
    // The receiver reports timeline 1 until it has streamed up to the switch point.
    let db = wait_until(&a.pg, "streaming timeline 2 from b", 30, |db| {
        streaming(db) && db.timeline == Some(2)
    })
    .await;
    assert_eq!(
        db.receiver.unwrap().upstream_port,
        Some(b.pg.config().port().unwrap())
    );
    caught_up(&a.pg, &b.pg).await;
    assert_eq!(
        scalar(&a.pg, "SELECT string_agg(v::text, ',' ORDER BY v) FROM t").await,
        "1,2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_repoints_a_running_standby_with_a_reload_only() {
    let (a, b) = pair().await;
    let c = PgNode::new("c", |_| {});
    c.pg.clone_from(&a.member()).await.expect("clone c");
    wait_until(&c.pg, "streaming from a", 30, streaming).await;
    let pid = c.pg.postmaster_pid();

    // Cascade: c now streams from the standby b, without a restart.
    c.pg.follow(&b.member()).await.expect("follow b");
    let b_port = b.pg.config().port().unwrap();
    wait_until(&c.pg, "streaming from b", 30, |db| {
        streaming(db) && db.receiver.as_ref().and_then(|r| r.upstream_port) == Some(b_port)
    })
    .await;
    assert_eq!(
        c.pg.postmaster_pid(),
        pid,
        "follow must not restart a standby"
    );
    // Following the same leader again changes nothing.
    c.pg.follow(&b.member()).await.unwrap();
    assert_eq!(c.pg.postmaster_pid(), pid);
    a.pg.query("CREATE TABLE t AS SELECT 7 AS v").await.unwrap();
    // Through b, which streams from a.
    caught_up(&c.pg, &a.pg).await;
    assert_eq!(scalar(&c.pg, "SELECT v FROM t").await, "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_pg_ctl_is_killed_and_reported() {
    let node = PgNode::new("h", |c| c.pg_ctl_timeout = 1);
    // A pg_ctl that never answers, in a bin_dir of its own.
    let bin = node.dir().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("pg_ctl");
    std::fs::write(&script, "#!/bin/sh\nsleep 60\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cfg = node.pg.config().clone();
    cfg.bin_dir = Some(bin);
    let pg = Postgres::new("h", cfg, Arc::new(SystemRunner)).unwrap();
    let started = Instant::now();
    let err = pg.reload().await.unwrap_err();
    assert!(
        matches!(err, DbError::Timeout { limit, .. } if limit == Duration::from_secs(1)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_whose_wal_is_gone_cannot_follow() {
    let a = PgNode::new("a", |_| {});
    // `wal_keep_size` must match across members, so it comes from `/config` only; 16 MB is the
    // least the agent lets through (Patroni's minimum).
    let params = serde_json::json!({"wal_keep_size": "16MB"});
    a.pg.apply_parameters(params.as_object().unwrap())
        .await
        .unwrap();
    a.pg.bootstrap().await.unwrap();
    assert_eq!(
        a.pg.query("SHOW wal_keep_size").await.unwrap()[0][0].as_deref(),
        Some("16MB")
    );
    let b = PgNode::new("b", |_| {});
    b.pg.clone_from(&a.member()).await.unwrap();
    wait_until(&b.pg, "streaming", 30, streaming).await;
    b.pg.stop(StopMode::Fast).await.unwrap();
    // Without the standby connected and nothing kept, checkpoints recycle the WAL it still needs.
    a.pg.query("CREATE TABLE t (v int)").await.unwrap();
    for _ in 0..8 {
        a.pg.query("INSERT INTO t VALUES (1)").await.unwrap();
        a.pg.query("SELECT pg_switch_wal()").await.unwrap();
        a.pg.query("CHECKPOINT").await.unwrap();
    }
    b.pg.start(&StartRole::Standby {
        upstream: Some(a.member()),
    })
    .await
    .unwrap();
    let db = wait_until(&b.pg, "reporting cannot_follow", 30, |db| {
        db.cannot_follow.is_some()
    })
    .await;
    let cf = db.cannot_follow.unwrap();
    assert_eq!(cf.reason, CannotFollowReason::WalRemoved, "{cf:?}");
    assert!(cf.detail.contains("has already been removed"), "{cf:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bootstrap_leaves_an_empty_data_directory() {
    let a = PgNode::new("a", |c| {
        c.parameters
            .insert("shared_buffers".into(), "plenty".into());
    });
    let err = a.pg.bootstrap().await.unwrap_err();
    assert!(matches!(err, DbError::StartFailed { .. }), "{err}");
    assert_eq!(a.pg.observe().await.data_dir, DataDirState::Empty);
    assert_eq!(a.pg.postmaster_pid(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rewind_is_reported_or_falls_back_to_a_full_copy() {
    let (a, b) = pair().await;
    a.pg.query("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    caught_up(&b.pg, &a.pg).await;
    b.pg.promote(2, false).await.unwrap();
    a.pg.stop(StopMode::Fast).await.unwrap();

    // pg_rewind connects as a role the new primary does not have, so it fails.
    let mut cfg = a.pg.config().clone();
    cfg.authentication.rewind = Some(patroni_postgres::Credentials {
        username: "no_such_role".into(),
        password: Some("x".into()),
    });
    let strict = Postgres::new("a", cfg.clone(), Arc::new(SystemRunner)).unwrap();
    let err = strict
        .rebuild(&b.member(), RebuildMode::Auto, 2)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::CommandFailed { command, .. } if command.contains("pg_rewind")),
        "{err}"
    );
    assert_eq!(
        strict.observe().await.data_dir,
        DataDirState::Initialized,
        "nothing was wiped"
    );

    cfg.remove_data_directory_on_rewind_failure = true;
    let lenient = Postgres::new("a", cfg, Arc::new(SystemRunner)).unwrap();
    lenient
        .rebuild(&b.member(), RebuildMode::Auto, 2)
        .await
        .expect("falls back to a copy");
    // The receiver reports timeline 1 until it has streamed up to the switch point.
    wait_until(&lenient, "streaming timeline 2 from b", 30, |db| {
        streaming(db) && db.timeline == Some(2)
    })
    .await;
    assert_eq!(scalar(&lenient, "SELECT v FROM t").await, "1");
}

/// A data directory lost under a running postmaster (a volume gone, a path replaced): the adapter
/// still sees the postmaster it knew and stops it by signal, since `pg_ctl` cannot read
/// `postmaster.pid` any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postmaster_whose_data_directory_is_gone_is_still_seen_and_stopped() {
    let a = primary("a").await;
    let pid = a.pg.postmaster_pid().expect("running");
    assert_eq!(a.pg.observe().await.process, ProcessState::Running);
    let data = a.pg.config().data_dir.clone();
    let moved = data.with_extension("moved");
    // The postmaster keeps its working directory (now `moved`) and goes on accepting writes.
    std::fs::rename(&data, &moved).unwrap();
    std::fs::write(&data, b"not a directory").unwrap();
    let restore = |data: &std::path::Path, moved: &std::path::Path| {
        let _ = std::fs::remove_file(data);
        let _ = std::fs::rename(moved, data);
    };
    let db = a.pg.observe().await;
    let seen = (
        db.process,
        matches!(db.data_dir, DataDirState::Unreadable(_)),
    );
    if seen != (ProcessState::Starting, true) {
        restore(&data, &moved);
        panic!("expected an alive postmaster and an unreadable data dir: {db:#?}");
    }
    assert_eq!(
        scalar(&a.pg, "SELECT 1").await,
        "1",
        "the server still answers"
    );
    let stopped = a.pg.stop(StopMode::Immediate).await;
    let alive = patroni_postgres::datadir::process_alive(pid);
    restore(&data, &moved);
    stopped.expect("stop by signal");
    assert!(!alive, "the postmaster {pid} survived the stop");
    assert_eq!(a.pg.observe().await.process, ProcessState::Crashed);
}

/// Right after a restart the WAL receiver starts again at a segment boundary, so PostgreSQL's
/// receive position can sit below its replay position: the adapter reports the larger one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_standby_never_reports_received_below_replayed() {
    let a = PgNode::new("a", |_| {});
    a.pg.bootstrap().await.unwrap();
    let b = PgNode::new("b", |_| {});
    b.pg.clone_from(&a.member()).await.unwrap();
    wait_until(&b.pg, "streaming", 30, streaming).await;
    a.pg.query("CREATE TABLE r AS SELECT generate_series(1, 20000) AS v")
        .await
        .unwrap();
    let target = a.pg.observe().await.write_lsn.unwrap();
    wait_until(&b.pg, "replayed the writes", 30, |db| {
        db.replay_lsn.is_some_and(|p| p >= target)
    })
    .await;
    b.pg.restart().await.unwrap();
    let mut seen = 0;
    for _ in 0..100 {
        let db = b.pg.observe().await;
        if let (Some(r), Some(p)) = (db.receive_lsn, db.replay_lsn) {
            assert!(r >= p, "received {r} below replayed {p}");
            seen += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen > 0, "never saw both positions");
}

/// A running server that refuses our SQL says why: a wrong superuser password is an
/// authentication error and a wrong port a refused connection, never a server "starting up".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_port_is_reported_not_taken_for_startup() {
    use patroni_core::SqlProblem;
    let a = PgNode::new("a", |c| c.use_unix_socket = false);
    a.pg.bootstrap().await.expect("bootstrap");
    let good = a.pg.observe().await;
    assert_eq!(
        (good.process, good.report.sql_error.clone()),
        (ProcessState::Running, None)
    );

    let mut cfg = a.pg.config().clone();
    cfg.authentication.superuser.password = Some("wrong".into());
    let wrong = Postgres::new("a", cfg.clone(), Arc::new(SystemRunner)).unwrap();
    let db = wrong.observe().await;
    assert_eq!(db.process, ProcessState::Starting);
    match &db.report.sql_error {
        Some(SqlProblem::Auth(m)) => assert_eq!(
            m, "password authentication failed for user \"postgres\"",
            "{db:?}"
        ),
        other => panic!("expected an authentication problem, got {other:?}"),
    }

    cfg.authentication.superuser.password = a.pg.config().authentication.superuser.password.clone();
    let port = free_port();
    cfg.listen = format!("127.0.0.1:{port}");
    let elsewhere = Postgres::new("a", cfg, Arc::new(SystemRunner)).unwrap();
    let db = elsewhere.observe().await;
    match &db.report.sql_error {
        Some(SqlProblem::Refused(m)) => assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}"),
        other => panic!("expected a refused connection, got {other:?}"),
    }
}

/// The cluster's `use_pg_rewind` switched on at run time: a diverged standby left alone while
/// it is off is rewound in place once it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_standby_is_rewound_once_the_cluster_switches_pg_rewind_on() {
    // Neither the node's own use_pg_rewind nor the removal switch: `/config` decides.
    let (a, b) = pair_with(|c| {
        c.use_pg_rewind = None;
        c.remove_data_directory_on_diverged_timelines = false;
    })
    .await;
    diverge(&a, &b).await;

    // Off: the divergence is in the log, but the standby is left as it is.
    assert!(!a.pg.use_pg_rewind());
    let deadline = Instant::now() + Duration::from_secs(30);
    while classify_log(&a.pg.log_tail(50)).is_none() {
        assert!(Instant::now() < deadline, "{}", a.pg.log_tail(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.pg.observe().await.cannot_follow, None);

    // Switched on in `/config`: reported, and rewound in place (not copied into a new directory).
    assert!(a.pg.set_use_pg_rewind(true));
    let db = wait_until(&a.pg, "reporting cannot_follow", 30, |db| {
        db.cannot_follow.is_some()
    })
    .await;
    assert_eq!(
        db.cannot_follow.map(|c| c.reason),
        Some(CannotFollowReason::Diverged)
    );
    let data_dir = &a.pg.config().data_dir;
    let inode = std::fs::metadata(data_dir).unwrap().ino();
    a.pg.rebuild(&b.member(), RebuildMode::Auto, 2)
        .await
        .expect("rewind");
    assert_eq!(std::fs::metadata(data_dir).unwrap().ino(), inode);
    wait_until(&a.pg, "streaming from b", 30, streaming).await;
    caught_up(&a.pg, &b.pg).await;
    let rows =
        a.pg.query("SELECT string_agg(v, ',' ORDER BY v) FROM t")
            .await
            .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("common,new leader"));
}
