//! [`EtcdDcs`]: the [`Dcs`] port over etcd v3 with Patroni's etcd3 layout and semantics.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp};
use patroni_core::keyspace::{self, RawKey};
use patroni_core::{
    Cluster, ClusterStatus, Dcs, DcsError, DynamicConfig, FailoverRequest, HistoryEntry,
    MemberData, SyncState,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Etcd3Config, EtcdError, EtcdIdentity};
use crate::connection::{is_lease_not_found, Connection};
use crate::watch::{self as watcher, Shared, Snapshot};

/// The longest a load waits for the watch stream to answer a progress request before it falls
/// back to a range read (a healthy stream on a LAN answers in well under a millisecond).
const PROGRESS_WAIT: Duration = Duration::from_secs(1);

/// How long a load lets the copy catch up with the revision etcd's progress answer carried.
const CATCH_UP: Duration = Duration::from_millis(50);

/// Our lease, its timing, and what is bound to it.
struct LeaseState {
    /// TTL of leases we grant (Patroni's `ttl`).
    ttl: Duration,
    /// The loop period, for the lazy keep-alive.
    loop_wait: Duration,
    id: Option<i64>,
    refreshed: Option<Instant>,
    /// The last member value we wrote, re-written when the lease has to be re-granted.
    member_value: Option<Vec<u8>>,
    /// The lease that value was last written with.
    member_lease: Option<i64>,
    /// The keep-alive stream held open between refreshes, so a refresh is one message on it
    /// rather than a new RPC (and a stream torn down again) every loop.
    stream: Option<KeepAliveStream>,
}

/// A keep-alive stream for one lease on one endpoint.
struct KeepAliveStream {
    lease: i64,
    endpoint: usize,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

/// A decoded view: its revision, the cluster, and whether the leader key names us (with its
/// lease).
type View = (i64, Cluster, Option<(bool, i64)>);

/// The last decoded cluster view and the revision it was decoded at: an unchanged copy is not
/// decoded again.
struct Decoded {
    revision: i64,
    cluster: Cluster,
    /// Whether the leader key names us, and its lease.
    leader: Option<(bool, i64)>,
}

/// What the last load said about the leader key, to renew without re-reading it.
#[derive(Debug, Clone, Copy, Default)]
struct LeaderSeen {
    ours: bool,
    lease: i64,
    at: i64,
}

/// The outcome of a write bound to our lease.
enum Bound<T> {
    Done(T),
    LeaseGone,
}

/// One agent's view of etcd: its cluster prefix, its member name and its lease.
///
/// Build one per agent with [`EtcdDcs::new`]; it connects lazily, so it can be built while etcd is
/// down. It starts a background watch (on the current tokio runtime) at the first [`Dcs::load`],
/// stopped when the value is dropped; while the watch answers, loads read the copy it keeps
/// instead of making a request.
pub struct EtcdDcs {
    conn: Arc<Connection>,
    identity: EtcdIdentity,
    prefix: String,
    lease: tokio::sync::Mutex<LeaseState>,
    leader_seen: Mutex<LeaderSeen>,
    loaded_at: AtomicI64,
    /// Set by a write of ours whose outcome is unknown (it failed, was cut short or lost its
    /// comparison): the next load reads etcd itself rather than the watch's copy.
    uncertain: AtomicBool,
    /// The revision of our latest completed write: a load uses the copy only once it has caught
    /// up with it, so it sees our own writes even when the watch runs on a lagging endpoint.
    written_at: AtomicI64,
    decoded: Mutex<Option<Decoded>>,
    watched: Arc<Shared>,
    watch_task: Mutex<Option<JoinHandle<()>>>,
    last_warnings: Mutex<Vec<String>>,
}

impl Drop for EtcdDcs {
    fn drop(&mut self) {
        if let Some(t) = self.lock(&self.watch_task).take() {
            t.abort();
        }
    }
}

fn put_opts(lease: i64) -> Option<PutOptions> {
    Some(PutOptions::new().with_lease(lease))
}

/// The store revision a response was answered at, when etcd said.
fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Option<i64> {
    header.map(|h| h.revision())
}

/// One write of ours in flight. Unless it is marked [`landed`](WriteMark::landed), dropping it
/// makes the next load read etcd itself: a write that failed, was cut short or lost its
/// comparison may or may not have changed what the watch's copy shows.
struct WriteMark<'a> {
    dcs: &'a EtcdDcs,
    settled: bool,
}

impl WriteMark<'_> {
    /// The write completed at `revision` (0 when it changed nothing); `None` (etcd gave no
    /// revision) leaves it uncertain.
    fn landed(mut self, revision: Option<i64>) {
        if let Some(r) = revision {
            self.dcs.written_at.fetch_max(r, Ordering::SeqCst);
            self.settled = true;
        }
    }
}

impl Drop for WriteMark<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.dcs.uncertain.store(true, Ordering::SeqCst);
        }
    }
}

impl EtcdDcs {
    /// Checks the settings and prepares the clients; no request is made until the first call.
    pub fn new(config: &Etcd3Config, identity: EtcdIdentity) -> Result<Self, EtcdError> {
        identity.validate()?;
        let conn = Connection::new(config, identity.retry_timeout)?;
        let (ttl, loop_wait) = (identity.ttl, identity.loop_wait);
        Ok(EtcdDcs {
            conn: Arc::new(conn),
            prefix: identity.prefix(),
            identity,
            lease: tokio::sync::Mutex::new(LeaseState {
                ttl,
                loop_wait,
                id: None,
                refreshed: None,
                member_value: None,
                member_lease: None,
                stream: None,
            }),
            leader_seen: Mutex::new(LeaderSeen::default()),
            loaded_at: AtomicI64::new(0),
            uncertain: AtomicBool::new(false),
            written_at: AtomicI64::new(0),
            decoded: Mutex::new(None),
            watched: Arc::new(Shared::new()),
            watch_task: Mutex::new(None),
            last_warnings: Mutex::new(Vec::new()),
        })
    }

    /// How many etcd requests this instance has made (every attempt, including retries).
    ///
    /// The runtime reports the per-loop difference; an idle member makes at most one (its lease
    /// keep-alive), since its cluster view comes from the watch.
    pub fn request_count(&self) -> u64 {
        self.conn.requests()
    }

    /// The cluster prefix, `/<namespace>/<scope>/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The identity this instance was built with (see [`Dcs::set_timing`] for later changes).
    pub fn identity(&self) -> &EtcdIdentity {
        &self.identity
    }

    /// The lease currently bound to our keys, if one was granted.
    pub async fn lease_id(&self) -> Option<i64> {
        self.lease.lock().await.id
    }

    /// Deletes every key under the cluster prefix (`patronictl remove`); agents still running
    /// lose their keys, so they are stopped first.
    pub async fn delete_cluster(&self) -> Result<(), DcsError> {
        let prefix = self.prefix.clone();
        let mark = self.write_mark();
        let at = self
            .conn
            .call("delete cluster", |mut c| {
                let p = prefix.clone();
                async move {
                    let r = c
                        .delete(p, Some(etcd_client::DeleteOptions::new().with_prefix()))
                        .await?;
                    Ok(deleted_at(&r))
                }
            })
            .await?;
        mark.landed(at);
        Ok(())
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks a write before its request goes out (see [`WriteMark`]).
    fn write_mark(&self) -> WriteMark<'_> {
        WriteMark {
            dcs: self,
            settled: false,
        }
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    fn member_key(&self) -> String {
        self.key(&keyspace::member_key(&self.identity.name))
    }

    /// A transaction on one comparison; returns whether it succeeded. One without `then`
    /// operations only checks and writes nothing.
    async fn txn(
        &self,
        what: &str,
        when: Vec<Compare>,
        then: Vec<TxnOp>,
    ) -> Result<bool, DcsError> {
        let mark = (!then.is_empty()).then(|| self.write_mark());
        let (won, at) = self
            .conn
            .call(what, |mut c| {
                let txn = Txn::new().when(when.clone()).and_then(then.clone());
                async move {
                    let r = c.txn(txn).await?;
                    Ok((r.succeeded(), revision_of(r.header())))
                }
            })
            .await?;
        if let Some(mark) = mark.filter(|_| won) {
            mark.landed(at);
        }
        Ok(won)
    }

    /// A transaction whose `then` branch writes with our lease; reports a vanished lease instead of failing.
    async fn txn_bound(
        &self,
        what: &str,
        when: Vec<Compare>,
        then: Vec<TxnOp>,
    ) -> Result<Bound<bool>, DcsError> {
        let mark = self.write_mark();
        let done = self
            .conn
            .call(what, |mut c| {
                let txn = Txn::new().when(when.clone()).and_then(then.clone());
                async move {
                    match c.txn(txn).await {
                        Ok(r) => Ok(Bound::Done((r.succeeded(), revision_of(r.header())))),
                        Err(e) if is_lease_not_found(&e) => Ok(Bound::LeaseGone),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        Ok(match done {
            Bound::Done((won, at)) => {
                if won {
                    mark.landed(at);
                }
                Bound::Done(won)
            }
            Bound::LeaseGone => Bound::LeaseGone,
        })
    }

    /// Create-only when `version` is `None`, else compare-and-swap on the key's `mod_revision`.
    async fn write_versioned(
        &self,
        rel: &str,
        value: Vec<u8>,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        let key = self.key(rel);
        let cmp = match version {
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Some(v) => Compare::mod_revision(key.clone(), CompareOp::Equal, v as i64),
        };
        self.txn(
            &format!("write /{rel}"),
            vec![cmp],
            vec![TxnOp::put(key, value, None)],
        )
        .await
    }

    async fn put_plain(&self, rel: &str, value: Vec<u8>) -> Result<(), DcsError> {
        let key = self.key(rel);
        let mark = self.write_mark();
        let at = self
            .conn
            .call(&format!("put /{rel}"), |mut c| {
                let (k, v) = (key.clone(), value.clone());
                async move { Ok(revision_of(c.put(k, v, None).await?.header())) }
            })
            .await?;
        mark.landed(at);
        Ok(())
    }

    async fn grant(&self, st: &mut LeaseState) -> Result<i64, DcsError> {
        let ttl = st.ttl.as_secs_f64().ceil() as i64;
        let id = self
            .conn
            .call("lease grant", |mut c| async move {
                Ok(c.lease_grant(ttl, None).await?.id())
            })
            .await?;
        tracing::info!(lease = id, ttl, member = %self.identity.name, "granted etcd lease");
        st.id = Some(id);
        st.refreshed = Some(Instant::now());
        Ok(id)
    }

    /// Grants a new lease and re-writes our member key with it (the old key died with the old lease).
    async fn regrant(&self, st: &mut LeaseState) -> Result<i64, DcsError> {
        let id = self.grant(st).await?;
        self.republish_if_needed(st).await?;
        Ok(id)
    }

    /// Re-writes our last member value if it is not bound to our current lease (after a re-grant,
    /// possibly one whose re-write was cut short by the deadline).
    async fn republish_if_needed(&self, st: &mut LeaseState) -> Result<(), DcsError> {
        let (Some(id), Some(value)) = (st.id, st.member_value.clone()) else {
            return Ok(());
        };
        if st.member_lease == Some(id) {
            return Ok(());
        }
        let key = self.member_key();
        let mark = self.write_mark();
        let at = self
            .conn
            .call("re-publish member", |mut c| {
                let (k, v) = (key.clone(), value.clone());
                async move { Ok(revision_of(c.put(k, v, put_opts(id)).await?.header())) }
            })
            .await?;
        mark.landed(at);
        st.member_lease = Some(id);
        Ok(())
    }

    /// Bounds a multi-request operation by one `retry_timeout` as a whole, as a single call is.
    async fn bounded<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = Result<T, DcsError>>,
    ) -> Result<T, DcsError> {
        let limit = self.identity.retry_timeout;
        match tokio::time::timeout(limit, op).await {
            Ok(r) => r,
            Err(_) => Err(DcsError::Unreachable(format!(
                "{what} did not complete within {limit:?}"
            ))),
        }
    }

    /// Sends one keep-alive; `Ok(false)` means etcd no longer knows the lease.
    ///
    /// It goes over the stream the last one opened, when that is still for this lease and
    /// answers within one attempt's budget; otherwise a new stream is opened (its opening sends
    /// the keep-alive and reads the answer). The stream is taken out while in use, so one whose
    /// exchange was cut short, and might still deliver a stale answer, is never used again.
    async fn keep_alive(&self, st: &mut LeaseState) -> Result<bool, DcsError> {
        let Some(id) = st.id else { return Ok(false) };
        let alive = match st.stream.take().filter(|s| s.lease == id) {
            Some(mut held) => {
                self.conn.count_request();
                let budget = self.conn.attempt_budget();
                let answer = tokio::time::timeout(budget, async {
                    held.keeper.keep_alive().await?;
                    held.answers.message().await
                })
                .await;
                match answer {
                    Ok(Ok(Some(r))) => {
                        let alive = r.ttl() > 0;
                        if alive {
                            st.stream = Some(held);
                        }
                        Some(alive)
                    }
                    failed => {
                        tracing::debug!(outcome = ?failed.map(|r| r.map(|_| ())), "etcd lease keep-alive stream broke; opening another");
                        self.conn.rotate_from(held.endpoint);
                        None
                    }
                }
            }
            None => None,
        };
        let alive = match alive {
            Some(alive) => alive,
            None => {
                let opened = self
                    .conn
                    .call("lease keep-alive", |mut c| async move {
                        match c.lease_keep_alive(id).await {
                            Ok(pair) => Ok(Some(pair)),
                            Err(etcd_client::Error::LeaseKeepAliveError(m))
                                if m.contains("not found") =>
                            {
                                Ok(None)
                            }
                            Err(e) => Err(e),
                        }
                    })
                    .await?;
                match opened {
                    Some((keeper, answers)) => {
                        st.stream = Some(KeepAliveStream {
                            lease: id,
                            endpoint: self.conn.current(),
                            keeper,
                            answers,
                        });
                        true
                    }
                    None => false,
                }
            }
        };
        if !alive {
            tracing::warn!(lease = id, member = %self.identity.name, "etcd lease expired; granting a new one");
            st.id = None;
            return Ok(false);
        }
        st.refreshed = Some(Instant::now());
        Ok(true)
    }

    /// Our live lease: kept as is if we have one, granted if we have none.
    async fn ensure_lease(&self, st: &mut LeaseState) -> Result<i64, DcsError> {
        match st.id {
            Some(id) => Ok(id),
            None => self.regrant(st).await,
        }
    }

    fn watch_is_current_since(&self, rev: i64) -> bool {
        let s = *self.watched.seen.borrow();
        s.connected && s.leader <= rev
    }

    fn remember_leader(&self, ours: bool, lease: i64, at: i64) {
        *self.lock(&self.leader_seen) = LeaderSeen { ours, lease, at };
    }

    fn start_watch(&self, loaded_at: i64) {
        let mut task = self.lock(&self.watch_task);
        if task.is_none() {
            *task = Some(watcher::spawn(
                self.conn.clone(),
                self.prefix.clone(),
                loaded_at,
                self.watched.clone(),
            ));
        }
    }

    /// Keeps a replica's lease alive once it would otherwise not last until the next loop's load.
    async fn lazy_keep_alive(&self) {
        let mut st = self.lease.lock().await;
        if st.id.is_none() {
            return;
        }
        let margin = st.loop_wait + self.identity.retry_timeout;
        let due_after = st.ttl.saturating_sub(margin).max(Duration::from_secs(1));
        if st.refreshed.is_some_and(|t| t.elapsed() < due_after) {
            return;
        }
        let result = match self.keep_alive(&mut st).await {
            Ok(true) => self.republish_if_needed(&mut st).await,
            Ok(false) => self.regrant(&mut st).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not keep the member lease alive");
        }
    }

    /// The cluster view of `snap`, decoded only when its revision differs from the last one's.
    fn decode(&self, snap: &Snapshot) -> View {
        let mut last = self.lock(&self.decoded);
        if let Some(d) = last.as_ref().filter(|d| d.revision == snap.revision) {
            return (d.revision, d.cluster.clone(), d.leader);
        }
        let leader = snap
            .keys
            .get(keyspace::LEADER)
            .map(|e| (e.value == self.identity.name.as_bytes(), e.lease));
        let cluster = keyspace::decode_cluster(snap.keys.iter().map(|(k, e)| RawKey {
            key: k,
            value: &e.value,
            mod_revision: e.mod_revision as u64,
        }));
        *last = Some(Decoded {
            revision: snap.revision,
            cluster: cluster.clone(),
            leader,
        });
        (snap.revision, cluster, leader)
    }

    /// The view of the watch's copy, if it is still there and complete at `target`.
    fn decode_copy(&self, target: i64) -> Option<View> {
        let copy = self.lock(&self.watched.copy);
        copy.as_ref()
            .filter(|c| c.revision >= target)
            .map(|c| self.decode(c))
    }

    fn report_warnings(&self, warnings: &[String]) {
        let mut last = self.lock(&self.last_warnings);
        if last.as_slice() != warnings {
            for w in warnings.iter().filter(|w| !last.contains(w)) {
                tracing::warn!(prefix = %self.prefix, "{w}");
            }
            *last = warnings.to_vec();
        }
    }

    async fn acquire_inner(&self) -> Result<bool, DcsError> {
        let mut st = self.lease.lock().await;
        let key = self.key(keyspace::LEADER);
        let name = self.identity.name.clone();
        // Kept alive first: the key must last a full TTL from now, as the state machine (and
        // the fence) count it, not only what is left of a lease last refreshed a loop ago.
        let mut id = if st.id.is_some() && self.keep_alive(&mut st).await? {
            st.id.expect("kept alive above")
        } else {
            self.regrant(&mut st).await?
        };
        for _ in 0..2 {
            let when = vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)];
            let then = vec![TxnOp::put(key.clone(), name.clone(), put_opts(id))];
            match self.txn_bound("acquire leader", when, then).await? {
                Bound::Done(won) => {
                    if won {
                        tracing::info!(member = %name, lease = id, "acquired the leader key");
                        self.remember_leader(true, id, self.loaded_at.load(Ordering::SeqCst));
                    }
                    return Ok(won);
                }
                Bound::LeaseGone => {
                    st.id = None;
                    id = self.regrant(&mut st).await?;
                }
            }
        }
        Err(DcsError::Rejected(
            "etcd rejected our freshly granted lease twice".into(),
        ))
    }

    async fn renew_inner(&self) -> Result<bool, DcsError> {
        let mut st = self.lease.lock().await;
        let alive = st.id.is_some() && self.keep_alive(&mut st).await?;
        if alive {
            self.republish_if_needed(&mut st).await?;
        } else {
            self.regrant(&mut st).await?;
        }
        let regranted = !alive;
        let id = st.id.expect("a lease was just kept alive or granted");
        let seen = *self.lock(&self.leader_seen);
        if !regranted && seen.ours && seen.lease == id && self.watch_is_current_since(seen.at) {
            return Ok(true);
        }
        let key = self.key(keyspace::LEADER);
        let name = self.identity.name.clone();
        let at = self.loaded_at.load(Ordering::SeqCst);
        let still_ours = self
            .txn(
                "check leader key",
                vec![
                    Compare::value(key.clone(), CompareOp::Equal, name.clone()),
                    Compare::lease(key.clone(), CompareOp::Equal, id),
                ],
                vec![],
            )
            .await?;
        if still_ours {
            self.remember_leader(true, id, at);
            return Ok(true);
        }
        // Ours but bound to an old lease: move it to the new one.
        let moved = self
            .txn_bound(
                "re-attach leader key",
                vec![Compare::value(key.clone(), CompareOp::Equal, name.clone())],
                vec![TxnOp::put(key.clone(), name.clone(), put_opts(id))],
            )
            .await?;
        if matches!(moved, Bound::Done(true)) {
            self.remember_leader(true, id, at);
            return Ok(true);
        }
        // The key vanished with our old lease: take it back only if nobody else did.
        if regranted {
            let retaken = self
                .txn_bound(
                    "re-create leader key",
                    vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)],
                    vec![TxnOp::put(key, name, put_opts(id))],
                )
                .await?;
            if matches!(retaken, Bound::Done(true)) {
                self.remember_leader(true, id, at);
                return Ok(true);
            }
        }
        self.remember_leader(false, 0, at);
        Ok(false)
    }

    async fn publish_inner(&self, data: &MemberData) -> Result<(), DcsError> {
        let mut st = self.lease.lock().await;
        let value = to_json(data);
        st.member_value = Some(value.clone());
        let key = self.member_key();
        let mut id = self.ensure_lease(&mut st).await?;
        let mark = self.write_mark();
        for _ in 0..2 {
            let put = self
                .conn
                .call("publish member", |mut c| {
                    let (k, v) = (key.clone(), value.clone());
                    async move {
                        match c.put(k, v, put_opts(id)).await {
                            Ok(r) => Ok(Bound::Done(revision_of(r.header()))),
                            Err(e) if is_lease_not_found(&e) => Ok(Bound::LeaseGone),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await?;
            match put {
                Bound::Done(at) => {
                    mark.landed(at);
                    st.member_lease = Some(id);
                    return Ok(());
                }
                Bound::LeaseGone => {
                    st.id = None;
                    // The next round writes the member key bound to the new lease.
                    id = self.grant(&mut st).await?;
                }
            }
        }
        Err(DcsError::Rejected(
            "etcd rejected our freshly granted lease twice".into(),
        ))
    }
}

#[async_trait]
impl Dcs for EtcdDcs {
    /// A new `ttl` drops our lease, as Patroni does: the next renewal or publication grants one
    /// with the new TTL and moves our keys to it; the old lease then simply runs out.
    async fn set_timing(&self, ttl: Duration, loop_wait: Duration) {
        let ttl = ttl.max(Duration::from_secs(1));
        let mut st = self.lease.lock().await;
        if ttl != st.ttl {
            tracing::info!(old = ?st.ttl, new = ?ttl, "ttl changed; the next call re-grants our lease");
            st.id = None;
            st.member_lease = None;
        }
        st.ttl = ttl;
        st.loop_wait = loop_wait;
    }

    /// Reads the watch's copy when the stream proves alive and the copy holds our own completed
    /// writes; otherwise (or after a write of ours with an unknown outcome) one range read.
    async fn load(&self) -> Result<Cluster, DcsError> {
        let started = Instant::now();
        let must_read = self.uncertain.swap(false, Ordering::SeqCst);
        let from_copy = if must_read {
            None
        } else {
            let wait = PROGRESS_WAIT.min(self.identity.retry_timeout / 2);
            let ours = self.written_at.load(Ordering::SeqCst);
            match self.watched.confirmed(wait, CATCH_UP, ours).await {
                Some(target) => self.decode_copy(target),
                None => None,
            }
        };
        let (rev, cluster, leader_lease) = match from_copy {
            Some(v) => v,
            None => match watcher::read_prefix(&self.conn, &self.prefix).await {
                Ok(snap) => self.decode(&snap),
                Err(e) => {
                    if must_read {
                        self.uncertain.store(true, Ordering::SeqCst);
                    }
                    return Err(e);
                }
            },
        };
        self.report_warnings(&cluster.warnings);
        let (ours, lease) = leader_lease.unwrap_or((false, 0));
        self.remember_leader(ours, lease, rev);
        self.loaded_at.store(rev, Ordering::SeqCst);
        self.start_watch(rev);
        if !ours {
            let left = self
                .identity
                .retry_timeout
                .saturating_sub(started.elapsed());
            if tokio::time::timeout(left, self.lazy_keep_alive())
                .await
                .is_err()
            {
                tracing::warn!("member lease keep-alive cut short by retry_timeout");
            }
        }
        Ok(cluster)
    }

    async fn take_initialize(&self) -> Result<bool, DcsError> {
        self.write_versioned(keyspace::INITIALIZE, Vec::new(), None)
            .await
    }

    async fn set_initialize(&self, system_id: &str) -> Result<(), DcsError> {
        self.put_plain(keyspace::INITIALIZE, system_id.as_bytes().to_vec())
            .await
    }

    async fn cancel_initialize(&self) -> Result<(), DcsError> {
        let key = self.key(keyspace::INITIALIZE);
        let mark = self.write_mark();
        let at = self
            .conn
            .call("delete /initialize", |mut c| {
                let k = key.clone();
                async move { Ok(deleted_at(&c.delete(k, None).await?)) }
            })
            .await?;
        mark.landed(at);
        Ok(())
    }

    async fn write_config(
        &self,
        config: &DynamicConfig,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.write_versioned(keyspace::CONFIG, to_json(config), version)
            .await
    }

    async fn acquire_leader(&self) -> Result<bool, DcsError> {
        self.bounded("acquire leader", self.acquire_inner()).await
    }

    async fn renew_leader(&self) -> Result<bool, DcsError> {
        self.bounded("renew leader", self.renew_inner()).await
    }

    async fn release_leader(&self) -> Result<bool, DcsError> {
        let key = self.key(keyspace::LEADER);
        let released = self
            .txn(
                "release leader",
                vec![Compare::value(
                    key.clone(),
                    CompareOp::Equal,
                    self.identity.name.clone(),
                )],
                vec![TxnOp::delete(key, None)],
            )
            .await?;
        self.remember_leader(false, 0, self.loaded_at.load(Ordering::SeqCst));
        if released {
            tracing::info!(member = %self.identity.name, "released the leader key");
        }
        Ok(released)
    }

    async fn publish_member(&self, data: &MemberData) -> Result<(), DcsError> {
        self.bounded("publish member", self.publish_inner(data))
            .await
    }
    async fn write_status(&self, status: &ClusterStatus) -> Result<(), DcsError> {
        self.put_plain(keyspace::STATUS, to_json(status)).await
    }

    async fn set_failover(
        &self,
        request: &FailoverRequest,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.write_versioned(keyspace::FAILOVER, to_json(request), version)
            .await
    }

    async fn clear_failover(&self, version: u64) -> Result<bool, DcsError> {
        let key = self.key(keyspace::FAILOVER);
        self.txn(
            "clear /failover",
            vec![Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                version as i64,
            )],
            vec![TxnOp::delete(key, None)],
        )
        .await
    }

    async fn write_sync_state(
        &self,
        state: &SyncState,
        version: Option<u64>,
    ) -> Result<bool, DcsError> {
        self.write_versioned(keyspace::SYNC, to_json(state), version)
            .await
    }

    async fn write_history(&self, history: &[HistoryEntry]) -> Result<(), DcsError> {
        self.put_plain(keyspace::HISTORY, to_json(history)).await
    }

    async fn write_failsafe(
        &self,
        members: &patroni_core::FailsafeTopology,
    ) -> Result<(), DcsError> {
        self.put_plain(keyspace::FAILSAFE, to_json(members)).await
    }

    async fn wait_for_change(&self) -> Result<(), DcsError> {
        let since = self.loaded_at.load(Ordering::SeqCst);
        if since == 0 {
            // Nothing loaded yet, so everything is news (and no watch runs yet).
            return Ok(());
        }
        let mut rx = self.watched.seen.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|s| s.wake > since).await;
        Ok(())
    }
}

/// The revision a delete completed at, 0 when it found nothing to delete.
fn deleted_at(r: &etcd_client::DeleteResponse) -> Option<i64> {
    if r.deleted() > 0 {
        revision_of(r.header())
    } else {
        Some(0)
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("the model's DCS values always serialise")
}
