//! The seed rules on a real cluster: a crashed primary restarts in place (1), an unstartable one
//! hands over at once (2), a diverged standby is rebuilt (4).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{report, TestCluster};
use patroni_postgres::testkit::{pg_bin_dir, test_user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed1_crashed_primary_restarts_in_place() {
    let c = TestCluster::start("seed1").await;
    let primary = c.primary().await.unwrap();
    let old_pid = c.node(&primary).postmaster_pid().unwrap();
    let t = Instant::now();
    c.node(&primary).kill9_postmaster();
    let other_leader = std::sync::Mutex::new(None);
    c.wait(
        "the same node primary again",
        Duration::from_secs(40),
        || async {
            if let Some(l) = c.leader().await.filter(|l| *l != primary) {
                *other_leader.lock().unwrap() = Some(l);
            }
            let pid = c.node(&primary).postmaster_pid()?;
            (pid != old_pid && c.is_primary(&primary).await).then_some(())
        },
    )
    .await;
    report(
        "seed rule 1 (primary crash)",
        "same node primary again",
        t.elapsed().as_millis(),
    );
    assert_eq!(
        *other_leader.lock().unwrap(),
        None,
        "the lock must not move for a restartable primary"
    );
    assert_eq!(c.primary().await.as_deref(), Some(primary.as_str()));
    c.wait_healthy(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed2_unstartable_primary_hands_over() {
    let c = TestCluster::start("seed2").await;
    let old = c.primary().await.unwrap();
    assert_eq!(c.write_rows(&old, "t_seed2", 5000), "5000");
    for n in c.nodes.iter().filter(|n| n.name != old) {
        c.wait("rows on every standby", Duration::from_secs(20), || async {
            (n.sql("SELECT count(*) FROM t_seed2").as_deref() == Some("5000")).then_some(())
        })
        .await;
    }
    // postgresql.auto.conf is read after the managed postgresql.conf: a bad value there stops any start.
    let auto = c.node(&old).data_dir().join("postgresql.auto.conf");
    let original = std::fs::read_to_string(&auto).unwrap_or_default();
    std::fs::write(&auto, format!("{original}\nshared_buffers = 'lots'\n")).unwrap();
    let t = Instant::now();
    c.node(&old).kill9_postmaster();
    let new = c.wait_new_primary(&old, Duration::from_secs(40)).await;
    let ms = t.elapsed().as_millis();
    report(
        "seed rule 2 (unstartable primary)",
        &format!("{new} promoted"),
        ms,
    );
    assert!(ms < 10_000 + 2_000 + 15_000, "took {ms} ms");
    assert_eq!(
        c.node(&new).sql("SELECT count(*) FROM t_seed2").as_deref(),
        Some("5000"),
        "no acknowledged write lost"
    );
    c.wait(
        "the promotion recorded in /history",
        Duration::from_secs(10),
        || async {
            let history = c.view().await?.history;
            history
                .iter()
                .any(|h| h.new_leader.as_deref() == Some(new.as_str()))
                .then_some(())
        },
    )
    .await;
    // Make it startable again: it comes back as a standby of the new primary.
    std::fs::write(&auto, original).unwrap();
    let t = Instant::now();
    c.wait_streaming(
        &old,
        "the old primary back as a standby",
        Duration::from_secs(60),
    )
    .await;
    report(
        "seed rule 2 (unstartable primary)",
        "old primary back as streaming standby",
        t.elapsed().as_millis(),
    );
    assert_eq!(c.primary().await.as_deref(), Some(new.as_str()));
    assert_eq!(
        c.node(&old).sql("SELECT count(*) FROM t_seed2").as_deref(),
        Some("5000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed4_diverged_standby_is_rebuilt() {
    let mut c = TestCluster::start("seed4").await;
    let primary = c.primary().await.unwrap();
    let victim = c
        .nodes
        .iter()
        .find(|n| n.name != primary)
        .unwrap()
        .name
        .clone();
    // Without its agent, the standby is promoted by hand and takes writes: its history diverges.
    c.node_mut(&victim).kill9_agent();
    let (uid, gid) = test_user();
    let data = c.node(&victim).data_dir();
    let st = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "timeout",
            "30",
        ])
        .arg(pg_bin_dir().join("pg_ctl"))
        .args(["promote", "-w", "-D"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success(), "pg_ctl promote");
    c.node(&victim)
        .sql("CREATE TABLE diverged AS SELECT generate_series(1, 10000) i")
        .expect("write on the diverged node");
    assert_eq!(c.write_rows(&primary, "t_seed4", 100), "100");
    let t = Instant::now();
    c.node_mut(&victim).start_agent();
    c.wait_streaming(
        &victim,
        "the diverged standby streaming again",
        Duration::from_secs(90),
    )
    .await;
    report(
        "seed rule 4 (diverged standby)",
        "rebuilt and streaming",
        t.elapsed().as_millis(),
    );
    let node = c.node(&victim);
    c.wait("rows from the leader", Duration::from_secs(20), || async {
        (node.sql("SELECT count(*) FROM t_seed4").as_deref() == Some("100")).then_some(())
    })
    .await;
    assert_eq!(
        node.sql("SELECT count(*) FROM pg_class WHERE relname = 'diverged'")
            .as_deref(),
        Some("0"),
        "the diverged writes are gone"
    );
    assert_eq!(c.primary().await.as_deref(), Some(primary.as_str()));
}
