#![cfg(feature = "sim")]
//! Quorum commit (`synchronous_mode: quorum`): schedules the simulator found, kept as regressions.

use patroni_core::sim::{check, Fault, FaultSchedule, NodeSpec, SimConfig};
use patroni_core::SynchronousMode;

/// A failover request naming a member that cannot gather its votes must not hold the others back.
///
/// Found by the quorum campaign (seed 5583210305428228036): four nodes, `ANY 2` of three
/// standbys; the named candidate lags, so a standby ahead of it refuses its vote and it never
/// promotes, while the others waited for it as for any healthy named candidate, leaving the
/// cluster without a primary. A candidate behind a member we reached now counts as one that
/// cannot win.
#[test]
fn failover_to_a_lagging_quorum_member_does_not_stall_the_cluster() {
    let mut cfg = SimConfig::three_nodes(5583210305428228036);
    cfg.nodes.push(NodeSpec::new("node3"));
    cfg.dynamic.synchronous_mode = SynchronousMode::Quorum;
    cfg.dynamic.synchronous_node_count = 2;
    let schedule = FaultSchedule::none()
        .at(
            0,
            Fault::Lag {
                node: 1,
                bytes: 64 * 1024,
            },
        )
        .at(0, Fault::Failover { candidate: 1 });
    if let Err(failure) = check(&cfg, &schedule) {
        panic!("{failure}");
    }
}
