//! Custom methods against real PostgreSQL 15: a failing `post_bootstrap` fails the bootstrap and
//! leaves an empty data directory, and a `no_leader` replica method makes a standby of nobody.

use std::collections::BTreeMap;
use std::sync::Arc;

use patroni_core::{DataDirState, Database, DbError, DbRole, ProcessState};
use patroni_postgres::command::SystemRunner;
use patroni_postgres::methods::{BootstrapPlan, ReplicaMethods, Section};
use patroni_postgres::testkit::{pg_bin_dir, psql, PgNode};
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
