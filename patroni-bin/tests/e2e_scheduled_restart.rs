//! Scheduled restarts on a real cluster, driven by our `patronictl` as an operator would: a
//! restart scheduled a few seconds ahead is published (member key, `/patroni`, `list -e`),
//! happens at its time and not before, and is gone afterwards; a second one, cancelled with
//! `flush <cluster> restart`, never happens.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::ctl::ctl;
use common::{report, TestCluster};
use patroni_core::Timestamp;
use serde_json::{json, Value};

/// The wall clock in milliseconds.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `pg_postmaster_start_time()` of `node` in epoch milliseconds.
fn started_ms(c: &TestCluster, node: &str) -> Option<i64> {
    c.node(node)
        .sql("SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint")?
        .trim()
        .parse()
        .ok()
}

/// A whole second at least `secs` from now, as `--scheduled` takes it, and as Patroni echoes it.
fn ahead(secs: i64) -> (i64, String, String) {
    let at = (wall_ms() / 1000 + secs + 1) * 1000;
    let text = Timestamp(at).to_string();
    let echoed = format!("{}+00:00", &text[..19]);
    (at, text, echoed)
}

/// The `scheduled_restart` of `node`'s member key, if the DCS has one.
async fn published(c: &TestCluster, node: &str) -> Option<Value> {
    let view = c.view().await?;
    view.member(node)?
        .data
        .extra
        .get("scheduled_restart")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_restart_runs_on_time_and_a_flushed_one_never() {
    let c = TestCluster::start("schedrst").await;
    let scope = c.scope.clone();
    let primary = c.primary().await.expect("one primary");
    let replica = c.other_than(&[&primary]);
    let before = started_ms(&c, &replica).expect("replica's postmaster start time");

    // Scheduled about 6 s ahead.
    let (at, at_text, echoed) = ahead(6);
    let r = ctl(
        &c,
        &[
            "restart",
            &scope,
            &replica,
            "--scheduled",
            &at_text,
            "--force",
        ],
        "",
    );
    assert!(
        r.ok("restart --scheduled")
            .ends_with(&format!("Success: restart scheduled on member {replica}\n")),
        "{}",
        r.stdout
    );
    // Kept by the agent: a second one is refused, `/patroni` shows it, the member key carries
    // it with the postmaster's start time, and `list -e` prints it.
    assert_eq!(
        c.post(&replica, "/restart", json!({"schedule": at_text}))
            .await,
        Some((409, "Another restart is already scheduled".to_string()))
    );
    let (_, doc) = c.get(&replica, "/patroni").await.expect("/patroni");
    assert_eq!(
        doc["scheduled_restart"],
        json!({"schedule": echoed}),
        "{doc}"
    );
    let key = c
        .wait(
            "the member key with the schedule",
            Duration::from_secs(10),
            || published(&c, &replica),
        )
        .await;
    assert_eq!(key["schedule"], echoed.as_str(), "{key}");
    assert!(key["postmaster_start_time"].is_string(), "{key}");
    let rows: Value =
        serde_json::from_str(ctl(&c, &["list", &scope, "-e", "-f", "json"], "").ok("list -e"))
            .expect("list -e -f json");
    // As in Python, the JSON rows leave out empty cells.
    for row in rows.as_array().expect("rows") {
        let want = if row["Member"] == replica.as_str() {
            json!(echoed)
        } else {
            Value::Null
        };
        assert_eq!(row["Scheduled restart"], want, "{row}");
        assert_eq!(row["Pending restart"], Value::Null, "{row}");
    }
    let pretty = ctl(&c, &["list", &scope, "-e"], "");
    let pretty = pretty.ok("list -e");
    assert!(
        pretty.contains("Pending restart")
            && pretty.contains("Scheduled restart")
            && pretty.contains(&echoed),
        "{pretty}"
    );

    // Not before its time...
    while wall_ms() < at - 1000 {
        assert_eq!(
            started_ms(&c, &replica),
            Some(before),
            "restarted before its time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...but at it.
    let after = c
        .wait("the scheduled restart", Duration::from_secs(40), || async {
            started_ms(&c, &replica).filter(|t| *t != before)
        })
        .await;
    assert!(
        after >= at - 1000 && after <= at + 30_000,
        "postmaster started at {after}, scheduled for {at}"
    );
    report(
        "scheduled_restart",
        "postmaster start after the scheduled time",
        (after - at).max(0) as u128,
    );
    c.wait("the schedule dropped", Duration::from_secs(10), || async {
        let (_, doc) = c.get(&replica, "/patroni").await?;
        let gone =
            doc.get("scheduled_restart").is_none() && published(&c, &replica).await.is_none();
        gone.then_some(())
    })
    .await;
    c.wait_streaming(
        &replica,
        "the restarted replica streaming",
        Duration::from_secs(30),
    )
    .await;

    // A second one, flushed before its time, never happens.
    let before = started_ms(&c, &replica).expect("replica's postmaster start time");
    let (at, at_text, _) = ahead(6);
    ctl(
        &c,
        &[
            "restart",
            &scope,
            &replica,
            "--scheduled",
            &at_text,
            "--force",
        ],
        "",
    )
    .ok("second restart --scheduled");
    c.wait(
        "the member key with the schedule",
        Duration::from_secs(10),
        || published(&c, &replica),
    )
    .await;
    let f = ctl(&c, &["flush", &scope, &replica, "restart", "--force"], "");
    assert!(
        f.ok("flush restart").contains(&format!(
            "Success: flush scheduled restart for member {replica}\n"
        )),
        "{}",
        f.stdout
    );
    let (_, doc) = c.get(&replica, "/patroni").await.expect("/patroni");
    assert!(doc.get("scheduled_restart").is_none(), "{doc}");
    c.wait(
        "the member key without the schedule",
        Duration::from_secs(10),
        || async { published(&c, &replica).await.is_none().then_some(()) },
    )
    .await;
    let f = ctl(&c, &["flush", &scope, &replica, "restart", "--force"], "");
    assert!(
        f.ok("flush restart again")
            .contains(&format!("No scheduled restart for member {replica}\n")),
        "{}",
        f.stdout
    );
    // Three loop_waits past its time, the postmaster is the same.
    while wall_ms() < at + 6000 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        started_ms(&c, &replica),
        Some(before),
        "the flushed restart happened"
    );
}
