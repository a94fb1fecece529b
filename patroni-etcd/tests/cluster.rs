//! A three-member etcd cluster with one member killed keeps serving the agent.

mod common;

use std::time::{Duration, Instant};

use common::{unique_scope, TTL};
use patroni_core::{Dcs, MemberData};
use patroni_etcd::testkit::EtcdCluster;
use patroni_etcd::{EtcdDcs, EtcdIdentity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_the_loss_of_one_member() {
    let mut cluster = EtcdCluster::start(3).await.expect("3-member etcd");
    let scope = unique_scope();
    let ident = |name: &str| EtcdIdentity {
        ttl: TTL * 3,
        loop_wait: Duration::from_secs(1),
        // Long enough for a raft election if the killed member was the raft leader.
        retry_timeout: Duration::from_secs(4),
        ..EtcdIdentity::new(scope.clone(), name)
    };
    let a = EtcdDcs::new(&cluster.config(), ident("a")).unwrap();
    let b = EtcdDcs::new(&cluster.config(), ident("b")).unwrap();
    a.publish_member(&MemberData::default()).await.unwrap();
    assert!(a.acquire_leader().await.unwrap());
    assert!(b.load().await.unwrap().is_leader("a"));

    // Kill the member both clients talk to first.
    cluster.members[0].kill();
    let t = Instant::now();
    assert!(a.renew_leader().await.unwrap());
    let view = b.load().await.unwrap();
    assert!(
        view.is_leader("a") && view.member("a").is_some(),
        "{view:?}"
    );
    assert!(!b.acquire_leader().await.unwrap());
    eprintln!("first calls after the kill took {:?}", t.elapsed());

    // The watch moved to a live member as well.
    assert!(a.release_leader().await.unwrap());
    tokio::time::timeout(Duration::from_secs(8), b.wait_for_change())
        .await
        .expect("watch did not fail over to a live member")
        .unwrap();
    assert!(b.acquire_leader().await.unwrap());
    assert!(a.load().await.unwrap().is_leader("b"));
}
