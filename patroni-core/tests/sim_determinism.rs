#![cfg(feature = "sim")]
//! The simulator is deterministic: the same seed and schedule give the same timeline.

use std::time::Duration;

use patroni_core::sim::{check, simulate, Fault, FaultSchedule, SimConfig};

fn busy_schedule() -> FaultSchedule {
    FaultSchedule::none()
        .at(
            5_000,
            Fault::CutDcs {
                node: 0,
                lasting: Duration::from_millis(20_000),
            },
        )
        .at(
            40_000,
            Fault::CrashDb {
                node: 1,
                restartable: true,
            },
        )
        .at(
            60_000,
            Fault::Stall {
                node: 2,
                lasting: Duration::from_millis(15_000),
            },
        )
        .at(90_000, Fault::Switchover { candidate: None })
}

#[test]
fn quiet_cluster_bootstraps_and_stays_healthy() {
    let report =
        check(&SimConfig::three_nodes(1), &FaultSchedule::none()).unwrap_or_else(|f| panic!("{f}"));
    assert!(report.acked_writes > 100, "{}", report.trace);
    println!("{}", report.trace.tail(40));
}

#[test]
fn same_seed_same_timeline() {
    let cfg = SimConfig::three_nodes(42);
    let a = simulate(&cfg, &busy_schedule());
    let b = simulate(&cfg, &busy_schedule());
    assert!(!a.trace.lines.is_empty());
    assert_eq!(a.trace, b.trace, "same seed diverged");
    assert_eq!((a.events, a.acked_writes), (b.events, b.acked_writes));
    let c = simulate(&SimConfig::three_nodes(43), &busy_schedule());
    assert_ne!(
        a.trace, c.trace,
        "the seed must shape the run (loop phases, watch jitter)"
    );
}
