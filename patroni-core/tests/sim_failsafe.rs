#![cfg(feature = "sim")]
//! Failsafe mode in the simulator: with `failsafe_mode` on, an etcd outage alone never demotes
//! the primary (however long it lasts), and once one member is also cut off the primary demotes;
//! the safety invariants (never two writable primaries) hold after every event throughout.

use std::time::Duration;

use patroni_core::instant::millis;
use patroni_core::sim::invariants::{self, Invariant, Snapshot};
use patroni_core::sim::{cases, Fault, FaultSchedule, Scheduled, SimConfig, World};

/// The writable set after warm-up must stay exactly the warm-up primary.
#[derive(Debug, Default)]
struct NoDemotion {
    after_ms: u64,
    primary: Option<usize>,
}

impl Invariant for NoDemotion {
    fn name(&self) -> &'static str {
        "outage_never_demotes"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        if s.now < self.after_ms {
            return Ok(());
        }
        let w = s.writable();
        match self.primary {
            None if w.len() == 1 => self.primary = Some(w[0]),
            None => return Err(format!("no single primary after warm-up: {w:?}")),
            Some(p) if w != [p] => {
                return Err(format!(
                    "the primary {} stopped accepting writes (writable now: {w:?})",
                    s.names[p]
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }
}

fn failsafe_cfg(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::three_nodes(seed);
    cfg.dynamic.failsafe_mode = true;
    cfg
}

fn world(cfg: SimConfig, faults: Vec<Scheduled>, guard: bool) -> World {
    let mut checks = invariants::safety();
    if guard {
        checks.push(Box::new(NoDemotion {
            after_ms: millis(cfg.warmup),
            primary: None,
        }));
    }
    World::new(cfg, &FaultSchedule { faults }, checks)
}

/// Seeds × outage starts and lengths (5 s to 5 min), each with the whole run checked: the
/// primary keeps accepting writes during and after the outage, and nobody else does.
#[test]
fn an_etcd_outage_alone_never_demotes_with_failsafe_on() {
    let n = u64::from(cases(300));
    for seed in 0..n {
        let cfg = failsafe_cfg(1_000 + seed);
        let start = (seed * 7_919) % 40_000;
        let length = 5_000 + (seed * 104_729) % 295_000;
        let end = millis(cfg.warmup) + start + length + 120_000;
        let mut w = world(
            cfg,
            vec![Scheduled {
                at_ms: start,
                fault: Fault::DcsOutage {
                    lasting: Duration::from_millis(length),
                },
            }],
            true,
        );
        if let Some(v) = w.run_until(end) {
            panic!(
                "seed {}: outage at +{start} ms for {length} ms: {v}\n{}",
                1_000 + seed,
                w.trace().tail(60)
            );
        }
    }
}

/// The same outage with failsafe off demotes the primary (what the test above guards against).
#[test]
fn without_failsafe_the_same_outage_demotes() {
    let mut cfg = failsafe_cfg(7);
    cfg.dynamic.failsafe_mode = false;
    let end = millis(cfg.warmup) + 120_000;
    let faults = vec![Scheduled {
        at_ms: 1_000,
        fault: Fault::DcsOutage {
            lasting: Duration::from_secs(60),
        },
    }];
    let mut w = world(cfg, faults, true);
    let v = w.run_until(end).expect("the primary should have demoted");
    assert_eq!(v.invariant, "outage_never_demotes", "{v}");
}

/// During the outage one replica's agent also stops answering: the primary can no longer hear
/// from every member and demotes, and no other member is promoted while etcd is down.
#[test]
fn a_member_also_cut_during_the_outage_makes_the_primary_demote() {
    let cfg = failsafe_cfg(9);
    let warmup = millis(cfg.warmup);
    let mut w = world(cfg, Vec::new(), false);
    w.run_until(warmup);
    let p = w.writable()[0];
    let r = (p + 1) % 3;
    w.inject(Fault::DcsOutage {
        lasting: Duration::from_secs(120),
    });
    w.run_until(warmup + 60_000);
    assert_eq!(w.writable(), vec![p], "{}", w.trace().tail(40));
    w.inject(Fault::Stall {
        node: r,
        lasting: Duration::from_secs(30),
    });
    w.run_until(warmup + 90_000);
    assert!(
        w.writable().is_empty(),
        "the primary kept running without every member's confirmation:\n{}",
        w.trace().tail(40)
    );
    w.run_until(warmup + 400_000);
    assert!(w.violation().is_none(), "{}", w.trace().tail(60));
    assert_eq!(w.writable().len(), 1, "{}", w.trace().tail(40));
}
