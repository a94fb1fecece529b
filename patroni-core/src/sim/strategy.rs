//! Proptest strategies for fault schedules: they shrink towards fewer, shorter, earlier faults.

use std::time::Duration;

use proptest::prelude::*;

use crate::sim::config::NodeSpec;
use crate::sim::fault::{Fault, FaultSchedule, Scheduled};
use crate::{instant, Tags};

/// Which kinds of faults a schedule may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultMix {
    /// Database crashes, restartable or not, and data directories turning unreadable.
    pub crashes: bool,
    /// Permanent node loss.
    pub node_loss: bool,
    /// Agent <-> DCS and agent <-> agent partitions, DCS outages, lost replies to applied writes.
    pub partitions: bool,
    /// Agent stalls, and agents killed and restarted with their database left running.
    pub stalls: bool,
    /// Switchover and failover requests, pause and resume, `ttl` edits.
    pub operator: bool,
    /// Replication lag on a standby.
    pub lag: bool,
    /// `synchronous_node_count` edits (1 to 3), for the quorum commit campaigns; the other
    /// mixes leave it out so their schedules stay as they were.
    pub sync_count: bool,
}

impl FaultMix {
    /// Every kind of fault but `synchronous_node_count` edits.
    pub const ALL: FaultMix = FaultMix {
        crashes: true,
        node_loss: true,
        partitions: true,
        stalls: true,
        operator: true,
        lag: true,
        sync_count: false,
    };
}

/// One fault aimed at one of `n` nodes, drawn from `mix`.
pub fn fault(n: usize, mix: FaultMix) -> BoxedStrategy<Fault> {
    // Whole milliseconds, shrinking towards one second.
    let d = || (1_000u64..60_000).prop_map(Duration::from_millis);
    let mut options: Vec<(u32, BoxedStrategy<Fault>)> = Vec::new();
    if mix.crashes {
        options.push((
            3,
            (0..n, prop::bool::weighted(0.8))
                .prop_map(|(node, restartable)| Fault::CrashDb { node, restartable })
                .boxed(),
        ));
    }
    if mix.node_loss {
        options.push((1, (0..n).prop_map(|node| Fault::LoseNode { node }).boxed()));
    }
    if mix.crashes {
        options.push((
            1,
            (0..n)
                .prop_map(|node| Fault::UnreadableDataDir { node })
                .boxed(),
        ));
    }
    if mix.partitions {
        options.push((
            3,
            (0..n, d())
                .prop_map(|(node, lasting)| Fault::CutDcs { node, lasting })
                .boxed(),
        ));
        options.push((
            2,
            (0..n, 1..n, d())
                .prop_map(move |(a, off, lasting)| Fault::CutPeers {
                    a,
                    b: (a + off) % n,
                    lasting,
                })
                .boxed(),
        ));
        options.push((
            1,
            d().prop_map(|lasting| Fault::DcsOutage { lasting }).boxed(),
        ));
        options.push((
            1,
            (0..n, d())
                .prop_map(|(node, lasting)| Fault::LoseReplies { node, lasting })
                .boxed(),
        ));
    }
    if mix.stalls {
        options.push((
            2,
            (0..n, d())
                .prop_map(|(node, lasting)| Fault::Stall { node, lasting })
                .boxed(),
        ));
        options.push((
            1,
            (0..n, d())
                .prop_map(|(node, lasting)| Fault::KillAgent { node, lasting })
                .boxed(),
        ));
    }
    if mix.operator {
        options.push((
            2,
            prop::option::of(0..n)
                .prop_map(|candidate| Fault::Switchover { candidate })
                .boxed(),
        ));
        options.push((
            1,
            (0..n)
                .prop_map(|candidate| Fault::Failover { candidate })
                .boxed(),
        ));
        options.push((
            1,
            prop_oneof![Just(12u64), Just(20), Just(30), Just(60)]
                .prop_map(|ttl| Fault::SetTtl { ttl })
                .boxed(),
        ));
        options.push((1, Just(Fault::Pause).boxed()));
        options.push((1, Just(Fault::Resume).boxed()));
    }
    if mix.lag {
        options.push((
            1,
            (
                0..n,
                prop_oneof![Just(64 * 1024u64), Just(4 * 1024 * 1024u64)],
            )
                .prop_map(|(node, bytes)| Fault::Lag { node, bytes })
                .boxed(),
        ));
    }
    if mix.sync_count {
        options.push((
            2,
            (1..=3u32)
                .prop_map(|count| Fault::SetSyncCount { count })
                .boxed(),
        ));
    }
    assert!(
        !options.is_empty(),
        "a FaultMix must allow at least one kind of fault"
    );
    prop::strategy::Union::new_weighted(options).boxed()
}

/// Up to `max_faults` faults of `mix` within the first `within` after warm-up.
pub fn schedule(
    n: usize,
    max_faults: usize,
    within: Duration,
    mix: FaultMix,
) -> BoxedStrategy<FaultSchedule> {
    let within_ms = instant::millis(within);
    prop::collection::vec((0..within_ms, fault(n, mix)), 0..=max_faults)
        .prop_map(|v| FaultSchedule {
            faults: v
                .into_iter()
                .map(|(at_ms, fault)| Scheduled { at_ms, fault })
                .collect(),
        })
        .boxed()
}

/// `nodes` with replication tags drawn on top of their own: `replicatefrom` cascades (chains,
/// loops, a member naming itself), `nosync`, and now and then `nostream`.
pub fn topology(nodes: Vec<NodeSpec>) -> BoxedStrategy<Vec<NodeSpec>> {
    let n = nodes.len();
    let one = (
        prop::option::weighted(0.6, 0..n),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.1),
    );
    prop::collection::vec(one, n)
        .prop_map(move |drawn| {
            nodes
                .iter()
                .zip(drawn)
                .map(|(spec, (from, nosync, nostream))| NodeSpec {
                    name: spec.name.clone(),
                    tags: Tags {
                        replicatefrom: from
                            .map(|k| nodes[k].name.clone())
                            .or(spec.tags.replicatefrom.clone()),
                        nosync: spec.tags.nosync || nosync,
                        nostream: spec.tags.nostream || nostream,
                        ..spec.tags.clone()
                    },
                })
                .collect()
        })
        .boxed()
}
