//! Custom methods against real PostgreSQL 15: a failing `post_bootstrap` fails the bootstrap and
//! leaves an empty data directory, a `no_leader` replica method makes a standby of nobody, and a
//! full rebuild copies with the replica methods into its staging directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_core::{DataDirState, Database, DbError, DbRole, LocalDb, ProcessState, RebuildMode};
use patroni_postgres::command::SystemRunner;
use patroni_postgres::methods::{BootstrapPlan, ReplicaMethods, Section};
use patroni_postgres::testkit::{pg_bin_dir, psql, test_user, PgNode};
use patroni_postgres::Postgres;

/// A second adapter for `node`'s data directory, with custom methods (`node` still stops its server).
fn with_methods(node: &PgNode, replica: ReplicaMethods, bootstrap: BootstrapPlan) -> Postgres {
    Postgres::new(
        node.pg.name(),
        node.pg.config().clone(),
        Arc::new(SystemRunner),
    )
    .unwrap()
    .with_methods("methods-test", replica, bootstrap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_post_bootstrap_fails_the_bootstrap_and_empties_the_data_directory() {
    let node = PgNode::new("post-bootstrap-fails", |_| {});
    let plan = BootstrapPlan::resolve(None, &BTreeMap::new(), Some("/bin/sh -c 'exit 7'")).unwrap();
    let pg = with_methods(&node, ReplicaMethods::default(), plan);
    let err = pg.bootstrap().await.unwrap_err();
    match &err {
        DbError::CommandFailed {
            command, status, ..
        } => {
            assert!(
                command.starts_with("/bin/sh -c 'exit 7' 'dbname=postgres user=postgres host="),
                "{command}"
            );
            assert_eq!(status, "exit code 7");
        }
        other => panic!("{other}"),
    }
    assert_eq!(pg.postmaster_pid(), None, "the server was stopped");
    let db = pg.observe().await;
    assert_eq!(db.data_dir, DataDirState::Empty, "{db:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_leader_method_creates_a_standby_of_nobody() {
    // The "backup" is a running server the method copies from on its own.
    let source = PgNode::new("no-leader-source", |_| {});
    source.pg.bootstrap().await.unwrap();
    let port = source.pg.config().port().unwrap();
    assert_eq!(
        psql(
            port,
            "CREATE TABLE restored AS SELECT 1 AS one; SELECT one FROM restored"
        )
        .as_deref(),
        Some("1")
    );
    let yaml = format!(
        "restore:\n  command: {bin}/pg_basebackup -X stream -c fast -h 127.0.0.1 -p {port} -U replicator --no-password\n  no_leader: true\n  no_params: true\n  pgdata: DIR\n",
        bin = pg_bin_dir().display()
    );
    let node = PgNode::new("no-leader-replica", |_| {});
    let data_dir = node.pg.config().data_dir.display().to_string();
    let sections: BTreeMap<String, Section> =
        yaml_serde::from_str(&yaml.replace("DIR", &data_dir)).unwrap();
    let replica = ReplicaMethods::resolve(
        &["basebackup".to_string(), "restore".to_string()],
        &sections,
    )
    .unwrap();
    assert!(replica.any_without_leader());
    let pg = with_methods(&node, replica, BootstrapPlan::default());
    // pg_basebackup is skipped (it needs a leader); the restore runs with only its own keys.
    pg.clone_without_leader().await.unwrap();
    let db = pg.observe().await;
    assert_eq!(
        (db.process, db.role),
        (ProcessState::Running, DbRole::Standby),
        "{db:?}"
    );
    assert_eq!(pg.query("SELECT one FROM restored").await.unwrap().len(), 1);
}

/// Writes an executable shell script owned by the test user (user commands run as it).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (uid, gid) = test_user();
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    path
}

/// Replica methods from a YAML mapping of method sections, tried in the order of `names`.
fn methods(names: &[&str], yaml: &str) -> ReplicaMethods {
    let sections: BTreeMap<String, Section> = yaml_serde::from_str(yaml).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    ReplicaMethods::resolve(&names, &sections).unwrap()
}

fn streaming(db: &LocalDb) -> bool {
    db.process == ProcessState::Running
        && db.role == DbRole::Standby
        && db.receiver.as_ref().is_some_and(|r| r.streaming)
}

/// Observes until the server streams, panicking with the last observation after `secs`.
async fn wait_streaming(pg: &Postgres, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let db = pg.observe().await;
        if streaming(&db) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not streaming after {secs} s: {db:#?}\n{}",
            pg.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A primary and a standby cloned from it by `pg_basebackup`, already streaming.
async fn pair(prefix: &str) -> (PgNode, PgNode) {
    let a = PgNode::new(&format!("{prefix}-a"), |_| {});
    a.pg.bootstrap().await.expect("bootstrap");
    let b = PgNode::new(&format!("{prefix}-b"), |_| {});
    b.pg.clone_from(&a.member()).await.expect("clone");
    wait_streaming(&b.pg, 30).await;
    (a, b)
}

/// Rows of `table` on the standby once it has replayed them, waiting up to 20 s.
async fn replicated(pg: &Postgres, table: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match pg.query(&format!("SELECT * FROM {table}")).await {
            Ok(rows) => return rows.len(),
            Err(e) if Instant::now() > deadline => panic!("{table}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The value of `--key=` among a script's recorded arguments (one per line).
fn arg<'a>(record: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("--{key}=");
    record.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rebuild_copies_with_the_custom_method_into_the_staging_directory() {
    let (a, b) = pair("rebuild-method").await;
    let record = b.dir().join("copy.args");
    // Records its arguments and whether the server still ran on the old data meanwhile, then
    // copies the source as a restore from backup would.
    let copy = script(
        b.dir(),
        "copy.sh",
        &format!(
            r#"datadir=""; connstring=""
for a in "$@"; do
  case "$a" in
    --datadir=*) datadir="${{a#--datadir=}}";;
    --connstring=*) connstring="${{a#--connstring=}}";;
  esac
done
printf '%s\n' "$@" > "{rec}"
[ -e "{old}/postmaster.pid" ] && echo old-still-running >> "{rec}"
exec {bin}/pg_basebackup --pgdata="$datadir" -X stream -c fast --dbname="$connstring"
"#,
            rec = record.display(),
            old = b.pg.config().data_dir.display(),
            bin = pg_bin_dir().display()
        ),
    );
    let replica = methods(
        &["copy", "basebackup"],
        &format!("copy:\n  command: {}\n  keep_data: true\n", copy.display()),
    );
    let pg = with_methods(&b, replica, BootstrapPlan::default());
    pg.rebuild(&a.member(), RebuildMode::Full, 1)
        .await
        .expect("rebuild");

    let args = std::fs::read_to_string(&record).expect("the custom method ran");
    let staging = b.dir().join("data.rebuild");
    assert_eq!(
        arg(&args, "datadir"),
        Some(staging.to_str().unwrap()),
        "{args}"
    );
    assert_eq!(arg(&args, "scope"), Some("methods-test"), "{args}");
    assert_eq!(arg(&args, "role"), Some("replica"), "{args}");
    assert_eq!(arg(&args, "keep_data"), Some("True"), "{args}");
    let port = a.pg.config().port().unwrap();
    assert_eq!(
        arg(&args, "connstring"),
        Some(format!("dbname=postgres user=replicator host=127.0.0.1 port={port}").as_str()),
        "{args}"
    );
    assert!(args.contains("old-still-running"), "{args}");
    assert!(!staging.exists() && !b.dir().join("data.old").exists());

    wait_streaming(&pg, 30).await;
    a.pg.query("CREATE TABLE after_rebuild AS SELECT 1 AS one")
        .await
        .unwrap();
    assert_eq!(replicated(&pg, "after_rebuild").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rebuild_falls_back_to_basebackup_when_the_custom_methods_fail() {
    let (a, b) = pair("rebuild-fallback").await;
    a.pg.query("CREATE TABLE before_rebuild AS SELECT 1 AS one")
        .await
        .unwrap();
    // Not told where to write (as a restore to a fixed path, perhaps the live data directory):
    // a rebuild skips it.
    let elsewhere_record = b.dir().join("elsewhere.args");
    let elsewhere = script(
        b.dir(),
        "elsewhere.sh",
        &format!(
            "printf '%s\\n' \"$@\" > \"{}\"\n",
            elsewhere_record.display()
        ),
    );
    // Leaves debris in the directory it is given, then fails.
    let broken_record = b.dir().join("broken.args");
    let broken = script(
        b.dir(),
        "broken.sh",
        &format!(
            r#"printf '%s\n' "$@" > "{rec}"
for a in "$@"; do
  case "$a" in --datadir=*) echo debris > "${{a#--datadir=}}/debris";; esac
done
exit 3
"#,
            rec = broken_record.display()
        ),
    );
    let replica = methods(
        &["elsewhere", "broken", "basebackup"],
        &format!(
            "elsewhere:\n  command: {}\n  no_params: true\nbroken:\n  command: {}\n",
            elsewhere.display(),
            broken.display()
        ),
    );
    let pg = with_methods(&b, replica, BootstrapPlan::default());
    pg.rebuild(&a.member(), RebuildMode::Full, 1)
        .await
        .expect("rebuild");

    assert!(
        !elsewhere_record.exists(),
        "a no_params method is not run for a rebuild"
    );
    let args = std::fs::read_to_string(&broken_record).expect("the second method ran");
    assert_eq!(
        arg(&args, "datadir"),
        Some(b.dir().join("data.rebuild").to_str().unwrap()),
        "{args}"
    );
    let data_dir = &b.pg.config().data_dir;
    assert!(
        !data_dir.join("debris").exists(),
        "pg_basebackup copied into an emptied staging directory"
    );
    assert!(!b.dir().join("data.rebuild").exists() && !b.dir().join("data.old").exists());
    wait_streaming(&pg, 30).await;
    assert_eq!(replicated(&pg, "before_rebuild").await, 1);
}
