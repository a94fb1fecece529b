#![cfg(feature = "sim")]
//! Regression schedules for the windows in which two nodes could accept writes, each
//! run with the watchdog off so that the state machine's own decisions are what keeps them shut.
//! The single-primary invariant is checked after every event, so every instant is covered.
//!
//! The lost race as a running primary (item 2) needs an interleaving no fault produces on its
//! own; it lives beside the executor (`sim::exec::tests`).

use std::time::Duration;

use patroni_core::instant::{self, millis};
use patroni_core::sim::{invariants, Fault, FaultSchedule, SimConfig, World};
use patroni_core::ActionKind;

fn warm(cfg: SimConfig) -> (World, usize) {
    let warmup = millis(cfg.warmup);
    let mut w = World::new(cfg, &FaultSchedule::none(), invariants::safety());
    w.run_until(warmup);
    let p = w.writable();
    assert_eq!(p.len(), 1, "warm-up:\n{}", w.trace());
    (w, p[0])
}

/// Item 1: the primary's data directory turns unreadable under its running server. Before the
/// fix the leader released the lock and left the server running: a standby was promoted beside it.
#[test]
fn an_unreadable_data_directory_is_stopped_before_anyone_is_promoted() {
    let mut cfg = SimConfig::three_nodes(21);
    cfg.watchdog = false;
    let (loop_ms, promote_ms) = (
        millis(cfg.dynamic.loop_wait_duration()),
        millis(cfg.timings.promote),
    );
    let (mut w, p) = warm(cfg);
    let t0 = w.now();
    w.inject(Fault::UnreadableDataDir { node: p });
    let bound = t0 + loop_ms + promote_ms + 2_000;
    let done = w
        .run_until_cond(bound, |w| w.writable().len() == 1 && w.writable()[0] != p)
        .unwrap_or_else(|| panic!("no new primary in time:\n{}", w.trace().tail(40)));
    w.run_until(done + 3 * loop_ms);
    assert!(w.violation().is_none(), "{}", w.trace().tail(40));
    assert!(!w.dbs()[p].writable());
    println!(
        "unreadable data dir: new primary {} ms after the fault",
        done - t0
    );
}

/// Item 3: a primary restarting after a crash loses its lock while its start is still running
/// (cut off from the DCS long enough for a standby to take over). Before the fix the start was
/// left to finish, and the old primary came up writable beside the new one.
#[test]
fn a_primary_that_loses_its_lock_while_starting_never_comes_up_writable() {
    let mut cfg = SimConfig::three_nodes(22);
    cfg.watchdog = false;
    cfg.timings.start = Duration::from_secs(60);
    let ttl = cfg.dynamic.ttl_duration();
    let (mut w, p) = warm(cfg);
    let t0 = w.now();
    w.inject(Fault::CrashDb {
        node: p,
        restartable: true,
    });
    w.run_until_cond(t0 + 20_000, |w| {
        w.tasks_started()
            .iter()
            .any(|&(at, n, k)| at >= t0 && n == p && k == ActionKind::Start)
    })
    .unwrap_or_else(|| panic!("the primary did not start again:\n{}", w.trace().tail(30)));
    w.inject(Fault::CutDcs {
        node: p,
        lasting: ttl + Duration::from_secs(15),
    });
    let t1 = w.now();
    w.run_until(t1 + 90_000);
    assert!(w.violation().is_none(), "{}", w.trace().tail(40));
    let now = w.writable();
    assert_eq!(now.len(), 1, "{}", w.trace().tail(40));
    assert_ne!(now[0], p, "the old primary must not have kept the role");
}

/// `ttl` is raised and the primary is cut off from the DCS right after. The
/// lease the store holds and the lease the primary counts must be the same one: the primary
/// demotes before any standby can take over, and nobody is promoted beside it.
#[test]
fn a_raised_ttl_is_the_lease_the_primary_counts_and_the_store_holds() {
    for (seed, ttl) in [(23, 60), (24, 12)] {
        let mut cfg = SimConfig::three_nodes(seed);
        cfg.watchdog = false;
        let (mut w, p) = warm(cfg);
        w.inject(Fault::SetTtl { ttl });
        let t = w.now();
        w.run_until(t + 25_000);
        w.inject(Fault::CutDcs {
            node: p,
            lasting: 3 * Duration::from_secs(ttl),
        });
        let t = w.now();
        w.run_until(instant::after(t, 4 * Duration::from_secs(ttl)));
        assert!(w.violation().is_none(), "ttl {ttl}: {}", w.trace().tail(40));
        assert_eq!(w.writable().len(), 1, "ttl {ttl}: {}", w.trace().tail(40));
    }
}

/// Found by `sim_invariants` once the fence ran by default (seed 3484320105828025684): in pause
/// the primary's agent stalls, and the cluster is resumed while it is stalled. The lock ran out
/// during the pause, nothing asks the primary to step down, and a standby raced at once. Now the
/// fence follows the agent's liveness in pause, and after a resume members with a silent peer
/// wait a `ttl` before racing.
#[test]
fn a_resume_while_the_paused_primary_agent_stalls_promotes_nobody_beside_it() {
    let cfg = SimConfig::three_nodes(3484320105828025684);
    let schedule = FaultSchedule::none()
        .at(0, Fault::Pause)
        .at(
            50_230,
            Fault::Stall {
                node: 2,
                lasting: Duration::from_millis(45_190),
            },
        )
        .at(93_219, Fault::Resume);
    if let Err(f) = patroni_core::sim::check(&cfg, &schedule) {
        panic!("{f}");
    }
}

/// The leader's agent is killed (its database left running) and started again two
/// ttls later. The fence stops the database before the lease can expire elsewhere, a standby is
/// promoted, and the restarted agent brings its node back as a standby.
#[test]
fn a_killed_leader_agent_is_fenced_and_its_node_rejoins() {
    let cfg = SimConfig::three_nodes(25);
    let ttl = cfg.dynamic.ttl_duration();
    let (mut w, p) = warm(cfg);
    w.inject(Fault::KillAgent {
        node: p,
        lasting: 2 * ttl,
    });
    let t0 = w.now();
    let new = w
        .run_until_cond(instant::after(t0, 2 * ttl), |w| {
            w.writable().len() == 1 && w.writable()[0] != p
        })
        .unwrap_or_else(|| panic!("no new primary:\n{}", w.trace().tail(40)));
    assert!(
        w.trace().lines.iter().any(|l| l.what.contains("FENCE")),
        "the fence must have stopped the old primary:\n{}",
        w.trace().tail(40)
    );
    let leader = w.writable()[0];
    let back = w.run_until_cond(instant::after(t0, 5 * ttl), |w| {
        let db = &w.dbs()[p];
        db.is_running_standby()
            && db.streaming
            && db.upstream.as_deref() == Some(w.names()[leader].as_str())
    });
    assert!(
        back.is_some(),
        "the restarted node did not rejoin:\n{}",
        w.trace().tail(40)
    );
    assert!(w.violation().is_none(), "{}", w.trace().tail(40));
    println!("killed agent: new primary {} ms after the kill", new - t0);
}

/// Found by `sim_invariants` (nofailover campaign, 100,000 schedules, seed 5413111036766232764):
/// the primary is cut off from the DCS while paused, so it keeps running without its lock; the
/// cluster is resumed while it is still cut off, and a standby's agent is killed and started
/// again. The fresh agent knew neither the former leader nor its address (its member key had
/// expired), raced, and was promoted beside it. Its own database was still streaming from that
/// primary the whole time: a live upstream no member key names now holds the race.
#[test]
fn a_restarted_agent_does_not_race_while_its_database_streams_from_an_unknown_primary() {
    let mut cfg = SimConfig::three_nodes(5413111036766232764);
    cfg.nodes[2].tags = patroni_core::Tags {
        nofailover: true,
        ..patroni_core::Tags::default()
    };
    let schedule = FaultSchedule::none()
        .at(0, Fault::Switchover { candidate: None })
        .at(55_298, Fault::Pause)
        .at(
            55_530,
            Fault::CutDcs {
                node: 0,
                lasting: Duration::from_millis(54_984),
            },
        )
        .at(85_306, Fault::Resume)
        .at(
            86_700,
            Fault::KillAgent {
                node: 1,
                lasting: Duration::from_millis(21_813),
            },
        );
    if let Err(failure) = patroni_core::sim::check(&cfg, &schedule) {
        panic!("{failure}");
    }
}

/// Found by `sim_invariants` (async/all/rtt50 campaign, 100,000 schedules, seed
/// 2315168596445477548): the primary is cut off from the DCS while paused, the cluster is
/// resumed while it is still cut off, and then its agent is killed with the database left
/// running. Nothing stops that database (a paused node's fence stands down), its agent never
/// saw the resume, and the standbys, which had been told "still alive" until then, raced once
/// its REST API went silent. Their databases still streamed from it: that holds the race until
/// a lock holder shows it runs unpaused.
#[test]
fn a_paused_primary_that_missed_the_resume_and_lost_its_agent_is_not_joined_by_another() {
    let mut cfg = SimConfig::three_nodes(2315168596445477548);
    cfg.dcs_rtt = Duration::from_millis(50);
    let schedule = FaultSchedule::none()
        .at(5_892, Fault::Pause)
        .at(
            49_476,
            Fault::CutDcs {
                node: 1,
                lasting: Duration::from_millis(38_262),
            },
        )
        .at(76_232, Fault::Resume)
        .at(
            87_788,
            Fault::KillAgent {
                node: 1,
                lasting: Duration::from_millis(12_408),
            },
        );
    if let Err(failure) = patroni_core::sim::check(&cfg, &schedule) {
        panic!("{failure}");
    }
}

/// Found by `sim_invariants` (cascading topologies, 100,000 schedules, seed 16742739917619964429):
/// `ttl` is raised to 60 s, a switchover promotes node2 and its agent stalls 32 s right after
/// taking the lock. The lease it took the lock with and the deadline its fence counts must be
/// the same: otherwise the lock expires, another node is promoted, and the stalled node's
/// promotion completes beside it.
#[test]
fn a_stalled_new_leader_is_fenced_by_the_lease_it_took_the_lock_with() {
    let mut cfg = SimConfig::three_nodes(16742739917619964429);
    cfg.nodes[1].tags = patroni_core::Tags {
        nostream: true,
        ..patroni_core::Tags::default()
    };
    let schedule = FaultSchedule::none()
        .at(0, Fault::SetTtl { ttl: 60 })
        .at(33_793, Fault::Failover { candidate: 1 })
        .at(109_464, Fault::Switchover { candidate: None })
        .at(
            112_266,
            Fault::Stall {
                node: 2,
                lasting: Duration::from_millis(32_367),
            },
        );
    if let Err(failure) = patroni_core::sim::check(&cfg, &schedule) {
        panic!("{failure}");
    }
}

/// Found by `sim_invariants` (cascading topologies, synchronous mode, 100,000 schedules, seed
/// 3359769229642586940): the cluster is resumed while its paused primary is cut off from one
/// standby, and the primary is cut off from the DCS before its next loop, so it never sees the
/// resume and keeps running as primary. The standby it is cut off from no longer streams from it
/// and cannot ask it: a silent former leader that never confirmed the resume holds the race
/// whether or not our database still streams from it.
#[test]
fn a_paused_primary_that_missed_the_resume_holds_the_race_while_it_is_silent() {
    let mut cfg = SimConfig::three_nodes(3359769229642586940);
    cfg.dynamic.synchronous_mode = patroni_core::SynchronousMode::On;
    let schedule = FaultSchedule::none()
        .at(9_961, Fault::Pause)
        .at(
            40_421,
            Fault::CutPeers {
                a: 1,
                b: 0,
                lasting: Duration::from_millis(40_041),
            },
        )
        .at(43_151, Fault::Resume)
        .at(
            43_491,
            Fault::CutDcs {
                node: 0,
                lasting: Duration::from_millis(56_971),
            },
        );
    if let Err(failure) = patroni_core::sim::check(&cfg, &schedule) {
        panic!("{failure}");
    }
}

/// The other side of the rule above: when that silent former leader is gone for good, nobody is
/// promoted on their own, and an operator's manual failover to a named member goes ahead.
#[test]
fn a_lost_paused_primary_is_replaced_by_a_manual_failover() {
    let mut cfg = SimConfig::three_nodes(3359769229642586940);
    cfg.watchdog = false;
    let ttl = millis(cfg.dynamic.ttl_duration());
    let (mut w, p) = warm(cfg);
    w.inject(Fault::Pause);
    w.run_until(w.now() + 15_000);
    w.inject(Fault::Resume);
    // Lost before its next loop: it never confirms the resume.
    w.inject(Fault::LoseNode { node: p });
    let t0 = w.now();
    w.run_until(t0 + 3 * ttl);
    assert!(w.violation().is_none(), "{}", w.trace().tail(40));
    assert!(
        w.writable().is_empty(),
        "promoted without the operator:\n{}",
        w.trace().tail(40)
    );
    let candidate = (p + 1) % 3;
    w.inject(Fault::Failover { candidate });
    let done = w
        .run_until_cond(w.now() + 4 * ttl, |w| w.writable() == vec![candidate])
        .unwrap_or_else(|| {
            panic!(
                "the manual failover did not promote:\n{}",
                w.trace().tail(40)
            )
        });
    assert!(w.violation().is_none(), "{}", w.trace().tail(40));
    println!(
        "manual failover: new primary {} ms after the request",
        done - t0 - 3 * ttl
    );
}
