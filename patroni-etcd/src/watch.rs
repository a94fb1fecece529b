//! A background watch on the cluster prefix that wakes `wait_for_change` on leader, config and failover changes.
//!
//! The watch resumes from the revision after the last event it saw, rotating endpoints like every
//! call, so nothing is missed across an etcd restart; if that revision was compacted away it wakes
//! the agent once so it re-reads everything.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use patroni_core::keyspace;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::connection::Connection;

/// What the watch has seen, shared with the [`EtcdDcs`](crate::EtcdDcs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Revision of the last change to the leader key, `/config` or `/failover`.
    pub wake: i64,
    /// Revision of the last change to the leader key alone.
    pub leader: i64,
    /// Whether the watch stream is established, so `leader` is current.
    pub connected: bool,
}

/// Starts the watch task from `from_revision`; it runs until aborted.
pub(crate) fn spawn(
    conn: Arc<Connection>,
    prefix: String,
    from_revision: i64,
    tx: watch::Sender<Seen>,
) -> JoinHandle<()> {
    tokio::spawn(run(conn, prefix, from_revision, tx))
}

async fn run(conn: Arc<Connection>, prefix: String, mut next: i64, tx: watch::Sender<Seen>) {
    loop {
        let idx = conn.current();
        let opened = timeout(conn.attempt_budget(), async {
            let mut client = conn.client(idx).await?;
            client
                .watch(
                    prefix.as_bytes(),
                    Some(WatchOptions::new().with_prefix().with_start_revision(next)),
                )
                .await
        })
        .await;
        let mut stream = match opened {
            Ok(Ok(s)) => s,
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
        tx.send_modify(|s| s.connected = true);
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            // Events were compacted away: resume at the oldest kept revision and
                            // wake the agent once, as we cannot tell what changed.
                            tracing::warn!(
                                from = next,
                                compacted = resp.compact_revision(),
                                "etcd watch fell behind compaction; forcing a re-read"
                            );
                            next = resp.compact_revision();
                            let at = next;
                            tx.send_modify(|s| {
                                s.wake = s.wake.max(at);
                                s.leader = s.leader.max(at);
                            });
                        } else {
                            tracing::debug!(reason = resp.cancel_reason(), "etcd watch canceled");
                        }
                        break;
                    }
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let rev = kv.mod_revision();
                        next = next.max(rev + 1);
                        let Some(key) = kv.key().strip_prefix(prefix.as_bytes()) else {
                            continue;
                        };
                        let key = String::from_utf8_lossy(key);
                        if keyspace::wakes_agents(&key) {
                            let is_leader = key == keyspace::LEADER;
                            tracing::debug!(key = %key, rev, deleted = ev.event_type() == EventType::Delete, "watched key changed");
                            tx.send_modify(|s| {
                                s.wake = s.wake.max(rev);
                                if is_leader {
                                    s.leader = s.leader.max(rev);
                                }
                            });
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "etcd watch stream broke");
                    break;
                }
            }
        }
        tx.send_modify(|s| s.connected = false);
        conn.rotate_from(idx);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
