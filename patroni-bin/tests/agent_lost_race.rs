//! The daemon's executor on the scenario the simulator's executor test uses
//! (`sim::exec::tests::a_running_primary_that_loses_the_race_demotes_at_once`): a running primary
//! whose lock went reads an unlocked view and races, another member's acquire lands first, and
//! the agent must demote in the same cycle. Both executors pump the core's `executor`; this checks
//! the agent's pump gives the same trace: `AcquireLeader` lost, then `Demote`, with no
//! `loop_wait` between.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use patroni_bin::agent::Agent;
use patroni_bin::Shared;
use patroni_core::{
    ActionKind, Cluster, ClusterStatus, Dcs, DcsError, DynamicConfig, FailoverRequest,
    HistoryEntry, MemberData, MemoryDcs, MemoryStore, Node, OutcomeResult, SharedStore, SyncState,
};
use patroni_postgres::command::SystemRunner;
use patroni_postgres::testkit::{owned_temp_dir, test_config};
use patroni_postgres::Postgres;

/// The in-memory DCS, except that when `steal` is set another member's acquire lands just
/// before ours (the race a real network produces between a read and a write), and that it never
/// wakes the loop early.
struct RacingDcs {
    inner: MemoryDcs,
    store: SharedStore,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    steal: AtomicBool,
    lost_at: AtomicU64,
}

#[async_trait]
impl Dcs for RacingDcs {
    async fn load(&self) -> Result<Cluster, DcsError> {
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
    /// No early wake-ups: the demotion must not depend on a watch event arriving in time.
    async fn wait_for_change(&self) -> Result<(), DcsError> {
        std::future::pending().await
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_primary_that_loses_the_race_demotes_in_the_same_cycle() {
    let dir = owned_temp_dir("patroni-lost-race-");
    let cfg = test_config(dir.path());
    let data_dir = cfg.data_dir.clone();
    let start = Instant::now();
    let clock: Arc<dyn Fn() -> u64 + Send + Sync> =
        Arc::new(move || start.elapsed().as_millis() as u64 + 1);
    let store = SharedStore::new(MemoryStore::new(10_000));
    let dcs = Arc::new(RacingDcs {
        inner: MemoryDcs::new(store.clone(), "a1", clock.clone()),
        store: store.clone(),
        clock: clock.clone(),
        steal: AtomicBool::new(false),
        lost_at: AtomicU64::new(0),
    });
    let mut node = Node::new("a1");
    node.conn_url = cfg.conn_url();
    node.api_url = "http://127.0.0.1:9/patroni".into();
    node.bootstrap_config = DynamicConfig {
        ttl: 10,
        loop_wait: 2,
        retry_timeout: 4,
        ..Default::default()
    };
    let loop_wait = Duration::from_secs(2);
    let pg = Postgres::new("a1", cfg, Arc::new(SystemRunner)).unwrap();
    let shared = Shared::new("unit", node, dcs.clone() as Arc<dyn Dcs>, None);
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
    let now = clock();
    assert!(store.with(|st| st.release_leader("a1", now)));
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
