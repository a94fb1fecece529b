//! Performs one action through the ports, with a deadline on every call; the order, the guards
//! and the background tasks are the core's [`executor`](patroni_core::executor).
//!
//! Each action becomes an [`Outcome`] stamped with the monotonic time it *started*, which the
//! state machine's lease bookkeeping depends on.

use std::sync::Arc;
use std::time::Duration;

use patroni_core::executor::{Next, Sequence};
use patroni_core::{
    Action, ClusterStatus, Database, DbRole, Dcs, DcsError, Outcome, OutcomeResult, ProcessState,
};

use crate::state::Shared;

/// What one action needs: the ports, the shared state (for the clock and the published member), and the DCS bound.
#[derive(Clone)]
pub struct Executor {
    /// The DCS.
    pub dcs: Arc<dyn Dcs>,
    /// The local database.
    pub db: Arc<dyn Database>,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Bound on each DCS call (`retry_timeout`).
    pub dcs_timeout: Duration,
    /// The user's scripts around database actions, shared by every clone so a reload reaches
    /// the background tasks too.
    pub callbacks: Arc<crate::callbacks::LiveCallbacks>,
}

fn dcs_result<T>(
    r: Result<Result<T, DcsError>, tokio::time::error::Elapsed>,
    ok: impl Fn(T) -> bool,
) -> OutcomeResult {
    match r {
        Err(_) => OutcomeResult::DcsUnreachable("DCS call timed out".into()),
        Ok(Err(DcsError::Unreachable(e))) => OutcomeResult::DcsUnreachable(e),
        Ok(Err(e)) => OutcomeResult::Failed(e.to_string()),
        Ok(Ok(v)) => {
            if ok(v) {
                OutcomeResult::Done
            } else {
                OutcomeResult::Lost
            }
        }
    }
}

fn db_result(r: Result<(), patroni_core::DbError>) -> OutcomeResult {
    match r {
        Ok(()) => OutcomeResult::Done,
        Err(e) => OutcomeResult::Failed(e.to_string()),
    }
}

impl Executor {
    /// Runs one action to completion.
    pub async fn run(&self, action: &Action) -> OutcomeResult {
        if let Some(cb) = self.callbacks.get() {
            let before = self.shared.read(|s| s.local.clone());
            if let Some(r) = cb.perform(&*self.db, action, &before).await {
                return db_result(r);
            }
        }
        let t = self.dcs_timeout;
        let dcs = &*self.dcs;
        let db = &*self.db;
        let yes = |_: ()| true;
        let flag = |b: bool| b;
        use tokio::time::timeout;
        match action {
            Action::TakeInitialize => dcs_result(timeout(t, dcs.take_initialize()).await, flag),
            Action::SetInitialize { system_id } => {
                dcs_result(timeout(t, dcs.set_initialize(system_id)).await, yes)
            }
            Action::CancelInitialize => dcs_result(timeout(t, dcs.cancel_initialize()).await, yes),
            Action::WriteConfig { config, version } => {
                dcs_result(timeout(t, dcs.write_config(config, *version)).await, flag)
            }
            Action::AcquireLeader => dcs_result(timeout(t, dcs.acquire_leader()).await, flag),
            Action::RenewLeader => dcs_result(timeout(t, dcs.renew_leader()).await, flag),
            Action::ReleaseLeader => dcs_result(timeout(t, dcs.release_leader()).await, flag),
            Action::PublishMember(data) => {
                let r = dcs_result(timeout(t, dcs.publish_member(data)).await, yes);
                if r == OutcomeResult::Done {
                    self.shared.update(|s| s.member = Some(data.clone()));
                }
                r
            }
            Action::WriteStatus { optime } => {
                let status = ClusterStatus {
                    optime: Some(*optime),
                    ..Default::default()
                };
                dcs_result(timeout(t, dcs.write_status(&status)).await, yes)
            }
            Action::ClearFailover { version } => {
                dcs_result(timeout(t, dcs.clear_failover(*version)).await, flag)
            }
            Action::WriteSyncState { state, version } => dcs_result(
                timeout(t, dcs.write_sync_state(state, *version)).await,
                flag,
            ),
            Action::WriteHistory(h) => dcs_result(timeout(t, dcs.write_history(h)).await, yes),
            // Probing is done by the loop before the second step; a stray request has nothing to run.
            Action::FetchPeerStatus { .. } => OutcomeResult::Done,
            Action::WriteFailsafe(m) => dcs_result(timeout(t, dcs.write_failsafe(m)).await, yes),
            // The loop posts to the members itself; a stray request confirms nothing.
            Action::ConfirmFailsafe { .. } => {
                OutcomeResult::Failed("failsafe members are asked by the loop only".into())
            }
            Action::Bootstrap => db_result(db.bootstrap().await),
            Action::CloneFrom { source } => db_result(db.clone_from(source).await),
            Action::CloneWithoutLeader => db_result(db.clone_without_leader().await),
            Action::Start(role) => db_result(db.start(role).await),
            Action::Stop(mode) => db_result(db.stop(*mode).await),
            Action::Restart => db_result(db.restart().await),
            Action::Reload => db_result(db.reload().await),
            Action::Promote { timeline, planned } => {
                db_result(db.promote(*timeline, *planned).await)
            }
            Action::Demote(mode) => db_result(db.demote(*mode).await),
            Action::Follow { leader } => db_result(db.follow(leader).await),
            Action::Rebuild {
                source,
                mode,
                timeline,
            } => db_result(db.rebuild(source, *mode, *timeline).await),
            Action::SetSyncStandbys {
                names,
                count,
                quorum,
            } => db_result(db.set_sync_standbys(names, *count, *quorum).await),
            // `Action` is non-exhaustive: a core newer than this executor may ask for something
            // it cannot carry out, and must hear that it failed rather than that it was done.
            other => OutcomeResult::Failed(format!("no executor for {:?}", other.kind())),
        }
    }

    /// Runs one action and logs how it ended when that is news (a failure, a finished slow one).
    pub async fn run_logged(&self, action: &Action) -> OutcomeResult {
        let kind = action.kind();
        let r = self.run(action).await;
        if r == OutcomeResult::Done {
            self.show_local_change(action);
        }
        match &r {
            // Losing a race or a compare-and-swap is normal cluster life.
            OutcomeResult::Lost => tracing::info!(action = ?kind, "lost the race"),
            OutcomeResult::Done | OutcomeResult::Skipped => {}
            other => tracing::warn!(action = ?kind, result = ?other, "action failed"),
        }
        if r == OutcomeResult::Done && kind.is_slow() {
            tracing::info!(action = ?kind, "finished");
        }
        r
    }

    /// Shows at once what a finished action changed in the local server, before the next
    /// observation: a primary that demoted and then released the lock must not answer peers
    /// probing `/patroni` that it still runs as a primary (they would wait a loop to race).
    fn show_local_change(&self, action: &Action) {
        match action {
            Action::Demote(_) => self.shared.update(|s| s.local.role = DbRole::Standby),
            Action::Stop(_) => self
                .shared
                .update(|s| s.local.process = ProcessState::Stopped),
            _ => {}
        }
    }

    /// Runs a background task's actions in order, as the core's [`Sequence::background`] says.
    pub async fn run_background(&self, actions: Vec<Action>) -> Vec<Outcome> {
        let mut seq = Sequence::background(actions);
        while let Next::Run(action) = seq.next(self.shared.clock.now()) {
            let result = self.run_logged(&action).await;
            seq.report(result);
        }
        seq.into_outcomes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use patroni_core::{
        DbError, LocalDb, Member, MemberRole, MemoryDcs, MemoryStore, Node, RebuildMode,
        SharedStore, StartRole, StopMode,
    };

    /// A server that is never there and whose every action succeeds: what is shown after one
    /// comes from the agent, not the database.
    pub(crate) struct Obliging;

    #[async_trait::async_trait]
    impl Database for Obliging {
        async fn observe(&self) -> LocalDb {
            LocalDb::default()
        }
        async fn bootstrap(&self) -> Result<(), DbError> {
            Ok(())
        }
        async fn clone_from(&self, _: &Member) -> Result<(), DbError> {
            Ok(())
        }
        async fn start(&self, _: &StartRole) -> Result<(), DbError> {
            Ok(())
        }
        async fn stop(&self, _: StopMode) -> Result<(), DbError> {
            Ok(())
        }
        async fn restart(&self) -> Result<(), DbError> {
            Ok(())
        }
        async fn reload(&self) -> Result<(), DbError> {
            Ok(())
        }
        async fn promote(&self, _: u64, _: bool) -> Result<(), DbError> {
            Ok(())
        }
        async fn demote(&self, _: StopMode) -> Result<(), DbError> {
            Ok(())
        }
        async fn follow(&self, _: &Member) -> Result<(), DbError> {
            Ok(())
        }
        async fn rebuild(&self, _: &Member, _: RebuildMode, _: u64) -> Result<(), DbError> {
            Ok(())
        }
        async fn set_sync_standbys(&self, _: &[String], _: u32, _: bool) -> Result<(), DbError> {
            Ok(())
        }
        async fn apply_parameters(
            &self,
            _: &serde_json::Map<String, serde_json::Value>,
        ) -> Result<bool, DbError> {
            Ok(false)
        }
        async fn sync_slots(&self, _: &patroni_core::slots::SlotPlan) -> Result<bool, DbError> {
            Ok(false)
        }
    }

    fn running_primary() -> Executor {
        let store = SharedStore::new(MemoryStore::new(Duration::from_secs(30)));
        let dcs: Arc<dyn Dcs> = Arc::new(MemoryDcs::new(store, "n1", Arc::new(|| 0)));
        let shared = Shared::new("demo", Node::new("n1"), Arc::clone(&dcs), None);
        shared.update(|s| {
            s.local.process = ProcessState::Running;
            s.local.role = DbRole::Primary;
        });
        Executor {
            dcs,
            db: Arc::new(Obliging),
            shared,
            dcs_timeout: Duration::from_secs(1),
            callbacks: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_demoted_primary_stops_saying_primary_before_it_releases_the_lock() {
        let exec = running_primary();
        assert_eq!(
            crate::status::role(&exec.shared.snapshot()),
            MemberRole::Primary
        );
        let r = exec.run_logged(&Action::Demote(StopMode::Fast)).await;
        assert_eq!(r, OutcomeResult::Done);
        // A switchover candidate probing now, between the demote and the release of the lock,
        // must not be told a primary is still alive.
        assert_eq!(
            crate::status::role(&exec.shared.snapshot()),
            MemberRole::Replica
        );
    }

    #[tokio::test]
    async fn a_stopped_server_is_shown_stopped_at_once() {
        let exec = running_primary();
        let r = exec.run_logged(&Action::Stop(StopMode::Fast)).await;
        assert_eq!(r, OutcomeResult::Done);
        assert!(!exec.shared.read(|s| s.local.process.is_alive()));
        assert_ne!(
            crate::status::role(&exec.shared.snapshot()),
            MemberRole::Primary
        );
    }
}
