//! Synchronous replication, leader side: choose standbys, keep `/sync` and the GUC in order.
//! Quorum mode has its own rules in [`super::quorum`]; this module is mode `on` (`FIRST n`).
//!
//! Ordering invariant: a standby is removed from `/sync` before the database stops waiting for it,
//! and recorded in `/sync` only after the database reports it `sync` and it has flushed every
//! write made before it was named. So every member in `/sync` has every acknowledged commit, and
//! only those may be promoted.

use super::{Cycle, Ha};
use crate::{Action, MemberState, ReplicationRow, SyncState, SynchronousMode};

/// The reserved name that makes a strict primary block commits when no standby is left.
pub const STRICT_SYNC_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|x| b.iter().any(|y| y.eq_ignore_ascii_case(x)))
}

fn contains(list: &[String], name: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(name))
}

/// The standbys that may be synchronous: streaming from us, running, readable, not `nosync`.
pub(super) fn eligible_rows<'a>(cy: &Cycle<'a>) -> Vec<&'a ReplicationRow> {
    let me = cy.me();
    cy.obs
        .local
        .replication
        .iter()
        .filter(|r| {
            r.state == "streaming"
                && r.application_name != me
                && cy.cluster.member(&r.application_name).is_some_and(|m| {
                    m.unreadable.is_none()
                        && m.data.state == MemberState::Running
                        && !m.data.tags.nosync
                        && !m.data.tags.nostream
                })
        })
        .collect()
}

impl Ha {
    /// `/sync` and `SetSyncStandbys` actions for this cycle, in the order the invariant needs.
    pub(super) fn sync_standbys(&mut self, cy: &Cycle<'_>) -> Vec<Action> {
        // Each mode keeps its own memory of the setting, so a change of mode sets it afresh.
        if cy.config.synchronous_mode == SynchronousMode::Quorum {
            self.mem.sync_names = None;
            return self.quorum_standbys(cy);
        }
        self.mem.quorum_guc = None;
        let me = cy.me();
        let local = &cy.obs.local;
        let sync_key = cy.cluster.sync_state();
        let mine = sync_key.is_some_and(|s| {
            s.leader
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(me))
        });
        let recorded: Vec<String> = sync_key
            .filter(|_| mine)
            .map(|s| s.sync_standbys.clone())
            .unwrap_or_default();
        let version = cy.cluster.sync.as_ref().map(|s| s.version);
        let write = |standbys: Vec<String>| Action::WriteSyncState {
            state: SyncState {
                leader: Some(me.to_string()),
                sync_standbys: standbys,
                quorum: None,
            },
            version,
        };
        let db_listed: Vec<String> = local
            .replication
            .iter()
            .filter(|r| matches!(r.sync_state.as_str(), "sync" | "potential" | "quorum"))
            .map(|r| r.application_name.clone())
            .collect();
        let db_sync: Vec<String> = local.sync_standbys().map(String::from).collect();
        let mut actions = Vec::new();
        let set_guc = |ha: &mut Ha, names: Vec<String>, count: u32, actions: &mut Vec<Action>| {
            if ha.mem.sync_names.as_ref() != Some(&names) {
                ha.mem.sync_bar = Some(local.wal_position());
                actions.push(Action::SetSyncStandbys {
                    names: names.clone(),
                    count,
                    quorum: false,
                });
            }
            ha.mem.sync_names = Some(names);
        };

        if !cy.config.synchronous() {
            // Asynchronous: undo what synchronous mode left behind, and only that.
            let leftover = sync_key.is_some_and(|s| !s.sync_standbys.is_empty());
            if leftover {
                actions.push(write(Vec::new()));
            }
            if leftover || !db_listed.is_empty() {
                set_guc(self, Vec::new(), 0, &mut actions);
            }
            return actions;
        }
        if mine && sync_key.is_some_and(|s| s.quorum.is_some()) {
            // Quorum mode's voters need not each hold every commit: none is eligible until
            // confirmed again under `FIRST n`.
            return vec![write(Vec::new())];
        }

        let mut rows = eligible_rows(cy);
        // Only standbys streaming from us appear in our replication rows, so a cascade member
        // is never picked. Those that may be promoted come first, as Patroni prefers them.
        let nofailover = |name: &str| {
            cy.cluster
                .member(name)
                .is_some_and(|m| !m.data.tags.allows_failover())
        };
        rows.sort_by(|a, b| {
            let a_sync = contains(&db_sync, &a.application_name);
            let b_sync = contains(&db_sync, &b.application_name);
            nofailover(&a.application_name)
                .cmp(&nofailover(&b.application_name))
                .then(b_sync.cmp(&a_sync))
                .then(b.flush_lsn.cmp(&a.flush_lsn))
                .then(a.application_name.cmp(&b.application_name))
        });
        let mut picked: Vec<String> = Vec::new();
        for r in rows {
            if picked.len() >= cy.config.synchronous_node_count as usize {
                break;
            }
            if !contains(&picked, &r.application_name) {
                picked.push(r.application_name.clone());
            }
        }

        if picked.is_empty() {
            if cy.config.synchronous_mode_strict {
                if !mine {
                    actions.push(write(
                        sync_key
                            .map(|s| s.sync_standbys.clone())
                            .unwrap_or_default(),
                    ));
                }
                set_guc(
                    self,
                    vec![STRICT_SYNC_PLACEHOLDER.to_string()],
                    1,
                    &mut actions,
                );
            } else {
                if !mine || !recorded.is_empty() {
                    actions.push(write(Vec::new()));
                }
                set_guc(self, Vec::new(), 0, &mut actions);
            }
            return actions;
        }

        let keep: Vec<String> = recorded
            .iter()
            .filter(|n| contains(&picked, n))
            .cloned()
            .collect();
        let removing = !mine || keep.len() != recorded.len();
        if removing {
            actions.push(write(keep.clone()));
        }
        let count = u32::try_from(picked.len()).unwrap_or(u32::MAX);
        set_guc(self, picked.clone(), count, &mut actions);
        if !removing {
            // Sync according to the database is not enough: the standby must also hold every
            // write acknowledged before it was named (it may have been named while far behind).
            let bar = *self.mem.sync_bar.get_or_insert(local.wal_position());
            let caught_up = |n: &str| {
                local.replication.iter().any(|r| {
                    r.application_name.eq_ignore_ascii_case(n)
                        && r.flush_lsn.is_some_and(|f| f >= bar)
                })
            };
            let confirmed: Vec<String> = picked
                .iter()
                .filter(|n| contains(&keep, n) || (contains(&db_sync, n) && caught_up(n)))
                .cloned()
                .collect();
            if !same_set(&confirmed, &recorded) {
                actions.push(write(confirmed));
            }
        }
        actions
    }
}
