#![cfg(feature = "sim")]
//! Minimal schedules the simulator found against `Ha`, kept as regression tests.

use std::time::Duration;

use patroni_core::instant::millis;
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
    let (warmup, loop_ms) = (millis(cfg.warmup), millis(cfg.dynamic.loop_wait_duration()));
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
                lasting: Duration::from_millis(33_262),
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
                lasting: Duration::from_millis(30_213),
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

fn cascade(cfg: &mut SimConfig, from: usize, to: usize) {
    cfg.nodes[from].tags.replicatefrom = Some(cfg.nodes[to].name.clone());
}

/// A standby whose `replicatefrom` member is tagged `nostream` follows the leader.
///
/// Found by `sim_invariants` topology campaigns with no fault at all (seed 8595916140586816254,
/// four nodes; seed 9803262723691692521, three): the member has no stream to pass on, so the
/// cascading standby, ahead of it, was rebuilt from the leader and pointed back at it every
/// cycle, never streaming.
#[test]
fn a_cascade_through_a_nostream_member_follows_the_leader() {
    let mut cfg = SimConfig::three_nodes(8595916140586816254);
    cfg.nodes.push(patroni_core::sim::NodeSpec::new("node3"));
    cfg.nodes[2].tags.nostream = true;
    cascade(&mut cfg, 3, 2);
    if let Err(f) = check(&cfg, &FaultSchedule::none()) {
        panic!("{f}");
    }
    let mut cfg = SimConfig::three_nodes(9803262723691692521);
    cfg.nodes[1].tags.nostream = true;
    cascade(&mut cfg, 0, 1);
    if let Err(f) = check(&cfg, &FaultSchedule::none()) {
        panic!("{f}");
    }
}

/// A standby does not switch to a `replicatefrom` member far behind it: it stays on the leader
/// (streaming) instead of pointing at a member it is ahead of and stalling until that member has
/// passed its position.
#[test]
fn a_cascade_member_far_behind_is_not_switched_to() {
    for seed in [1u64, 2, 3] {
        let mut cfg = SimConfig::three_nodes(seed);
        cascade(&mut cfg, 0, 1);
        // "Far" is `maximum_lag_on_failover`, here less than what the leader writes while
        // node1 restarts.
        cfg.dynamic.maximum_lag_on_failover = 256 * 1024;
        // node1 falls 4 MiB behind for good, then restarts: meanwhile node0 followed the leader.
        let schedule = FaultSchedule::none()
            .at(
                0,
                Fault::Lag {
                    node: 1,
                    bytes: 4 * 1024 * 1024,
                },
            )
            .at(
                1_000,
                Fault::CrashDb {
                    node: 1,
                    restartable: true,
                },
            );
        if let Err(f) = check(&cfg, &schedule) {
            panic!("{f}");
        }
        let end = millis(cfg.warmup) + 180_000;
        let mut w = World::new(cfg, &schedule, invariants::safety());
        w.run_until(end);
        let Some(&p) = w.writable().first() else {
            panic!("no primary:\n{}", w.trace().tail(40));
        };
        if p == 0 {
            continue;
        }
        let db = &w.dbs()[0];
        let upstream = db.upstream.clone().unwrap_or_default();
        let ok = db.streaming
            && (upstream == w.names()[p] || (upstream == "node1" && !db.waits_for(&w.dbs()[1])));
        assert!(
            ok,
            "node0 stalls on {upstream} (seed {seed}):\n{}",
            w.trace().tail(40)
        );
    }
}

/// Standbys cascading from a member that lags past `maximum_lag_on_failover` lag as much: when
/// the primary is lost, none of them may be promoted, and none is (the harness no longer
/// demands a primary then).
///
/// Found by the four-node topology campaign (seed 16972715958436727592).
#[test]
fn cascades_from_a_lagging_member_are_not_promoted() {
    let mut cfg = SimConfig::three_nodes(16972715958436727592);
    cfg.nodes.push(patroni_core::sim::NodeSpec::new("node3"));
    cascade(&mut cfg, 1, 0);
    cascade(&mut cfg, 2, 0);
    let schedule = FaultSchedule::none()
        .at(
            0,
            Fault::Lag {
                node: 0,
                bytes: 4 * 1024 * 1024,
            },
        )
        .at(72_231, Fault::LoseNode { node: 3 });
    if let Err(f) = check(&cfg, &schedule) {
        panic!("{f}");
    }
}

/// Mode `on`: writes acknowledged between the observation that names a standby and the moment
/// the primary's database applies the new `synchronous_standby_names` did not wait for it. With a
/// DCS round trip the decision lands seconds after its observation, and the client's writes in
/// between are acknowledged asynchronously. The standby, lagging, has passed the position of that
/// observation but not those writes when the primary decides to record it in `/sync`; its link
/// is then cut and the primary lost: promoting it would lose the writes.
#[test]
fn sync_standby_holds_writes_acknowledged_while_it_was_being_named() {
    let mut cfg = SimConfig::three_nodes(7);
    cfg.nodes.truncate(2);
    cfg.dynamic.synchronous_mode = SynchronousMode::On;
    cfg.dcs_rtt = Duration::from_secs(5);
    let loop_ms = millis(cfg.dynamic.loop_wait_duration());
    let mut w = World::new(cfg.clone(), &FaultSchedule::none(), invariants::safety());
    w.run_until(millis(cfg.warmup));
    let p = w.writable()[0];
    let x = 1 - p;
    let (leader, standby) = (w.names()[p].clone(), w.names()[x].clone());
    // Polls every 100 ms until `cond` holds, for at most `loops` loop waits.
    let wait = |w: &mut World, loops: u64, cond: &dyn Fn(&mut World) -> bool| {
        let end = w.now() + loops * loop_ms;
        while w.now() < end && !cond(w) {
            let t = w.now();
            w.run_until(t + 100);
        }
        assert!(cond(w), "{}", w.trace().tail(30));
    };
    // The standby drops out of `synchronous_standby_names` (commits go asynchronous), then comes
    // back 8 writes behind and is named again.
    w.inject(Fault::CutPeers {
        a: p,
        b: x,
        lasting: Duration::from_secs(25),
    });
    wait(&mut w, 4, &|w| {
        w.sync_state().is_some_and(|s| s.sync_standbys.is_empty())
    });
    w.inject(Fault::Lag {
        node: x,
        bytes: 8 * cfg.write_bytes,
    });
    // The primary decides to record the standby: cut it off before it receives more.
    let recording = format!("WriteSyncState(leader {leader}, [{standby}])");
    let decided = |w: &mut World| {
        w.trace()
            .lines
            .iter()
            .any(|l| l.who == leader && l.what.contains(&recording))
    };
    wait(&mut w, 8, &decided);
    w.inject(Fault::CutPeers {
        a: p,
        b: x,
        lasting: Duration::from_secs(600),
    });
    wait(&mut w, 1, &|w| {
        w.sync_state()
            .is_some_and(|s| s.sync_standbys.contains(&standby))
    });
    w.inject(Fault::LoseNode { node: p });
    let t = w.now();
    w.run_until(t + 12 * loop_ms);
    assert!(w.violation().is_none(), "{}", w.trace().tail(60));
    assert_eq!(w.writable(), vec![x], "{}", w.trace().tail(40));
}
