//! etcd frozen, killed and restarted under a live `EtcdDcs`: unreachable is reported in time, and the
//! same instance recovers without being rebuilt.

mod common;

use std::time::{Duration, Instant};

use common::{EtcdHarness, RETRY_TIMEOUT};
use patroni_core::{Dcs, DcsError, DynamicConfig, MemberData};
use patroni_etcd::{EtcdDcs, EtcdIdentity};

/// Slack on top of `retry_timeout` for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(1_000);

async fn assert_unreachable<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, DcsError>>,
) {
    let t = Instant::now();
    let r = call.await;
    let took = t.elapsed();
    assert!(
        matches!(r, Err(DcsError::Unreachable(_))),
        "{what}: expected Unreachable, got {r:?}"
    );
    assert!(
        took <= RETRY_TIMEOUT + SLACK,
        "{what} took {took:?}, more than retry_timeout {RETRY_TIMEOUT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_etcd_is_unreachable_within_retry_timeout_then_recovers() {
    let h = EtcdHarness::start().await;
    // The pause spans six timed-out calls; the lease must outlive it for the recovery check.
    let long = |name: &str| {
        let id = EtcdIdentity {
            ttl: Duration::from_secs(15),
            ..common::identity(&h.scope, name)
        };
        EtcdDcs::new(&h.config, id).unwrap()
    };
    let a = long("a");
    let b = long("b");
    a.publish_member(&MemberData::default()).await.unwrap();
    assert!(a.acquire_leader().await.unwrap());
    b.load().await.unwrap();

    h.etcd.pause().unwrap();
    assert_unreachable("load", a.load()).await;
    assert_unreachable("renew_leader", a.renew_leader()).await;
    assert_unreachable("acquire_leader", b.acquire_leader()).await;
    assert_unreachable("publish_member", b.publish_member(&MemberData::default())).await;
    assert_unreachable(
        "write_config",
        a.write_config(&DynamicConfig::default(), None),
    )
    .await;
    assert_unreachable("take_initialize", b.take_initialize()).await;
    h.etcd.resume().unwrap();

    // The same instances work again: the lease outlived the short pause.
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        match a.load().await {
            Ok(v) => break v,
            Err(e) if Instant::now() < deadline => eprintln!("still recovering: {e}"),
            Err(e) => panic!("no recovery after resume: {e}"),
        }
    };
    assert!(view.is_leader("a"), "{:?}", view.leader);
    assert!(a.renew_leader().await.unwrap());
    assert!(
        !b.acquire_leader().await.unwrap(),
        "a lost CAS is Ok(false), not an error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_etcd_is_used_by_the_same_instance() {
    let mut h = EtcdHarness::start().await;
    let a = h.dcs("a");
    let w = h.dcs("watcher");
    a.publish_member(&MemberData::default()).await.unwrap();
    assert!(a.acquire_leader().await.unwrap());
    assert!(w.load().await.unwrap().is_leader("a"));

    h.etcd.kill();
    assert_unreachable("load while etcd is down", w.load()).await;
    h.etcd.restart().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match a.renew_leader().await {
            Ok(true) => break,
            Ok(false) => panic!("lost the leader key across an etcd restart"),
            Err(e) if Instant::now() < deadline => eprintln!("still recovering: {e}"),
            Err(e) => panic!("no recovery after restart: {e}"),
        }
    }
    let view = w.load().await.unwrap();
    assert!(
        view.is_leader("a") && view.member("a").is_some(),
        "{view:?}"
    );

    // The watch resumed too: a leader change after the restart wakes the watcher.
    assert!(a.release_leader().await.unwrap());
    tokio::time::timeout(Duration::from_secs(5), w.wait_for_change())
        .await
        .expect("watch did not resume after the restart")
        .unwrap();
}
