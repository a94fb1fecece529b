#![cfg(feature = "sim")]
//! The invariant suite under random fault schedules (proptest, shrinking to a minimal schedule).
//!
//! CI runs a bounded number of schedules; `PATRONI_SIM_CASES=N` raises each campaign to N.

use patroni_core::sim::{campaign, cases, topology_campaign, FaultMix, SimConfig};
use patroni_core::{SynchronousMode, Tags};

fn run(name: &str, cfg: SimConfig, default_cases: u32, mix: FaultMix) {
    let n = cases(default_cases);
    let started = std::time::Instant::now();
    match campaign(&cfg, n, 6, mix) {
        Ok(stats) => println!(
            "{name}: {} schedules, {:.0} simulated s, {} promotions, {:.1}s wall",
            stats.cases,
            stats.simulated.as_secs_f64(),
            stats.promotions,
            started.elapsed().as_secs_f64()
        ),
        Err(failure) => panic!("{name}: {failure}"),
    }
}

#[test]
fn async_cluster_under_all_faults() {
    run("async/all", SimConfig::three_nodes(1), 600, FaultMix::ALL);
}

#[test]
fn sync_cluster_under_all_faults() {
    let mut cfg = SimConfig::three_nodes(2);
    cfg.dynamic.synchronous_mode = SynchronousMode::On;
    run("sync/all", cfg, 600, FaultMix::ALL);
}

#[test]
fn nofailover_member_is_never_promoted() {
    let mut cfg = SimConfig::three_nodes(3);
    cfg.nodes[2].tags = Tags {
        nofailover: true,
        ..Tags::default()
    };
    run("nofailover", cfg, 400, FaultMix::ALL);
}

#[test]
fn partitions_and_stalls_only() {
    let mix = FaultMix {
        crashes: false,
        node_loss: false,
        partitions: true,
        stalls: true,
        operator: false,
        lag: false,
        sync_count: false,
    };
    run("partitions+stalls", SimConfig::three_nodes(4), 400, mix);
}

/// Reads and writes no longer land in one instant: two agents can decide from the same view and
/// one loses its compare-and-swap, as on a real network (50 ms between read and write).
#[test]
fn async_cluster_with_a_dcs_round_trip() {
    let mut cfg = SimConfig::three_nodes(5);
    cfg.dcs_rtt = std::time::Duration::from_millis(50);
    run("async/all/rtt50", cfg, 400, FaultMix::ALL);
}

/// Failsafe mode on: DCS outages, agent <-> DCS and member <-> member partitions, stalls and
/// killed agents, crashes and operator requests, in any mix. A primary rides an outage out on
/// its members' confirmations; never two writable primaries, including partitions that split
/// the members during an outage.
#[test]
fn failsafe_mode_under_partitions_and_outages() {
    let mut cfg = SimConfig::three_nodes(9);
    cfg.dynamic.failsafe_mode = true;
    run("failsafe/all", cfg, 2000, FaultMix::ALL);
}

fn run_topologies(name: &str, cfg: SimConfig, default_cases: u32) {
    let n = cases(default_cases);
    let started = std::time::Instant::now();
    match topology_campaign(&cfg, n, 6, FaultMix::ALL) {
        Ok(stats) => println!(
            "{name}: {} schedules, {:.0} simulated s, {} promotions, {:.1}s wall",
            stats.cases,
            stats.simulated.as_secs_f64(),
            stats.promotions,
            started.elapsed().as_secs_f64()
        ),
        Err(failure) => panic!("{name}: {failure}"),
    }
}

/// Each case draws `replicatefrom` cascades (chains, loops), `nosync` and `nostream` tags.
#[test]
fn cascading_topologies_async() {
    run_topologies("topology/async", SimConfig::three_nodes(6), 300);
}

/// The same in synchronous mode: a cascade member is never counted as a synchronous standby.
#[test]
fn cascading_topologies_sync() {
    let mut cfg = SimConfig::three_nodes(7);
    cfg.dynamic.synchronous_mode = SynchronousMode::On;
    run_topologies("topology/sync", cfg, 300);
}

/// Four nodes, so chains of two cascades occur.
#[test]
fn cascading_topologies_four_nodes() {
    let mut cfg = SimConfig::three_nodes(8);
    cfg.nodes.push(patroni_core::sim::NodeSpec::new("node3"));
    run_topologies("topology/4 nodes", cfg, 200);
}

/// Quorum commit: `ANY n (...)` and the `/sync` quorum move in step, and a promotion needs
/// enough votes; no acknowledged write may be lost (invariant `no_lost_writes`).
#[test]
fn quorum_cluster_under_all_faults() {
    let mut cfg = SimConfig::three_nodes(9);
    cfg.dynamic.synchronous_mode = SynchronousMode::Quorum;
    let mix = FaultMix {
        sync_count: true,
        ..FaultMix::ALL
    };
    run("quorum/all", cfg, 1000, mix);
}

/// Four nodes, starting with two synchronous, while operators edit `synchronous_node_count`
/// (1 to 3) among the crashes, partitions and node losses that change the member set.
#[test]
fn quorum_four_nodes_two_synchronous() {
    let mut cfg = SimConfig::three_nodes(10);
    cfg.nodes.push(patroni_core::sim::NodeSpec::new("node3"));
    cfg.dynamic.synchronous_mode = SynchronousMode::Quorum;
    cfg.dynamic.synchronous_node_count = 2;
    let mix = FaultMix {
        sync_count: true,
        ..FaultMix::ALL
    };
    run("quorum/4 nodes/sync count edits", cfg, 1000, mix);
}

/// A standby cluster of a remote primary: nobody takes writes while `standby_cluster` is set,
/// a standby leader (and only it) streams from the remote once faults stop, the others follow
/// it; two runs in three the operator promotes the cluster during the faults, after which the
/// usual invariants hold (one writable primary).
#[test]
fn standby_cluster_under_all_faults() {
    run(
        "standby cluster/all",
        SimConfig::standby_cluster(11),
        2000,
        FaultMix::ALL,
    );
}
