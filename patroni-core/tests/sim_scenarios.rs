#![cfg(feature = "sim")]
//! The four seed rules as named simulations, each asserting its outcome and its time bound,
//! with the safety invariants checked after every event throughout.

use patroni_core::instant::millis;
use patroni_core::sim::invariants;
use patroni_core::sim::{Fault, FaultSchedule, SimConfig, World};
use patroni_core::ActionKind;

/// A bootstrapped 3-node cluster after warm-up, and its primary's index.
fn warm(cfg: SimConfig) -> (World, usize) {
    let warmup = millis(cfg.warmup);
    let mut w = World::new(cfg, &FaultSchedule::none(), invariants::safety());
    w.run_until(warmup);
    let primaries = w.writable();
    assert_eq!(
        primaries.len(),
        1,
        "warm-up left {primaries:?}:\n{}",
        w.trace()
    );
    (w, primaries[0])
}

fn streaming_from(w: &World, standby: usize, primary: usize) -> bool {
    let db = &w.dbs()[standby];
    db.is_running_standby()
        && db.streaming
        && db.upstream.as_deref() == Some(w.names()[primary].as_str())
}

fn fail(w: &World, what: &str) -> ! {
    panic!("{what}\n{}", w.trace().tail(60))
}

#[test]
fn seed_rule_1_crashed_primary_restarts_in_place() {
    let cfg = SimConfig {
        dynamic: patroni_core::DynamicConfig::default(), // primary_start_timeout 300 s
        ..SimConfig::three_nodes(11)
    };
    let (loop_ms, start_ms) = (
        millis(cfg.dynamic.loop_wait_duration()),
        millis(cfg.timings.start),
    );
    let (mut w, p) = warm(cfg);
    let promotions = w.promotion_count();
    let crash = w.now();
    w.inject(Fault::CrashDb {
        node: p,
        restartable: true,
    });
    assert!(w.writable().is_empty());
    let bound = crash + loop_ms + start_ms + 1_000;
    let back = w
        .run_until_cond(bound, |w| w.writable() == vec![p])
        .unwrap_or_else(|| fail(&w, "the crashed primary did not restart in place in time"));
    assert_eq!(w.lock_holder().as_deref(), Some(w.names()[p].as_str()));
    // One start as primary, no promotion of anybody else.
    assert_eq!(w.promotion_count(), promotions + 1, "{}", w.trace());
    w.run_until(back + 3 * loop_ms);
    assert!(w.violation().is_none(), "{}", w.trace());
    assert_eq!(w.writable(), vec![p]);
    println!(
        "restart in place: writable again {} ms after the crash",
        back - crash
    );
}

#[test]
fn seed_rule_2_unstartable_primary_releases_and_the_healthiest_is_promoted() {
    let cfg = SimConfig::three_nodes(12);
    let d = cfg.dynamic.clone();
    let t = cfg.timings;
    let (mut w, p) = warm(cfg);
    let standbys: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    // One standby falls behind (still within maximum_lag_on_failover): the other is healthiest.
    let (behind, best) = (standbys[0], standbys[1]);
    w.inject(Fault::Lag {
        node: behind,
        bytes: 64 * 1024,
    });
    let t0 = w.now();
    w.run_until(t0 + 5_000);
    assert!(w.dbs()[best].wal > w.dbs()[behind].wal);
    let crash = w.now();
    w.inject(Fault::CrashDb {
        node: p,
        restartable: false,
    });
    // Detect (one loop), a failed start, release at once, race on the watch, promote: not the ttl.
    let bound =
        crash + 2 * millis(d.loop_wait_duration()) + millis(t.start) + millis(t.promote) + 1_000;
    assert!(
        bound - crash < millis(d.ttl_duration()) + millis(t.promote),
        "bound must beat the ttl path"
    );
    let done = w
        .run_until_cond(bound, |w| w.writable() == vec![best])
        .unwrap_or_else(|| fail(&w, "the healthiest standby was not promoted in time"));
    assert_eq!(w.lock_holder().as_deref(), Some(w.names()[best].as_str()));
    assert!(
        w.tasks_started()
            .iter()
            .any(|&(at, n, k)| at >= crash && n == p && k == ActionKind::Start),
        "the old primary must have tried to start first"
    );
    w.run_until(done + 2 * millis(d.loop_wait_duration()));
    assert!(w.violation().is_none(), "{}", w.trace());
    println!(
        "release and promote: {} promoted {} ms after the crash",
        w.names()[best],
        done - crash
    );
}

#[test]
fn seed_rule_3_crashed_standby_restarts_and_streams() {
    let cfg = SimConfig::three_nodes(13);
    let (loop_ms, start_ms) = (
        millis(cfg.dynamic.loop_wait_duration()),
        millis(cfg.timings.start),
    );
    let (mut w, p) = warm(cfg);
    let s = (p + 1) % 3;
    let crash = w.now();
    w.inject(Fault::CrashDb {
        node: s,
        restartable: true,
    });
    let bound = crash + loop_ms + start_ms + loop_ms + 1_000;
    let back = w
        .run_until_cond(bound, |w| streaming_from(w, s, p))
        .unwrap_or_else(|| fail(&w, "the crashed standby did not come back streaming"));
    assert_eq!(w.writable(), vec![p], "the primary must be untouched");
    assert!(w.violation().is_none(), "{}", w.trace());
    println!(
        "standby restart: streaming again {} ms after the crash",
        back - crash
    );
}

#[test]
fn seed_rule_4_diverged_former_primary_is_rebuilt_and_streams() {
    let cfg = SimConfig::three_nodes(14);
    let d = cfg.dynamic.clone();
    let t = cfg.timings;
    let (mut w, p) = warm(cfg);
    // Both standbys fall slightly behind, so the primary holds WAL nobody else received.
    for s in (0..3).filter(|&i| i != p) {
        w.inject(Fault::Lag {
            node: s,
            bytes: 48 * 1024,
        });
    }
    let t0 = w.now();
    w.run_until(t0 + 5_000);
    // The primary loses the DCS: it demotes, a standby is promoted on a new timeline.
    w.inject(Fault::CutDcs {
        node: p,
        lasting: d.ttl_duration() + 2 * d.loop_wait_duration(),
    });
    let cut = w.now();
    let promoted = w
        .run_until_cond(
            cut + millis(d.ttl_duration()) + 3 * millis(d.loop_wait_duration()),
            |w| w.writable().iter().any(|&n| n != p),
        )
        .unwrap_or_else(|| fail(&w, "no standby was promoted"));
    let new = w.writable()[0];
    for s in (0..3).filter(|&i| i != p) {
        w.inject(Fault::Lag { node: s, bytes: 0 });
    }
    // Once back, the former primary cannot follow (it has WAL the new timeline lacks): rebuild.
    let healed = cut + millis(d.ttl_duration()) + 2 * millis(d.loop_wait_duration());
    let bound =
        healed.max(promoted) + 3 * millis(d.loop_wait_duration()) + millis(t.rebuild) + 1_000;
    let done = w
        .run_until_cond(bound, |w| streaming_from(w, p, new))
        .unwrap_or_else(|| fail(&w, "the diverged former primary was not rebuilt in time"));
    assert!(
        w.tasks_started()
            .iter()
            .any(|&(at, n, k)| at >= cut && n == p && k == ActionKind::Rebuild),
        "streaming again must have taken a rebuild:\n{}",
        w.trace()
    );
    assert!(w.violation().is_none(), "{}", w.trace());
    println!(
        "standby rebuild: {} streaming from {} {} ms after the partition",
        w.names()[p],
        w.names()[new],
        done - cut
    );
}

#[test]
fn paused_cluster_leaves_a_crashed_primary_alone_until_resumed() {
    let cfg = SimConfig::three_nodes(15);
    let (loop_ms, start_ms) = (
        millis(cfg.dynamic.loop_wait_duration()),
        millis(cfg.timings.start),
    );
    let (mut w, p) = warm(cfg);
    w.inject(Fault::Pause);
    let t = w.now();
    w.run_until(t + 2 * loop_ms);
    let starts_before = w.tasks_started().len();
    w.inject(Fault::CrashDb {
        node: p,
        restartable: true,
    });
    let t = w.now();
    w.run_until(t + 6 * loop_ms);
    assert!(w.writable().is_empty(), "{}", w.trace().tail(30));
    assert_eq!(
        w.tasks_started().len(),
        starts_before,
        "no database action while paused:\n{}",
        w.trace().tail(30)
    );
    w.inject(Fault::Resume);
    let resumed = w.now();
    let back = w
        .run_until_cond(resumed + 2 * loop_ms + start_ms + 1_000, |w| {
            w.writable().len() == 1
        })
        .unwrap_or_else(|| fail(&w, "no primary after resume"));
    assert!(w.violation().is_none(), "{}", w.trace());
    println!("pause: primary writable {} ms after resume", back - resumed);
}
