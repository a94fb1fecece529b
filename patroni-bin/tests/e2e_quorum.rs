//! Quorum commit on real processes: three nodes, `synchronous_mode: quorum`,
//! `synchronous_node_count: 1`. The primary waits for `ANY 1` of both standbys and `/sync`
//! records them as voters with quorum 1; the primary's node is then lost (agent, fence and
//! postmaster SIGKILLed by PID) while a writer through a multi-host read-write DSN records every
//! acknowledged insert. A standby gathers the other's vote and promotes, and every acknowledged
//! insert is on it.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::writer::Writer;
use common::{report, TestCluster};

/// `SHOW synchronous_standby_names` on `node`.
fn ssn(c: &TestCluster, node: &str) -> Option<String> {
    c.node(node).sql("SHOW synchronous_standby_names")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_commit_loses_no_acknowledged_write_when_the_primary_node_dies() {
    let mut c = TestCluster::start_with(
        "quorum",
        "    synchronous_mode: quorum\n    synchronous_node_count: 1\n",
    )
    .await;
    let old = c.wait_healthy(Duration::from_secs(60)).await;
    let standbys: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| *n != old)
        .collect();
    // The steady state: ANY 1 of both standbys in the database, both voters with quorum 1 in /sync.
    let sync = c
        .wait(
            "/sync with both standbys and quorum 1",
            Duration::from_secs(40),
            || async {
                let s = c.view().await?.sync?.value;
                (s.leader.as_deref() == Some(old.as_str())
                    && s.sync_standbys.len() == 2
                    && s.quorum == Some(1))
                .then_some(s)
            },
        )
        .await;
    for s in &standbys {
        assert!(sync.is_sync(s), "{sync:?}");
    }
    let names = ssn(&c, &old).unwrap_or_default();
    assert!(
        names.starts_with("ANY 1 (") && standbys.iter().all(|s| names.contains(s.as_str())),
        "synchronous_standby_names = {names:?}"
    );
    // The REST checks follow /sync (each agent's view of it, refreshed every cycle): both
    // standbys are quorum standbys, the primary is not.
    for s in &standbys {
        c.wait(
            "/quorum 200 on a standby",
            Duration::from_secs(20),
            || async { (c.get(s, "/quorum").await?.0 == 200).then_some(()) },
        )
        .await;
        assert_eq!(c.get(s, "/read-only-quorum").await.map(|r| r.0), Some(200));
        assert_eq!(c.get(s, "/async").await.map(|r| r.0), Some(503));
    }
    assert_eq!(c.get(&old, "/quorum").await.map(|r| r.0), Some(503));
    assert_eq!(
        c.get(&old, "/read-only-quorum").await.map(|r| r.0),
        Some(200)
    );

    c.node(&old)
        .sql("CREATE TABLE t_quorum(id bigint primary key)")
        .expect("create table");
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.pg_port).collect();
    let t0 = Instant::now();
    let writer = Writer::multi_host(&ports, "t_quorum", t0);
    c.wait("acknowledged writes", Duration::from_secs(20), || async {
        (writer.acks().len() >= 20).then_some(())
    })
    .await;

    // Lose the primary's node: agent, fence and postmaster, all SIGKILLed by PID.
    let fault_at = t0.elapsed();
    let victim = c.node_mut(&old);
    victim.kill9_agent();
    victim.kill9_fence();
    victim.kill9_postmaster();
    let new = c
        .wait("a new primary", Duration::from_secs(45), || async {
            c.primary().await.filter(|p| *p != old)
        })
        .await;
    let promoted_at = t0.elapsed();
    let before = writer.acks().len();
    c.wait(
        "writes on the new primary",
        Duration::from_secs(20),
        || async { (writer.acks().len() >= before + 10).then_some(()) },
    )
    .await;
    let acks = writer.finish();
    let on_new: HashSet<u64> = c
        .node(&new)
        .sql("SELECT string_agg(id::text, ',') FROM t_quorum")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let lost: Vec<u64> = acks
        .iter()
        .map(|a| a.id)
        .filter(|id| !on_new.contains(id))
        .collect();
    if !lost.is_empty() {
        c.dump();
    }
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // The new primary takes /sync over and waits for the standby left: ANY 1 of it, quorum 0.
    let left = standbys.iter().find(|s| **s != new).unwrap().clone();
    c.wait(
        "/sync led by the new primary",
        Duration::from_secs(40),
        || async {
            let s = c.view().await?.sync?.value;
            let names = ssn(&c, &new)?;
            (s.leader.as_deref() == Some(new.as_str())
                && s.sync_standbys == [left.clone()]
                && s.quorum == Some(0)
                && names.starts_with("ANY 1 (")
                && names.contains(left.as_str()))
            .then_some(())
        },
    )
    .await;
    report(
        "quorum commit, primary node lost",
        &format!(
            "{new} promoted {} ms after the loss; {} acks, 0 lost",
            (promoted_at - fault_at).as_millis(),
            acks.len()
        ),
        (promoted_at - fault_at).as_millis(),
    );
}
