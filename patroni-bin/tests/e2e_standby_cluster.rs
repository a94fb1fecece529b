//! A standby cluster on real servers: a two-node cluster "dr" whose `/config` names the primary
//! of a one-node cluster "main" in `standby_cluster`. Its lock holder is a standby leader that
//! streams from main through a slot there, its replica follows the standby leader; when the
//! standby leader's node dies the replica takes over and still follows main; removing
//! `standby_cluster` from dr's `/config` makes dr's leader a writable primary.

mod common;

use std::time::{Duration, Instant};

use common::{report, Options, TestCluster};
use serde_json::json;

/// The row count of `table` on `node`, when it answers.
fn count(c: &TestCluster, node: &str, table: &str) -> Option<String> {
    c.node(node).sql(&format!("SELECT count(*) FROM {table}"))
}

/// The dr member that answers `/standby-leader` with 200, when exactly one does.
async fn standby_leader(dr: &TestCluster) -> Option<String> {
    let mut found = Vec::new();
    for n in &dr.nodes {
        if n.agent_pid().is_some()
            && matches!(dr.get(&n.name, "/standby-leader").await, Some((200, _)))
        {
            found.push(n.name.clone());
        }
    }
    (found.len() == 1).then(|| found.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_cluster_follows_fails_over_inside_itself_and_is_promoted() {
    let started = Instant::now();
    // main keeps the slot dr's standby leader streams through.
    let main = TestCluster::start_opts(
        "sbmain",
        Options {
            nodes: 1,
            extra_dcs: "    permanent_slots:\n      dr_slot:\n        type: physical\n".into(),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(main.primary().await.as_deref(), Some("node1"));
    assert_eq!(main.write_rows("node1", "t_dr", 100), "100");

    let mut dr = TestCluster::start_opts(
        "sbdr",
        Options {
            nodes: 2,
            no_wait: true,
            extra_dcs: format!(
                "    standby_cluster:\n      host: 127.0.0.1\n      port: {}\n      primary_slot_name: dr_slot\n      restore_command: /bin/false %f %p\n",
                main.node("node1").pg_port
            ),
            ..Options::default()
        },
    )
    .await;

    // One standby leader, streaming from main through the slot; the other member follows it.
    let t = Instant::now();
    let first = dr
        .wait(
            "a standby leader in dr",
            Duration::from_secs(60),
            || async { standby_leader(&dr).await },
        )
        .await;
    let other = dr.other_than(&[first.as_str()]);
    dr.wait(
        "dr's replica streaming",
        Duration::from_secs(60),
        || async { dr.is_streaming(&other).await.then_some(()) },
    )
    .await;
    report(
        "standby cluster",
        "dr bootstrapped from main",
        t.elapsed().as_millis(),
    );
    let (_, doc) = dr.get(&first, "/patroni").await.expect("/patroni");
    assert_eq!(doc["role"], "standby_leader", "{doc}");
    for path in ["/primary", "/replica"] {
        assert_eq!(dr.get(&first, path).await.map(|r| r.0), Some(503), "{path}");
    }
    assert_eq!(dr.get(&first, "/leader").await.map(|r| r.0), Some(200));
    // The standby leader replays with the section's restore_command.
    dr.wait(
        "restore_command on the standby leader",
        Duration::from_secs(30),
        || async {
            (dr.node(&first).sql("SHOW restore_command").as_deref() == Some("/bin/false %f %p"))
                .then_some(())
        },
    )
    .await;
    let member_role = dr
        .view()
        .await
        .and_then(|c| c.member(&first).map(|m| m.data.role));
    assert_eq!(member_role, Some(patroni_core::MemberRole::StandbyLeader));
    main.wait(
        "dr_slot in use on main",
        Duration::from_secs(30),
        || async {
            (main
                .node("node1")
                .sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'dr_slot'")
                .as_deref()
                == Some("t"))
            .then_some(())
        },
    )
    .await;
    // A row written on main reaches both dr members.
    main.node("node1")
        .sql("INSERT INTO t_dr VALUES (1)")
        .expect("insert on main");
    for n in [&first, &other] {
        dr.wait("main's row on dr", Duration::from_secs(30), || async {
            (count(&dr, n, "t_dr").as_deref() == Some("101")).then_some(())
        })
        .await;
    }
    assert!(
        dr.node(&first).sql("INSERT INTO t_dr VALUES (2)").is_none(),
        "the standby leader took a write"
    );

    // The standby leader's node dies: the replica becomes standby leader and follows main.
    let t = Instant::now();
    dr.node_mut(&first).kill9_agent();
    dr.node(&first).kill9_postmaster();
    let second = dr
        .wait("a new standby leader", Duration::from_secs(60), || async {
            standby_leader(&dr).await.filter(|l| *l == other)
        })
        .await;
    report(
        "standby cluster",
        "standby leader replaced",
        t.elapsed().as_millis(),
    );
    main.node("node1")
        .sql("INSERT INTO t_dr VALUES (3)")
        .expect("insert on main");
    dr.wait(
        "main's new row on the new standby leader",
        Duration::from_secs(30),
        || async { (count(&dr, &second, "t_dr").as_deref() == Some("102")).then_some(()) },
    )
    .await;
    assert_eq!(dr.get(&second, "/primary").await.map(|r| r.0), Some(503));

    // Promoting the standby cluster: its leader becomes a writable primary.
    let t = Instant::now();
    assert_eq!(
        dr.patch_config(&second, json!({"standby_cluster": null}))
            .await,
        Some(200)
    );
    dr.wait("dr's leader promoted", Duration::from_secs(30), || async {
        dr.is_primary(&second).await.then_some(())
    })
    .await;
    report("standby cluster", "dr promoted", t.elapsed().as_millis());
    dr.node(&second)
        .sql("INSERT INTO t_dr VALUES (4)")
        .expect("a write on the promoted dr leader");
    assert_eq!(count(&dr, &second, "t_dr").as_deref(), Some("103"));
    assert_eq!(
        dr.get(&second, "/standby-leader").await.map(|r| r.0),
        Some(503)
    );
    report(
        "standby cluster",
        "whole scenario",
        started.elapsed().as_millis(),
    );
}
