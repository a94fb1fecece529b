//! A background watch on the cluster prefix that keeps a copy of every key under it and wakes
//! `wait_for_change` on leader, config and failover changes.
//!
//! An idle agent then reads its cluster view from memory instead of one range read per loop, as
//! Python Patroni's etcd3 cache does. The copy is trusted only while the watch stream answers: each
//! load asks etcd for a progress notification on the stream and waits for it, so a silent or
//! half-open stream is noticed at once and the load falls back to a range read. The notification
//! carries etcd's current revision; the copy is used only once it has caught up with it (etcd 3.4
//! may send the notification ahead of events already queued), so a load never misses a write
//! that completed before it began. Every
//! (re)connection seeds the copy with a range read and watches from the revision after it, so no
//! event can fall between the two; if that revision was compacted away the task seeds again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use patroni_core::keyspace;
use patroni_core::DcsError;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::connection::Connection;

/// Range responses may carry many large values; never let one bad writer make the view unreadable.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What the watch has seen, shared with the [`EtcdDcs`](crate::EtcdDcs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Revision of the last change to the leader key, `/config` or `/failover`.
    pub wake: i64,
    /// Revision of the last change to the leader key alone.
    pub leader: i64,
    /// Whether the watch stream is established and the copy seeded, so `leader` is current.
    pub connected: bool,
    /// How many progress notifications the stream has answered, for a load waiting on one.
    pub progress: u64,
    /// The store revision the last progress notification carried.
    pub progress_at: i64,
    /// The revision the copy is complete at.
    pub copied: i64,
}

/// One key under the prefix, as etcd last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The raw value.
    pub value: Vec<u8>,
    /// The key's modification revision.
    pub mod_revision: i64,
    /// The lease the key is bound to, 0 for none.
    pub lease: i64,
}

/// The keys under the prefix (relative names) at one revision.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// The revision the snapshot is complete at.
    pub revision: i64,
    /// The keys, by name relative to the prefix.
    pub keys: BTreeMap<String, Entry>,
}

/// The watch's state shared with the DCS: the copy, the wake-ups, and the progress doorbell.
pub(crate) struct Shared {
    /// The copy, `None` while the stream is down or not yet seeded.
    pub copy: Mutex<Option<Snapshot>>,
    /// Wake-ups and stream health.
    pub seen: watch::Sender<Seen>,
    /// Rung by a load that wants the stream to prove it is alive.
    pub want_progress: Notify,
}

impl Shared {
    /// A fresh state with nothing seen.
    pub(crate) fn new() -> Shared {
        Shared {
            copy: Mutex::new(None),
            seen: watch::channel(Seen::default()).0,
            want_progress: Notify::new(),
        }
    }

    fn set_copy(&self, copy: Option<Snapshot>) {
        *self.copy.lock().unwrap_or_else(|e| e.into_inner()) = copy;
    }

    /// The revision the copy is proven complete at, if the stream is up, answers a progress
    /// request within `wait`, and the copy then catches up within `catch_up` with the revision
    /// the answer carried and with `at_least` (our own latest write, which a watch on a lagging
    /// endpoint may not have applied yet).
    ///
    /// Writes elsewhere in a shared etcd also move its revision; while they do, the copy cannot
    /// prove it is complete and the load reads etcd instead, as it would without the watch.
    pub(crate) async fn confirmed(
        &self,
        wait: Duration,
        catch_up: Duration,
        at_least: i64,
    ) -> Option<i64> {
        let mut rx = self.seen.subscribe();
        let asked = {
            let s = *rx.borrow_and_update();
            if !s.connected {
                return None;
            }
            s.progress
        };
        self.want_progress.notify_one();
        let target = match timeout(wait, rx.wait_for(|s| !s.connected || s.progress > asked)).await
        {
            Ok(Ok(s)) if s.connected => s.progress_at.max(at_least),
            _ => return None,
        };
        let caught_up = timeout(
            catch_up,
            rx.wait_for(|s| !s.connected || s.copied >= target),
        )
        .await;
        match caught_up {
            Ok(Ok(s)) if s.connected => Some(target),
            _ => None,
        }
    }
}

/// Reads every key under `prefix` at one revision: the seed of the copy, and the fallback load.
pub(crate) async fn read_prefix(conn: &Connection, prefix: &str) -> Result<Snapshot, DcsError> {
    let resp = conn
        .call("range read of the cluster", |c| {
            let p = prefix.to_string();
            async move {
                c.kv_client()
                    .max_decoding_message_size(MAX_RESPONSE_BYTES)
                    .get(p, Some(GetOptions::new().with_prefix()))
                    .await
            }
        })
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let keys = resp
        .kvs()
        .iter()
        .filter_map(|kv| {
            let rel = kv.key().strip_prefix(prefix.as_bytes())?;
            Some((
                String::from_utf8_lossy(rel).into_owned(),
                Entry {
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                    lease: kv.lease(),
                },
            ))
        })
        .collect();
    Ok(Snapshot { revision, keys })
}

/// Starts the watch task; `loaded_at` is the revision of the load that started it, so a change
/// between that load and the first seed still wakes the agent. It runs until aborted.
pub(crate) fn spawn(
    conn: Arc<Connection>,
    prefix: String,
    loaded_at: i64,
    shared: Arc<Shared>,
) -> JoinHandle<()> {
    tokio::spawn(run(conn, prefix, loaded_at, shared))
}

async fn run(conn: Arc<Connection>, prefix: String, mut known: i64, shared: Arc<Shared>) {
    loop {
        let idx = conn.current();
        let seed = match read_prefix(&conn, &prefix).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "etcd watch could not seed its copy");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let opened = timeout(conn.attempt_budget(), async {
            let mut client = conn.client(idx).await?;
            client
                .watch(
                    prefix.as_bytes(),
                    Some(
                        WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(seed.revision + 1),
                    ),
                )
                .await
        })
        .await;
        let (mut requests, mut stream) = match opened {
            Ok(Ok(s)) => s.split(),
            Ok(Err(e)) => {
                tracing::debug!(endpoint = conn.endpoint(idx), error = %e, "etcd watch not established");
                conn.rotate_from(idx);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                conn.rotate_from(idx);
                continue;
            }
        };
        // Whatever changed while nobody watched (or since the load that started us) is news.
        let seeded_at = seed.revision;
        let missed = seeded_at > known;
        known = seeded_at;
        shared.set_copy(Some(seed));
        shared.seen.send_modify(|s| {
            s.connected = true;
            s.copied = seeded_at;
            if missed {
                s.wake = s.wake.max(seeded_at);
                s.leader = s.leader.max(seeded_at);
            }
        });
        loop {
            let resp = tokio::select! {
                _ = shared.want_progress.notified() => {
                    if let Err(e) = requests.request_progress().await {
                        tracing::debug!(error = %e, "etcd watch progress request failed");
                        break;
                    }
                    continue;
                }
                m = stream.message() => m,
            };
            let resp = match resp {
                Ok(Some(resp)) => resp,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "etcd watch stream broke");
                    break;
                }
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    tracing::warn!(
                        compacted = resp.compact_revision(),
                        "etcd watch fell behind compaction; re-reading the cluster"
                    );
                } else {
                    tracing::debug!(reason = resp.cancel_reason(), "etcd watch canceled");
                }
                break;
            }
            if resp.events().is_empty() {
                if !resp.created() {
                    let at = resp.header().map_or(0, |h| h.revision());
                    shared.seen.send_modify(|s| {
                        s.progress += 1;
                        s.progress_at = at;
                    });
                }
                continue;
            }
            let mut woke = None;
            let mut leader = None;
            // Applied under the lock, a whole response at once, so a load never sees half of it;
            // the copy is updated before the wake-up, so a woken load finds the change.
            let copied = {
                let mut guard = shared.copy.lock().unwrap_or_else(|e| e.into_inner());
                let copy = guard.get_or_insert_with(Snapshot::default);
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let rev = kv.mod_revision();
                    let Some(rel) = kv.key().strip_prefix(prefix.as_bytes()) else {
                        continue;
                    };
                    let rel = String::from_utf8_lossy(rel).into_owned();
                    let deleted = ev.event_type() == EventType::Delete;
                    if keyspace::wakes_agents(&rel) {
                        tracing::debug!(key = %rel, rev, deleted, "watched key changed");
                        woke = Some(rev);
                        if rel == keyspace::LEADER {
                            leader = Some(rev);
                        }
                    }
                    copy.revision = copy.revision.max(rev);
                    if deleted {
                        copy.keys.remove(&rel);
                    } else {
                        let entry = Entry {
                            value: kv.value().to_vec(),
                            mod_revision: rev,
                            lease: kv.lease(),
                        };
                        copy.keys.insert(rel, entry);
                    }
                }
                copy.revision
            };
            known = known.max(copied);
            shared.seen.send_modify(|s| {
                s.copied = copied;
                if let Some(r) = woke {
                    s.wake = s.wake.max(r);
                }
                if let Some(r) = leader {
                    s.leader = s.leader.max(r);
                }
            });
        }
        shared.set_copy(None);
        shared.seen.send_modify(|s| s.connected = false);
        conn.rotate_from(idx);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
