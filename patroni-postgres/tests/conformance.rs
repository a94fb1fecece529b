//! The `Database` conformance suite from patroni-core, against real PostgreSQL 15 servers: the
//! local node and its leader each run as the unprivileged test user on a free 127.0.0.1 port in
//! a temp directory, and are stopped by PID when the harness drops.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use patroni_core::db_conformance::{self, DbHarness};
use patroni_core::{Database, LocalDb, Member, StopMode};
use patroni_postgres::command::{CommandError, CommandOutput, CommandRunner, CommandSpec};
use patroni_postgres::testkit::PgNode;
use patroni_postgres::Postgres;

/// The local node under test and the leader it follows, rebuilds from, or diverges from.
struct PgHarness {
    local: PgNode,
    leader: PgNode,
}

impl PgHarness {
    fn new() -> Self {
        PgHarness {
            local: PgNode::new("local", |_| {}),
            leader: PgNode::new("leader", |_| {}),
        }
    }

    /// Observes `pg` until `ok` holds; setup steps wait like this for what they promise.
    async fn wait(pg: &Postgres, what: &str, ok: impl Fn(&LocalDb) -> bool) {
        for _ in 0..300 {
            if ok(&pg.observe().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{}: not {what}: {:#?}", pg.name(), pg.observe().await);
    }

    /// Waits until `standby` has replayed everything `primary` has written so far.
    async fn caught_up(standby: &Postgres, primary: &Postgres) {
        let want = primary.observe().await.write_lsn.expect("primary position");
        Self::wait(standby, "caught up", |db| {
            db.replay_lsn.is_some_and(|l| l >= want)
        })
        .await;
    }

    async fn sql(pg: &Postgres, statement: &str) {
        pg.query(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// Runs `sleep` in place of every command, under the command's own deadline and user: a server
/// program that never answers.
struct Hanging;

#[async_trait]
impl CommandRunner for Hanging {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let mut hung = spec.clone();
        hung.program = "sleep".into();
        hung.args = vec!["600".into()];
        patroni_postgres::command::SystemRunner.run(&hung).await
    }
}

#[async_trait]
impl DbHarness for PgHarness {
    fn db(&self) -> &dyn Database {
        &self.local.pg
    }

    fn leader(&self) -> Member {
        self.leader.member()
    }

    async fn make_primary(&self) {
        self.local.pg.bootstrap().await.expect("bootstrap");
    }

    async fn make_standby(&self) {
        self.leader.pg.bootstrap().await.expect("bootstrap leader");
        self.local
            .pg
            .clone_from(&self.leader.member())
            .await
            .expect("clone");
        Self::wait(&self.local.pg, "streaming", |db| {
            db.receiver.as_ref().is_some_and(|r| r.streaming)
        })
        .await;
    }

    async fn make_stopped(&self) {
        self.make_primary().await;
        self.local.pg.stop(StopMode::Fast).await.expect("stop");
    }

    async fn crash(&self) {
        self.make_primary().await;
        Self::sql(&self.local.pg, "CREATE TABLE t AS SELECT 1 AS v").await;
        self.local.kill9();
        assert!(self.local.pg.postmaster_pid().is_none(), "killed");
    }

    /// The local node bootstraps, the leader is cloned from it and promoted while the local node
    /// keeps writing, then the local node is pointed at the leader: split brain on purpose.
    async fn make_diverged(&self) -> u64 {
        let (local, leader) = (&self.local.pg, &self.leader.pg);
        local.bootstrap().await.expect("bootstrap");
        Self::sql(
            local,
            "CREATE TABLE t (v text); INSERT INTO t VALUES ('common')",
        )
        .await;
        leader
            .clone_from(&self.local.member())
            .await
            .expect("clone");
        Self::caught_up(leader, local).await;
        leader.promote(2, false).await.expect("promote the leader");
        Self::sql(leader, "INSERT INTO t VALUES ('new leader')").await;
        Self::sql(
            local,
            "INSERT INTO t VALUES ('lost'); SELECT pg_switch_wal()",
        )
        .await;
        local.stop(StopMode::Fast).await.expect("stop");
        local.follow(&self.leader.member()).await.expect("follow");
        let timeline = leader.observe().await.timeline.expect("leader timeline");
        assert_eq!(timeline, 2);
        timeline
    }

    /// The local node's settings with a 1 s `pg_ctl_timeout`, over a runner whose commands hang.
    async fn hung(&self) -> (Box<dyn Database>, Duration) {
        let mut cfg = self.local.pg.config().clone();
        cfg.pg_ctl_timeout = 1;
        let pg = Postgres::new("local", cfg, Arc::new(Hanging)).expect("valid config");
        (Box::new(pg), Duration::from_secs(1))
    }

    async fn pause(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observes_a_running_primary() {
    db_conformance::observes_a_running_primary(&PgHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observes_a_stopped_server() {
    db_conformance::observes_a_stopped_server(&PgHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observes_a_crashed_server_and_restarts_it() {
    let h = PgHarness::new();
    db_conformance::observes_a_crashed_server_and_restarts_it(&h).await;
    // Crash recovery kept what was committed before the kill.
    let rows = h.local.pg.query("SELECT v FROM t").await.unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_and_starts() {
    db_conformance::stops_and_starts(&PgHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotes_a_standby() {
    db_conformance::promotes_a_standby(&PgHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_leader() {
    db_conformance::follows_a_leader(&PgHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilds_after_divergence() {
    let h = PgHarness::new();
    db_conformance::rebuilds_after_divergence(&h).await;
    // The rebuild took the leader's history: the local node's lost write is gone.
    let want = h.leader.pg.observe().await.write_lsn.unwrap();
    PgHarness::caught_up(&h.local.pg, &h.leader.pg).await;
    assert!(h.local.pg.observe().await.replay_lsn >= Some(want));
    let rows = h
        .local
        .pg
        .query("SELECT string_agg(v, ',' ORDER BY v) FROM t")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("common,new leader"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_command_times_out() {
    db_conformance::a_hung_command_times_out(&PgHarness::new()).await;
}
