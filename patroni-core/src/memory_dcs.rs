//! The [`Dcs`] port over a shared [`MemoryStore`], for embedders and tests that want no etcd.
//!
//! Several [`MemoryDcs`] — one per member — share one [`SharedStore`]; time comes from an injected
//! clock, so a test can make leases expire by moving its clock. No runtime is needed:
//! [`Dcs::wait_for_change`] is a plain future woken by the next write.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;

use crate::{
    Cluster, ClusterStatus, Dcs, DcsError, DynamicConfig, FailoverRequest, HistoryEntry,
    MemberData, MemoryStore, SyncState,
};

/// Milliseconds of a monotonic clock, supplied by the embedder (a real clock or a test's counter).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

struct Shared {
    store: MemoryStore,
    wakers: Vec<Waker>,
}

/// One [`MemoryStore`] shared by every member's [`MemoryDcs`]; writes wake waiting agents.
#[derive(Clone)]
pub struct SharedStore {
    inner: Arc<Mutex<Shared>>,
}

impl SharedStore {
    /// Shares `store` between members.
    pub fn new(store: MemoryStore) -> Self {
        SharedStore {
            inner: Arc::new(Mutex::new(Shared {
                store,
                wakers: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves the store consistent (every write is one step).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the store; if it changed anything, every pending `wait_for_change` is woken.
    ///
    /// Tests use it to plant raw values or inspect leases directly.
    pub fn with<R>(&self, f: impl FnOnce(&mut MemoryStore) -> R) -> R {
        let mut g = self.lock();
        let before = g.store.revision();
        let r = f(&mut g.store);
        if g.store.revision() != before {
            for w in g.wakers.drain(..) {
                w.wake();
            }
        }
        r
    }
}

/// One member's [`Dcs`] over a [`SharedStore`].
///
/// Like the etcd adapter, [`load`](Dcs::load) keeps a non-leader's lease alive (the leader's is kept by
/// [`renew_leader`](Dcs::renew_leader)), so an agent that publishes only on change keeps its member key.
pub struct MemoryDcs {
    shared: SharedStore,
    name: String,
    clock: Clock,
    seen: AtomicU64,
    reachable: AtomicBool,
}

impl MemoryDcs {
    /// The DCS as member `name` sees it.
    pub fn new(shared: SharedStore, name: impl Into<String>, clock: Clock) -> Self {
        MemoryDcs {
            shared,
            name: name.into(),
            clock,
            seen: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
        }
    }

    /// The member this instance acts for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cuts this member off the store (`false`) or reconnects it, to test outage handling.
    ///
    /// While cut off every call fails with [`DcsError::Unreachable`] and its lease is not kept alive.
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::SeqCst);
    }

    fn call<R>(&self, f: impl FnOnce(&mut MemoryStore, u64, &str) -> R) -> Result<R, DcsError> {
        if !self.reachable.load(Ordering::SeqCst) {
            return Err(DcsError::Unreachable(format!(
                "member {} is cut off from the in-memory store",
                self.name
            )));
        }
        let now = (self.clock)();
        Ok(self.shared.with(|s| f(s, now, &self.name)))
    }
}

#[async_trait]
impl Dcs for MemoryDcs {
    async fn load(&self) -> Result<Cluster, DcsError> {
        let (cluster, seen) = self.call(|s, now, me| (s.load_as(me, now), s.watch_revision()))?;
        self.seen.store(seen, Ordering::SeqCst);
        Ok(cluster)
    }

    async fn take_initialize(&self) -> Result<bool, DcsError> {
        self.call(|s, now, _| s.take_initialize(now))
    }

    async fn set_initialize(&self, system_id: &str) -> Result<(), DcsError> {
        self.call(|s, now, _| s.set_initialize(system_id, now))
    }

    async fn cancel_initialize(&self) -> Result<(), DcsError> {
        self.call(|s, now, _| s.cancel_initialize(now))
    }

    async fn write_config(
        &self,
        config: &DynamicConfig,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.call(|s, now, _| s.write_config(config, version, now))
    }

    async fn acquire_leader(&self) -> Result<bool, DcsError> {
        self.call(|s, now, me| s.acquire_leader(me, now))
    }

    async fn renew_leader(&self) -> Result<bool, DcsError> {
        self.call(|s, now, me| s.renew_leader(me, now))
    }

    async fn set_timing(&self, ttl: std::time::Duration, _loop_wait: std::time::Duration) {
        let name = self.name.clone();
        self.shared.with(|s| s.set_member_ttl(&name, ttl));
    }

    async fn release_leader(&self) -> Result<bool, DcsError> {
        self.call(|s, now, me| s.release_leader(me, now))
    }

    async fn publish_member(&self, data: &MemberData) -> Result<(), DcsError> {
        self.call(|s, now, me| s.publish_member(me, data, now))
    }

    async fn write_status(&self, status: &ClusterStatus) -> Result<(), DcsError> {
        self.call(|s, now, _| s.write_status(status, now))
    }

    async fn set_failover(
        &self,
        request: &FailoverRequest,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.call(|s, now, _| s.set_failover(request, version, now))
    }

    async fn clear_failover(&self, version: u64) -> Result<bool, DcsError> {
        self.call(|s, now, _| s.clear_failover(version, now))
    }

    async fn write_sync_state(
        &self,
        state: &SyncState,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.call(|s, now, _| s.write_sync_state(state, version, now))
    }

    async fn write_history(&self, history: &[HistoryEntry]) -> Result<(), DcsError> {
        self.call(|s, now, _| s.write_history(history, now))
    }

    async fn write_failsafe(&self, members: &crate::FailsafeTopology) -> Result<(), DcsError> {
        self.call(|s, now, _| s.write_failsafe(members, now))
    }

    async fn wait_for_change(&self) -> Result<(), DcsError> {
        WaitForChange {
            shared: &self.shared,
            seen: self.seen.load(Ordering::SeqCst),
        }
        .await;
        Ok(())
    }
}

/// Ready once the store's watch revision passes the one seen at the last load.
struct WaitForChange<'a> {
    shared: &'a SharedStore,
    seen: u64,
}

impl Future for WaitForChange<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.shared.lock();
        if g.store.watch_revision() > self.seen {
            return Poll::Ready(());
        }
        g.wakers.retain(|w| !w.will_wake(cx.waker()));
        g.wakers.push(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::task::Wake;

    use super::*;
    use crate::conformance::{self, MemoryHarness};

    struct ThreadWaker(std::thread::Thread);

    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Drives a future on this thread, parking between polls: all these tests need.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    const TTL: std::time::Duration = std::time::Duration::from_secs(30);

    #[test]
    fn conformance_lock_exclusivity() {
        block_on(conformance::lock_exclusivity(&MemoryHarness::new(TTL)));
    }

    #[test]
    fn conformance_lease_expiry() {
        block_on(conformance::lease_expiry_removes_keys(&MemoryHarness::new(
            TTL,
        )));
    }

    #[test]
    fn conformance_release_only_own_key() {
        block_on(conformance::release_only_own_key(&MemoryHarness::new(TTL)));
    }

    #[test]
    fn conformance_compare_and_swap() {
        block_on(conformance::compare_and_swap(&MemoryHarness::new(TTL)));
    }

    #[test]
    fn conformance_wait_for_change() {
        block_on(conformance::wait_for_change_on_leader_change(
            &MemoryHarness::new(TTL),
        ));
    }

    #[test]
    fn conformance_initialize_race() {
        block_on(conformance::initialize_race(&MemoryHarness::new(TTL)));
    }

    #[test]
    fn conformance_values_round_trip() {
        block_on(conformance::values_round_trip(&MemoryHarness::new(TTL)));
    }

    #[test]
    fn conformance_garbage() {
        block_on(conformance::garbage_is_reported(&MemoryHarness::new(TTL)));
    }

    #[test]
    fn unreachable_is_not_a_lost_race() {
        let shared = SharedStore::new(MemoryStore::new(TTL));
        let now = Arc::new(AtomicU64::new(0));
        let clock = {
            let now = now.clone();
            Arc::new(move || now.load(Ordering::SeqCst)) as Clock
        };
        let a = MemoryDcs::new(shared.clone(), "a", clock.clone());
        let b = MemoryDcs::new(shared.clone(), "b", clock);
        block_on(async {
            assert!(a.acquire_leader().await.unwrap());
            assert_eq!(b.acquire_leader().await, Ok(false));
            b.set_reachable(false);
            assert!(matches!(
                b.acquire_leader().await,
                Err(DcsError::Unreachable(_))
            ));
            assert!(matches!(b.load().await, Err(DcsError::Unreachable(_))));
            b.set_reachable(true);
            assert!(b.load().await.unwrap().is_leader("a"));
        });
    }

    #[test]
    fn a_write_on_another_thread_wakes_the_waiter() {
        let shared = SharedStore::new(MemoryStore::new(TTL));
        let clock: Clock = Arc::new(|| 5);
        let w = MemoryDcs::new(shared.clone(), "w", clock.clone());
        block_on(w.load()).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            shared.with(|s| s.acquire_leader("a", 5))
        });
        block_on(w.wait_for_change()).unwrap();
        assert!(writer.join().unwrap());
        assert!(block_on(w.load()).unwrap().is_leader("a"));
    }

    #[test]
    fn a_replicas_load_keeps_its_member_key() {
        let shared = SharedStore::new(MemoryStore::new(TTL));
        let now = Arc::new(AtomicU64::new(0));
        let c = now.clone();
        let r = MemoryDcs::new(shared, "r", Arc::new(move || c.load(Ordering::SeqCst)));
        block_on(r.publish_member(&MemberData::default())).unwrap();
        for t in (10_000..=100_000).step_by(10_000) {
            now.store(t, Ordering::SeqCst);
            assert!(
                block_on(r.load()).unwrap().member("r").is_some(),
                "gone at {t}"
            );
        }
        now.store(crate::instant::after(100_000, TTL), Ordering::SeqCst);
        let observer = MemoryDcs::new(r.shared.clone(), "o", r.clock.clone());
        assert!(block_on(observer.load()).unwrap().members.is_empty());
    }
}
