//! The windows in which two nodes could accept writes, on a real cluster (three agents as the
//! unprivileged test user, PostgreSQL 15, etcd; all on 127.0.0.1, so every member shares a host).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{report, TestCluster};

/// The port the node's WAL receiver streams from, if it streams.
fn sender_port(c: &TestCluster, node: &str) -> Option<u16> {
    c.node(node)
        .sql("SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")?
        .trim()
        .parse()
        .ok()
}

/// The primary's agent dies (SIGKILL) and leaves its postgres running. With every member on one
/// host, the third node's receiver, still attached to the deposed primary, must be pointed at the
/// new leader: comparing only hosts took it for following the leader already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_a_deposed_primary_on_the_same_host_follows_the_new_leader() {
    let mut c = TestCluster::start("samehost").await;
    let old = c.primary().await.unwrap();
    let old_port = c.node(&old).pg_port;
    c.node_mut(&old).kill9_agent();
    let new = c.wait_new_primary(&old, Duration::from_secs(60)).await;
    let new_port = c.node(&new).pg_port;
    let third = c
        .nodes
        .iter()
        .find(|n| n.name != old && n.name != new)
        .unwrap()
        .name
        .clone();
    let t = Instant::now();
    let port = c
        .wait(
            "the third node streaming from the new leader",
            Duration::from_secs(30),
            || async { sender_port(&c, &third).filter(|p| *p == new_port) },
        )
        .await;
    report(
        "same host",
        &format!("{third} streams from {new} (port {port}, not {old_port})"),
        t.elapsed().as_millis(),
    );
}

/// The leader's data directory becomes unreadable (`chmod 000`) while its postmaster runs. The
/// agent must stop that postmaster *before* it releases the lock: no write is accepted by the old
/// node once the new primary acknowledges one, and the old node's `/primary` answers 503 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_leader_data_directory_stops_its_postmaster_before_failover() {
    let c = TestCluster::start("unreadable").await;
    let old = c.primary().await.unwrap();
    assert_eq!(c.write_rows(&old, "t_unreadable", 10), "10");
    let pid = c.node(&old).postmaster_pid().expect("old postmaster");
    let data = c.node(&old).data_dir();
    let t0 = Instant::now();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut old_last_write: Option<Duration> = None;
    let mut old_503: Option<Duration> = None;
    let mut old_dead: Option<Duration> = None;
    let mut new_first_write: Option<(String, Duration)> = None;
    let deadline = t0 + Duration::from_secs(60);
    while new_first_write.is_none() && Instant::now() < deadline {
        if c.node(&old)
            .sql("INSERT INTO t_unreadable VALUES (1)")
            .is_some()
        {
            old_last_write = Some(t0.elapsed());
        }
        if old_503.is_none() && !c.is_primary(&old).await {
            old_503 = Some(t0.elapsed());
        }
        if old_dead.is_none() && !patroni_postgres::datadir::process_alive(pid) {
            old_dead = Some(t0.elapsed());
        }
        for n in c.nodes.iter().filter(|n| n.name != old) {
            if n.sql("INSERT INTO t_unreadable VALUES (2)").is_some() {
                new_first_write = Some((n.name.clone(), t0.elapsed()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let Some((new, first)) = new_first_write else {
        c.dump();
        panic!("no new primary accepted a write within 60 s");
    };
    if old_dead.is_none_or(|d| d > first) || old_last_write.is_some_and(|w| w >= first) {
        c.dump();
    }
    let dead = old_dead.expect("the old postmaster was never stopped");
    assert!(
        dead <= first,
        "the old postmaster died at {dead:?}, after {new} acknowledged its first write at {first:?}"
    );
    assert!(
        old_last_write.is_none_or(|w| w < first),
        "the old primary acknowledged a write at {old_last_write:?}, after {new}'s first at {first:?}"
    );
    let answered_503 = old_503.expect("the old node's /primary never answered 503");
    report(
        "unreadable data dir",
        &format!(
            "old postmaster stopped at {} ms, /primary 503 at {} ms, {new} wrote",
            dead.as_millis(),
            answered_503.as_millis()
        ),
        first.as_millis(),
    );
}
