//! The embeddable agent over the in-memory DCS and a real PostgreSQL 15: bootstrap, the
//! postmaster watch that wakes the loop at once, the leader's clean shutdown, and a lost race.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use patroni_bin::{Agent, Shared};
use patroni_core::{
    ActionKind, Cluster, ClusterStatus, Dcs, DcsError, DynamicConfig, FailoverRequest,
    HistoryEntry, MemberData, MemoryDcs, MemoryStore, Node, OutcomeResult, ProcessState,
    SharedStore, SyncState,
};
use patroni_postgres::command::SystemRunner;
use patroni_postgres::testkit::{owned_temp_dir, test_config};
use patroni_postgres::{Postgres, PostgresConfig};

async fn wait<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type TestClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// One node `a1` on a fresh data directory, an in-memory store and its clock; ttl 10, loop_wait 2.
struct Fixture {
    _dir: tempfile::TempDir,
    cfg: PostgresConfig,
    clock: TestClock,
    store: SharedStore,
    node: Node,
}

fn fixture(prefix: &str) -> Fixture {
    let dir = owned_temp_dir(prefix);
    let cfg = test_config(dir.path());
    let start = Instant::now();
    let clock: TestClock = Arc::new(move || start.elapsed().as_millis() as u64 + 1);
    let mut node = Node::new("a1");
    node.conn_url = cfg.conn_url();
    node.api_url = "http://127.0.0.1:9/patroni".into();
    node.bootstrap_config = DynamicConfig {
        ttl: 10,
        loop_wait: 2,
        retry_timeout: 4,
        ..Default::default()
    };
    Fixture {
        _dir: dir,
        cfg,
        clock,
        store: SharedStore::new(MemoryStore::new(Duration::from_secs(10))),
        node,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_bootstraps_notices_a_crash_and_releases_on_shutdown() {
    let f = fixture("patroni-agent-");
    let data_dir = f.cfg.data_dir.clone();
    let dcs: Arc<dyn Dcs> = Arc::new(MemoryDcs::new(f.store.clone(), "a1", f.clock.clone()));
    let pg = Postgres::new("a1", f.cfg.clone(), Arc::new(SystemRunner)).unwrap();
    let shared = Shared::new("unit", f.node.clone(), Arc::clone(&dcs), None);
    let mut reloaded = shared.node();
    reloaded
        .tags
        .custom
        .insert("site".into(), serde_json::json!("dc2"));
    let agent = Agent::new(Arc::clone(&shared), Arc::new(pg))
        .with_pid_file(data_dir.join("postmaster.pid"))
        .with_reloader(Box::new(move || Ok(reloaded.clone().into())));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async {
        let _ = rx.await;
    }));

    let s = Arc::clone(&shared);
    wait("the agent to lead a running primary", 90, || {
        let snap = s.snapshot();
        (snap.is_leader(s.clock.now()) && snap.local.is_running_primary()).then_some(())
    })
    .await;
    let view = dcs.load().await.unwrap();
    assert!(view.is_leader("a1"));
    assert!(view.initialize.as_deref().is_some_and(|id| !id.is_empty()));
    assert!(view.config.is_some(), "bootstrap.dcs seeded /config");
    assert!(view.member("a1").is_some());

    // The postmaster dies: the pid watch wakes the loop well before loop_wait (2 s).
    let pid: u32 = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    wait("the loop to see the crash", 10, || {
        (s.snapshot().local.process != ProcessState::Running).then_some(())
    })
    .await;
    let noticed = killed.elapsed();
    println!(
        "MEASURED agent: postmaster exit noticed in {} ms",
        noticed.as_millis()
    );
    assert!(
        noticed < Duration::from_millis(1_500),
        "noticed after {noticed:?}"
    );
    wait("the primary restarted in place", 60, || {
        let snap = s.snapshot();
        (snap.is_leader(s.clock.now()) && snap.local.is_running_primary()).then_some(())
    })
    .await;

    // A reload (SIGHUP, POST /reload) re-reads the node: new tags reach the member key.
    shared.reload.notify_one();
    let mut published = None;
    for _ in 0..100 {
        let view = dcs.load().await.unwrap();
        published = view
            .member("a1")
            .and_then(|m| m.data.tags.custom_str("site"));
        if published.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(published.as_deref(), Some("dc2"));
    assert_eq!(
        shared.node().tags.custom_str("site").as_deref(),
        Some("dc2")
    );

    // Shutdown: the leader stops its database, then releases the lock (no waiting for ttl).
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    let view = dcs.load().await.unwrap();
    assert!(view.leader.is_none(), "leader lock released on shutdown");
    assert!(
        !data_dir.join("postmaster.pid").exists(),
        "database stopped"
    );
}

/// The in-memory DCS, except that when `steal` is set another member's acquire lands just
/// before ours (the race a real network produces between a read and a write), and that it never
/// wakes the loop early.
struct RacingDcs {
    inner: MemoryDcs,
    store: SharedStore,
    clock: TestClock,
    steal: AtomicBool,
    /// Releases our lock just before the next read, so that read is the unlocked view the agent
    /// races on (released at any other moment, a refused renewal could demote it first).
    release_on_load: AtomicBool,
    lost_at: AtomicU64,
}

#[async_trait]
impl Dcs for RacingDcs {
    async fn load(&self) -> Result<Cluster, DcsError> {
        if self.release_on_load.swap(false, Ordering::SeqCst) {
            let now = (self.clock)();
            assert!(self.store.with(|st| st.release_leader("a1", now)));
        }
        self.inner.load().await
    }
    async fn take_initialize(&self) -> Result<bool, DcsError> {
        self.inner.take_initialize().await
    }
    async fn set_initialize(&self, system_id: &str) -> Result<(), DcsError> {
        self.inner.set_initialize(system_id).await
    }
    async fn cancel_initialize(&self) -> Result<(), DcsError> {
        self.inner.cancel_initialize().await
    }
    async fn write_config(
        &self,
        config: &DynamicConfig,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.inner.write_config(config, version).await
    }
    async fn acquire_leader(&self) -> Result<bool, DcsError> {
        if self.steal.swap(false, Ordering::SeqCst) {
            let now = (self.clock)();
            assert!(self.store.with(|s| s.acquire_leader("other", now)));
            let won = self.inner.acquire_leader().await?;
            assert!(!won, "the other member holds the lock");
            self.lost_at.store(now, Ordering::SeqCst);
            return Ok(false);
        }
        self.inner.acquire_leader().await
    }
    async fn renew_leader(&self) -> Result<bool, DcsError> {
        self.inner.renew_leader().await
    }
    async fn set_timing(&self, ttl: Duration, loop_wait: Duration) {
        self.inner.set_timing(ttl, loop_wait).await
    }
    async fn release_leader(&self) -> Result<bool, DcsError> {
        self.inner.release_leader().await
    }
    async fn publish_member(&self, data: &MemberData) -> Result<(), DcsError> {
        self.inner.publish_member(data).await
    }
    async fn write_status(&self, status: &ClusterStatus) -> Result<(), DcsError> {
        self.inner.write_status(status).await
    }
    async fn set_failover(
        &self,
        request: &FailoverRequest,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.inner.set_failover(request, version).await
    }
    async fn clear_failover(&self, version: u64) -> Result<bool, DcsError> {
        self.inner.clear_failover(version).await
    }
    async fn write_sync_state(
        &self,
        state: &SyncState,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.inner.write_sync_state(state, version).await
    }
    async fn write_history(&self, history: &[HistoryEntry]) -> Result<(), DcsError> {
        self.inner.write_history(history).await
    }
    async fn write_failsafe(
        &self,
        members: &patroni_core::FailsafeTopology,
    ) -> Result<(), DcsError> {
        self.inner.write_failsafe(members).await
    }
    /// No early wake-ups: the demotion must not depend on a watch event arriving in time.
    async fn wait_for_change(&self) -> Result<(), DcsError> {
        std::future::pending().await
    }
}

/// The daemon's executor on the scenario the simulator's executor test uses
/// (`sim::exec::tests::a_running_primary_that_loses_the_race_demotes_at_once`): a running primary
/// whose lock went reads an unlocked view and races, another member's acquire lands first, and
/// the agent must demote in the same cycle, with no `loop_wait` between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_primary_that_loses_the_race_demotes_in_the_same_cycle() {
    let f = fixture("patroni-lost-race-");
    let (data_dir, clock, store) = (f.cfg.data_dir.clone(), f.clock.clone(), f.store.clone());
    let dcs = Arc::new(RacingDcs {
        inner: MemoryDcs::new(store.clone(), "a1", clock.clone()),
        store: store.clone(),
        clock: clock.clone(),
        steal: AtomicBool::new(false),
        release_on_load: AtomicBool::new(false),
        lost_at: AtomicU64::new(0),
    });
    let loop_wait = Duration::from_secs(2);
    let pg = Postgres::new("a1", f.cfg.clone(), Arc::new(SystemRunner)).unwrap();
    let shared = Shared::new("unit", f.node.clone(), dcs.clone() as Arc<dyn Dcs>, None);
    let agent = Agent::new(Arc::clone(&shared), Arc::new(pg))
        .with_pid_file(data_dir.join("postmaster.pid"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async {
        let _ = rx.await;
    }));
    let s = Arc::clone(&shared);
    wait("the agent to lead a running primary", 90, || {
        let snap = s.snapshot();
        (snap.is_leader(s.clock.now()) && snap.local.is_running_primary()).then_some(())
    })
    .await;

    // The lock goes from under the running primary; its next acquire loses to another member.
    dcs.steal.store(true, Ordering::SeqCst);
    dcs.release_on_load.store(true, Ordering::SeqCst);
    let demoted = wait("the demotion", 30, || {
        s.snapshot()
            .finished
            .iter()
            .find(|o| o.kind == ActionKind::Demote)
            .cloned()
    })
    .await;
    let lost_at = dcs.lost_at.load(Ordering::SeqCst);
    assert!(lost_at > 0, "the acquire never lost");
    assert_eq!(demoted.result, OutcomeResult::Done);
    let gap = Duration::from_millis(demoted.started_at.saturating_sub(lost_at));
    println!(
        "MEASURED lost race: demotion started {} ms after the acquire lost",
        gap.as_millis()
    );
    assert!(
        gap < loop_wait / 2,
        "the demotion waited {gap:?}: a cycle boundary between losing the lock and stopping writes"
    );
    wait("the agent to see its database demoted", 20, || {
        (!s.snapshot().local.is_running_primary()).then_some(())
    })
    .await;

    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
}
