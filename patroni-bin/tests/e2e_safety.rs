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
    let third = c.other_than(&[&old, &new]);
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

/// The granted TTL of the lease the leader key is bound to, read from etcd itself.
async fn leader_lease_ttl(c: &TestCluster) -> Option<i64> {
    let mut raw = patroni_etcd::testkit::raw_client(&[c.etcd.endpoint()], None)
        .await
        .ok()?;
    let key = format!("/service/{}/leader", c.scope);
    let kv = raw.get(key, None).await.ok()?;
    let lease = kv.kvs().first()?.lease();
    Some(
        raw.lease_time_to_live(lease, None)
            .await
            .ok()?
            .granted_ttl(),
    )
}

/// `PATCH /config` of `ttl` reaches the lease etcd holds: raised and lowered, the leader's lease
/// is re-granted with the new TTL within a loop; during an etcd outage right after, the primary
/// stops claiming its role before that lease could have run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_etcd_holds_follows_the_configured_ttl() {
    let c = TestCluster::start("leasettl").await;
    let leader = c.primary().await.unwrap();
    assert_eq!(leader_lease_ttl(&c).await, Some(10));
    for ttl in [20, 10, 20] {
        let code = c
            .patch_config(&leader, serde_json::json!({ "ttl": ttl }))
            .await;
        assert_eq!(code, Some(200), "PATCH ttl={ttl}");
        let t = Instant::now();
        c.wait(
            &format!("the leader's lease granted with ttl {ttl}"),
            Duration::from_secs(15),
            || async { (leader_lease_ttl(&c).await == Some(ttl)).then_some(()) },
        )
        .await;
        report(
            "lease ttl",
            &format!("leader lease re-granted with ttl {ttl}"),
            t.elapsed().as_millis(),
        );
    }
    // etcd stops answering: the leader must give up before its 20 s lease could expire.
    c.etcd.pause().unwrap();
    let t = Instant::now();
    let mut gave_up = None;
    while t.elapsed() < Duration::from_secs(25) {
        if !c.is_primary(&leader).await {
            gave_up = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.etcd.resume().unwrap();
    let gave_up = gave_up.expect("the leader still claimed its role 25 s into the outage");
    assert!(
        gave_up < Duration::from_secs(20),
        "the leader claimed its role for {gave_up:?}, past its 20 s lease"
    );
    report(
        "lease ttl",
        "leader stopped claiming its role during the etcd outage",
        gave_up.as_millis(),
    );
    c.wait_healthy(Duration::from_secs(90)).await;
}

/// A second agent started on a data directory that already has one refuses at once, naming the
/// first; the first agent's database keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_data_directory_refuses() {
    use std::os::unix::process::CommandExt;
    let c = TestCluster::start("twoagents").await;
    let leader = c.primary().await.unwrap();
    let node = c.node(&leader);
    let pm = node.postmaster_pid().expect("postmaster");
    let (uid, gid) = patroni_postgres::testkit::test_user();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_patroni"))
        .arg(&node.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .uid(uid)
        .gid(gid)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second agent kept running");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = second.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!status.success(), "{text}");
    assert!(text.contains("another agent"), "{text}");
    assert!(
        patroni_postgres::datadir::process_alive(pm),
        "the first agent's database was touched"
    );
    assert!(c.is_primary(&leader).await);
}

/// SIGTERM while etcd does not answer: the leader's agent stops its database
/// and exits within a bounded time, instead of finishing a cycle of DCS timeouts first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_etcd_outage_stops_the_leader_promptly() {
    let mut c = TestCluster::start("termoutage").await;
    let leader = c.primary().await.unwrap();
    let pm = c.node(&leader).postmaster_pid().expect("postmaster");
    c.etcd.pause().unwrap();
    // Let the agent get stuck in a DCS call first.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let took = c.node_mut(&leader).terminate_agent();
    c.etcd.resume().unwrap();
    let took = took.expect("the agent did not exit within 30 s of SIGTERM");
    assert!(
        !patroni_postgres::datadir::process_alive(pm),
        "the leader's database still runs after its agent exited"
    );
    report(
        "SIGTERM during etcd outage",
        "leader agent stopped its database and exited",
        took.as_millis(),
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
}
