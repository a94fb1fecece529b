//! Network partitions on real processes, Jepsen-style: three agents with PostgreSQL 15 in
//! synchronous mode, every link through a fault-injecting proxy (each agent to each etcd member,
//! and other members to each node's PostgreSQL and REST API), and a writer per node that records
//! every acknowledged insert with the node, its term (postmaster start) and the instant.
//!
//! Faults: the primary cut from etcd (silently, and by resets); the primary losing etcd's replies
//! only (one way); the primary cut from etcd and from its replicas; the synchronous standby cut
//! from the primary only; links flapping for a minute (ignored while the agent bug it finds
//! stands, see the test); a three-member etcd losing its quorum. Cuts are silent (blackhole:
//! nothing passes, nothing is answered) unless a test says otherwise. Each test checks that
//! - no two terms acknowledged writes in overlapping spells (a node's last acknowledged write
//!   precedes the next primary's first),
//! - no acknowledged insert is missing from the final primary (synchronous mode: 0 lost),
//! - once healed, the cluster converges: one primary, the DCS leader, with every other member
//!   streaming from it and writes acknowledged again;
//!
//! and prints one line: the fault, when the old primary last acknowledged, the next primary's
//! first acknowledgement (or "kept"), the longest write gap during the fault, the recovery time
//! after the heal and the acknowledged writes lost.
//!
//! PostgreSQL's `wal_sender_timeout` and `wal_receiver_timeout` are 10 s here (default 60 s): a
//! silently cut standby stays in `pg_stat_replication` until its walsender times out, and
//! synchronous commits wait on it until then, as in Patroni.
//!
//! The first tests check the proxy itself against small local servers, and the checks against
//! a made-up record. `PATRONI_PARTITION_LOGS=<dir>` keeps every agent's and server's log;
//! `PATRONI_PARTITION_SEED` replays a flapping schedule's random choices (which node is hit
//! still follows whoever leads at the time).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::proxy::{Cut, Direction, Proxy};
use common::writer::{self, Ack, Writer};
use common::{report, Options, TestCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// The proxy on its own
// ---------------------------------------------------------------------------------------------

/// An echo server on a free port; runs until the test's runtime ends. Counts the bytes it got.
async fn echo_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let count = std::sync::Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            count.fetch_add(n, Ordering::SeqCst);
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, received)
}

/// Reads exactly `n` bytes within `within`; `None` on timeout, `Some(Err)` on a closed or reset stream.
async fn read_n(s: &mut TcpStream, n: usize, within: Duration) -> Option<std::io::Result<Vec<u8>>> {
    let mut buf = vec![0u8; n];
    match tokio::time::timeout(within, s.read_exact(&mut buf)).await {
        Err(_) => None,
        Ok(Ok(_)) => Some(Ok(buf)),
        Ok(Err(e)) => Some(Err(e)),
    }
}

#[tokio::test]
async fn proxy_blackhole_holds_both_ways_and_resumes_on_heal() {
    let (target, _) = echo_server().await;
    let p = Proxy::tcp(target);
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    a.write_all(b"one").await.unwrap();
    assert_eq!(
        read_n(&mut a, 3, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"one"
    );

    p.link().cut(Cut::Blackhole);
    a.write_all(b"two").await.unwrap();
    assert!(
        read_n(&mut a, 3, Duration::from_millis(500))
            .await
            .is_none(),
        "bytes crossed a blackhole"
    );
    // A new connection is accepted but never answered.
    let mut b = TcpStream::connect(p.addr()).await.unwrap();
    b.write_all(b"new").await.unwrap();
    assert!(read_n(&mut b, 3, Duration::from_millis(500))
        .await
        .is_none());

    p.link().heal();
    assert_eq!(
        read_n(&mut a, 3, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"two"
    );
    assert_eq!(
        read_n(&mut b, 3, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"new"
    );
}

#[tokio::test]
async fn proxy_reset_drops_existing_connections_and_refuses_new_ones() {
    let (target, _) = echo_server().await;
    let p = Proxy::tcp(target);
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    a.write_all(b"x").await.unwrap();
    assert!(read_n(&mut a, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .is_ok());

    p.link().cut(Cut::Reset);
    let r = read_n(&mut a, 1, Duration::from_secs(5)).await;
    assert!(
        matches!(r, Some(Err(_))),
        "an existing connection survived a reset: {r:?}"
    );
    // The reset may come before connect() returns, or on the first read.
    if let Ok(mut b) = TcpStream::connect(p.addr()).await {
        let _ = b.write_all(b"y").await;
        let r = read_n(&mut b, 1, Duration::from_secs(5)).await;
        assert!(
            matches!(r, Some(Err(_))),
            "a new connection was served: {r:?}"
        );
    }

    p.link().heal();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(b"z").await.unwrap();
    assert_eq!(
        read_n(&mut c, 1, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"z"
    );
}

#[tokio::test]
async fn proxy_one_way_cut_holds_one_direction_only() {
    use std::sync::atomic::Ordering;
    let (target, received) = echo_server().await;
    let p = Proxy::tcp(target);
    let mut a = TcpStream::connect(p.addr()).await.unwrap();

    // Server to client held: the server gets the bytes, the client not their echo.
    p.link().cut_one_way(Direction::Downstream);
    a.write_all(b"abc").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        received.load(Ordering::SeqCst),
        3,
        "the upstream direction was held too"
    );
    assert!(read_n(&mut a, 3, Duration::from_millis(500))
        .await
        .is_none());
    p.link().heal();
    assert_eq!(
        read_n(&mut a, 3, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"abc"
    );

    // Client to server held: nothing reaches the server.
    p.link().cut_one_way(Direction::Upstream);
    a.write_all(b"def").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        received.load(Ordering::SeqCst),
        3,
        "held bytes reached the server"
    );
    p.link().heal();
    assert_eq!(
        read_n(&mut a, 3, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"def"
    );
}

#[tokio::test]
async fn proxy_adds_latency_and_limits_bandwidth() {
    let (target, _) = echo_server().await;
    let p = Proxy::tcp(target);
    let mut a = TcpStream::connect(p.addr()).await.unwrap();

    p.link().delay(Duration::from_millis(200));
    let t = Instant::now();
    a.write_all(b"ping").await.unwrap();
    read_n(&mut a, 4, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let rtt = t.elapsed();
    // 200 ms each way.
    assert!(
        rtt >= Duration::from_millis(400),
        "round trip {rtt:?} under the added latency"
    );

    p.link().heal();
    p.link().bandwidth(100_000);
    let data = vec![7u8; 50_000];
    let t = Instant::now();
    a.write_all(&data).await.unwrap();
    read_n(&mut a, data.len(), Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let took = t.elapsed();
    // 50 kB at 100 kB/s is half a second each way; a chunk may go before its pause.
    assert!(
        took >= Duration::from_millis(300),
        "50 kB echoed in {took:?} at 100 kB/s"
    );
    println!("proxy: rtt {rtt:?} with 200 ms each way; 50 kB echoed in {took:?} at 100 kB/s");
}

/// A PostgreSQL startup packet with `application_name`.
fn startup_packet(app: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", "replicator"), ("application_name", app)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&body);
    p
}

#[tokio::test]
async fn proxy_cuts_one_postgres_source_by_application_name() {
    let (target, received) = echo_server().await;
    let p = Proxy::postgres(target);
    p.link_from("node2").cut(Cut::Blackhole);

    // node3 asks for SSL first, gets N, and its startup packet reaches the server.
    let mut ok = TcpStream::connect(p.addr()).await.unwrap();
    let mut ssl = 8u32.to_be_bytes().to_vec();
    ssl.extend_from_slice(&80_877_103u32.to_be_bytes());
    ok.write_all(&ssl).await.unwrap();
    assert_eq!(
        read_n(&mut ok, 1, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"N"
    );
    let pkt = startup_packet("node3");
    ok.write_all(&pkt).await.unwrap();
    assert_eq!(
        read_n(&mut ok, pkt.len(), Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        pkt,
        "node3's startup packet was not forwarded unchanged"
    );

    // node2 is cut: its packet never reaches the server.
    let before = received.load(std::sync::atomic::Ordering::SeqCst);
    let mut cut = TcpStream::connect(p.addr()).await.unwrap();
    let pkt2 = startup_packet("node2");
    cut.write_all(&pkt2).await.unwrap();
    assert!(read_n(&mut cut, 1, Duration::from_millis(500))
        .await
        .is_none());
    assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), before);

    // The source's heal lets it through; node3's connection was never affected.
    p.link_from("node2").heal();
    assert_eq!(
        read_n(&mut cut, pkt2.len(), Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        pkt2
    );
    ok.write_all(b"more").await.unwrap();
    assert_eq!(
        read_n(&mut ok, 4, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
        b"more"
    );
}

/// The writer's checks on a made-up record: they must see two writers and a lost write.
#[test]
fn the_checks_catch_overlapping_terms_and_lost_writes() {
    let ack = |id: u64, node: &str, start: &str, ms: u64| Ack {
        id,
        node: node.into(),
        port: 0,
        term: format!("{node}@{start}"),
        sent: Duration::from_millis(ms),
        at: Duration::from_millis(ms),
    };
    // node1 leads, node2 takes over, node1 comes back after a restart: three terms, in turn.
    let clean = vec![
        ack(1, "node1", "a", 100),
        ack(2, "node1", "a", 200),
        ack(3, "node2", "b", 300),
        ack(4, "node2", "b", 400),
        ack(5, "node1", "c", 500),
    ];
    assert!(writer::overlaps(&clean).is_empty());
    assert_eq!(writer::terms(&clean).len(), 3);
    // node1 still acknowledges in its first term after node2's first acknowledgement.
    let mut split = clean.clone();
    split.push(ack(6, "node1", "a", 350));
    let o = writer::overlaps(&split);
    assert_eq!(o.len(), 1);
    assert_eq!(
        (o[0].0.term.as_str(), o[0].1.term.as_str()),
        ("node1@a", "node2@b")
    );
    // Without the restart, node1's comeback is the same term, spanning node2's.
    let mut same_term = clean.clone();
    same_term[4].term = "node1@a".into();
    assert_eq!(writer::overlaps(&same_term).len(), 1);
    let present: HashSet<u64> = [1, 2, 3, 5].into_iter().collect();
    assert_eq!(writer::lost(&clean, &present), vec![4]);
    assert_eq!(
        writer::longest_gap(
            &clean,
            Duration::from_millis(150),
            Duration::from_millis(600)
        ),
        Duration::from_millis(100)
    );
}

// ---------------------------------------------------------------------------------------------
// Partitions of a real cluster
// ---------------------------------------------------------------------------------------------

const SYNC: &str = "    synchronous_mode: true\n";
const PG_TIMEOUTS: &str = "    wal_sender_timeout: 10s\n    wal_receiver_timeout: 10s\n";
const TABLE: &str = "t_acks";

/// A running scenario: the cluster, its writers and the primary before the fault.
struct Scenario {
    c: TestCluster,
    t0: Instant,
    writer: Writer,
    old: String,
    old_term: String,
}

impl Scenario {
    /// A proxied cluster in synchronous mode, the table, a synchronous standby recorded in
    /// `/sync`, and writers that already got acknowledgements from the primary.
    async fn start(tag: &str, etcd_members: usize) -> Scenario {
        let c = TestCluster::start_opts(
            tag,
            Options {
                extra_dcs: SYNC.into(),
                extra_pg: PG_TIMEOUTS.into(),
                etcd_members,
                proxies: true,
                ..Options::default()
            },
        )
        .await;
        let old = c.primary().await.expect("a primary");
        c.node(&old)
            .sql(&format!("CREATE TABLE {TABLE}(id bigint primary key)"))
            .expect("create table");
        c.wait(
            "a synchronous standby in /sync",
            Duration::from_secs(60),
            || async {
                let sync = c.view().await?.sync?;
                (!sync.value.sync_standbys.is_empty()).then_some(())
            },
        )
        .await;
        let t0 = Instant::now();
        let nodes: Vec<(String, u16)> = c
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.pg_port))
            .collect();
        let writer = Writer::per_node(&nodes, TABLE, t0);
        let mut s = Scenario {
            c,
            t0,
            writer,
            old: old.clone(),
            old_term: String::new(),
        };
        let first = s
            .wait_ack(
                "acknowledgements from the primary",
                Duration::from_secs(30),
                |a| a.node == old,
            )
            .await;
        s.old_term = first.term;
        tokio::time::sleep(Duration::from_secs(1)).await;
        s
    }

    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Waits for an acknowledgement that `pred` accepts; panics with the logs after `timeout`.
    async fn wait_ack(&self, what: &str, timeout: Duration, pred: impl Fn(&Ack) -> bool) -> Ack {
        self.c
            .wait(what, timeout, || async {
                self.writer.acks().into_iter().find(|a| pred(a))
            })
            .await
    }

    /// The member names in `/sync`.
    async fn sync_standbys(&self) -> Vec<String> {
        self.c
            .view()
            .await
            .and_then(|v| v.sync)
            .map(|s| s.value.sync_standbys)
            .unwrap_or_default()
    }

    /// Heals every link of every node.
    fn heal_all(&self) {
        for n in &self.c.nodes {
            n.links().heal();
        }
    }

    /// Waits for convergence after the heal, keeps writing until the final primary acknowledged
    /// again, then checks the writers' record and prints the figures.
    async fn finish(self, fault: &str, fault_at: Duration, heal_at: Duration) -> Figures {
        let deadline = Instant::now() + Duration::from_secs(150);
        let primary = loop {
            if let Some(p) = converged(&self.c).await {
                break p;
            }
            if Instant::now() > deadline {
                keep_logs(&self.c, fault);
                self.c.dump();
                describe_replication(&self.c);
                panic!("{fault}: no primary with every other member streaming from it 150 s after the heal");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let converged_at = self.now();
        self.wait_ack(
            "an acknowledgement from the final primary",
            Duration::from_secs(30),
            |a| a.node == primary && a.sent >= converged_at,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Scenario {
            c,
            writer,
            old,
            old_term,
            ..
        } = self;
        let acks = writer.finish();
        let present: HashSet<u64> = c
            .node(&primary)
            .sql(&format!("SELECT string_agg(id::text, ',') FROM {TABLE}"))
            .expect("the final primary's rows")
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        let lost = writer::lost(&acks, &present);
        let overlaps = writer::overlaps(&acks);
        let terms = writer::terms(&acks);
        let old_last = acks
            .iter()
            .filter(|a| a.term == old_term)
            .map(|a| a.at)
            .max()
            .unwrap_or_default();
        let next = terms
            .iter()
            .find(|t| t.term != old_term && t.first > fault_at);
        let fig = Figures {
            fault: fault.to_string(),
            old_last_after: old_last.saturating_sub(fault_at),
            next: next.map(|t| (t.node.clone(), t.first.saturating_sub(fault_at))),
            kept: next.is_none() && old_last > heal_at,
            gap: writer::longest_gap(&acks, fault_at, heal_at),
            recovery: converged_at.saturating_sub(heal_at),
            acks: acks.len(),
            lost: lost.len(),
            terms: terms.len(),
            final_primary: primary.clone(),
        };
        fig.print(&old);
        keep_logs(&c, fault);
        if !overlaps.is_empty() || !lost.is_empty() {
            c.dump();
            for t in &terms {
                eprintln!(
                    "term {}: first ack {:?}, last {:?}, {} acks",
                    t.term, t.first, t.last, t.acks
                );
            }
        }
        assert!(
            overlaps.is_empty(),
            "{fault}: two nodes acknowledged writes at once: {overlaps:#?}"
        );
        assert!(
            lost.is_empty(),
            "{fault}: {} acknowledged writes are missing on the final primary {primary}: {:?}",
            lost.len(),
            &lost[..lost.len().min(50)]
        );
        fig
    }
}

/// Copies every agent's and server's log to `$PATRONI_PARTITION_LOGS`, when set.
fn keep_logs(c: &TestCluster, fault: &str) {
    let Some(dir) = std::env::var_os("PATRONI_PARTITION_LOGS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::create_dir_all(&dir);
    let tag: String = fault
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
        .collect();
    for n in &c.nodes {
        let _ = std::fs::copy(&n.log, dir.join(format!("{tag}.{}.agent.log", n.name)));
        let _ = std::fs::copy(
            n.dir.join("data.log"),
            dir.join(format!("{tag}.{}.pg.log", n.name)),
        );
    }
}

/// Prints each node's replication state and proxies, for a cluster that did not converge.
fn describe_replication(c: &TestCluster) {
    for n in &c.nodes {
        let q = |sql: &str| n.sql(sql).unwrap_or_else(|| "(no answer)".into());
        eprintln!(
            "{}: in recovery {}, timeline {}, receiver [{}], primary_conninfo [{}], senders [{}]",
            n.name,
            q("SELECT pg_is_in_recovery()"),
            q("SELECT timeline_id FROM pg_control_checkpoint()"),
            q("SELECT status || ' ' || coalesce(sender_host, '?') || ':' || coalesce(sender_port::text, '?') || ' tli ' || received_tli FROM pg_stat_wal_receiver"),
            q("SHOW primary_conninfo"),
            q("SELECT string_agg(application_name || ' ' || state || ' ' || sync_state, ', ') FROM pg_stat_replication"),
        );
        for p in n.links().all() {
            eprintln!("  {}", p.describe());
        }
    }
}

/// One primary that the DCS names leader, with every other member streaming from it.
async fn converged(c: &TestCluster) -> Option<String> {
    let p = c.primary().await?;
    if c.leader().await.as_deref() != Some(p.as_str()) {
        return None;
    }
    let streaming = c.node(&p).sql(
        "SELECT coalesce(string_agg(application_name, ','), '') FROM pg_stat_replication WHERE state = 'streaming'",
    )?;
    let streaming: Vec<&str> = streaming.split(',').collect();
    for n in c.nodes.iter().filter(|n| n.name != p) {
        if !streaming.contains(&n.name.as_str()) || !c.is_streaming(&n.name).await {
            return None;
        }
    }
    Some(p)
}

/// What a scenario measured.
#[derive(Debug)]
struct Figures {
    fault: String,
    /// When the old primary's term last acknowledged, after the fault.
    old_last_after: Duration,
    /// The next term's node and first acknowledgement after the fault.
    next: Option<(String, Duration)>,
    /// The old primary kept acknowledging through the fault and after the heal.
    kept: bool,
    /// The longest time without any acknowledgement between the fault and the heal.
    gap: Duration,
    recovery: Duration,
    acks: usize,
    lost: usize,
    terms: usize,
    final_primary: String,
}

impl Figures {
    fn print(&self, old: &str) {
        let next = match (&self.next, self.kept) {
            (_, true) => "kept".to_string(),
            (Some((n, d)), _) => format!("{n} after {:.1} s", d.as_secs_f64()),
            (None, _) => "none".to_string(),
        };
        println!(
            "PARTITION | {:<44} | old primary {old} last acked +{:.1} s | next primary {next} | longest write gap {:.1} s | converged {:.1} s after heal on {} | {} acks in {} terms, {} lost",
            self.fault,
            self.old_last_after.as_secs_f64(),
            self.gap.as_secs_f64(),
            self.recovery.as_secs_f64(),
            self.final_primary,
            self.acks,
            self.terms,
            self.lost
        );
        report(
            &format!("partition: {}", self.fault),
            "converged after the heal",
            self.recovery.as_millis(),
        );
    }
}

/// Cuts the primary's agent from etcd (`how`) until another member acknowledged writes.
async fn primary_cut_from_etcd_by(tag: &str, how: Cut, fault: &str) {
    let s = Scenario::start(tag, 1).await;
    let old = s.old.clone();
    let fault_at = s.now();
    s.c.node(&old).links().set_etcd(Some(how));
    s.wait_ack(
        "a new primary's acknowledgement",
        Duration::from_secs(90),
        |a| a.node != old && a.at > fault_at,
    )
    .await;
    // Long enough for the cut node to act on anything stale it still believes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let heal_at = s.now();
    s.heal_all();
    let f = s.finish(fault, fault_at, heal_at).await;
    assert!(
        f.next.is_some(),
        "no new primary while the old one was cut from etcd"
    );
}

/// The realistic partition: etcd's packets are dropped, the agent's requests hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_cut_from_etcd() {
    primary_cut_from_etcd_by("part-etcd", Cut::Blackhole, "primary cut from etcd").await;
}

/// The loud one: every connection to etcd is reset at once, new ones refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_cut_from_etcd_by_resets() {
    primary_cut_from_etcd_by(
        "part-etcd-rst",
        Cut::Reset,
        "primary cut from etcd (resets)",
    )
    .await;
}

/// The primary's requests still reach etcd but no reply comes back (one-way cut), for two ttls:
/// it cannot confirm its lock, so it must stop acknowledging before anyone else starts, and
/// the cluster converges after the heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_loses_etcd_replies_one_way() {
    let s = Scenario::start("part-oneway", 1).await;
    let old = s.old.clone();
    let fault_at = s.now();
    for p in &s.c.node(&old).links().etcd {
        p.link().cut_one_way(Direction::Downstream);
    }
    tokio::time::sleep(Duration::from_millis(2 * common::TTL_MS)).await;
    let heal_at = s.now();
    s.heal_all();
    s.finish("primary loses etcd replies (one way)", fault_at, heal_at)
        .await;
}

/// Cuts the primary from etcd and from its replicas (PostgreSQL and REST, silently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_cut_from_etcd_and_replicas() {
    let s = Scenario::start("part-iso", 1).await;
    let old = s.old.clone();
    let fault_at = s.now();
    let links = s.c.node(&old).links();
    links.set_etcd(Some(Cut::Blackhole));
    links.set_peers(Some(Cut::Blackhole));
    s.wait_ack(
        "a new primary's acknowledgement",
        Duration::from_secs(90),
        |a| a.node != old && a.at > fault_at,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let heal_at = s.now();
    s.heal_all();
    let f = s
        .finish("primary cut from etcd and replicas", fault_at, heal_at)
        .await;
    assert!(
        f.next.is_some(),
        "no new primary while the old one was isolated"
    );
}

/// Cuts the synchronous standby's replication from the primary only: both keep etcd, the other
/// standby keeps streaming. The primary is kept; it names the other standby synchronous once the
/// cut one's walsender times out, and the cut one streams again after the heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replica_cut_from_primary_only() {
    let s = Scenario::start("part-replica", 1).await;
    let old = s.old.clone();
    let sync = s.sync_standbys().await;
    let cut = sync.first().cloned().expect("a synchronous standby");
    let fault_at = s.now();
    s.c.node(&old)
        .links()
        .pg
        .link_from(&cut)
        .cut(Cut::Blackhole);
    // The primary names another synchronous standby and acknowledges again.
    let other = s.c.other_than(&[&old, &cut]);
    s.c.wait(
        "the other standby named synchronous",
        Duration::from_secs(90),
        || async { (s.sync_standbys().await == vec![other.clone()]).then_some(()) },
    )
    .await;
    let switched = s.now() - fault_at;
    let resumed = s
        .wait_ack(
            "the primary acknowledging again",
            Duration::from_secs(30),
            |a| a.node == old && a.sent > fault_at + switched,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let streaming = s
        .c
        .node(&old)
        .sql("SELECT string_agg(application_name, ',') FROM pg_stat_replication WHERE state = 'streaming'")
        .unwrap_or_default();
    assert!(
        !streaming.split(',').any(|n| n == cut) && streaming.split(',').any(|n| n == other),
        "with {cut}'s link cut the primary streams to: {streaming}"
    );
    let heal_at = s.now();
    s.heal_all();
    let f = s
        .finish("sync standby cut from the primary", fault_at, heal_at)
        .await;
    println!(
        "PARTITION | sync standby {cut} replaced by {other} in /sync {:.1} s after the cut; writes resumed {:.1} s after it",
        switched.as_secs_f64(),
        (resumed.at - fault_at).as_secs_f64()
    );
    assert!(f.kept, "the primary was not kept: {f:?}");
    assert_eq!(f.final_primary, old);
}

/// A small deterministic generator for the flapping schedule.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// For a minute, every 1–5 s: heal everything, then fault some links of one node (the leader two
/// times in three): cut from etcd (blackhole or reset), from everything, from its peers only,
/// one peer's replication from it, etcd's replies lost (one way), every link slow (latency and
/// bandwidth); sometimes nothing.
///
/// It found, in about one run in seven, an old primary whose fence had stopped it coming back to
/// etcd believing it held the lock: its renewal was refused, it started as a standby, the refusal
/// made it cancel that start and demote, the demote found no postmaster yet (the cancelled
/// start's was still coming up) and the node stayed a standby without `primary_conninfo` for good.
/// A standby start now goes on after a refused renewal, a spawned postmaster is known (and
/// stopped) from the instant it is started, and a demoted server is pointed at the leader again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_links_for_a_minute() {
    let seed = std::env::var("PATRONI_PARTITION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("flapping seed {seed} (PATRONI_PARTITION_SEED)");
    let mut rng = XorShift(seed);
    let s = Scenario::start("part-flap", 1).await;
    let fault_at = s.now();
    let mut schedule = Vec::new();
    while s.now() < fault_at + Duration::from_secs(60) {
        s.heal_all();
        let leader = tokio::time::timeout(Duration::from_secs(2), s.c.leader())
            .await
            .ok()
            .flatten();
        let target = match leader {
            Some(l) if rng.below(3) < 2 => l,
            _ => s.c.nodes[rng.below(3) as usize].name.clone(),
        };
        let links = s.c.node(&target).links();
        let what = match rng.below(8) {
            0 => {
                links.set_etcd(Some(Cut::Blackhole));
                "etcd blackhole".to_string()
            }
            1 => {
                links.set_etcd(Some(Cut::Reset));
                "etcd reset".to_string()
            }
            2 => {
                links.set_etcd(Some(Cut::Blackhole));
                links.set_peers(Some(Cut::Blackhole));
                "isolated".to_string()
            }
            3 => {
                links.set_peers(Some(Cut::Blackhole));
                "peers blackhole".to_string()
            }
            4 => {
                let peer =
                    s.c.other_than(&[&target, &s.c.nodes[rng.below(3) as usize].name]);
                links.pg.link_from(&peer).cut(Cut::Blackhole);
                format!("replication of {peer} cut")
            }
            5 => {
                for p in &links.etcd {
                    p.link().cut_one_way(Direction::Downstream);
                }
                "etcd replies lost (one way)".to_string()
            }
            6 => {
                for p in links.all() {
                    p.link().delay(Duration::from_millis(300));
                    p.link().bandwidth(256 * 1024);
                }
                "every link slow (300 ms, 256 kB/s)".to_string()
            }
            _ => "nothing".to_string(),
        };
        let hold = Duration::from_millis(1000 + rng.below(4000));
        schedule.push(format!(
            "+{:.1} s {target}: {what} for {:.1} s",
            (s.now() - fault_at).as_secs_f64(),
            hold.as_secs_f64()
        ));
        tokio::time::sleep(hold).await;
    }
    let heal_at = s.now();
    s.heal_all();
    println!("flapping schedule:\n{}", schedule.join("\n"));
    let f = s
        .finish(
            &format!("flapping links 60 s ({} steps)", schedule.len()),
            fault_at,
            heal_at,
        )
        .await;
    println!("flapping: {} primary terms acknowledged writes", f.terms);
}

/// Two of three etcd members freeze (SIGSTOP): no quorum, so no lock can be renewed. The
/// primary must stop acknowledging before its lease could run out; nobody may be promoted until
/// the quorum is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_quorum_loss() {
    let s = Scenario::start("part-quorum", 3).await;
    let old = s.old.clone();
    let fault_at = s.now();
    for m in &s.c.etcd_peers {
        m.pause().expect("pause an etcd member");
    }
    // The old primary stops acknowledging; wait until it has been silent for a ttl.
    s.c.wait(
        "the primary to stop acknowledging",
        Duration::from_secs(90),
        || async {
            let acks = s.writer.acks();
            let last = acks
                .iter()
                .filter(|a| a.term == s.old_term)
                .map(|a| a.at)
                .max()?;
            (s.now() > last + Duration::from_millis(common::TTL_MS)).then_some(())
        },
    )
    .await;
    let heal_at = s.now();
    for m in &s.c.etcd_peers {
        m.resume().expect("resume an etcd member");
    }
    let f = s
        .finish("etcd quorum loss (2 of 3 frozen)", fault_at, heal_at)
        .await;
    if let Some((node, at)) = &f.next {
        assert!(
            *at >= heal_at - fault_at,
            "{node} acknowledged writes as primary while etcd had no quorum"
        );
    }
    assert!(!f.kept, "{old} kept acknowledging without an etcd quorum");
}
