//! The DCS conformance suite: the behaviour every [`Dcs`] implementation must show, written once.
//!
//! An implementation's tests provide a [`DcsHarness`] (a fresh, empty cluster per case) and call each
//! case; the in-memory [`MemoryDcs`] runs it in patroni-core, etcd in patroni-etcd.
//! Cases panic with a message on the first violated expectation, as test assertions do.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    instant, keyspace, ClusterStatus, Dcs, DynamicConfig, FailoverRequest, HistoryEntry, Lsn,
    MemberData, MemberRole, MemberState, MemoryDcs, MemoryStore, SharedStore, SyncState,
};

/// What a DCS implementation provides to be checked: members of one fresh cluster, and time.
#[async_trait]
pub trait DcsHarness: Send + Sync {
    /// A [`Dcs`] bound to member `name` of this harness's cluster; each call may build a new client.
    async fn member(&self, name: &str) -> Box<dyn Dcs>;
    /// Lets time pass until every lease that nobody kept alive meanwhile has expired.
    async fn expire_leases(&self);
    /// Lets `length` pass (a real sleep, or a step of a simulated clock).
    async fn pause(&self, length: Duration);
    /// Writes raw bytes to `key` (relative to the cluster prefix), bypassing the [`Dcs`], to plant bad data.
    async fn write_raw(&self, key: &str, value: &[u8]);
}

/// Polls `fut` until it finishes or `limit` of the harness's time passed; `None` on timeout.
pub async fn within<H: DcsHarness + ?Sized, F: Future + Unpin>(
    h: &H,
    limit: Duration,
    fut: &mut F,
) -> Option<F::Output> {
    crate::deadline::before(fut, h.pause(limit)).await
}

/// Runs the futures concurrently on the current task and returns their outputs in order.
pub async fn join_all<T>(futs: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        for (slot, result) in futs.iter_mut().zip(out.iter_mut()) {
            if let Some(f) = slot {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    *result = Some(v);
                    *slot = None;
                }
            }
        }
        if futs.iter().all(Option::is_none) {
            Poll::Ready(
                out.iter_mut()
                    .map(|o| o.take().expect("finished"))
                    .collect(),
            )
        } else {
            Poll::Pending
        }
    })
    .await
}

fn replica_data(name: &str) -> MemberData {
    MemberData {
        conn_url: format!("postgres://{name}:5432/postgres"),
        api_url: format!("http://{name}:8008/patroni"),
        state: MemberState::Running,
        role: MemberRole::Replica,
        xlog_location: Some(Lsn(0x3000060)),
        timeline: Some(1),
        ..Default::default()
    }
}

/// Only one member holds the leader key; others can neither renew nor release it.
pub async fn lock_exclusivity<H: DcsHarness + ?Sized>(h: &H) {
    let a = h.member("a").await;
    let b = h.member("b").await;
    assert!(a.acquire_leader().await.unwrap(), "a free lock is taken");
    assert!(
        !b.acquire_leader().await.unwrap(),
        "a held lock is not taken twice"
    );
    assert!(
        !a.acquire_leader().await.unwrap(),
        "create-only even for the holder"
    );
    assert!(!b.renew_leader().await.unwrap(), "only the holder renews");
    assert!(a.renew_leader().await.unwrap(), "the holder renews");
    let view = b.load().await.unwrap();
    assert!(view.is_leader("a"), "{:?}", view.leader);
    assert!(a.release_leader().await.unwrap());
    assert!(
        !a.renew_leader().await.unwrap(),
        "a released lock is not renewed back"
    );
    assert!(
        b.acquire_leader().await.unwrap(),
        "the released lock is free"
    );
    assert!(a.load().await.unwrap().is_leader("b"));
}

/// When a member stops keeping its lease alive, its leader and member keys vanish after `ttl`.
pub async fn lease_expiry_removes_keys<H: DcsHarness + ?Sized>(h: &H) {
    let a = h.member("a").await;
    let b = h.member("b").await;
    a.publish_member(&replica_data("a")).await.unwrap();
    assert!(a.acquire_leader().await.unwrap());
    b.publish_member(&replica_data("b")).await.unwrap();
    let before = b.load().await.unwrap();
    assert!(before.is_leader("a") && before.member("a").is_some() && before.member("b").is_some());
    h.expire_leases().await;
    let observer = h.member("observer").await;
    let after = observer.load().await.unwrap();
    assert!(
        after.is_unlocked(),
        "leader key outlived its lease: {:?}",
        after.leader
    );
    assert!(
        after.members.is_empty(),
        "member keys outlived their leases: {:?}",
        after.members
    );
    assert!(
        b.acquire_leader().await.unwrap(),
        "the expired lock is free"
    );
    assert!(
        !a.renew_leader().await.unwrap(),
        "the former holder cannot renew a lock taken by b"
    );
    assert!(observer.load().await.unwrap().is_leader("b"));
    b.publish_member(&replica_data("b")).await.unwrap();
    assert!(
        observer.load().await.unwrap().member("b").is_some(),
        "publishing after expiry works"
    );
}

/// Release deletes the leader key only when it holds our name.
pub async fn release_only_own_key<H: DcsHarness + ?Sized>(h: &H) {
    let a = h.member("a").await;
    let b = h.member("b").await;
    assert!(!a.release_leader().await.unwrap(), "nothing to release");
    assert!(a.acquire_leader().await.unwrap());
    assert!(
        !b.release_leader().await.unwrap(),
        "b must not delete a's key"
    );
    assert!(b.load().await.unwrap().is_leader("a"));
    assert!(a.release_leader().await.unwrap());
    assert!(!a.release_leader().await.unwrap(), "already released");
    assert!(b.load().await.unwrap().is_unlocked());
}

/// `/config`, `/failover` and `/sync`: create-only without a version, CAS on a version; losers get `Ok(false)`.
pub async fn compare_and_swap<H: DcsHarness + ?Sized>(h: &H) {
    let a = h.member("a").await;
    let b = h.member("b").await;

    let cfg = DynamicConfig::default();
    assert!(a.write_config(&cfg, None).await.unwrap());
    assert!(
        !b.write_config(&cfg, None).await.unwrap(),
        "create-only on an existing key"
    );
    let v1 = a
        .load()
        .await
        .unwrap()
        .config
        .expect("config written")
        .version;
    let edited = DynamicConfig {
        loop_wait: 5,
        ..cfg.clone()
    };
    assert!(a.write_config(&edited, Some(v1)).await.unwrap());
    assert!(
        !b.write_config(&cfg, Some(v1)).await.unwrap(),
        "stale version must lose"
    );
    let c = b.load().await.unwrap().config.unwrap();
    assert!(c.version > v1);
    assert_eq!(c.value.loop_wait, 5, "the losing write changed nothing");

    let switchover = FailoverRequest {
        leader: Some("a".into()),
        candidate: Some("b".into()),
        scheduled_at: None,
    };
    assert!(!a.clear_failover(1).await.unwrap(), "nothing to clear");
    assert!(b.set_failover(&switchover, None).await.unwrap());
    assert!(!b.set_failover(&switchover, None).await.unwrap());
    let f1 = a.load().await.unwrap().failover.expect("failover written");
    assert_eq!(f1.value, switchover);
    let failover = FailoverRequest {
        candidate: Some("b".into()),
        ..Default::default()
    };
    assert!(b.set_failover(&failover, Some(f1.version)).await.unwrap());
    assert!(
        !a.clear_failover(f1.version).await.unwrap(),
        "stale clear must lose"
    );
    let f2 = a.load().await.unwrap().failover.unwrap();
    assert!(!f2.value.is_switchover());
    assert!(a.clear_failover(f2.version).await.unwrap());
    assert!(a.load().await.unwrap().failover.is_none());

    let sync = SyncState {
        leader: Some("a".into()),
        sync_standbys: vec!["b".into()],
        quorum: None,
    };
    assert!(
        !a.write_sync_state(&sync, Some(1)).await.unwrap(),
        "CAS on an absent key loses"
    );
    assert!(a.write_sync_state(&sync, None).await.unwrap());
    let s1 = b.load().await.unwrap().sync.expect("sync written");
    assert!(s1.value.is_sync("B"));
    let empty = SyncState {
        leader: Some("a".into()),
        ..Default::default()
    };
    assert!(a.write_sync_state(&empty, Some(s1.version)).await.unwrap());
    assert!(
        !a.write_sync_state(&sync, Some(s1.version)).await.unwrap(),
        "stale version must lose"
    );
    assert!(b
        .load()
        .await
        .unwrap()
        .sync
        .unwrap()
        .value
        .sync_standbys
        .is_empty());
}

/// `wait_for_change` fires when the leader key changes, and not for a member's own publishing.
pub async fn wait_for_change_on_leader_change<H: DcsHarness + ?Sized>(h: &H) {
    let w = h.member("watcher").await;
    let a = h.member("a").await;
    w.load().await.unwrap();
    let mut wait = w.wait_for_change();
    assert!(
        within(h, Duration::from_millis(300), &mut wait)
            .await
            .is_none(),
        "woke without a change"
    );
    a.publish_member(&replica_data("a")).await.unwrap();
    w.publish_member(&replica_data("watcher")).await.unwrap();
    assert!(
        within(h, Duration::from_millis(300), &mut wait)
            .await
            .is_none(),
        "a member key must not wake the loop"
    );
    assert!(a.acquire_leader().await.unwrap());
    within(h, Duration::from_secs(5), &mut wait)
        .await
        .expect("leader acquisition did not wake wait_for_change")
        .unwrap();
    drop(wait);

    // A change between load and wait is not lost.
    w.load().await.unwrap();
    assert!(a.release_leader().await.unwrap());
    within(h, Duration::from_secs(5), &mut w.wait_for_change())
        .await
        .expect("a release before the wait did not wake it")
        .unwrap();

    // A new switchover request and a configuration edit wake it too.
    w.load().await.unwrap();
    let mut wait = w.wait_for_change();
    let request = FailoverRequest {
        candidate: Some("watcher".into()),
        ..Default::default()
    };
    assert!(a.set_failover(&request, None).await.unwrap());
    within(h, Duration::from_secs(5), &mut wait)
        .await
        .expect("a failover request did not wake wait_for_change")
        .unwrap();
    drop(wait);
    w.load().await.unwrap();
    let mut wait = w.wait_for_change();
    assert!(a
        .write_config(&DynamicConfig::default(), None)
        .await
        .unwrap());
    within(h, Duration::from_secs(5), &mut wait)
        .await
        .expect("a config change did not wake wait_for_change")
        .unwrap();
}

/// Of many members racing for `/initialize`, exactly one wins; then the system id is written and read.
pub async fn initialize_race<H: DcsHarness + ?Sized>(h: &H) {
    let mut members = Vec::new();
    for i in 0..5 {
        members.push(h.member(&format!("m{i}")).await);
    }
    let races = members
        .iter()
        .map(|m| Box::pin(m.take_initialize()) as Pin<Box<dyn Future<Output = _> + Send + '_>>)
        .collect();
    let won: Vec<bool> = join_all(races)
        .await
        .into_iter()
        .map(|r: Result<bool, crate::DcsError>| r.expect("initialize race must not error"))
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "winners: {won:?}");
    let winner = &members[won.iter().position(|w| *w).expect("one winner")];
    assert_eq!(
        members[0].load().await.unwrap().initialize.as_deref(),
        Some("")
    );
    winner.set_initialize("7301234567890123456").await.unwrap();
    assert_eq!(
        members[1].load().await.unwrap().initialize.as_deref(),
        Some("7301234567890123456")
    );
    assert!(!members[2].take_initialize().await.unwrap());
    winner.cancel_initialize().await.unwrap();
    assert!(members[3].load().await.unwrap().initialize.is_none());
    assert!(
        members[3].take_initialize().await.unwrap(),
        "a cancelled bootstrap can be retried"
    );
}

/// Every value round-trips in Patroni's shapes: member data, history, status.
pub async fn values_round_trip<H: DcsHarness + ?Sized>(h: &H) {
    let a = h.member("a").await;
    let data = MemberData {
        role: MemberRole::Primary,
        pending_restart: true,
        ..replica_data("a")
    };
    a.publish_member(&data).await.unwrap();
    let history = vec![HistoryEntry {
        timeline: 1,
        lsn: Lsn(0x3000060),
        reason: "no recovery target specified".into(),
        timestamp: Some("2026-11-26T10:00:00+00:00".parse().unwrap()),
        new_leader: Some("a".into()),
    }];
    a.write_history(&history).await.unwrap();
    let status = ClusterStatus {
        optime: Some(Lsn(0x4000000)),
        ..Default::default()
    };
    a.write_status(&status).await.unwrap();
    let c = h.member("b").await.load().await.unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let m = c.member("a").expect("member a");
    assert_eq!(m.data, data);
    assert!(m.version > 0);
    assert_eq!(c.history, history);
    assert_eq!(c.timeline(), 2);
    assert_eq!(c.status, Some(status));
}

/// Garbage under the prefix becomes warnings and unreadable members; the rest of the view still works.
pub async fn garbage_is_reported<H: DcsHarness + ?Sized>(h: &H) {
    let good = h.member("good").await;
    good.publish_member(&replica_data("good")).await.unwrap();
    let huge = format!(
        "{{\"conn_url\":\"{}\"}}",
        "x".repeat(keyspace::MAX_VALUE_BYTES)
    );
    let planted: [(&str, &[u8]); 8] = [
        ("members/garbage", b"not json {"),
        (
            "members/wrongtypes",
            br#"{"xlog_location":"banana","tags":7}"#,
        ),
        ("members/huge", huge.as_bytes()),
        ("config", br#"{"ttl":"thirty"}"#),
        ("history", br#"{"a":1}"#),
        ("failover", b"[1,2]"),
        ("sync", br#"{"sync_standby":5}"#),
        ("status", b"\"optime\""),
    ];
    for (key, value) in planted {
        h.write_raw(key, value).await;
    }
    let c = good.load().await.expect("garbage must not fail the load");
    for (key, _) in planted {
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with(&format!("/{key}:"))),
            "no warning for /{key}: {:?}",
            c.warnings
        );
    }
    for name in ["garbage", "wrongtypes", "huge"] {
        let m = c
            .member(name)
            .unwrap_or_else(|| panic!("member {name} missing"));
        assert!(m.unreadable.is_some(), "{name} should be unreadable");
    }
    assert!(c.member("good").unwrap().unreadable.is_none());
    assert!(c.config.is_none() && c.failover.is_none() && c.sync.is_none() && c.status.is_none());
    assert!(
        good.acquire_leader().await.unwrap(),
        "the cluster stays usable"
    );
    assert!(good.load().await.unwrap().is_leader("good"));
    assert!(
        good.write_config(&DynamicConfig::default(), Some(1))
            .await
            .is_ok(),
        "writing over garbage is a CAS like any other"
    );
}

/// The [`DcsHarness`] for [`MemoryDcs`]: one shared store and a counter for a clock.
pub struct MemoryHarness {
    shared: SharedStore,
    clock: Arc<AtomicU64>,
    ttl: Duration,
}

impl MemoryHarness {
    /// A fresh cluster whose leases last `ttl` of the harness clock.
    pub fn new(ttl: Duration) -> Self {
        MemoryHarness {
            shared: SharedStore::new(MemoryStore::new(ttl)),
            clock: Arc::new(AtomicU64::new(1_000)),
            ttl,
        }
    }

    /// The shared store, to inspect it directly.
    pub fn store(&self) -> &SharedStore {
        &self.shared
    }
}

/// Ready on its second poll: lets other futures in a `within` or `join_all` run once.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[async_trait]
impl DcsHarness for MemoryHarness {
    async fn member(&self, name: &str) -> Box<dyn Dcs> {
        let clock = self.clock.clone();
        Box::new(MemoryDcs::new(
            self.shared.clone(),
            name,
            Arc::new(move || clock.load(Ordering::SeqCst)),
        ))
    }

    async fn expire_leases(&self) {
        self.clock
            .fetch_add(instant::millis(self.ttl), Ordering::SeqCst);
    }

    async fn pause(&self, length: Duration) {
        self.clock
            .fetch_add(instant::millis(length), Ordering::SeqCst);
        YieldOnce(false).await;
    }

    async fn write_raw(&self, key: &str, value: &[u8]) {
        let now = self.clock.load(Ordering::SeqCst);
        self.shared.with(|s| s.put(key, value, None, now));
    }
}
