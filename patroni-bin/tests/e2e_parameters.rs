//! Cluster-wide server parameters from `/config`, on a real cluster: what `patronictl edit-config
//! --pg` and `PATCH /config` change reaches every member, by reload where PostgreSQL allows it and
//! as `pending_restart` where it does not.

mod common;

use std::time::{Duration, Instant};

use common::{report, TestCluster};
use serde_json::json;

fn show(c: &TestCluster, node: &str, name: &str) -> Option<String> {
    c.node(node)
        .sql(&format!("SHOW {name}"))
        .map(|s| s.trim().to_string())
}

async fn pending_restart(c: &TestCluster, node: &str) -> bool {
    matches!(c.get(node, "/patroni").await, Some((200, doc)) if doc["pending_restart"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_parameters_reach_every_member_by_reload_or_pending_restart() {
    let c = TestCluster::start("params").await;
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    // At start: `bootstrap.dcs` parameters are the cluster's; the node's own `max_connections`
    // (30 in the fixture) is ignored, since every member must run with the same value.
    for n in &names {
        assert_eq!(show(&c, n, "wal_keep_size").as_deref(), Some("64MB"), "{n}");
        assert_eq!(
            show(&c, n, "max_connections").as_deref(),
            Some("100"),
            "{n}"
        );
        assert_eq!(
            show(&c, n, "shared_buffers").as_deref(),
            Some("16MB"),
            "{n}"
        );
    }
    let primary = c.primary().await.expect("one primary");
    let t0 = Instant::now();
    let code = c
        .patch_config(
            &primary,
            json!({"postgresql": {"parameters": {"work_mem": "8MB", "max_connections": 120}}}),
        )
        .await;
    assert_eq!(code, Some(200));
    // A reloadable parameter reaches every member without a restart.
    for n in &names {
        c.wait(
            &format!("work_mem 8MB on {n}"),
            Duration::from_secs(30),
            || async { (show(&c, n, "work_mem").as_deref() == Some("8MB")).then_some(()) },
        )
        .await;
    }
    report(
        "parameters",
        "work_mem reloaded everywhere",
        t0.elapsed().as_millis(),
    );
    // One that needs a restart is reported, not applied behind the operator's back.
    for n in &names {
        c.wait(
            &format!("pending_restart on {n}"),
            Duration::from_secs(30),
            || async { pending_restart(&c, n).await.then_some(()) },
        )
        .await;
        assert_eq!(
            show(&c, n, "max_connections").as_deref(),
            Some("100"),
            "{n}"
        );
    }
    // A restart through the REST API applies it and clears the flag; replicas first, as an
    // operator would (a replica may not run with fewer connections than its primary).
    let mut order: Vec<&String> = names.iter().filter(|n| **n != primary).collect();
    order.push(&primary);
    for n in order {
        let (code, body) = c
            .post(n, "/restart", json!({}))
            .await
            .expect("restart answered");
        assert_eq!(code, 200, "{n}: {body}");
        c.wait(
            &format!("max_connections 120 on {n}"),
            Duration::from_secs(60),
            || async { (show(&c, n, "max_connections").as_deref() == Some("120")).then_some(()) },
        )
        .await;
        c.wait(
            &format!("pending_restart cleared on {n}"),
            Duration::from_secs(30),
            || async { (!pending_restart(&c, n).await).then_some(()) },
        )
        .await;
    }
    // Removing the parameter from `/config` returns the member to the default.
    assert_eq!(
        c.patch_config(
            &primary,
            json!({"postgresql": {"parameters": {"work_mem": null}}})
        )
        .await,
        Some(200)
    );
    for n in &names {
        c.wait(
            &format!("work_mem back to its default on {n}"),
            Duration::from_secs(30),
            || async { (show(&c, n, "work_mem").as_deref() == Some("4MB")).then_some(()) },
        )
        .await;
    }
}
