//! Replication topology tags on a real cluster: `replicatefrom` cascades and falls back to the
//! leader when its member goes, and `noloadbalance` keeps a standby out of `/replica`.

mod common;

use std::time::{Duration, Instant};

use common::{report, Options, TestCluster};

/// The `application_name`s streaming from `node`, sorted (`pg_stat_replication`).
fn downstream(c: &TestCluster, node: &str) -> Vec<String> {
    let out = c
        .node(node)
        .sql("SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'")
        .unwrap_or_default();
    out.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicatefrom_cascades_then_falls_back_to_the_leader() {
    // Only node1 may bootstrap (the others are nofailover), so node2 is a standby node3 can
    // cascade from; node3 also stays out of load balancing.
    let opts = Options {
        tags: vec![
            ("node2".into(), "  nofailover: true\n".into()),
            (
                "node3".into(),
                "  nofailover: true\n  noloadbalance: true\n  replicatefrom: node2\n".into(),
            ),
        ],
        ..Options::default()
    };
    let mut c = TestCluster::start_opts("cascade", opts).await;
    let leader = c.primary().await.expect("a primary");
    assert_eq!(leader, "node1");

    let t = Instant::now();
    c.wait(
        "node3 streaming from node2, not from the leader",
        Duration::from_secs(60),
        || async {
            (downstream(&c, "node2") == ["node3"] && downstream(&c, "node1") == ["node2"])
                .then_some(())
        },
    )
    .await;
    report(
        "cascade",
        "node3 streaming from node2",
        t.elapsed().as_millis(),
    );

    // Rows written on the leader reach node3 through node2.
    assert_eq!(c.write_rows("node1", "t_cascade", 500), "500");
    c.wait("rows on node3", Duration::from_secs(30), || async {
        (c.node("node3")
            .sql("SELECT count(*) FROM t_cascade")
            .as_deref()
            == Some("500"))
        .then_some(())
    })
    .await;

    // noloadbalance: node3 is a healthy standby, yet `/replica` says 503; node2 says 200.
    let code = |node: &'static str| {
        let c = &c;
        async move { c.get(node, "/replica").await.map(|(code, _)| code) }
    };
    assert_eq!(code("node3").await, Some(503));
    assert_eq!(code("node2").await, Some(200));
    let (status, doc) = c.get("node3", "/patroni").await.expect("/patroni");
    assert_eq!(status, 200);
    assert_eq!(doc["tags"]["replicatefrom"], "node2", "{doc}");
    assert_eq!(doc["tags"]["noloadbalance"], true, "{doc}");

    // node2 goes away (agent, then its postmaster): node3 moves to the leader.
    let t = Instant::now();
    let node2 = c.node_mut("node2");
    node2.stop_agent(30);
    node2.kill9_postmaster();
    node2.kill9_fence();
    assert!(c.node("node2").postmaster_pid().is_none());
    c.wait(
        "node3 streaming from the leader",
        Duration::from_secs(60),
        || async { (downstream(&c, "node1") == ["node3"]).then_some(()) },
    )
    .await;
    let ms = t.elapsed().as_millis();
    report(
        "cascade",
        "node3 back on the leader after node2 stopped",
        ms,
    );
    // ttl (10 s) for node2's key to go if it was not removed, a few loops, a reload.
    assert!(ms < 45_000, "took {ms} ms");
    assert_eq!(c.write_rows("node1", "t_cascade", 100), "600");
    c.wait("new rows on node3", Duration::from_secs(30), || async {
        (c.node("node3")
            .sql("SELECT count(*) FROM t_cascade")
            .as_deref()
            == Some("600"))
        .then_some(())
    })
    .await;

    // node2 comes back: node3 cascades from it again.
    c.node_mut("node2").start_agent();
    c.wait(
        "node3 streaming from node2 again",
        Duration::from_secs(90),
        || async { (downstream(&c, "node2") == ["node3"]).then_some(()) },
    )
    .await;
}

/// `nostream`: node3 has no `primary_conninfo` and no walsender anywhere serves it, yet it
/// replays what the primary archives through `restore_command`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nostream_replays_from_the_archive_only() {
    // Every member archives into one directory beside the nodes' and restores from it.
    let opts = Options {
        extra_pg: concat!(
            "    archive_mode: \"on\"\n",
            "    archive_command: \"mkdir -p {dir}/../archive && test ! -f {dir}/../archive/%f && cp %p {dir}/../archive/%f\"\n",
            "    restore_command: \"cp {dir}/../archive/%f %p\"\n",
        )
        .into(),
        tags: vec![
            ("node2".into(), "  nofailover: true\n".into()),
            ("node3".into(), "  nofailover: true\n  nostream: true\n".into()),
        ],
        ..Options::default()
    };
    let c = TestCluster::start_opts("nostream", opts).await;
    assert_eq!(c.primary().await.as_deref(), Some("node1"));
    c.wait(
        "node3 without primary_conninfo",
        Duration::from_secs(60),
        || async {
            (c.node("node3").sql("SHOW primary_conninfo").as_deref() == Some("")).then_some(())
        },
    )
    .await;
    assert_eq!(downstream(&c, "node1"), ["node2"]);
    assert!(downstream(&c, "node2").is_empty());
    let (_, doc) = c.get("node3", "/patroni").await.expect("/patroni");
    assert_eq!(doc["tags"]["nostream"], true, "{doc}");
    assert_eq!(doc["replication_state"], "in archive recovery", "{doc}");

    assert_eq!(c.write_rows("node1", "t_nostream", 300), "300");
    c.node("node1")
        .sql("SELECT pg_switch_wal()")
        .expect("switch wal");
    let t = Instant::now();
    c.wait(
        "archived rows on node3",
        Duration::from_secs(60),
        || async {
            (c.node("node3")
                .sql("SELECT count(*) FROM t_nostream")
                .as_deref()
                == Some("300"))
            .then_some(())
        },
    )
    .await;
    report(
        "nostream",
        "rows replayed from the archive",
        t.elapsed().as_millis(),
    );
    assert!(downstream(&c, "node1") == ["node2"] && downstream(&c, "node2").is_empty());
}
