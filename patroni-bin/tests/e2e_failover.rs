//! Node loss, planned switchover, and pause mode on a real cluster.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{report, TestCluster, TTL_MS};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_loss_promotes_a_standby_within_ttl() {
    let mut c = TestCluster::start("loss").await;
    let old = c.primary().await.unwrap();
    assert_eq!(c.write_rows(&old, "t_loss", 2000), "2000");
    for n in c.nodes.iter().filter(|n| n.name != old) {
        c.wait("rows on every standby", Duration::from_secs(20), || async {
            (n.sql("SELECT count(*) FROM t_loss").as_deref() == Some("2000")).then_some(())
        })
        .await;
    }
    let t = Instant::now();
    c.node_mut(&old).kill9_agent();
    c.node(&old).kill9_postmaster();
    let new = c.wait_new_primary(&old, Duration::from_secs(60)).await;
    let ms = t.elapsed().as_millis();
    report("node loss", &format!("{new} promoted"), ms);
    assert!(ms <= (TTL_MS + 2_000 + 15_000) as u128, "took {ms} ms");
    assert_eq!(
        c.node(&new).sql("SELECT count(*) FROM t_loss").as_deref(),
        Some("2000")
    );
    let third = c.other_than(&[&old, &new]);
    let t = Instant::now();
    c.wait_streaming(
        &third,
        "the third node following the new primary",
        Duration::from_secs(60),
    )
    .await;
    report(
        "node loss",
        "remaining standby streaming from the new primary",
        t.elapsed().as_millis(),
    );
    // The lost node comes back as a standby.
    c.node_mut(&old).start_agent();
    c.wait_streaming(
        &old,
        "the lost node back as a standby",
        Duration::from_secs(90),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_over_rest() {
    let c = TestCluster::start("switch").await;
    let old = c.primary().await.unwrap();
    let cand = c.nodes.iter().find(|n| n.name != old).unwrap().name.clone();
    let (code, body) = c
        .post(
            &old,
            "/switchover",
            json!({"leader": "nobody", "candidate": cand}),
        )
        .await
        .unwrap();
    assert_eq!((code, body.as_str()), (412, "leader name does not match"));
    let t = Instant::now();
    let (code, body) = c
        .post(
            &old,
            "/switchover",
            json!({"leader": old, "candidate": cand}),
        )
        .await
        .unwrap();
    let ms = t.elapsed().as_millis();
    if code != 200 || ms > 5_000 {
        c.dump();
    }
    assert_eq!(
        (code, body.as_str()),
        (
            200,
            format!("Successfully switched over to \"{cand}\"").as_str()
        )
    );
    report(
        "planned switchover",
        &format!("{cand} leader (REST answer)"),
        ms,
    );
    c.wait(
        "the candidate answering /primary",
        Duration::from_secs(30),
        || async { c.is_primary(&cand).await.then_some(()) },
    )
    .await;
    report(
        "planned switchover",
        "candidate answers /primary",
        t.elapsed().as_millis(),
    );
    let t = Instant::now();
    c.wait_streaming(&old, "the old primary streaming", Duration::from_secs(60))
        .await;
    report(
        "planned switchover",
        "old primary streaming from the candidate",
        t.elapsed().as_millis(),
    );
    assert_eq!(c.primary().await.as_deref(), Some(cand.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_blocks_automatic_action_until_resume() {
    let c = TestCluster::start("pause").await;
    let primary = c.primary().await.unwrap();
    let ctl = |verb: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_patronictl"))
            .args(["-c", c.node(&primary).config.to_str().unwrap(), verb])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "patronictl {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ctl("pause");
    c.wait("every agent paused", Duration::from_secs(20), || async {
        for n in &c.nodes {
            match c.get(&n.name, "/patroni").await {
                Some((200, doc)) if doc["pause"] == true => {}
                _ => return None,
            }
        }
        Some(())
    })
    .await;
    c.node(&primary).kill9_postmaster();
    // A ttl and two loops: nobody restarts, promotes or takes the lock.
    let deadline = Instant::now() + Duration::from_millis(TTL_MS + 4_000);
    while Instant::now() < deadline {
        assert!(
            c.node(&primary).postmaster_pid().is_none(),
            "paused agent restarted the database"
        );
        for n in c.nodes.iter().filter(|n| n.name != primary) {
            assert!(
                !c.is_primary(&n.name).await,
                "{} promoted while paused",
                n.name
            );
        }
        // Patroni drops the lock of a paused leader whose database is down; nobody else takes it.
        assert!(
            c.leader().await.is_none_or(|l| l == primary),
            "the lock moved while paused"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t = Instant::now();
    ctl("resume");
    let back = c
        .wait(
            "a primary after resume",
            Duration::from_secs(60),
            || async { c.primary().await },
        )
        .await;
    report(
        "pause then resume",
        &format!("{back} primary after resume"),
        t.elapsed().as_millis(),
    );
    c.wait_healthy(Duration::from_secs(60)).await;
}
