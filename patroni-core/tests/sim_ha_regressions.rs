#![cfg(feature = "sim")]
//! Minimal schedules the simulator found against `Ha`, kept as regression tests.

use patroni_core::sim::{check, invariants, Fault, FaultSchedule, SimConfig, World};
use patroni_core::SynchronousMode;

/// A former primary demoted while the member it once followed leads again must follow it.
///
/// Found by `sim_invariants` (seed 921971472681546990: DCS outage, then a switchover): the
/// state machine remembered "following X" from before it was primary and, when X led again,
/// never issued `Follow`, so the standby stayed without an upstream forever.
#[test]
fn switchover_back_leaves_every_standby_streaming() {
    let cfg = SimConfig::three_nodes(31);
    let (warmup, loop_ms) = (cfg.warmup_ms, cfg.dynamic.loop_wait_ms());
    let mut w = World::new(cfg, &FaultSchedule::none(), invariants::safety());
    w.run_until(warmup);
    let p = w.writable()[0];
    let a = (p + 1) % 3;
    w.inject(Fault::Switchover { candidate: Some(a) });
    let t = w.now();
    w.run_until_cond(t + 6 * loop_ms, |w| w.writable() == vec![a])
        .unwrap_or_else(|| panic!("first switchover failed:\n{}", w.trace()));
    let t = w.now();
    w.run_until(t + 2 * loop_ms);
    w.inject(Fault::Switchover { candidate: Some(p) });
    let t = w.now();
    w.run_until_cond(t + 6 * loop_ms, |w| w.writable() == vec![p])
        .unwrap_or_else(|| panic!("switchover back failed:\n{}", w.trace()));
    let t = w.now();
    let leader = w.names()[p].clone();
    let streaming = w.run_until_cond(t + 4 * loop_ms, |w| {
        (0..3).filter(|&i| i != p).all(|i| {
            let db = &w.dbs()[i];
            db.is_running_standby()
                && db.streaming
                && db.upstream.as_deref() == Some(leader.as_str())
        })
    });
    assert!(
        streaming.is_some(),
        "a standby does not stream from {leader}:\n{}",
        w.trace().tail(40)
    );
    assert!(w.violation().is_none(), "{}", w.trace());
}

/// In synchronous mode a standby may be recorded in `/sync` only once it holds every write the
/// primary acknowledged; otherwise promoting it loses acknowledged writes.
///
/// Found by `sim_invariants` (sync mode): after a failover the new primary acknowledges writes
/// asynchronously until it picks a synchronous standby, then names a standby 4 MiB behind in
/// `synchronous_standby_names` and records it in `/sync` at once; when that primary loses the
/// DCS, the lagging standby is promoted without the acknowledged writes.
#[test]
fn sync_standby_is_recorded_only_once_caught_up() {
    let mut cfg = SimConfig::three_nodes(2150658261075272723);
    cfg.dynamic.synchronous_mode = SynchronousMode::On;
    let schedule = FaultSchedule::none()
        .at(
            0,
            Fault::CutDcs {
                node: 0,
                for_ms: 33_262,
            },
        )
        .at(
            3_001,
            Fault::Lag {
                node: 2,
                bytes: 4 * 1024 * 1024,
            },
        )
        .at(
            43_477,
            Fault::CutDcs {
                node: 1,
                for_ms: 30_213,
            },
        );
    if let Err(failure) = check(&cfg, &schedule) {
        panic!("{failure}");
    }
}

/// A manual failover must not promote a member lagging past `maximum_lag_on_failover`.
///
/// Found by `sim_invariants` with `PATRONI_SIM_CASES=10000`: while paused, the named
/// candidate's database is down and falls 1 MiB behind; the primary's node is then lost and
/// the candidate, restarted as a standby, wins the race through the pending `/failover` key and
/// is promoted 1,064,960 bytes behind `/status`. Python Patroni lets a manual failover override
/// the lag check; here the limit holds for named candidates too.
#[test]
fn manual_failover_does_not_promote_a_lagging_candidate() {
    let cfg = SimConfig::three_nodes(11687414933470229740);
    let schedule = FaultSchedule::none()
        .at(4_641, Fault::Pause)
        .at(
            30_816,
            Fault::CrashDb {
                node: 1,
                restartable: true,
            },
        )
        .at(84_808, Fault::Failover { candidate: 1 })
        .at(97_399, Fault::LoseNode { node: 0 });
    if let Err(failure) = check(&cfg, &schedule) {
        panic!("{failure}");
    }
}
