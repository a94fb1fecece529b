//! How a decision is carried out: the one executor of the [`Ha`](crate::Ha) contract, sans I/O.
//!
//! The daemon's agent and the simulator both pump these types and differ only in how an action
//! is performed (a DCS call, a `pg_ctl` command; a change to the simulated world) and how a
//! background task is run (a tokio task; virtual time). What runs now, what goes to the
//! background, what is skipped, when a running task is cancelled and when the state machine is
//! stepped again are decided here, once:
//!
//! * [`Sequence`] runs a decision's actions in order. A guard that does not succeed skips the
//!   rest. The first slow action hands it and everything after it to one background task, unless
//!   a task already runs: then they are all skipped. A `Demote` cancels the running task first.
//! * [`Rounds`] steps the state machine again at once after peer probes or a refused guard, at
//!   most [`MAX_RESTEPS`] times per cycle.

use std::collections::VecDeque;

use crate::{Action, ActionKind, Outcome, OutcomeResult, MAX_RESTEPS};

/// What the pump must do next for a [`Sequence`].
// Handed out one at a time and matched at once; boxing the action would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Cancel the running background task (a `Demote` needs the database), then call
    /// [`Sequence::cancelled`] with when it had started.
    CancelTask,
    /// Perform this action now and report how it ended with [`Sequence::report`].
    Run(Action),
    /// Start one background task that runs these actions, in order, with
    /// [`Sequence::background`]; its outcomes come back when it ends.
    Spawn(Vec<Action>),
    /// Nothing is left.
    Done,
}

/// One decision's actions being carried out, with the outcomes so far.
#[derive(Debug)]
pub struct Sequence {
    actions: VecDeque<Action>,
    /// The action handed out by the last [`Next::Run`], awaiting its report.
    running: Option<(ActionKind, u64)>,
    /// A guard failed: everything after it is skipped.
    skipping: bool,
    /// Slow actions go to a background task (foreground), or run inline (background).
    spawn_slow: bool,
    /// A background task runs (foreground only).
    task_running: bool,
    /// The task must be cancelled before anything else.
    cancel: bool,
    outcomes: Vec<Outcome>,
}

impl Sequence {
    /// A decision's actions as the agent's loop runs them, with `task_running` telling whether a
    /// background task is still going.
    pub fn foreground(actions: Vec<Action>, task_running: bool) -> Sequence {
        let cancel = task_running && actions.iter().any(|a| a.kind() == ActionKind::Demote);
        Sequence {
            actions: actions.into(),
            running: None,
            skipping: false,
            spawn_slow: true,
            task_running,
            cancel,
            outcomes: Vec::new(),
        }
    }

    /// The actions of a background task: all of them inline, slow ones included.
    pub fn background(actions: Vec<Action>) -> Sequence {
        Sequence {
            actions: actions.into(),
            running: None,
            skipping: false,
            spawn_slow: false,
            task_running: false,
            cancel: false,
            outcomes: Vec::new(),
        }
    }

    /// The next thing to do, at `now` (monotonic ms, stamped on outcomes as their start).
    pub fn next(&mut self, now: u64) -> Next {
        assert!(self.running.is_none(), "report the running action first");
        if self.cancel {
            self.cancel = false;
            return Next::CancelTask;
        }
        while let Some(action) = self.actions.pop_front() {
            let kind = action.kind();
            if self.skipping {
                self.skip(kind, now);
                continue;
            }
            if self.spawn_slow && kind.is_slow() {
                if self.task_running {
                    // One task at a time: this slow action and all after it wait for a later
                    // decision.
                    self.skip(kind, now);
                    while let Some(rest) = self.actions.pop_front() {
                        self.skip(rest.kind(), now);
                    }
                    return Next::Done;
                }
                let mut all = vec![action];
                all.extend(self.actions.drain(..));
                return Next::Spawn(all);
            }
            self.running = Some((kind, now));
            return Next::Run(action);
        }
        Next::Done
    }

    /// How the action from the last [`Next::Run`] ended.
    pub fn report(&mut self, result: OutcomeResult) {
        let (kind, started_at) = self.running.take().expect("no action is running");
        if kind.is_guard() && result != OutcomeResult::Done {
            self.skipping = true;
        }
        self.outcomes.push(Outcome {
            kind,
            result,
            started_at,
        });
    }

    /// The running task of `kind`, started at `since`, was cancelled as [`Next::CancelTask`] asked.
    pub fn cancelled(&mut self, kind: ActionKind, since: u64) {
        self.task_running = false;
        self.outcomes.push(Outcome {
            kind,
            result: OutcomeResult::Failed("cancelled to demote".into()),
            started_at: since,
        });
    }

    /// The outcomes so far (for the next observation).
    pub fn into_outcomes(self) -> Vec<Outcome> {
        self.outcomes
    }

    fn skip(&mut self, kind: ActionKind, now: u64) {
        self.outcomes.push(Outcome {
            kind,
            result: OutcomeResult::Skipped,
            started_at: now,
        });
    }
}

/// The steps of one cycle: whether to step again at once.
#[derive(Debug, Default)]
pub struct Rounds {
    done: usize,
}

impl Rounds {
    /// A fresh cycle.
    pub fn new() -> Rounds {
        Rounds::default()
    }

    /// After a decision was carried out: step again now when peers were probed for it or a guard
    /// was refused ([`needs_restep`](crate::needs_restep)), unless the cycle's re-steps are used up.
    pub fn again(&mut self, probed: bool, outcomes: &[Outcome]) -> bool {
        if self.done >= MAX_RESTEPS || !(probed || crate::needs_restep(outcomes)) {
            return false;
        }
        self.done += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StartRole, StopMode};

    fn drain(seq: &mut Sequence, results: &mut Vec<OutcomeResult>) -> Vec<String> {
        let mut trace = Vec::new();
        loop {
            match seq.next(7) {
                Next::Done => return trace,
                Next::CancelTask => {
                    trace.push("cancel".into());
                    seq.cancelled(ActionKind::Start, 1);
                }
                Next::Spawn(all) => {
                    let kinds: Vec<String> =
                        all.iter().map(|a| format!("{:?}", a.kind())).collect();
                    trace.push(format!("spawn[{}]", kinds.join(",")));
                    return trace;
                }
                Next::Run(a) => {
                    trace.push(format!("{:?}", a.kind()));
                    seq.report(if results.is_empty() {
                        OutcomeResult::Done
                    } else {
                        results.remove(0)
                    });
                }
            }
        }
    }

    #[test]
    fn quick_actions_run_in_order_then_the_slow_tail_is_spawned() {
        let mut seq = Sequence::foreground(
            vec![
                Action::RenewLeader,
                Action::Start(StartRole::Primary),
                Action::ReleaseLeader,
            ],
            false,
        );
        let trace = drain(&mut seq, &mut Vec::new());
        assert_eq!(trace, ["RenewLeader", "spawn[Start,ReleaseLeader]"]);
    }

    #[test]
    fn a_refused_guard_skips_the_rest_and_calls_for_a_restep() {
        let mut seq = Sequence::foreground(
            vec![
                Action::AcquireLeader,
                Action::ClearFailover { version: 1 },
                Action::Promote {
                    timeline: 2,
                    planned: false,
                },
            ],
            false,
        );
        let trace = drain(&mut seq, &mut vec![OutcomeResult::Lost]);
        assert_eq!(trace, ["AcquireLeader"]);
        let outcomes = seq.into_outcomes();
        let results: Vec<_> = outcomes.iter().map(|o| o.result.clone()).collect();
        assert_eq!(
            results,
            [
                OutcomeResult::Lost,
                OutcomeResult::Skipped,
                OutcomeResult::Skipped
            ]
        );
        let mut rounds = Rounds::new();
        assert!(rounds.again(false, &outcomes));
    }

    #[test]
    fn a_slow_action_while_a_task_runs_is_skipped_with_what_follows() {
        let mut seq = Sequence::foreground(
            vec![Action::RenewLeader, Action::Restart, Action::Reload],
            true,
        );
        let trace = drain(&mut seq, &mut Vec::new());
        assert_eq!(trace, ["RenewLeader"]);
        let skipped: Vec<_> = seq
            .into_outcomes()
            .into_iter()
            .filter(|o| o.result == OutcomeResult::Skipped)
            .map(|o| o.kind)
            .collect();
        assert_eq!(skipped, [ActionKind::Restart, ActionKind::Reload]);
    }

    #[test]
    fn a_demote_cancels_the_running_task_first() {
        let mut seq = Sequence::foreground(vec![Action::Demote(StopMode::Immediate)], true);
        let trace = drain(&mut seq, &mut Vec::new());
        assert_eq!(trace, ["cancel", "spawn[Demote]"]);
    }

    #[test]
    fn a_background_task_runs_slow_actions_inline_and_honours_guards() {
        let mut seq = Sequence::background(vec![
            Action::Stop(StopMode::Immediate),
            Action::ReleaseLeader,
        ]);
        let trace = drain(
            &mut seq,
            &mut vec![OutcomeResult::Failed("still running".into())],
        );
        assert_eq!(trace, ["Stop"], "a failed stop keeps the lock");
    }

    #[test]
    fn rounds_are_bounded() {
        let lost = [Outcome {
            kind: ActionKind::RenewLeader,
            result: OutcomeResult::Lost,
            started_at: 0,
        }];
        let mut rounds = Rounds::new();
        let steps = (0..10).take_while(|_| rounds.again(false, &lost)).count();
        assert_eq!(steps, MAX_RESTEPS);
        assert!(!Rounds::new().again(false, &[]));
        assert!(Rounds::new().again(true, &[]));
    }
}
