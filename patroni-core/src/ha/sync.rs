//! Synchronous replication, leader side: choose standbys, keep `/sync` and the GUC in order.
//! Quorum mode has its own rules in [`super::quorum`]; this module is mode `on` (`FIRST n`).
//!
//! Ordering invariant: a standby is removed from `/sync` before the database stops waiting for it,
//! and recorded in `/sync` only after the database reports it `sync` and it has flushed every
//! write made until the first cycle after it was named: commits acknowledged until the database
//! applied the new names did not wait for it. So every member in `/sync` has every acknowledged
//! commit, and only those may be promoted.

use super::{Cycle, Ha};
use crate::{Action, MemberState, ReplicationRow, SenderState, SyncState, SynchronousMode};

/// The reserved name that makes a strict primary block commits when no standby is left.
pub const STRICT_SYNC_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

/// `synchronous_standby_names` with no standby to wait for: nothing, or in strict mode the
/// placeholder that blocks commits until a real standby is named.
pub(super) fn waiting_for_nobody(strict: bool) -> (Vec<String>, u32) {
    if strict {
        (vec![STRICT_SYNC_PLACEHOLDER.to_string()], 1)
    } else {
        (Vec::new(), 0)
    }
}

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
            r.state == SenderState::Streaming
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

/// What `/sync` says this cycle, as the leader reads it before writing it.
struct SyncKey<'c> {
    me: &'c str,
    /// The key as read, whoever wrote it.
    key: Option<&'c SyncState>,
    /// It names us as its leader.
    mine: bool,
    /// The standbys it records for us (none when it is someone else's).
    recorded: Vec<String>,
    /// Its version, for the compare-and-swap.
    version: Option<u64>,
}

impl<'c> SyncKey<'c> {
    fn read(cy: &Cycle<'c>) -> SyncKey<'c> {
        let me = cy.me();
        let key = cy.cluster.sync_state();
        let mine = key.is_some_and(|s| {
            s.leader
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(me))
        });
        SyncKey {
            me,
            key,
            mine,
            recorded: key
                .filter(|_| mine)
                .map(|s| s.sync_standbys.clone())
                .unwrap_or_default(),
            version: cy.cluster.sync.as_ref().map(|s| s.version),
        }
    }

    /// `/sync` naming us with these standbys (mode `on`).
    fn write(&self, standbys: Vec<String>) -> Action {
        Action::WriteSyncState {
            state: SyncState {
                leader: Some(self.me.to_string()),
                sync_standbys: standbys,
                quorum: None,
            },
            version: self.version,
        }
    }
}

/// The standbys to name, best first, at most `synchronous_node_count`: only those streaming
/// from us appear in our replication rows, so a cascade member is never picked. Those that may
/// be promoted come first, as Patroni prefers them, then those already synchronous, then by
/// flush position.
fn pick_standbys(cy: &Cycle<'_>) -> Vec<String> {
    let db_sync: Vec<String> = cy.obs.local.sync_standbys().map(String::from).collect();
    let mut rows = eligible_rows(cy);
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
    picked
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
        // The change of `synchronous_standby_names` made last cycle has taken effect by now (a
        // failed one was forgotten): every commit acknowledged without waiting for the new names
        // is at or below this position. The deciding cycle's position is too early: commits
        // acknowledged before the change applied may lie above it.
        if self.mem.sync_names.is_some() && self.mem.sync_bar.is_none() {
            self.mem.sync_bar = Some(cy.obs.local.wal_position());
        }
        let key = SyncKey::read(cy);
        let mut actions = Vec::new();
        if !cy.config.synchronous() {
            self.undo_sync(cy, &key, &mut actions);
            return actions;
        }
        if key.mine && key.key.is_some_and(|s| s.quorum.is_some()) {
            // Quorum mode's voters need not each hold every commit: none is eligible until
            // confirmed again under `FIRST n`.
            return vec![key.write(Vec::new())];
        }
        let picked = pick_standbys(cy);
        if picked.is_empty() {
            self.no_sync_candidates(cy, &key, &mut actions);
        } else {
            self.name_sync_standbys(cy, &key, picked, &mut actions);
        }
        actions
    }

    /// Sets `synchronous_standby_names` when it changes, forgetting the write position the old
    /// names had to reach: the next cycle measures it afresh.
    pub(super) fn set_sync_guc(
        &mut self,
        names: Vec<String>,
        count: u32,
        actions: &mut Vec<Action>,
    ) {
        if self.mem.sync_names.as_ref() != Some(&names) {
            self.mem.sync_bar = None;
            actions.push(Action::SetSyncStandbys {
                names: names.clone(),
                count,
                quorum: false,
            });
        }
        self.mem.sync_names = Some(names);
    }

    /// Asynchronous: undo what synchronous mode left behind, and only that.
    fn undo_sync(&mut self, cy: &Cycle<'_>, key: &SyncKey<'_>, actions: &mut Vec<Action>) {
        let leftover = key.key.is_some_and(|s| !s.sync_standbys.is_empty());
        let db_listed = cy
            .obs
            .local
            .replication
            .iter()
            .any(|r| r.sync_state.listed());
        if leftover {
            actions.push(key.write(Vec::new()));
        }
        if leftover || db_listed {
            self.set_sync_guc(Vec::new(), 0, actions);
        }
    }

    /// No standby can be synchronous: strict mode blocks commits (keeping `/sync` as it is),
    /// otherwise fall back to asynchronous commits with an empty `/sync`.
    fn no_sync_candidates(&mut self, cy: &Cycle<'_>, key: &SyncKey<'_>, actions: &mut Vec<Action>) {
        if cy.config.synchronous_mode_strict {
            if !key.mine {
                actions
                    .push(key.write(key.key.map(|s| s.sync_standbys.clone()).unwrap_or_default()));
            }
        } else if !key.mine || !key.recorded.is_empty() {
            actions.push(key.write(Vec::new()));
        }
        let (names, count) = waiting_for_nobody(cy.config.synchronous_mode_strict);
        self.set_sync_guc(names, count, actions);
    }

    /// Names `picked` in the GUC: first drop from `/sync` those no longer picked, and only in a
    /// later cycle record those the database reports synchronous and that caught up.
    fn name_sync_standbys(
        &mut self,
        cy: &Cycle<'_>,
        key: &SyncKey<'_>,
        picked: Vec<String>,
        actions: &mut Vec<Action>,
    ) {
        let local = &cy.obs.local;
        let keep: Vec<String> = key
            .recorded
            .iter()
            .filter(|n| contains(&picked, n))
            .cloned()
            .collect();
        let removing = !key.mine || keep.len() != key.recorded.len();
        if removing {
            actions.push(key.write(keep.clone()));
        }
        let count = u32::try_from(picked.len()).unwrap_or(u32::MAX);
        self.set_sync_guc(picked.clone(), count, actions);
        if removing {
            return;
        }
        // Sync according to the database is not enough: the standby must also hold every
        // write acknowledged before the database waited for it (it may have been named while far
        // behind). Until the setting is seen applied there is no bar, and nobody new is recorded.
        let db_sync: Vec<String> = local.sync_standbys().map(String::from).collect();
        let bar = self.mem.sync_bar;
        let caught_up = |n: &str| {
            bar.is_some_and(|bar| {
                local.replication.iter().any(|r| {
                    r.application_name.eq_ignore_ascii_case(n)
                        && r.flush_lsn.is_some_and(|f| f >= bar)
                })
            })
        };
        let confirmed: Vec<String> = picked
            .iter()
            .filter(|n| contains(&keep, n) || (contains(&db_sync, n) && caught_up(n)))
            .cloned()
            .collect();
        if !same_set(&confirmed, &key.recorded) {
            actions.push(key.write(confirmed));
        }
    }
}
