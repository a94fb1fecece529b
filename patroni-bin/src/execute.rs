//! Performs one action through the ports, with a deadline on every call; the order, the guards
//! and the background tasks are the core's [`executor`](patroni_core::executor).
//!
//! Each action becomes an [`Outcome`] stamped with the monotonic time it *started*, which the
//! state machine's lease bookkeeping depends on.

use std::sync::Arc;
use std::time::Duration;

use patroni_core::executor::{Next, Sequence};
use patroni_core::{Action, ClusterStatus, Database, Dcs, DcsError, Outcome, OutcomeResult};

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
    /// The user's scripts around database actions, when any is configured.
    pub callbacks: Option<Arc<crate::callbacks::Callbacks>>,
}

fn dcs_result<T>(
    r: Result<Result<T, DcsError>, tokio::time::error::Elapsed>,
    ok: impl Fn(T) -> bool,
) -> OutcomeResult {
    match r {
        Err(_) => OutcomeResult::DcsUnreachable("DCS call timed out".into()),
        Ok(Err(DcsError::Unreachable(e))) => OutcomeResult::DcsUnreachable(e),
        Ok(Err(e @ DcsError::Rejected(_))) => OutcomeResult::Failed(e.to_string()),
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
        if let Some(cb) = &self.callbacks {
            let before = self.shared.snapshot().local;
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
        }
    }

    /// Runs one action and logs how it ended when that is news (a failure, a finished slow one).
    pub async fn run_logged(&self, action: &Action) -> OutcomeResult {
        let kind = action.kind();
        let r = self.run(action).await;
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
