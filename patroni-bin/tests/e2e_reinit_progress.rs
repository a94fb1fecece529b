//! A long copy shows its progress: while `POST /reinitialize` rebuilds a replica, its
//! `/patroni` carries `copy_progress` (bytes copied, rate, seconds), growing, and nothing once
//! the replica streams again. `pg_basebackup --max-rate` makes the copy last a few seconds.

mod common;

use std::time::{Duration, Instant};

use common::{Options, TestCluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_reports_its_progress_until_it_is_done() {
    let c = TestCluster::start_opts(
        "reinit-progress",
        Options {
            extra_postgresql: "  basebackup:\n    max-rate: 6M\n".into(),
            ..Options::default()
        },
    )
    .await;
    let primary = c.wait_healthy(Duration::from_secs(120)).await;
    let replica = c.other_than(&[&primary]);
    let (code, body) = c
        .post(&replica, "/reinitialize", json!({"force": true}))
        .await
        .expect("reinitialize answered");
    assert_eq!(code, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen: Vec<(u64, u64)> = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "the rebuild did not finish");
        if let Some((_, doc)) = c.get(&replica, "/patroni").await {
            if let Some(p) = doc.get("copy_progress") {
                let bytes = p["bytes"].as_u64().expect("bytes");
                let rate = p["bytes_per_second"].as_u64().expect("rate");
                assert!(rate > 0 || bytes == 0, "{p}");
                seen.push((bytes, rate));
            } else if !seen.is_empty() && c.is_streaming(&replica).await {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.iter().any(|&(b, _)| b > 0),
        "no progress reported: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[1].0 >= w[0].0),
        "the copy went backwards: {seen:?}"
    );
    let (_, doc) = c.get(&replica, "/patroni").await.expect("answers");
    assert!(doc.get("copy_progress").is_none(), "{doc}");
}
