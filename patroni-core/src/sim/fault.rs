//! Faults and operator requests injected at chosen virtual times.

use std::fmt;
use std::time::Duration;

use crate::instant;

/// One thing that goes wrong (or one operator request), aimed at nodes by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The node's database process dies; with `restartable: false` it can never start again.
    CrashDb {
        /// Node index.
        node: usize,
        /// Whether a start can succeed afterwards.
        restartable: bool,
    },
    /// The node's data directory turns unreadable under its running server, for good: the
    /// server keeps accepting writes until it is stopped, and can never start again.
    UnreadableDataDir {
        /// Node index.
        node: usize,
    },
    /// The whole node (agent and database) is gone for the rest of the run.
    LoseNode {
        /// Node index.
        node: usize,
    },
    /// The link between the node's agent and the DCS is cut for a while.
    CutDcs {
        /// Node index.
        node: usize,
        /// How long.
        lasting: Duration,
    },
    /// Two nodes cannot reach each other (REST and replication) for a while.
    CutPeers {
        /// One node.
        a: usize,
        /// The other.
        b: usize,
        /// How long.
        lasting: Duration,
    },
    /// No agent can reach the DCS for a while; leases keep running out.
    DcsOutage {
        /// How long.
        lasting: Duration,
    },
    /// The agent freezes (GC pause, swapped out, SIGSTOP); its database keeps running.
    Stall {
        /// Node index.
        node: usize,
        /// How long.
        lasting: Duration,
    },
    /// The agent is killed (SIGKILL, OOM) with its database left running, and started again,
    /// with a fresh state machine, after `lasting`; its fence keeps the deadline it last had.
    KillAgent {
        /// Node index.
        node: usize,
        /// How long until it is started again.
        lasting: Duration,
    },
    /// The DCS applies this agent's writes but the replies are lost: each write looks timed out
    /// to the agent ("did my compare-and-swap succeed?").
    LoseReplies {
        /// Node index.
        node: usize,
        /// How long.
        lasting: Duration,
    },
    /// The standby's replication falls behind its upstream by this many bytes from now on.
    Lag {
        /// Node index.
        node: usize,
        /// Bytes.
        bytes: u64,
    },
    /// `patronictl switchover`: the current leader hands over, to `candidate` or the healthiest.
    Switchover {
        /// Target node index.
        candidate: Option<usize>,
    },
    /// `patronictl failover --candidate`: a manual failover to this node.
    Failover {
        /// Target node index.
        candidate: usize,
    },
    /// `patronictl edit-config -s ttl=N`: a new lease TTL (loop_wait and retry_timeout follow
    /// so the timing rule holds) while the cluster runs.
    SetTtl {
        /// Seconds.
        ttl: u64,
    },
    /// `patronictl edit-config -s synchronous_node_count=N` while the cluster runs.
    SetSyncCount {
        /// The new `synchronous_node_count`.
        count: u32,
    },
    /// `patronictl pause`: maintenance mode on.
    Pause,
    /// `patronictl resume`: maintenance mode off.
    Resume,
}

impl Fault {
    /// Whether this fault leaves a node broken for good (no later healing brings it back).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Fault::LoseNode { .. }
                | Fault::UnreadableDataDir { .. }
                | Fault::CrashDb {
                    restartable: false,
                    ..
                }
        )
    }

    /// How long a fault that heals by itself lasts; `None` for the others.
    pub fn lasting(&self) -> Option<Duration> {
        match *self {
            Fault::CutDcs { lasting, .. }
            | Fault::CutPeers { lasting, .. }
            | Fault::DcsOutage { lasting }
            | Fault::Stall { lasting, .. }
            | Fault::KillAgent { lasting, .. }
            | Fault::LoseReplies { lasting, .. } => Some(lasting),
            _ => None,
        }
    }

    /// The node this fault breaks for good, if it does.
    pub fn broken_node(&self) -> Option<usize> {
        match self {
            Fault::LoseNode { node } | Fault::UnreadableDataDir { node } => Some(*node),
            Fault::CrashDb {
                node,
                restartable: false,
            } => Some(*node),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::CrashDb { node, restartable } => write!(
                f,
                "crash database of node{node}{}",
                if *restartable {
                    ""
                } else {
                    " (cannot start again)"
                }
            ),
            Fault::LoseNode { node } => write!(f, "lose node{node}"),
            Fault::UnreadableDataDir { node } => {
                write!(f, "data directory of node{node} turns unreadable")
            }
            Fault::CutDcs { node, lasting } => {
                write!(f, "cut node{node} <-> DCS for {}", Ms(lasting))
            }
            Fault::CutPeers { a, b, lasting } => {
                write!(f, "cut node{a} <-> node{b} for {}", Ms(lasting))
            }
            Fault::DcsOutage { lasting } => write!(f, "DCS outage for {}", Ms(lasting)),
            Fault::Stall { node, lasting } => {
                write!(f, "stall agent node{node} for {}", Ms(lasting))
            }
            Fault::KillAgent { node, lasting } => write!(
                f,
                "kill agent node{node} (database left running) for {}",
                Ms(lasting)
            ),
            Fault::LoseReplies { node, lasting } => {
                write!(f, "lose DCS replies to node{node} for {}", Ms(lasting))
            }
            Fault::Lag { node, bytes } => write!(f, "node{node} replication lags {bytes} bytes"),
            Fault::Switchover { candidate: Some(c) } => write!(f, "switchover to node{c}"),
            Fault::Switchover { candidate: None } => write!(f, "switchover to the healthiest"),
            Fault::Failover { candidate } => write!(f, "manual failover to node{candidate}"),
            Fault::SetTtl { ttl } => write!(f, "edit-config ttl={ttl}"),
            Fault::SetSyncCount { count } => {
                write!(f, "edit-config synchronous_node_count={count}")
            }
            Fault::Pause => write!(f, "pause"),
            Fault::Resume => write!(f, "resume"),
        }
    }
}

/// A fault at a virtual time, counted from the end of the cluster's warm-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Milliseconds after warm-up.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// The faults of one run, in time order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultSchedule {
    /// Scheduled faults; sorted by the world before use.
    pub faults: Vec<Scheduled>,
}

impl FaultSchedule {
    /// No faults: the cluster just runs.
    pub fn none() -> Self {
        FaultSchedule::default()
    }

    /// Appends `fault` at `at_ms` after warm-up (builder style, for named scenarios).
    pub fn at(mut self, at_ms: u64, fault: Fault) -> Self {
        self.faults.push(Scheduled { at_ms, fault });
        self
    }

    /// When the last fault's effect ends (its time plus how long it lasts), ms after warm-up.
    pub fn quiet_after(&self) -> u64 {
        self.faults
            .iter()
            .map(|s| instant::after(s.at_ms, s.fault.lasting().unwrap_or(Duration::ZERO)))
            .max()
            .unwrap_or(0)
    }
}

impl fmt::Display for FaultSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sorted: Vec<&Scheduled> = self.faults.iter().collect();
        sorted.sort_by_key(|s| s.at_ms);
        for s in sorted {
            writeln!(f, "  +{:>7} ms  {}", s.at_ms, s.fault)?;
        }
        Ok(())
    }
}

/// A length of time as the failure report shows it: whole milliseconds, the unit of the
/// schedule's times, so a reported fault reads the way it is written back into a test.
struct Ms<'a>(&'a Duration);

impl fmt::Display for Ms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", instant::millis(*self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failure report's schedule is what a regression test is written from: lengths stay in
    /// whole milliseconds, like the times, and the run heals once the longest fault is over.
    #[test]
    fn the_reported_schedule_reads_in_milliseconds() {
        let ms = Duration::from_millis;
        let schedule = FaultSchedule::none()
            .at(
                93_219,
                Fault::KillAgent {
                    node: 1,
                    lasting: ms(21_813),
                },
            )
            .at(
                0,
                Fault::CutDcs {
                    node: 0,
                    lasting: ms(54_984),
                },
            )
            .at(
                10,
                Fault::CutPeers {
                    a: 1,
                    b: 2,
                    lasting: Duration::from_secs(40),
                },
            )
            .at(20, Fault::DcsOutage { lasting: ms(1_500) })
            .at(
                30,
                Fault::Stall {
                    node: 2,
                    lasting: ms(45_190),
                },
            )
            .at(
                40,
                Fault::LoseReplies {
                    node: 0,
                    lasting: ms(999),
                },
            )
            .at(50, Fault::Pause);
        assert_eq!(
            schedule.to_string(),
            "  +      0 ms  cut node0 <-> DCS for 54984 ms\n\
             \x20 +     10 ms  cut node1 <-> node2 for 40000 ms\n\
             \x20 +     20 ms  DCS outage for 1500 ms\n\
             \x20 +     30 ms  stall agent node2 for 45190 ms\n\
             \x20 +     40 ms  lose DCS replies to node0 for 999 ms\n\
             \x20 +     50 ms  pause\n\
             \x20 +  93219 ms  kill agent node1 (database left running) for 21813 ms\n"
        );
        assert_eq!(schedule.quiet_after(), 93_219 + 21_813);
    }
}
