//! The embeddable agent over the in-memory DCS and a real PostgreSQL 15: bootstrap, the
//! postmaster watch that wakes the loop at once, and the leader's clean shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_bin::agent::Agent;
use patroni_bin::Shared;
use patroni_core::{Dcs, DynamicConfig, MemoryDcs, MemoryStore, Node, ProcessState, SharedStore};
use patroni_postgres::command::SystemRunner;
use patroni_postgres::testkit::{owned_temp_dir, test_config};
use patroni_postgres::Postgres;

async fn wait<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_bootstraps_notices_a_crash_and_releases_on_shutdown() {
    let dir = owned_temp_dir("patroni-agent-");
    let cfg = test_config(dir.path());
    let data_dir = cfg.data_dir.clone();
    let start = Instant::now();
    let clock: Arc<dyn Fn() -> u64 + Send + Sync> =
        Arc::new(move || start.elapsed().as_millis() as u64 + 1);
    let store = SharedStore::new(MemoryStore::new(10_000));
    let dcs: Arc<dyn Dcs> = Arc::new(MemoryDcs::new(store.clone(), "a1", clock.clone()));
    let mut node = Node::new("a1");
    node.conn_url = cfg.conn_url();
    node.api_url = "http://127.0.0.1:9/patroni".into();
    node.bootstrap_config = DynamicConfig {
        ttl: 10,
        loop_wait: 2,
        retry_timeout: 4,
        ..Default::default()
    };
    let pg = Postgres::new("a1", cfg, Arc::new(SystemRunner)).unwrap();
    let shared = Shared::new("unit", node, Arc::clone(&dcs), None);
    let mut reloaded = shared.node();
    reloaded
        .tags
        .custom
        .insert("site".into(), serde_json::json!("dc2"));
    let agent = Agent::new(Arc::clone(&shared), Arc::new(pg))
        .with_pid_file(data_dir.join("postmaster.pid"))
        .with_reloader(Box::new(move || Ok(reloaded.clone())));
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
