//! The local database is down or still starting: restart it, or give up the lock so others take over.

use std::time::Duration;

use super::{Cycle, Ha};
use crate::action::ActionKind;
use crate::instant;
use crate::{Action, Decision, ProcessState, Reason, StartRole, StopMode};

fn decision(actions: Vec<Action>, reason: Reason) -> Decision {
    Decision::new(actions, reason)
}

impl Ha {
    /// The database is not (yet) running.
    pub(super) fn recover(&mut self, cy: &Cycle<'_>) -> Option<Decision> {
        match cy.obs.local.process {
            ProcessState::Running => None,
            ProcessState::Starting => self.starting(cy),
            ProcessState::Stopped | ProcessState::Crashed => Some(self.down(cy)),
        }
    }

    /// How long the database has been down or starting.
    fn down_for(&self, cy: &Cycle<'_>) -> Duration {
        instant::between(self.mem.down_since.unwrap_or(cy.obs.now), cy.obs.now)
    }

    /// How long a lock holder's start may take: the restart request's `timeout` while that
    /// restart's start is under way, else `primary_start_timeout`.
    fn start_timeout(&self, cy: &Cycle<'_>) -> Duration {
        self.mem
            .restart_timeout
            .unwrap_or_else(|| cy.config.primary_start_timeout_duration())
    }

    /// A primary start running in the background took too long: crash recovery beyond
    /// `primary_start_timeout`, or a requested restart beyond its `timeout` (Patroni's restart
    /// waits that long for the start, then gives way).
    pub(super) fn start_timeout_during_task(
        &self,
        cy: &Cycle<'_>,
        kind: ActionKind,
    ) -> Option<Decision> {
        if cy.paused || cy.obs.local.is_running_primary() {
            return None;
        }
        let reason = match kind {
            ActionKind::Start => Reason::StartupTimeoutDuringTask,
            ActionKind::Restart if self.mem.restart_timeout.is_some() => {
                Reason::StoppedStartupTimeout
            }
            _ => return None,
        };
        if self.down_for(cy) > self.start_timeout(cy)
            && self.failover_possible(cy, cy.cluster.leader_optime())
        {
            return Some(decision(
                vec![Action::Stop(StopMode::Immediate), Action::ReleaseLeader],
                reason,
            ));
        }
        None
    }

    /// The postmaster runs but does not accept connections yet.
    fn starting(&mut self, cy: &Cycle<'_>) -> Option<Decision> {
        if cy.paused {
            return None;
        }
        if !cy.hold {
            // A primary coming up after its lock was refused or taken must not finish starting:
            // it would accept writes beside the new leader.
            let lost = cy.events.renew_lost || cy.other_leader_name().is_some();
            if self.may_come_up_writable(cy) && lost {
                return Some(decision(
                    vec![Action::Stop(StopMode::Immediate)],
                    Reason::StoppedStartingLockLost,
                ));
            }
            return None;
        }
        let timeout = self.start_timeout(cy);
        let down_for = self.down_for(cy);
        if down_for > timeout {
            if self.failover_possible(cy, cy.cluster.leader_optime()) {
                return Some(decision(
                    vec![Action::Stop(StopMode::Immediate), Action::ReleaseLeader],
                    Reason::StoppedStartupTimeout,
                ));
            }
            return Some(decision(
                vec![Action::RenewLeader],
                Reason::StartTimedOutNoFailover,
            ));
        }
        // A switchover or manual failover need not wait for crash recovery to end (Patroni
        // processes the request while starting, too).
        if let super::switchover::Handover::Demote(d) = self.handover(cy) {
            return Some(d);
        }
        let left = timeout - down_for;
        // A server that runs but refuses our SQL (a wrong password, say) is not starting up:
        // say why, or the operator waits out primary_start_timeout for nothing.
        let reason = match &cy.obs.local.report.sql_error {
            Some(problem) => Reason::RunningButRefused {
                problem: problem.clone(),
                left,
            },
            None => Reason::StillStarting { left },
        };
        Some(decision(vec![Action::RenewLeader], reason))
    }

    /// No postmaster: restart it, or let the lock go.
    fn down(&mut self, cy: &Cycle<'_>) -> Decision {
        if cy.paused {
            if cy.hold {
                return decision(
                    vec![Action::ReleaseLeader],
                    Reason::ReleasedNotRunningInPause,
                );
            }
            return Decision::because(Reason::PostgresNotRunning);
        }
        if cy.hold {
            if cy.events.start_failed {
                return decision(vec![Action::ReleaseLeader], Reason::ReleasedStartFailed);
            }
            let possible = self.failover_possible(cy, cy.cluster.leader_optime());
            if cy.config.primary_start_timeout_duration().is_zero() && possible {
                return decision(vec![Action::ReleaseLeader], Reason::FailoverAfterCrash);
            }
            if self.down_for(cy) > self.start_timeout(cy) && possible {
                return decision(vec![Action::ReleaseLeader], Reason::ReleasedStartTimeout);
            }
            if cy.standby {
                self.mem.following = cy.remote.as_ref().map(|r| r.name.clone());
                let upstream = cy.remote.clone();
                return decision(
                    vec![
                        Action::RenewLeader,
                        Action::Start(StartRole::Standby { upstream }),
                    ],
                    Reason::StartingStandbyLeader,
                );
            }
            return decision(
                vec![Action::RenewLeader, Action::Start(StartRole::Primary)],
                Reason::StartingPrimary,
            );
        }
        if cy.obs.local.cannot_follow.is_some() {
            if let Some(d) = self.rebuild(cy) {
                return d;
            }
        }
        let (failures, last) = self.mem.start_failures;
        if failures > 0 {
            let wait = start_backoff(failures, cy.config.loop_wait_duration());
            let until = instant::after(last, wait);
            if cy.obs.now < until {
                return Decision::because(Reason::StartBackoff {
                    failures,
                    left: instant::between(cy.obs.now, until),
                });
            }
        }
        let upstream = self.upstream(cy);
        self.mem.following = upstream.as_ref().map(|m| m.name.clone());
        decision(
            vec![Action::Start(StartRole::Standby { upstream })],
            Reason::StartingSecondary,
        )
    }
}

/// How long a standby waits before the next start after `failures` failed ones: doubling from
/// one second up to `loop_wait`, so a database that cannot start is not forked every cycle
/// while one that was only briefly broken comes back soon.
fn start_backoff(failures: u32, loop_wait: Duration) -> Duration {
    let second = Duration::from_secs(1);
    let doubled = second.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(loop_wait.max(second))
}

#[cfg(test)]
mod tests {
    use super::start_backoff;
    use std::time::Duration;

    #[test]
    fn start_backoff_doubles_up_to_loop_wait() {
        let secs = Duration::from_secs;
        let waits: Vec<Duration> = (1..=6).map(|n| start_backoff(n, secs(10))).collect();
        assert_eq!(
            waits,
            [secs(1), secs(2), secs(4), secs(8), secs(10), secs(10)]
        );
        assert_eq!(start_backoff(40, secs(2)), secs(2));
    }
}
