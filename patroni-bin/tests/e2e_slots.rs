//! Replication slots with `use_slots` (Patroni's default), on a real cluster: one physical slot
//! per member on the member it streams from, `primary_slot_name` on the replicas, permanent slots
//! on every member (moved forward on replicas), ignored slots left alone, slots nobody needs
//! dropped, and all of it following a switchover.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestCluster;
use serde_json::json;

/// `name:active` for each physical slot on `node`.
fn slots(c: &TestCluster, node: &str) -> Option<BTreeSet<String>> {
    let text = c.node(node).sql(
        "SELECT string_agg(slot_name || ':' || active, ',' ORDER BY slot_name) FROM pg_replication_slots WHERE slot_type = 'physical'",
    )?;
    Some(
        text.trim()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn show(c: &TestCluster, node: &str, what: &str) -> String {
    c.node(node)
        .sql(&format!("SHOW {what}"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

async fn wait_slots(c: &TestCluster, node: &str, want: BTreeSet<String>) {
    c.wait(
        &format!("slots {want:?} on {node}"),
        Duration::from_secs(40),
        || {
            let want = want.clone();
            async move { (slots(c, node) == Some(want)).then_some(()) }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_follow_the_members_through_a_switchover() {
    let c = TestCluster::start("slots").await;
    let p = c.primary().await.expect("one primary");
    let others: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| *n != p)
        .collect();
    // One active slot per replica on the primary; each replica streams through its own.
    wait_slots(&c, &p, others.iter().map(|n| format!("{n}:true")).collect()).await;
    for r in &others {
        assert_eq!(show(&c, r, "primary_slot_name"), *r);
        assert_eq!(slots(&c, r), Some(BTreeSet::new()), "{r} keeps no slot");
    }

    // A permanent slot lives on every member; an ignored one and a stray one are hand-made.
    assert_eq!(
        c.patch_config(
            &p,
            json!({"permanent_slots": {"archiver": {"type": "physical"}},
                   "ignore_slots": [{"name": "manual"}]})
        )
        .await,
        Some(200)
    );
    let mut on_primary: BTreeSet<String> = others.iter().map(|n| format!("{n}:true")).collect();
    on_primary.insert("archiver:false".into());
    wait_slots(&c, &p, on_primary.clone()).await;
    for name in ["manual", "stray"] {
        c.node(&p)
            .sql(&format!(
                "SELECT pg_create_physical_replication_slot('{name}', true)"
            ))
            .expect("create slot");
    }
    // The stray slot is dropped, the ignored one stays.
    on_primary.insert("manual:false".into());
    wait_slots(&c, &p, on_primary).await;
    for r in &others {
        wait_slots(&c, r, set(&["archiver:false"])).await;
    }
    // On a replica the permanent slot moves forward with replay.
    let replica = &others[0];
    let lsn = |n: &str| {
        c.node(n)
            .sql("SELECT restart_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'archiver'")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = lsn(replica);
    c.write_rows(&p, "slot_advance", 2000);
    c.node(&p).sql("SELECT pg_switch_wal()");
    c.wait(
        "the permanent slot advanced on the replica",
        Duration::from_secs(30),
        || async { (lsn(replica) > before).then_some(()) },
    )
    .await;

    // After a switchover the new primary keeps the slots, the old one drops its member slots
    // and streams through its own.
    let target = others[1].clone();
    let (code, body) = c
        .post(&p, "/switchover", json!({"leader": p, "candidate": target}))
        .await
        .expect("switchover answered");
    assert_eq!(code, 200, "{body}");
    c.wait("the new primary", Duration::from_secs(60), || async {
        (c.primary().await.as_deref() == Some(target.as_str())).then_some(())
    })
    .await;
    let rest: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| *n != target)
        .collect();
    let mut want: BTreeSet<String> = rest.iter().map(|n| format!("{n}:true")).collect();
    want.insert("archiver:false".into());
    wait_slots(&c, &target, want).await;
    for r in &rest {
        c.wait_streaming(r, "streaming after the switchover", Duration::from_secs(60))
            .await;
        assert_eq!(show(&c, r, "primary_slot_name"), *r);
    }
    // The old primary: member slots and the stray one gone, the ignored one kept.
    wait_slots(&c, &p, set(&["archiver:false", "manual:false"])).await;
}
