//! Lease handling against real etcd: re-grant after loss, renewal noticing a lost key, and how many
//! requests an idle agent makes per loop.

mod common;

use std::time::Duration;

use common::{EtcdHarness, LOOP_WAIT, TTL};
use patroni_core::{Dcs, MemberData, MemberRole};
use patroni_etcd::testkit::raw_client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_lease_is_regranted_and_our_keys_restored() {
    let h = EtcdHarness::start().await;
    let a = h.dcs("a");
    let observer = h.dcs("observer");
    a.publish_member(&MemberData::default()).await.unwrap();
    assert!(a.acquire_leader().await.unwrap());
    let old = a.lease_id().await.expect("a lease");

    let mut raw = raw_client(&[h.etcd.endpoint()], None).await.unwrap();
    raw.lease_revoke(old).await.unwrap();
    let gone = observer.load().await.unwrap();
    assert!(gone.is_unlocked() && gone.members.is_empty(), "{gone:?}");

    assert!(
        a.renew_leader().await.unwrap(),
        "a free lock is re-taken with a new lease"
    );
    let new = a.lease_id().await.unwrap();
    assert_ne!(new, old);
    let back = observer.load().await.unwrap();
    assert!(back.is_leader("a"), "{:?}", back.leader);
    assert!(
        back.member("a").is_some(),
        "member key re-published with the new lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_notices_a_key_deleted_behind_our_back() {
    let h = EtcdHarness::start().await;
    let a = h.dcs("a");
    let b = h.dcs("b");
    assert!(a.acquire_leader().await.unwrap());
    assert!(a.load().await.unwrap().is_leader("a"));
    assert!(a.renew_leader().await.unwrap());

    // An operator deletes the key and b takes it; a's lease is still alive.
    let mut raw = raw_client(&[h.etcd.endpoint()], None).await.unwrap();
    raw.delete(format!("/service/{}/leader", h.scope), None)
        .await
        .unwrap();
    assert!(b.acquire_leader().await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !a.renew_leader().await.unwrap(),
        "renewal must not trust a stale view"
    );
    assert!(
        !a.release_leader().await.unwrap(),
        "and must not delete b's key"
    );
    assert!(a.load().await.unwrap().is_leader("b"));
}

/// How many RPCs etcd has started, by its own `/metrics` (a message on an open stream is none).
fn rpcs_started(endpoint: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("grpc_server_started_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs `loops` idle HA cycles one `loop_wait` apart and returns the requests of each.
async fn idle_loops(dcs: &patroni_etcd::EtcdDcs, leader: bool, loops: usize) -> Vec<u64> {
    let mut per_loop = Vec::new();
    for _ in 0..loops {
        tokio::time::sleep(LOOP_WAIT).await;
        let before = dcs.request_count();
        let view = dcs.load().await.unwrap();
        if leader {
            assert!(view.is_leader(&dcs.identity().name));
            assert!(dcs.renew_leader().await.unwrap());
        }
        per_loop.push(dcs.request_count() - before);
    }
    per_loop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_makes_at_most_one_request_per_loop() {
    let h = EtcdHarness::start().await;
    let leader = h.dcs("leader");
    let replica = h.dcs("replica");
    let data = |role| MemberData {
        role,
        ..Default::default()
    };
    // First cycle: publish (the state machine publishes only when something changed) and take the lock.
    leader.load().await.unwrap();
    leader
        .publish_member(&data(MemberRole::Primary))
        .await
        .unwrap();
    assert!(leader.acquire_leader().await.unwrap());
    replica.load().await.unwrap();
    replica
        .publish_member(&data(MemberRole::Replica))
        .await
        .unwrap();

    // One cycle more each: the lease keep-alive streams open on the first.
    let (l0, r0) = tokio::join!(idle_loops(&leader, true, 1), idle_loops(&replica, false, 1));
    let started = rpcs_started(&h.etcd.endpoint());
    // Long enough (3 × ttl) that keys would expire if the idle traffic did not keep them.
    let loops = (3 * TTL.as_secs() / LOOP_WAIT.as_secs()) as usize;
    let (l, r) = tokio::join!(
        idle_loops(&leader, true, loops),
        idle_loops(&replica, false, loops)
    );
    let avg = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    eprintln!(
        "idle requests per loop (ttl {TTL:?}, loop_wait {LOOP_WAIT:?}): leader {l:?} avg {:.2}, replica {r:?} avg {:.2}",
        avg(&l),
        avg(&r)
    );
    // The view comes from the watch, which holds our own writes too: an idle loop sends only
    // the lease keep-alive, from the first loop after the writes on.
    assert!(l0.iter().chain(&l).all(|n| *n == 1), "leader: {l0:?} {l:?}");
    assert!(
        r0.iter().chain(&r).all(|n| *n <= 1),
        "replica: {r0:?} {r:?}"
    );
    // And each keep-alive is a message on the stream the first one opened, not a new RPC.
    assert_eq!(
        rpcs_started(&h.etcd.endpoint()) - started,
        0,
        "RPCs started by idle loops"
    );

    let view = h.dcs("observer").load().await.unwrap();
    assert!(view.is_leader("leader"));
    assert!(
        view.member("leader").is_some() && view.member("replica").is_some(),
        "{view:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_of_the_leader_key_wakes_a_waiting_replica() {
    let h = EtcdHarness::start().await;
    let leader = h.dcs("leader");
    let replica = h.dcs("replica");
    assert!(leader.acquire_leader().await.unwrap());
    assert!(replica.load().await.unwrap().is_leader("leader"));
    // The leader stops renewing (a hung agent); etcd deletes the key when the lease runs out.
    let t = std::time::Instant::now();
    tokio::time::timeout(TTL + Duration::from_secs(5), replica.wait_for_change())
        .await
        .expect("lease expiry did not wake the replica")
        .unwrap();
    eprintln!(
        "woken {:?} after the last renewal (ttl {TTL:?})",
        t.elapsed()
    );
    assert!(replica.load().await.unwrap().is_unlocked());
    assert!(replica.acquire_leader().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ttl_moves_our_keys_to_a_new_lease() {
    let h = EtcdHarness::start().await;
    let a = h.dcs("a");
    a.publish_member(&MemberData::default()).await.unwrap();
    assert!(a.acquire_leader().await.unwrap());
    let old = a.lease_id().await.unwrap();

    a.set_timing(Duration::from_secs(20), LOOP_WAIT).await;
    assert!(
        a.renew_leader().await.unwrap(),
        "the lock survives a ttl change"
    );
    let new = a.lease_id().await.unwrap();
    assert_ne!(new, old);

    let mut raw = raw_client(&[h.etcd.endpoint()], None).await.unwrap();
    let granted = raw
        .lease_time_to_live(new, None)
        .await
        .unwrap()
        .granted_ttl();
    assert_eq!(granted, 20);
    let prefix = format!("/service/{}/", h.scope);
    for key in ["leader", "members/a"] {
        let kv = raw.get(format!("{prefix}{key}"), None).await.unwrap();
        assert_eq!(kv.kvs()[0].lease(), new, "{key} still on the old lease");
    }
    // The old lease expiring takes nothing with it.
    raw.lease_revoke(old).await.unwrap();
    let view = h.dcs("observer").load().await.unwrap();
    assert!(
        view.is_leader("a") && view.member("a").is_some(),
        "{view:?}"
    );
}

/// The leader key must last a full `ttl` from its acquisition, as the state machine and the fence
/// count it: a replica's lease refreshed a while ago is kept alive before the key is bound to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquiring_the_lock_refreshes_the_lease_first() {
    let h = EtcdHarness::start().await;
    let a = h.dcs("a");
    a.publish_member(&MemberData::default()).await.unwrap();
    let lease = a.lease_id().await.expect("a lease");
    let wait = Duration::from_secs(2);
    tokio::time::sleep(wait).await;
    assert!(a.acquire_leader().await.unwrap());
    let mut raw = raw_client(&[h.etcd.endpoint()], None).await.unwrap();
    let bound = a.lease_id().await.unwrap();
    assert_eq!(bound, lease, "the same lease, kept alive");
    let left = raw.lease_time_to_live(bound, None).await.unwrap().ttl();
    assert!(
        left as u64 > TTL.as_secs() - wait.as_secs(),
        "the lease has {left} s left of {TTL:?}: it was not refreshed before binding the key"
    );
}
