#![cfg(feature = "sim")]
//! Fencing. The residual risk, documented by a test that must *find* it: with every kind of
//! fencing off (`watchdog.mode: off`), a stalled primary agent whose database keeps running lets a
//! second primary appear once its lease expires. With the fence process (the daemon's default) or
//! a hardware watchdog the same stall stays safe.

use patroni_core::instant::{self, millis};
use patroni_core::sim::{
    campaign, cases, check, invariants, Fault, FaultMix, FaultSchedule, SimConfig, World,
};

const STALLS: FaultMix = FaultMix {
    crashes: false,
    node_loss: false,
    partitions: false,
    stalls: true,
    operator: false,
    lag: false,
    sync_count: false,
};

fn stall_the_primary(fence: bool, watchdog: bool) -> World {
    let cfg = SimConfig {
        fence,
        watchdog,
        ..SimConfig::three_nodes(21)
    };
    let (warmup, ttl) = (millis(cfg.warmup), cfg.dynamic.ttl_duration());
    let mut w = World::new(cfg, &FaultSchedule::none(), invariants::safety());
    w.run_until(warmup);
    let p = w.writable()[0];
    w.inject(Fault::Stall {
        node: p,
        lasting: 2 * ttl,
    });
    let now = w.now();
    w.run_until(instant::after(now, 3 * ttl));
    w
}

#[test]
fn without_any_fencing_a_stalled_primary_gives_two_writable_primaries() {
    let w = stall_the_primary(false, false);
    let v = w
        .violation()
        .unwrap_or_else(|| panic!("expected a split brain:\n{}", w.trace()));
    assert_eq!(v.invariant, "single_primary", "{v}");
    println!("found as expected: {v}");
}

#[test]
fn with_the_fence_the_stalled_primary_is_stopped_in_time() {
    let w = stall_the_primary(true, false);
    assert!(w.violation().is_none(), "{}", w.trace());
    assert!(
        w.trace().lines.iter().any(|l| l.what.contains("FENCE")),
        "the fence must have fired:\n{}",
        w.trace()
    );
    assert_eq!(w.writable().len(), 1);
}

#[test]
fn with_watchdog_the_stalled_primary_is_reset_in_time() {
    let w = stall_the_primary(false, true);
    assert!(w.violation().is_none(), "{}", w.trace());
    assert!(
        w.trace().lines.iter().any(|l| l.what.contains("WATCHDOG")),
        "the watchdog must have fired:\n{}",
        w.trace()
    );
    assert_eq!(w.writable().len(), 1);
}

#[test]
fn random_stalls_find_the_split_brain_without_any_fencing() {
    let cfg = SimConfig {
        fence: false,
        watchdog: false,
        ..SimConfig::three_nodes(22)
    };
    let failure =
        campaign(&cfg, 200, 3, STALLS).expect_err("stalls without any fencing must break safety");
    assert_eq!(failure.violation.invariant, "single_primary", "{failure}");
    // Shrinking leaves a single long stall, and it replays.
    assert_eq!(failure.schedule.faults.len(), 1, "{failure}");
    assert!(
        matches!(failure.schedule.faults[0].fault, Fault::Stall { .. }),
        "{failure}"
    );
    let replay = check(
        &SimConfig {
            seed: failure.seed,
            ..cfg
        },
        &failure.schedule,
    );
    assert!(replay.is_err(), "the minimal schedule must replay");
    println!("{failure}");
}

#[test]
fn random_stalls_are_safe_with_the_fence() {
    let stats = campaign(&SimConfig::three_nodes(23), cases(200), 4, STALLS)
        .unwrap_or_else(|f| panic!("{f}"));
    assert!(stats.cases >= 200);
}

#[test]
fn random_stalls_are_safe_with_a_hardware_watchdog() {
    let cfg = SimConfig {
        fence: false,
        watchdog: true,
        ..SimConfig::three_nodes(24)
    };
    let stats = campaign(&cfg, cases(200), 4, STALLS).unwrap_or_else(|f| panic!("{f}"));
    assert!(stats.cases >= 200);
}
