//! The fence on real processes: the leader's agent is SIGKILLed, or SIGSTOPped for two ttls,
//! while its postgres keeps running. A writer through a multi-host read-write DSN records every
//! acknowledged insert; the fence must have stopped the old postmaster before the new primary
//! acknowledges anything, and in synchronous mode no acknowledged insert may be lost (with
//! asynchronous replication the last few acknowledged before the fence fired may not have
//! reached the standby: that bound is `maximum_lag_on_failover`, not the fence's).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::writer::{Ack, Writer};
use common::{report, TestCluster, TTL_MS};

/// Kills or stalls the leader's agent, then checks who accepted writes when and what was kept.
async fn leader_agent_fault(tag: &str, stall: bool) {
    let mut c = TestCluster::start_with(tag, "    synchronous_mode: true\n").await;
    let old = c.primary().await.unwrap();
    c.node(&old)
        .sql("CREATE TABLE t_acks(id bigint primary key)")
        .expect("create table");
    let old_port = c.node(&old).pg_port;
    let old_pm = c.node(&old).postmaster_pid().expect("old postmaster");
    assert!(
        c.node(&old).fence_pid().is_some(),
        "the leader has no fence"
    );
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.pg_port).collect();
    let t0 = Instant::now();
    let writer = Writer::multi_host(&ports, "t_acks", t0);
    // In synchronous mode only a standby recorded in /sync may be promoted: wait for one.
    c.wait(
        "a synchronous standby in /sync",
        Duration::from_secs(30),
        || async {
            let sync = c.view().await?.sync?;
            (!sync.value.sync_standbys.is_empty()).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fault_at = t0.elapsed();
    if stall {
        c.node(&old).signal_agent("STOP");
    } else {
        c.node_mut(&old).kill9_agent();
    }
    // When the old postmaster dies, seen every 10 ms (the REST probes below can take seconds).
    let died = Arc::new(Mutex::new(None::<Duration>));
    let watcher = {
        let died = Arc::clone(&died);
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(90);
            while Instant::now() < until {
                if !patroni_postgres::datadir::process_alive(old_pm) {
                    *died.lock().unwrap() = Some(t0.elapsed());
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let new = loop {
        if let Some(p) = c.primary().await.filter(|p| *p != old) {
            break p;
        }
        if Instant::now() > deadline {
            c.dump();
            let sync: Vec<String> = c
                .node(&old)
                .log_tail(400)
                .lines()
                .filter(|l| l.to_lowercase().contains("sync"))
                .map(String::from)
                .collect();
            eprintln!("old leader's sync lines:\n{}", sync.join("\n"));
            eprintln!("view: {:?}", c.view().await.map(|v| v.sync));
            panic!("no new primary within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_port = c.node(&new).pg_port;
    // Keep writing through the new primary for a moment.
    let promoted_at = t0.elapsed();
    c.wait(
        "writes on the new primary",
        Duration::from_secs(30),
        || async {
            let n = c.node(&new).sql("SELECT count(*) FROM t_acks")?;
            (n.parse::<u64>().ok()? > 0).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if stall {
        // Twice the ttl in all before the agent runs again.
        let resume = fault_at + Duration::from_millis(2 * TTL_MS);
        if let Some(wait) = resume.checked_sub(t0.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        c.node(&old).signal_agent("CONT");
    }
    let acks = writer.finish();
    let _ = watcher.join();
    let pm_dead_at = died.lock().unwrap().unwrap_or_else(|| {
        c.dump();
        panic!("the fence never stopped the old postmaster {old_pm}")
    });
    let first_new = acks
        .iter()
        .find(|a| a.port == new_port)
        .map(|a| a.at)
        .expect("the new primary acknowledged nothing");
    let late_on_old: Vec<&Ack> = acks
        .iter()
        .filter(|a| a.port == old_port && a.at >= first_new)
        .collect();
    // Every acknowledged id must be on the new primary.
    let on_new: std::collections::HashSet<u64> = c
        .node(&new)
        .sql("SELECT string_agg(id::text, ',') FROM t_acks")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let lost: Vec<u64> = acks
        .iter()
        .map(|a| a.id)
        .filter(|id| !on_new.contains(id))
        .collect();
    if pm_dead_at > first_new || !late_on_old.is_empty() || !lost.is_empty() {
        c.dump();
    }
    assert!(
        pm_dead_at <= first_new,
        "old postmaster alive until {pm_dead_at:?}, new primary acknowledged at {first_new:?}"
    );
    assert!(
        late_on_old.is_empty(),
        "the old primary acknowledged after the new one: {late_on_old:?}"
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let what = if stall { "SIGSTOP" } else { "SIGKILL" };
    report(
        &format!("leader agent {what}"),
        &format!(
            "fence stopped the old postmaster {} ms after the fault; {new} promoted at {} ms; {} acks, 0 lost (synchronous mode)",
            (pm_dead_at - fault_at).as_millis(),
            (promoted_at - fault_at).as_millis(),
            acks.len()
        ),
        (first_new - fault_at).as_millis(),
    );
    if stall {
        c.wait_streaming(
            &old,
            "the stalled node back as a standby",
            Duration::from_secs(90),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_agent_is_fenced_before_failover() {
    leader_agent_fault("fencekill", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_leader_agent_is_fenced_before_failover() {
    leader_agent_fault("fencestop", true).await;
}

/// An agent killed and started again at once finds its fence running and takes it over: the
/// fence is the same process, the deadline it held covered the gap, and the primary kept running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_takes_its_fence_over_without_a_gap() {
    let mut c = TestCluster::start("fencetakeover").await;
    let leader = c.primary().await.unwrap();
    let fence = c.node(&leader).fence_pid().expect("fence");
    let pm = c.node(&leader).postmaster_pid().expect("postmaster");
    c.node_mut(&leader).kill9_agent();
    c.node_mut(&leader).start_agent();
    // Longer than the deadline the fence held when the old agent died.
    tokio::time::sleep(Duration::from_millis(TTL_MS)).await;
    assert_eq!(c.node(&leader).fence_pid(), Some(fence), "a second fence");
    assert!(
        patroni_postgres::datadir::process_alive(pm),
        "the fence stopped a primary whose restarted agent renewed in time"
    );
    c.wait("the same primary", Duration::from_secs(20), || async {
        (c.primary().await.as_deref() == Some(leader.as_str())).then_some(())
    })
    .await;
}
