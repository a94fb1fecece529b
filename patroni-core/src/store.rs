//! A deterministic, in-memory model of the cluster keyspace with etcd's and Patroni's semantics.
//!
//! [`MemoryStore`] is the one implementation of the DCS rules inside the core: a revision counter,
//! keys with create and modification revisions, leases whose expiry deletes the keys bound to
//! them, create-only writes, compare-and-swap on the modification revision and delete-if-value.
//! Time is an argument (milliseconds of the caller's monotonic clock), so the simulator can drive
//! it step by step and [`MemoryDcs`](crate::MemoryDcs) can put it behind the async [`Dcs`](crate::Dcs) port.
//!
//! Each agent owns one lease (TTL = `ttl`) shared by its member key and, while it leads, the
//! leader key — as Patroni does on etcd3. A lease expires once `now >= last refresh + ttl`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::instant;
use crate::keyspace::{self, RawKey};
use crate::{
    Cluster, ClusterStatus, DynamicConfig, FailoverRequest, HistoryEntry, MemberData, SyncState,
};

/// An etcd-like lease identifier.
pub type LeaseId = u64;

/// One stored key, as an etcd range read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The raw value.
    pub value: Vec<u8>,
    /// The revision that created the key (etcd's `create_revision`).
    pub create_revision: u64,
    /// The revision of the key's last write (etcd's `mod_revision`), the version used for CAS.
    pub mod_revision: u64,
    /// The lease the key is bound to, if any.
    pub lease: Option<LeaseId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    ttl: Duration,
    expires_at: u64,
}

/// The keyspace of one cluster (keys relative to `/<namespace>/<scope>/`) and its leases.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    revision: u64,
    watch_revision: u64,
    clock: u64,
    ttl: Duration,
    next_lease: LeaseId,
    keys: BTreeMap<String, KeyValue>,
    leases: BTreeMap<LeaseId, Lease>,
    member_leases: BTreeMap<String, LeaseId>,
    /// A member's own lease TTL, set from its `ttl` ([`set_member_ttl`](Self::set_member_ttl)).
    member_ttls: BTreeMap<String, Duration>,
}

impl MemoryStore {
    /// An empty keyspace whose member leases last `ttl` (Patroni's `ttl`).
    pub fn new(ttl: Duration) -> Self {
        MemoryStore {
            revision: 1,
            watch_revision: 1,
            clock: 0,
            ttl,
            next_lease: 1,
            keys: BTreeMap::new(),
            leases: BTreeMap::new(),
            member_leases: BTreeMap::new(),
            member_ttls: BTreeMap::new(),
        }
    }

    /// The store's revision: it grows by one with every write, so a changed value means "re-read".
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision of the last change to the leader key, `/config` or `/failover`.
    ///
    /// These are the changes that wake a waiting agent ([`keyspace::wakes_agents`]).
    pub fn watch_revision(&self) -> u64 {
        self.watch_revision
    }

    /// The TTL newly granted leases get.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Changes the TTL of leases granted from now on, as Patroni does when `ttl` changes.
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// Advances the store's clock to `now` and expires every lease that ran out by then.
    ///
    /// Every method calls this first; time never runs backwards (an older `now` is ignored).
    pub fn advance(&mut self, now: u64) {
        self.clock = self.clock.max(now);
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_at <= self.clock)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.revoke(id);
        }
    }

    /// Deletes a lease and, in one revision, every key bound to it.
    pub fn revoke(&mut self, lease: LeaseId) {
        if self.leases.remove(&lease).is_none() {
            return;
        }
        self.member_leases.retain(|_, l| *l != lease);
        let bound: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, kv)| kv.lease == Some(lease))
            .map(|(k, _)| k.clone())
            .collect();
        if bound.is_empty() {
            return;
        }
        self.revision += 1;
        for k in bound {
            self.keys.remove(&k);
            self.touched(&k);
        }
    }

    fn touched(&mut self, key: &str) {
        if keyspace::wakes_agents(key) {
            self.watch_revision = self.revision;
        }
    }

    // ---- raw keyspace operations (etcd's KV and lease API) ----

    /// Reads one key.
    pub fn get(&mut self, key: &str, now: u64) -> Option<KeyValue> {
        self.advance(now);
        self.keys.get(key).cloned()
    }

    /// Every key with its value, in key order: what a prefix range read returns.
    pub fn range(&mut self, now: u64) -> Vec<(String, KeyValue)> {
        self.advance(now);
        self.keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Writes a key unconditionally, optionally bound to a live lease; returns the new revision.
    ///
    /// A write bound to a lease that is not alive is refused (`None`), as etcd refuses it.
    pub fn put(
        &mut self,
        key: &str,
        value: impl Into<Vec<u8>>,
        lease: Option<LeaseId>,
        now: u64,
    ) -> Option<u64> {
        self.advance(now);
        if lease.is_some_and(|l| !self.leases.contains_key(&l)) {
            return None;
        }
        self.revision += 1;
        let rev = self.revision;
        let create_revision = self.keys.get(key).map_or(rev, |kv| kv.create_revision);
        self.keys.insert(
            key.to_string(),
            KeyValue {
                value: value.into(),
                create_revision,
                mod_revision: rev,
                lease,
            },
        );
        self.touched(key);
        Some(rev)
    }

    /// Creates a key only if it does not exist (`create_revision == 0`); returns whether it did.
    pub fn create(
        &mut self,
        key: &str,
        value: impl Into<Vec<u8>>,
        lease: Option<LeaseId>,
        now: u64,
    ) -> bool {
        self.advance(now);
        !self.keys.contains_key(key) && self.put(key, value, lease, now).is_some()
    }

    /// Replaces a key only if its modification revision is still `mod_revision`.
    pub fn compare_and_swap(
        &mut self,
        key: &str,
        value: impl Into<Vec<u8>>,
        mod_revision: u64,
        now: u64,
    ) -> bool {
        self.advance(now);
        match self.keys.get(key) {
            Some(kv) if kv.mod_revision == mod_revision => {
                let lease = kv.lease;
                self.put(key, value, lease, now).is_some()
            }
            _ => false,
        }
    }

    /// Create-only when `version` is `None`, else compare-and-swap: the DCS port's write rule.
    pub fn write_versioned(
        &mut self,
        key: &str,
        value: impl Into<Vec<u8>>,
        version: Option<u64>,
        now: u64,
    ) -> bool {
        match version {
            None => self.create(key, value, None, now),
            Some(v) => self.compare_and_swap(key, value, v, now),
        }
    }

    /// Deletes a key; returns whether it existed.
    pub fn delete(&mut self, key: &str, now: u64) -> bool {
        self.advance(now);
        if self.keys.remove(key).is_none() {
            return false;
        }
        self.revision += 1;
        self.touched(key);
        true
    }

    /// Deletes a key only if its value is `value`.
    pub fn delete_if_value(&mut self, key: &str, value: &[u8], now: u64) -> bool {
        self.advance(now);
        self.keys.get(key).is_some_and(|kv| kv.value == value) && self.delete(key, now)
    }

    /// Deletes a key only if its modification revision is still `mod_revision`.
    pub fn delete_if_revision(&mut self, key: &str, mod_revision: u64, now: u64) -> bool {
        self.advance(now);
        self.keys
            .get(key)
            .is_some_and(|kv| kv.mod_revision == mod_revision)
            && self.delete(key, now)
    }

    /// Grants a new lease of `ttl`.
    pub fn grant(&mut self, ttl: Duration, now: u64) -> LeaseId {
        self.advance(now);
        let id = self.next_lease;
        self.next_lease += 1;
        self.leases.insert(
            id,
            Lease {
                ttl,
                expires_at: instant::after(self.clock, ttl),
            },
        );
        id
    }

    /// Extends a live lease by its TTL from `now`; `false` means it expired or never existed.
    pub fn keep_alive(&mut self, lease: LeaseId, now: u64) -> bool {
        self.advance(now);
        let clock = self.clock;
        match self.leases.get_mut(&lease) {
            Some(l) => {
                l.expires_at = instant::after(clock, l.ttl);
                true
            }
            None => false,
        }
    }

    /// Whether the lease is alive at `now`.
    pub fn lease_alive(&mut self, lease: LeaseId, now: u64) -> bool {
        self.advance(now);
        self.leases.contains_key(&lease)
    }

    // ---- one agent's view: Patroni's operations, per member ----

    /// The member's live lease, if it holds one.
    pub fn member_lease(&mut self, member: &str, now: u64) -> Option<LeaseId> {
        self.advance(now);
        self.member_leases.get(member).copied()
    }

    /// The TTL of `member`'s lease from its next refresh on, as its agent's `ttl` changes.
    ///
    /// etcd cannot change a granted lease's TTL, so Patroni grants a new one and moves its keys;
    /// here the refresh simply uses the new TTL, which is the same for everything bound to it.
    pub fn set_member_ttl(&mut self, member: &str, ttl: Duration) {
        // At least one millisecond, the resolution of the store's clock: a zero TTL would expire
        // the lease in the instant it is granted.
        let ttl = ttl.max(Duration::from_millis(1));
        self.member_ttls.insert(member.to_string(), ttl);
    }

    /// The TTL `member`'s lease is refreshed with.
    pub fn member_ttl(&self, member: &str) -> Duration {
        self.member_ttls.get(member).copied().unwrap_or(self.ttl)
    }

    /// Keeps the member's lease alive, granting a new one if it expired; `false` means re-granted.
    ///
    /// After a re-grant the keys bound to the old lease are gone, and the agent must re-publish.
    pub fn refresh_member_lease(&mut self, member: &str, now: u64) -> bool {
        let ttl = self.member_ttl(member);
        match self.member_lease(member, now) {
            Some(l) if self.keep_alive(l, now) => {
                let clock = self.clock;
                if let Some(lease) = self.leases.get_mut(&l) {
                    lease.ttl = ttl;
                    lease.expires_at = instant::after(clock, ttl);
                }
                true
            }
            _ => {
                let l = self.grant(ttl, now);
                self.member_leases.insert(member.to_string(), l);
                false
            }
        }
    }

    fn ensure_member_lease(&mut self, member: &str, now: u64) -> LeaseId {
        match self.member_lease(member, now) {
            Some(l) => l,
            None => {
                self.refresh_member_lease(member, now);
                self.member_leases[member]
            }
        }
    }

    /// Drops the member's lease at once, deleting its member key and any leader key it holds.
    pub fn revoke_member_lease(&mut self, member: &str, now: u64) {
        if let Some(l) = self.member_lease(member, now) {
            self.revoke(l);
        }
    }

    /// Creates the leader key with the member's name, bound to its lease, only if absent.
    ///
    /// The lease is refreshed first: the key must last a full TTL from now, as the state machine
    /// counts it, not only what was left of a lease last refreshed a loop ago.
    pub fn acquire_leader(&mut self, member: &str, now: u64) -> bool {
        self.refresh_member_lease(member, now);
        let lease = self.member_leases[member];
        self.create(keyspace::LEADER, member, Some(lease), now)
    }

    /// Keeps the member's lease alive and checks the leader key is still its own.
    ///
    /// If the lease had to be re-granted, the key is moved to the new lease when it is still ours,
    /// or re-created when it vanished with the old lease and nobody took it (Patroni's etcd3 rule).
    pub fn renew_leader(&mut self, member: &str, now: u64) -> bool {
        let kept = self.refresh_member_lease(member, now);
        let lease = self.member_leases[member];
        let current = self
            .keys
            .get(keyspace::LEADER)
            .map(|kv| (kv.value == member.as_bytes(), kv.lease));
        match current {
            Some((true, bound)) => {
                if bound != Some(lease) {
                    self.put(keyspace::LEADER, member, Some(lease), now);
                }
                true
            }
            Some((false, _)) => false,
            None => !kept && self.create(keyspace::LEADER, member, Some(lease), now),
        }
    }

    /// Deletes the leader key only if the member holds it.
    pub fn release_leader(&mut self, member: &str, now: u64) -> bool {
        self.delete_if_value(keyspace::LEADER, member.as_bytes(), now)
    }

    /// Writes the member key bound to the member's lease (granted if it has none).
    ///
    /// As in etcd, writing does not extend the lease: that is [`renew_leader`](Self::renew_leader)'s
    /// job for the leader and [`load_as`](Self::load_as)'s for everyone else.
    pub fn publish_member(&mut self, member: &str, data: &MemberData, now: u64) {
        let lease = self.ensure_member_lease(member, now);
        self.put(
            &keyspace::member_key(member),
            to_json(data),
            Some(lease),
            now,
        );
    }

    /// Creates `/initialize` as `""` only if absent: the bootstrap race.
    pub fn take_initialize(&mut self, now: u64) -> bool {
        self.create(keyspace::INITIALIZE, "", None, now)
    }

    /// Writes the system identifier to `/initialize`.
    pub fn set_initialize(&mut self, system_id: &str, now: u64) {
        self.put(keyspace::INITIALIZE, system_id, None, now);
    }

    /// Deletes `/initialize`.
    pub fn cancel_initialize(&mut self, now: u64) {
        self.delete(keyspace::INITIALIZE, now);
    }

    /// Writes `/config`: create-only when `version` is `None`, else compare-and-swap.
    pub fn write_config(&mut self, config: &DynamicConfig, version: Option<u64>, now: u64) -> bool {
        self.write_versioned(keyspace::CONFIG, to_json(config), version, now)
    }

    /// Writes `/failover`: create-only when `version` is `None`, else compare-and-swap.
    pub fn set_failover(
        &mut self,
        request: &FailoverRequest,
        version: Option<u64>,
        now: u64,
    ) -> bool {
        self.write_versioned(keyspace::FAILOVER, to_json(request), version, now)
    }

    /// Deletes `/failover` if still at `version`.
    pub fn clear_failover(&mut self, version: u64, now: u64) -> bool {
        self.delete_if_revision(keyspace::FAILOVER, version, now)
    }

    /// Writes `/sync`: create-only when `version` is `None`, else compare-and-swap.
    pub fn write_sync_state(&mut self, state: &SyncState, version: Option<u64>, now: u64) -> bool {
        self.write_versioned(keyspace::SYNC, to_json(state), version, now)
    }

    /// Replaces `/history`.
    pub fn write_history(&mut self, history: &[HistoryEntry], now: u64) {
        self.put(keyspace::HISTORY, to_json(history), None, now);
    }

    /// Replaces `/failsafe`.
    pub fn write_failsafe(&mut self, members: &crate::FailsafeTopology, now: u64) {
        self.put(keyspace::FAILSAFE, to_json(members), None, now);
    }

    /// Writes `/status`.
    pub fn write_status(&mut self, status: &ClusterStatus, now: u64) {
        self.put(keyspace::STATUS, to_json(status), None, now);
    }

    /// Reads the whole cluster at the current revision, after expiring leases that ran out by `now`.
    pub fn load(&mut self, now: u64) -> Cluster {
        self.advance(now);
        keyspace::decode_cluster(self.keys.iter().map(|(k, kv)| RawKey {
            key: k,
            value: &kv.value,
            mod_revision: kv.mod_revision,
        }))
    }

    /// What one agent's cluster read does in the adapters: [`load`](Self::load), then, unless the
    /// view names `member` as leader (whose lease `renew_leader` keeps), keep its lease alive.
    ///
    /// This is how a replica that publishes only on change keeps its member key.
    pub fn load_as(&mut self, member: &str, now: u64) -> Cluster {
        let c = self.load(now);
        if !c.is_leader(member) {
            if let Some(l) = self.member_lease(member, now) {
                self.keep_alive(l, now);
            }
        }
        c
    }
}

/// Serialises one of the model's JSON values; they are plain data, so this cannot fail.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("the model's DCS values always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemberRole;

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn revisions_and_create_only() {
        let mut s = MemoryStore::new(TTL);
        let r0 = s.revision();
        assert!(s.create("k", "a", None, 0));
        assert!(!s.create("k", "b", None, 0));
        let kv = s.get("k", 0).unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision), (r0 + 1, r0 + 1));
        assert_eq!(s.put("k", "c", None, 0), Some(r0 + 2));
        let kv = s.get("k", 0).unwrap();
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.value.as_slice()),
            (r0 + 1, r0 + 2, &b"c"[..])
        );
        assert!(!s.compare_and_swap("k", "d", r0 + 1, 0));
        assert!(s.compare_and_swap("k", "d", r0 + 2, 0));
        assert!(!s.compare_and_swap("absent", "x", 0, 0));
        assert!(!s.delete_if_value("k", b"c", 0));
        assert!(s.delete_if_value("k", b"d", 0));
        assert!(!s.delete("k", 0));
        assert_eq!(s.revision(), r0 + 4);
    }

    #[test]
    fn lease_expiry_deletes_bound_keys_in_one_revision() {
        let mut s = MemoryStore::new(TTL);
        let l = s.grant(Duration::from_secs(1), 100);
        assert!(s.put("a", "1", Some(l), 100).is_some());
        assert!(s.put("b", "2", Some(l), 100).is_some());
        s.put("c", "3", None, 100);
        let before = s.revision();
        assert!(s.keep_alive(l, 900));
        assert!(s.get("a", 1_899).is_some());
        assert_eq!(s.get("a", 1_900), None);
        assert_eq!(s.revision(), before + 1);
        assert!(s.get("c", 1_900).is_some());
        assert!(!s.keep_alive(l, 1_900));
        assert_eq!(
            s.put("d", "x", Some(l), 1_900),
            None,
            "a dead lease refuses writes"
        );
        assert!(s.get("b", 0).is_none(), "time never runs backwards");
    }

    #[test]
    fn the_leaders_load_leaves_its_lease_to_renewal() {
        let mut s = MemoryStore::new(TTL);
        s.publish_member("a", &MemberData::default(), 0);
        assert!(s.acquire_leader("a", 0));
        assert!(s.load_as("a", 20_000).is_leader("a"));
        assert!(
            s.load(30_000).is_unlocked(),
            "only renew_leader extends a leader's lease"
        );
    }

    #[test]
    fn leader_lock_between_members() {
        let mut s = MemoryStore::new(TTL);
        assert!(s.acquire_leader("a", 0));
        assert!(!s.acquire_leader("b", 0));
        assert!(!s.renew_leader("b", 10));
        assert!(!s.release_leader("b", 10));
        assert!(s.renew_leader("a", 20_000));
        assert!(s.load(49_999).is_leader("a"), "renewal extended the lease");
        assert!(s.load(50_000).is_unlocked());
        assert!(s.acquire_leader("b", 50_001));
        assert!(
            !s.renew_leader("a", 50_002),
            "someone else took the lock after expiry"
        );
        assert!(s.load(50_003).is_leader("b"));
        assert!(s.release_leader("b", 50_004));
        assert!(s.load(50_004).is_unlocked());
    }

    #[test]
    fn renewal_after_lost_lease_retakes_a_free_lock_only() {
        let mut s = MemoryStore::new(TTL);
        assert!(s.acquire_leader("a", 0));
        assert!(s.load(30_000).is_unlocked());
        assert!(
            s.renew_leader("a", 30_001),
            "lease re-granted and the free key re-created"
        );
        let kv = s.get(keyspace::LEADER, 30_001).unwrap();
        assert_eq!(kv.lease, s.member_lease("a", 30_001));
        s.revoke_member_lease("a", 30_002);
        assert!(s.acquire_leader("b", 30_003));
        assert!(!s.renew_leader("a", 30_004));
        // A lock that was released while the lease lived stays released.
        assert!(s.release_leader("b", 30_005));
        assert!(!s.renew_leader("b", 30_006));
    }

    #[test]
    fn member_keys_follow_their_lease() {
        let mut s = MemoryStore::new(TTL);
        let data = MemberData {
            role: MemberRole::Replica,
            ..Default::default()
        };
        s.publish_member("r", &data, 0);
        assert_eq!(
            s.load(1).member("r").unwrap().data.role,
            MemberRole::Replica
        );
        s.publish_member("r", &data, 20_000);
        assert!(
            s.load(30_000).members.is_empty(),
            "publishing does not extend the lease"
        );
        s.publish_member("r", &data, 30_000);
        assert!(
            s.load_as("r", 50_000).member("r").is_some(),
            "load_as keeps it alive"
        );
        assert!(s.load(79_999).member("r").is_some());
        assert!(s.load(80_000).members.is_empty());
        s.publish_member("r", &data, 80_000);
        assert!(s.refresh_member_lease("r", 99_000));
        assert!(s.load(128_999).member("r").is_some());
        assert!(s.load(129_000).members.is_empty());
        assert!(
            !s.refresh_member_lease("r", 130_000),
            "an expired lease is re-granted"
        );
        assert!(
            s.load(130_000).members.is_empty(),
            "re-granting does not resurrect keys"
        );
    }

    #[test]
    fn versioned_writes_and_watch_revision() {
        let mut s = MemoryStore::new(TTL);
        let w0 = s.watch_revision();
        s.publish_member("a", &MemberData::default(), 0);
        s.write_status(&ClusterStatus::default(), 0);
        assert_eq!(
            s.watch_revision(),
            w0,
            "member and status writes do not wake agents"
        );
        let cfg = DynamicConfig::default();
        assert!(s.write_config(&cfg, None, 0));
        assert!(!s.write_config(&cfg, None, 0));
        assert!(s.watch_revision() > w0);
        let v = s.load(0).config.unwrap().version;
        assert!(s.write_config(&cfg, Some(v), 0));
        assert!(!s.write_config(&cfg, Some(v), 0));
        let f = FailoverRequest {
            candidate: Some("b".into()),
            ..Default::default()
        };
        assert!(s.set_failover(&f, None, 0));
        let fv = s.load(0).failover.unwrap().version;
        assert!(!s.clear_failover(fv + 100, 0));
        assert!(s.clear_failover(fv, 0));
        let sync = SyncState {
            leader: Some("a".into()),
            sync_standbys: vec!["b".into()],
            quorum: None,
        };
        assert!(s.write_sync_state(&sync, None, 0));
        let sv = s.load(0).sync.unwrap().version;
        assert!(!s.write_sync_state(&sync, Some(sv - 1), 0));
        assert!(s.write_sync_state(&sync, Some(sv), 0));
        assert!(s.take_initialize(0));
        assert!(!s.take_initialize(0));
        s.set_initialize("42", 0);
        assert_eq!(s.load(0).initialize.as_deref(), Some("42"));
        s.cancel_initialize(0);
        assert!(s.load(0).initialize.is_none());
    }
}
