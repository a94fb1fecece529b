//! Failsafe mode on the real cluster: with `failsafe_mode` on, the primary keeps taking writes
//! through 30 s of a frozen etcd (SIGSTOP) while every member confirms it over `POST /failsafe`,
//! and demotes once one member's agent is frozen too.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failsafe_rides_out_a_frozen_etcd_and_demotes_when_a_member_goes_silent() {
    let c = TestCluster::start("failsafe").await;
    let p = c.wait_healthy(Duration::from_secs(90)).await;
    // `ttl` 20: a round every `retry_timeout` (4 s, the etcd read that times out) keeps the fence's
    // deadline (`ttl` - 5 s after each confirmed round) well ahead.
    assert_eq!(
        c.patch_config(&p, json!({"failsafe_mode": true, "ttl": 20}))
            .await,
        Some(200)
    );
    c.wait(
        "/failsafe listing all three members",
        Duration::from_secs(30),
        || async {
            let (code, doc) = c.get(&p, "/failsafe").await?;
            (code == 200 && doc.as_object()?.len() == 3).then_some(())
        },
    )
    .await;
    c.write_rows(&p, "failsafe_t", 1);

    c.etcd.pause().expect("SIGSTOP etcd");
    let frozen = Instant::now();
    let mut writes = 0;
    while frozen.elapsed() < Duration::from_secs(30) {
        if c.node(&p)
            .sql("INSERT INTO failsafe_t VALUES (2)")
            .is_none()
            || !c.is_primary(&p).await
        {
            c.dump();
            panic!(
                "the primary stopped taking writes {:?} into the etcd freeze",
                frozen.elapsed()
            );
        }
        writes += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (_, doc) = c.get(&p, "/patroni").await.expect("/patroni answers");
    assert_eq!(doc["failsafe_mode_is_active"], true, "{doc}");
    println!("{writes} writes accepted through 30 s of a frozen etcd");

    // One replica's agent goes silent too: the primary cannot hear from every member.
    let r = c
        .nodes
        .iter()
        .find(|n| n.name != p)
        .map(|n| n.name.clone())
        .expect("a replica");
    c.node(&r).signal_agent("STOP");
    let cut = Instant::now();
    c.wait("the primary to demote", Duration::from_secs(45), || async {
        let read_only = c.node(&p).sql("SELECT pg_is_in_recovery()").as_deref() == Some("t");
        let down = c.node(&p).postmaster_pid().is_none();
        (!c.is_primary(&p).await && (read_only || down)).then_some(())
    })
    .await;
    println!("demoted {:?} after a member went silent", cut.elapsed());

    c.node(&r).signal_agent("CONT");
    c.etcd.resume().expect("SIGCONT etcd");
    c.wait_healthy(Duration::from_secs(120)).await;
}
